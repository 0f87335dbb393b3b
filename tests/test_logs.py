"""Log lines: an event and its fields, as JSON for programs and as text for people."""

import io
import json
import logging
import os
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pythonjsonlogger.orjson import OrjsonFormatter

from service.logs import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    log_context,
    log_event,
    resolve_log_format,
)
from tests.log_capture import json_logs

REPOSITORY = Path(__file__).resolve().parents[1]

log = logging.getLogger("tests.logs")


def text_line(record: logging.LogRecord) -> str:
    ContextFilter().filter(record)
    return TextFormatter().format(record)


def test_an_event_is_the_message_and_its_fields_are_keys_of_the_json_line() -> None:
    with json_logs() as logs, log_context(job_id="context-job", worker="w-1"):
        log_event(log, "job.reaped", level=logging.WARNING, job_id="j-7", outcome="requeued")

    (line,) = logs.all()
    assert (line["message"], line["level"]) == ("job.reaped", "WARNING")
    # The event's own job id wins over the context's; the context adds the worker.
    assert (line["job_id"], line["outcome"], line["worker"]) == ("j-7", "requeued", "w-1")
    assert not any(key.startswith("_") for key in line)


def test_an_events_fields_follow_it_as_key_value_in_text_and_the_context_in_brackets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=log.name), log_context(job_id="c-1", worker="w-1"):
        log_event(log, "job.checkpoint", job_id="j-7", epoch=20)
        (record,) = caplog.records
        line = text_line(record)

    assert line.endswith(" INFO tests.logs job.checkpoint job_id=j-7 epoch=20 [worker=w-1]")


def test_auto_logs_text_to_a_terminal_and_json_anywhere_else() -> None:
    primary, secondary = os.openpty()
    with os.fdopen(primary, "rb"), os.fdopen(secondary, "w") as terminal:
        assert resolve_log_format("auto", terminal) == "text"
        assert resolve_log_format("json", terminal) == "json"
    assert resolve_log_format("auto", io.StringIO()) == "json"
    assert resolve_log_format("text", io.StringIO()) == "text"


def first_line_of_a_worker(url: str, stderr_on_a_terminal: bool) -> str:
    """The first line `backprop worker` logs (after its start-up) when its stderr is a
    terminal or a pipe, with BACKPROP_LOG_FORMAT unset."""
    env = {key: value for key, value in os.environ.items() if key != "BACKPROP_LOG_FORMAT"}
    primary, secondary = os.openpty()
    worker = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"],
        cwd=REPOSITORY,
        env={**env, "BACKPROP_DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=secondary if stderr_on_a_terminal else subprocess.PIPE,
    )
    os.close(secondary)
    try:
        if not stderr_on_a_terminal:
            assert worker.stderr is not None
            return worker.stderr.readline().decode()
        written = b""
        deadline = time.monotonic() + 60
        while b"\n" not in written and time.monotonic() < deadline:
            if select.select([primary], [], [], 1)[0]:
                written += os.read(primary, 4096)
        return written.decode().splitlines()[0]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        os.close(primary)
        if worker.stderr is not None:
            worker.stderr.close()


def test_a_worker_started_at_a_terminal_logs_text_and_one_started_elsewhere_json(
    migrated_url: str,
) -> None:
    at_a_terminal = first_line_of_a_worker(migrated_url, stderr_on_a_terminal=True)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \S+ INFO service\.jobs\.worker worker\.started worker=\S+ "
        r"blas_threads=\d+\s*",
        at_a_terminal,
    ), at_a_terminal

    piped = json.loads(first_line_of_a_worker(migrated_url, stderr_on_a_terminal=False))
    assert (piped["message"], piped["logger"]) == ("worker.started", "service.jobs.worker")


class LibraryJsonFormatter(JsonFormatter):
    """The JSON line as python-json-logger's own `add_fields` writes it."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = datetime.fromtimestamp(record.created, UTC)
        OrjsonFormatter.add_fields(self, log_data, record, message_dict)


def test_a_json_line_has_every_field_python_json_logger_writes_in_its_order() -> None:
    def record(**extra: Any) -> logging.LogRecord:
        made = log.makeRecord(log.name, logging.INFO, __file__, 1, "event.x", (), None, extra=extra)
        ContextFilter().filter(made)
        return made

    try:
        raise ValueError("broken")
    except ValueError:
        failing = log.makeRecord(
            log.name, logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    with_stack = log.makeRecord(log.name, logging.INFO, __file__, 1, "m", (), None, sinfo="stack")
    as_dict = log.makeRecord(log.name, logging.INFO, __file__, 1, {"a": 1}, (), None)
    with log_context(request_id="r-1", job_id="j-1"):
        records = [
            record(),
            record(method="GET", status=200, duration_ms=1.5, job_id="own", _private=1),
            record(color_message="coloured", **{"3": "digits"}),
            failing,
            with_stack,
            as_dict,
        ]
    for each in records:
        ours, library = JsonFormatter().format(each), LibraryJsonFormatter().format(each)
        assert ours == library
        assert list(json.loads(ours)) == list(json.loads(library))  # the same order
    assert "ValueError: broken" in json.loads(JsonFormatter().format(failing))["exc_info"]


class PassingFilter(ContextFilter):
    """The context filter under another class: a handler with it gets records as usual."""


def test_an_event_written_straight_to_the_configured_handler_is_the_formatters_line() -> None:
    # As `configure_logging` sets it up, one stream handler with JsonFormatter and
    # ContextFilter: `log_event` writes its line without a record. A handler with another
    # filter class gets the record, formatted by JsonFormatter: the lines must match.
    def capture(name: str, filter_class: type[ContextFilter]) -> tuple[logging.Logger, io.StringIO]:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(filter_class())
        logger = logging.getLogger(f"tests.logs.{name}")
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
        return logger, stream

    direct, direct_lines = capture("direct", ContextFilter)
    usual, usual_lines = capture("usual", PassingFilter)
    events: list[tuple[str, dict[str, Any]]] = [
        ("request.completed", {"method": "POST", "path": "/x", "status": 200, "duration_ms": 1.5}),
        ("job.claimed", {"job_id": "own", "_private": 1, "color_message": "c", "epochs": [1, 2]}),
        ("job.started", {"at": datetime(2026, 1, 2, tzinfo=UTC), "none": None, "ratio": 0.1}),
    ]
    with log_context(request_id="r-1", job_id="j-1", _hidden="h"):
        for event, fields in events:
            log_event(direct, event, **fields)
            log_event(usual, event, **fields)
        log_event(direct, "job.warned", level=logging.WARNING, n=1)
        log_event(usual, "job.warned", level=logging.WARNING, n=1)
        log_event(direct, "job.debug", level=logging.DEBUG, n=1)

    def without_time(stream: io.StringIO) -> list[str]:
        lines = stream.getvalue().replace("tests.logs.usual", "tests.logs.direct").splitlines()
        return [re.sub(r'"timestamp":"[^"]+"', "T", line) for line in lines]

    assert without_time(direct_lines) == without_time(usual_lines)
    assert len(without_time(direct_lines)) == 4
    first = json.loads(direct_lines.getvalue().splitlines()[0])
    assert list(first) == [
        "timestamp",
        "level",
        "logger",
        "message",
        "method",
        "path",
        "status",
        "duration_ms",
        "request_id",
        "job_id",
    ]
    assert datetime.fromisoformat(first["timestamp"]).tzinfo is not None
