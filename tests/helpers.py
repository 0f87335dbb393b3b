"""Helpers shared by the API, CLI and end-to-end tests."""

import json
import socket
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from service.db import Base, make_engine

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_spec(name: str) -> dict[str, Any]:
    """A `{"network", "training"}` spec from examples/, the files the README shows."""
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def row_counts(url: str) -> dict[str, int]:
    """Rows in every table, to show that a rejected request wrote nothing."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: connection.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


XOR_DATASET = {"name": "xor", "generator": {"kind": "xor", "n_samples": 4}}


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def backprop_command(*args: str) -> list[str]:
    """The `backprop` command line, run with this interpreter."""
    return [sys.executable, "-m", "service.cli", *args]
