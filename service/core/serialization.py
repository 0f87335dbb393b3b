"""Bytes for checkpoints and models: an `.npz` archive of arrays plus JSON metadata.

No pickle anywhere: arrays load with `allow_pickle=False` and everything else is JSON.
"""

import io
import json
import zipfile
from typing import Any

import numpy as np

from .errors import SpecError

FORMAT_VERSION = 1


def pack(kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """One archive holding `meta` (JSON-able) and the named arrays."""
    header = {"kind": kind, "format": FORMAT_VERSION, **meta}
    buffer = io.BytesIO()
    named = {"__meta__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays}
    np.savez(buffer, allow_pickle=False, **named)
    return buffer.getvalue()


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
