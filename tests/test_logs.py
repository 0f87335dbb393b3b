"""Log lines: an event and its fields, as JSON for programs and as text for people."""

import logging

import pytest

from service.logs import ContextFilter, TextFormatter, log_context, log_event
from tests.log_capture import json_logs

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
