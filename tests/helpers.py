"""Helpers shared by the API and end-to-end tests."""

from sqlalchemy import func, select

from service.db import Base, make_engine


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
