"""Bytes for checkpoints and models: an `.npz` archive of arrays plus JSON metadata.

No pickle anywhere: arrays load with `allow_pickle=False` and everything else is JSON.
"""

import io
import json
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from .errors import SpecError

FORMAT_VERSION = 1

# Archives up to this size are written by `_stored_zip`; larger ones need ZIP64, and
# `np.savez` writes those.
SMALL_ARCHIVE_BYTES = 1 << 30
# The .npy header is padded so that the data starts at a multiple of this (numpy's own).
NPY_ALIGN = 64
# Every entry is dated 1980-01-01 00:00, as np.savez dates them: the same arrays give
# the same bytes.
DOS_TIME, DOS_DATE = 0, (1 << 5) | 1


def pack(kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """One archive holding `meta` (JSON-able) and the named arrays: an `.npz` file."""
    header = {"kind": kind, "format": FORMAT_VERSION, **meta}
    named = {"__meta__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays}
    values = {name: np.asarray(array) for name, array in named.items()}
    if (
        all(not array.dtype.hasobject for array in values.values())
        and sum(array.nbytes for array in values.values()) < SMALL_ARCHIVE_BYTES
    ):
        return _stored_zip({f"{name}.npy": _npy(array) for name, array in values.items()})
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **named)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    """`array` (no objects) in the .npy format, version 1.0, its values in C order."""
    descr = np.lib.format.dtype_to_descr(array.dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {array.shape!r}, }}"
    # Magic (6 bytes), version (2), header length (2), header, padding, newline.
    padding = -(10 + len(text) + 1) % NPY_ALIGN
    header = text + " " * padding + "\n"
    return (
        b"\x93NUMPY\x01\x00"
        + struct.pack("<H", len(header))
        + header.encode("latin1")
        + (array.tobytes())
    )


def _stored_zip(files: dict[str, bytes]) -> bytes:
    """A zip archive of `files`, uncompressed (what np.savez writes, without ZIP64).
    np.savez costs about 50 us an archive in zipfile's and numpy's Python code, which a
    job's snapshots (a model and a checkpoint each, every few epochs) paid many times over."""
    parts: list[bytes] = []
    directory: list[bytes] = []
    offset = 0
    for name, data in files.items():
        encoded = name.encode()
        crc, size = zlib.crc32(data), len(data)
        fields = (DOS_TIME, DOS_DATE, crc, size, size, len(encoded))
        local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, *fields, 0) + encoded
        parts += (local, data)
        directory.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, *fields, 0, 0, 0, 0, 0, offset
            )
            + encoded
        )
        offset += len(local) + size
    listing = b"".join(directory)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(listing), offset, 0
    )
    return b"".join(parts) + listing + end


def unpack(kind: str, data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of `pack`; refuses archives of another kind or format."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("__meta__").tobytes())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise SpecError(
            kind, f"not a valid {kind} archive ({error or type(error).__name__})"
        ) from None
    if not isinstance(meta, dict):
        raise SpecError(kind, f"not a valid {kind} archive (no metadata)")
    if meta.get("kind") != kind or meta.get("format") != FORMAT_VERSION:
        raise SpecError(kind, f"archive holds {meta.get('kind')} format {meta.get('format')}")
    return meta, arrays
