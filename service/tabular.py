"""Tabular files: a CSV file (an upload or a path) read into numeric inputs and either
numeric targets or class labels.

Parsed by Apache Arrow's CSV reader, a block at a time, into arrays allocated once: the
parse runs in C++ threads without the GIL, and the memory it holds is the result plus a
block or two (bench/README.md, "CSV upload", says why this reader and what it costs).
"""

import csv
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from service.core.errors import SpecError
from service.core.labels import ClassName, Labels

# Arrow's own allocator (mimalloc) keeps over 100 MB of a large file's blocks after they
# are freed, even after release_unused(); the C library's returns them, so the process
# shrinks back once a file is parsed. Only this module uses Arrow.
pa.set_memory_pool(pa.system_memory_pool())
# Parse on all cores but one: the API process serves other requests meanwhile, and
# its event loop needs a core to do so.
pa.set_cpu_count(max(1, (os.cpu_count() or 1) - 1))

# Text read per parsed block: big enough that per-block work is noise, small enough that
# the blocks in flight stay a small part of the result.
BLOCK_BYTES = 4 * 1024 * 1024
# How much of the file the byte counting reads at a time.
COUNT_CHUNK_BYTES = 16 * 1024 * 1024
INTEGER = re.compile(r"[+-]?\d+")
BOOLEANS = {"true": True, "false": False}


class _BadBlock(Exception):
    """Arrow refused a block; the rows before it were read without fault."""

    def __init__(self, rows_before: int, error: pa.ArrowInvalid) -> None:
        super().__init__(str(error))
        self.rows_before = rows_before
        self.error = error


class TooManyRows(SpecError):
    """The file has more data rows than the caller's `max_rows`."""


@dataclass
class Table:
    """A file's rows: `inputs` float64 `(n, f)`, and `targets` float64 `(n, t)` or
    `labels` (exactly one of the two); `feature_names` from the header row, if any."""

    inputs: np.ndarray
    targets: np.ndarray | None
    labels: Labels | None
    feature_names: tuple[str, ...] | None


@dataclass(frozen=True)
class _Layout:
    """Which column is what, decided from the first row before the bulk parse."""

    header: tuple[str, ...] | None
    lines_before_data: int  # blank lines and the header row, which the parser skips
    width: int
    label_index: int | None
    n_targets: int

    @property
    def target_indices(self) -> list[int]:
        if self.label_index is not None:
            return [self.label_index]
        return list(range(self.width - self.n_targets, self.width))

    @property
    def feature_indices(self) -> list[int]:
        targets = set(self.target_indices)
        return [index for index in range(self.width) if index not in targets]

    def name(self, index: int) -> str:
        return self.header[index] if self.header is not None else f"#{index}"


def read_csv(
    source: BinaryIO | Path,
    *,
    label_column: str | int | None = None,
    n_targets: int | None = None,
    field: str = "file",
    max_rows: int | None = None,
) -> Table:
    """Read a CSV file whose first row may be a header (a row that is not all numbers).

    `label_column` (a header name, or a 0-based index; a name needs a header, and digits
    that name no header column are an index) holds class labels: integers, booleans
    (true/false) or any other text; every other column is a numeric feature. Otherwise
    the last `n_targets` (default 1; 0 for inputs alone) columns are numeric targets.
    Blank lines are skipped; ragged rows, non-numeric or NaN/infinite features and
    missing labels are refused with a SpecError naming `field` and the row (1-based,
    data rows only).
    More than `max_rows` data rows are refused before they are all parsed. A file object
    must be binary and seekable (an upload's spooled file is).
    """
    if label_column is not None and n_targets is not None:
        raise SpecError("label_column", "give either label_column or targets, not both")
    if n_targets is not None and n_targets < 0:
        raise SpecError("targets", "must be 0 or more")
    if isinstance(source, Path):
        with source.open("rb") as file:
            return _read(file, label_column, n_targets, field, max_rows)
    return _read(source, label_column, n_targets, field, max_rows)


def _read(
    file: BinaryIO,
    label_column: str | int | None,
    n_targets: int | None,
    field: str,
    max_rows: int | None,
) -> Table:
    start = file.tell()
    layout = _layout(file, label_column, n_targets, field)
    file.seek(start)
    capacity = _row_capacity(file, layout)
    if max_rows is not None:
        capacity = min(capacity, max_rows + 1)
    file.seek(start)
    try:
        table = _parse(file, layout, capacity, field, max_rows)
    except _BadBlock as bad:
        file.seek(start)
        raise _explain(file, layout, field, bad) from None
    finally:
        # Whatever the allocator still holds of the freed blocks goes back to the system,
        # so the process shrinks once the file is parsed.
        pa.default_memory_pool().release_unused()
    return table


