"""Capture what the service's JSON log handler writes, as parsed lines."""

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.logs import ContextFilter, JsonFormatter


class JsonLines:
    """The lines written so far, each parsed as one JSON object."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        lines = self.stream.getvalue().splitlines()
        parsed = [json.loads(line) for line in lines]
        assert all(isinstance(line, dict) for line in parsed), lines
        return parsed


@contextmanager
def json_logs(level: int = logging.INFO) -> Iterator[JsonLines]:
    """Log through the same filter and formatter as `configure_logging(..., "json")`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield JsonLines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
