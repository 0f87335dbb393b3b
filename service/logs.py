"""Logging for `backprop serve` and `backprop worker`: one JSON object per line, or text.

What the service does is logged with `log_event`: an event name as the message
(`job.claimed`) and the ids and numbers as fields, never formatted into the message, so
that programs read the fields and people read the same fields as `key=value`.

Context fields (the request id of the HTTP request being served, the job id and worker
of the job being run) live in a context variable set with `log_context`; a filter on the
handler copies them onto every record, so every line logged meanwhile carries them,
from any logger, including those of libraries.
"""

import logging
import logging.config
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

LogFormat = Literal["json", "text"]
LogFormatSetting = Literal["auto", "json", "text"]

# The record attribute naming the fields a `log_event` call passed; underscored, so the
# JSON formatter leaves it out.
EVENT_FIELDS = "_event_fields"

_context: ContextVar[Mapping[str, object]] = ContextVar("log_context", default=MappingProxyType({}))


def bind(**fields: object) -> Token[Mapping[str, object]]:
    """Add `fields` to the log context until `unbind(token)` (or the task's end)."""
    return _context.set({**_context.get(), **fields})


def unbind(token: Token[Mapping[str, object]]) -> None:
    """Restore the log context from before the `bind` that returned `token`."""
    _context.reset(token)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every line logged inside the block carries `fields`, in this thread or task."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def context_value(name: str) -> object:
    """A field of the current log context, or None."""
    return _context.get().get(name)


def log_event(
    logger: logging.Logger,
    event: str,
    *,
    level: int = logging.INFO,
    exc_info: BaseException | bool = False,
    **fields: object,
) -> None:
    """Log `event` (e.g. "job.claimed") as the message, with `fields` as fields of the line:
    keys of the JSON object, `key=value` after the event in text. Where a field is also in
    the log context, the value given here is the one this line carries."""
    logger.log(
        level,
        event,
        exc_info=exc_info,
        extra={**fields, EVENT_FIELDS: tuple(fields)},
        # The caller's file and line, not this function's.
        stacklevel=2,
    )


class ContextFilter(logging.Filter):
    """Copies the log context onto each record; fields the call passed in `extra` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name, value in context.items():
            if name not in record.__dict__:
                setattr(record, name, value)
        # For TextFormatter; underscored, so the JSON formatter leaves it out.
        record._context_names = tuple(context)
        return True


class JsonFormatter(OrjsonFormatter):
    """`{"timestamp", "level", "logger", "message", ...extra and context fields}`."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn's `color_message` repeats the message with terminal colours.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """The fields python-json-logger's `add_fields` writes, in its order, with the
        timestamp first, for people reading the lines. Its own merge of the record's extra
        fields tested every attribute of the record three times (about a fifth of an access
        log line's cost); here a record's ~25 attributes are one pass."""
        log_data["timestamp"] = datetime.fromtimestamp(record.created, UTC)
        attributes = record.__dict__
        log_data["level"] = attributes.get("levelname")
        log_data["logger"] = attributes.get("name")
        log_data["message"] = attributes.get("message")
        log_data.update(message_dict)
        skipped = self._skip_fields
        log_data.update(
            (key, value)
            for key, value in attributes.items()
            if key not in skipped and not key.startswith("_")
        )


class TextFormatter(logging.Formatter):
    """One readable line: time, level, logger, message (the event), the event's fields as
    `name=value`, then in brackets the context fields that the event did not set; a
    traceback follows on the next lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        event_fields: tuple[str, ...] = getattr(record, EVENT_FIELDS, ())
        shown = [f"{name}={record.__dict__[name]}" for name in event_fields]
        if shown:
            line = f"{line} {' '.join(shown)}"
        context = [
            f"{name}={record.__dict__[name]}"
            for name in getattr(record, "_context_names", ())
            if name not in event_fields
        ]
        return f"{line} [{' '.join(context)}]" if context else line


def resolve_log_format(setting: LogFormatSetting, stream: TextIO | None = None) -> LogFormat:
    """The format to log in: `auto` is text when `stream` (stderr) is a terminal, where a
    person reads it (`make run`), and JSON otherwise (containers, files, pipes)."""
    if setting != "auto":
        return setting
    return "text" if (stream or sys.stderr).isatty() else "json"


def logging_config(level: str, log_format: LogFormatSetting) -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration: everything to stderr through one
    handler, uvicorn's loggers included (pass it to uvicorn as `log_config`)."""
    formatter = JsonFormatter if resolve_log_format(log_format) == "json" else TextFormatter
    # uvicorn's own loggers only pass their records on to the root handler.
    passthrough = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"main": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["context"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {**passthrough},
            "uvicorn.error": {**passthrough},
            # The access log is service.access's (see service.api.telemetry).
            "uvicorn.access": {**passthrough, "level": "WARNING"},
            # Its schema checks would log the migration context at every start.
            "alembic": {"level": "WARNING"},
        },
    }


def configure_logging(level: str, log_format: LogFormatSetting) -> None:
    """Configure this process's logging (see `logging_config`). Records skip what no line
    shows (the logging HOWTO's "Optimization"): the calling thread's and process's names
    and the caller's file and line, about a quarter of the cost of a record."""
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    logging.config.dictConfig(logging_config(level, log_format))