def _layout(
    file: BinaryIO, label_column: str | int | None, n_targets: int | None, field: str
) -> _Layout:
    first, lines_read = _first_row(file, field)
    cells = [cell.strip() for cell in first]
    width = len(cells)
    label_index = None
    if label_column is None:
        is_header = not _all_numbers(cells)
        n_targets = 1 if n_targets is None else n_targets
        if not 0 <= n_targets < width:
            raise SpecError("targets", f"must leave at least one input column of {width}")
    else:
        label_index = _label_index(label_column, cells)
        # Labels may be text in any row: only the features tell a header from data.
        features = cells[:label_index] + cells[label_index + 1 :]
        named = isinstance(label_column, str) and not label_column.isdigit()
        is_header = named or not _all_numbers(features)
        if width < 2:
            raise SpecError(field, "has one column: no room for features beside the labels")
        n_targets = 1
    return _Layout(
        header=tuple(cells) if is_header else None,
        lines_before_data=lines_read if is_header else lines_read - 1,
        width=width,
        label_index=label_index,
        n_targets=n_targets,
    )


def _first_row(file: BinaryIO, field: str) -> tuple[list[str], int]:
    """The first non-blank row and how many lines were read up to its end."""
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(text)
        for row in reader:
            if row:
                return row, reader.line_num
    except UnicodeDecodeError:
        raise SpecError(field, "is not UTF-8 text") from None
    except csv.Error as error:
        raise SpecError(field, f"is not CSV the service can read: {error}") from None
    finally:
        text.detach()  # the caller keeps using (and closes) the binary file
    raise SpecError(field, "has no data rows")


def _label_index(label_column: str | int, first_row: list[str]) -> int:
    """The label column's index: a name in the header row, or a 0-based index (digits
    that name no header column count as an index)."""
    if isinstance(label_column, str):
        if label_column in first_row and not _all_numbers(first_row):
            return first_row.index(label_column)
        if not label_column.isdigit():
            if _all_numbers(first_row):
                raise SpecError(
                    "label_column",
                    f"names the column {label_column!r}, but the file has no header row; "
                    "give the column's 0-based index",
                )
            raise SpecError(
                "label_column",
                f"{label_column!r} is not a column of the header row: {', '.join(first_row)}",
            )
        label_column = int(label_column)
    if not 0 <= label_column < len(first_row):
        raise SpecError(
            "label_column",
            f"is column {label_column}; the file has columns 0 to {len(first_row) - 1}",
        )
    return label_column


