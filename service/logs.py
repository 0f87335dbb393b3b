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
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TextIO

import orjson
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
    if not logger.isEnabledFor(level):
        return
    if not exc_info and _write_json_line(logger, level, event, fields):
        return
    logger.log(
        level,
        event,
        exc_info=exc_info,
        extra={**fields, EVENT_FIELDS: tuple(fields)},
        # The caller's file and line, not this function's.
        stacklevel=2,
    )


def _write_json_line(
    logger: logging.Logger, level: int, event: str, fields: Mapping[str, object]
) -> bool:
    """Write the line `JsonFormatter` would write for this event straight to the stream,
    where the one handler the record would reach is the configured one (a stream handler
    with `JsonFormatter` and `ContextFilter` only, nothing filtering on the way): the
    same bytes, without a LogRecord and the handling and formatting machinery, most of an
    access log line's cost. False where that is not so (a test's capturing handler, text
    logs, a field the record would refuse): the caller then logs as usual."""
    handler = _only_json_handler(logger, level)
    if handler is None or not _RECORD_KEYS.isdisjoint(fields):
        return False
    formatter: JsonFormatter = handler.formatter  # type: ignore[assignment]
    skipped = formatter._skip_fields
    line: dict[str, object] = {
        "timestamp": datetime.fromtimestamp(time.time(), UTC),
        "level": logging.getLevelName(level),
        "logger": logger.name,
        "message": event,
    }
    # The record's attributes in their order: the event's fields, then the context's
    # that the event does not set (`ContextFilter`), underscored and reserved names left
    # out as `JsonFormatter.add_fields` leaves them out.
    for key, value in fields.items():
        if key not in skipped and not key.startswith("_"):
            line[key] = value
    for key, value in _context.get().items():
        if key not in fields and key not in skipped and not key.startswith("_"):
            line[key] = value
    text = orjson.dumps(line, default=formatter.json_default, option=orjson.OPT_NON_STR_KEYS)
    with handler.lock:  # type: ignore[union-attr]
        try:
            handler.stream.write(text.decode() + handler.terminator)
            handler.flush()
        except Exception:
            return False  # logged as usual, which reports the failure as logging does
    return True


# The attributes of a record, which a field may not overwrite (`Logger.makeRecord`).
_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}


def _only_json_handler(logger: logging.Logger, level: int) -> logging.StreamHandler[Any] | None:
    """The handler a record of `logger` at `level` reaches, if it reaches one only and
    that is a plain stream handler with `JsonFormatter` and `ContextFilter` alone."""
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        for handler in current.handlers:
            if level >= handler.level:
                if found is not None:
                    return None
                found = handler
        if not current.propagate:
            break
        current = current.parent
    if (
        type(found) is not logging.StreamHandler
        or type(found.formatter) is not JsonFormatter
        or len(found.filters) != 1
        or type(found.filters[0]) is not ContextFilter
        or logging.getLogRecordFactory() is not logging.LogRecord
    ):
        return None
    return found


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
