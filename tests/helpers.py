"""Helpers shared by the API and end-to-end tests."""

import json
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