def _row_capacity(file: BinaryIO, layout: _Layout) -> int:
    """At least the number of data rows, so the arrays can be allocated once: the line
    ends in the file, counted on bytes (quick). Bounded by the bytes too, as every data
    row has `width - 1` commas and a line end: a wide first row over many blank lines
    must not make the arrays huge."""
    newlines = returns = size = 0
    while chunk := file.read(COUNT_CHUNK_BYTES):
        newlines += chunk.count(b"\n")
        returns += chunk.count(b"\r")
        size += len(chunk)
    # "\r\n" ends a line once; "\r" alone (old Mac files) ends one too.
    lines = max(newlines, returns) + 1 - layout.lines_before_data
    return max(1, min(lines, size // layout.width + 1))


def _parse(
    file: BinaryIO, layout: _Layout, capacity: int, field: str, max_rows: int | None
) -> Table:
    names = [f"c{index}" for index in range(layout.width)]
    features = [names[index] for index in layout.feature_indices]
    targets = [names[index] for index in layout.target_indices]
    types = {name: pa.float64() for name in features}
    if layout.label_index is None:
        types.update((name, pa.float64()) for name in targets)
    else:
        types[targets[0]] = pa.string()
    try:  # the reader parses its first block as it opens
        reader = pa_csv.open_csv(
            file,
            read_options=pa_csv.ReadOptions(
                column_names=names, skip_rows=layout.lines_before_data, block_size=BLOCK_BYTES
            ),
            # No cell is ever null: an empty cell is an error for a feature and a missing label.
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise _BadBlock(0, error) from None
    feature_indices = layout.feature_indices
    inputs = np.empty((capacity, len(features)))
    target_values = np.empty((capacity, len(targets))) if layout.label_index is None else None
    if not targets:  # inputs only, as for a prediction
        target_values = None
    label_cells: list[str] = []
    n_rows = 0
    # The reader is closed (its read-ahead stopped) before the file is read again.
    with reader:
        while (batch := _next_batch(reader, n_rows)) is not None:
            end = n_rows + batch.num_rows
            if max_rows is not None and end > max_rows:
                raise TooManyRows(field, f"has more than {max_rows} rows, the limit")
            if end > capacity:  # not a CSV file as the line count understood it
                raise SpecError(field, f"has more rows than line ends ({capacity})")
            _fill(inputs[n_rows:end], batch.select(features))
            _check_finite(inputs[n_rows:end], n_rows, feature_indices, layout, field)
            if target_values is not None:
                _fill(target_values[n_rows:end], batch.select(targets))
                _check_finite(
                    target_values[n_rows:end], n_rows, layout.target_indices, layout, field
                )
            elif layout.label_index is not None:
                label_cells.extend(batch.column(targets[0]).to_pylist())
            n_rows = end
    if n_rows == 0:
        raise SpecError(field, "has no data rows")
    labels = None
    if layout.label_index is not None:
        labels = Labels.from_values(
            _label_values(label_cells, layout.name(layout.label_index), field), "label_column"
        )
    header = layout.header
    return Table(
        inputs=_trimmed(inputs, n_rows),
        targets=None if target_values is None else _trimmed(target_values, n_rows),
        labels=labels,
        feature_names=None if header is None else tuple(header[i] for i in layout.feature_indices),
    )


def _next_batch(reader: pa_csv.CSVStreamingReader, rows_before: int) -> pa.RecordBatch | None:
    try:
        batch: pa.RecordBatch = reader.read_next_batch()
    except StopIteration:
        return None
    except pa.ArrowInvalid as error:
        raise _BadBlock(rows_before, error) from None
    return batch


def _fill(out: np.ndarray, batch: pa.RecordBatch) -> None:
    """Copy a batch of float64 columns into rows of `out`: each column is a NumPy view of
    Arrow's buffer, written in place with one copy (3x faster than `to_tensor` and a copy)."""
    np.stack([column.to_numpy() for column in batch.columns], axis=1, out=out)


def _check_finite(
    block: np.ndarray, first_row: int, columns: list[int], layout: _Layout, field: str
) -> None:
    if np.isfinite(block).all():
        return
    row, column = np.argwhere(~np.isfinite(block))[0]
    raise SpecError(
        field,
        f"row {first_row + int(row) + 1} column {layout.name(columns[int(column)])!r} "
        f"holds {block[row, column]}, not a finite number",
    )


def _trimmed(values: np.ndarray, n_rows: int) -> np.ndarray:
    """The first `n_rows` rows; copied only if the blank lines counted in the capacity
    would leave much unused memory behind the view."""
    if n_rows >= 0.9 * len(values):
        return values[:n_rows]
    return values[:n_rows].copy()


def _label_values(cells: list[str], column: str, field: str) -> list[ClassName]:
    """Labels in their own type: all integers, all true/false, or else the text."""
    stripped = [cell.strip() for cell in cells]
    for row, cell in enumerate(stripped):
        if not cell:
            raise SpecError(field, f"row {row + 1} has no label in column {column!r}")
    if all(INTEGER.fullmatch(cell) for cell in stripped):
        return [int(cell) for cell in stripped]
    if all(cell.lower() in BOOLEANS for cell in stripped):
        return [BOOLEANS[cell.lower()] for cell in stripped]
    return list(stripped)


def _explain(file: BinaryIO, layout: _Layout, field: str, bad: _BadBlock) -> SpecError:
    """The parser's error told by row and column: Arrow's message names neither, so the
    file is read again with the `csv` module up to the first row at fault, checking the
    numbers only from the refused block on. Only refused files pay for it."""
    numeric = (
        layout.feature_indices if layout.label_index is not None else list(range(layout.width))
    )
    for row, cells in _data_rows(file, layout):
        if len(cells) != layout.width:
            return SpecError(field, f"row {row} has {len(cells)} columns; expected {layout.width}")
        if row <= bad.rows_before or _all_numbers([cells[index] for index in numeric]):
            continue
        index = next(index for index in numeric if not _all_numbers([cells[index]]))
        return SpecError(
            field,
            f"row {row} column {layout.name(index)!r} holds {cells[index].strip()!r}, not a number",
        )
    return SpecError(field, f"is not CSV the service can read: {bad.error}")


def _data_rows(file: BinaryIO, layout: _Layout) -> Iterator[tuple[int, list[str]]]:
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="", errors="replace")
    reader = csv.reader(text)
    row = 0
    try:
        for cells in reader:
            if reader.line_num <= layout.lines_before_data or not cells:
                continue
            row += 1
            yield row, cells
    except csv.Error:
        return
    finally:
        text.detach()


def _all_numbers(cells: list[str]) -> bool:
    try:
        [float(cell) for cell in cells]
    except ValueError:
        return False
    return True
