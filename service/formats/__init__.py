"""A model as a file: the native model file (`native.py`) and the ONNX export
(`onnx.py`, which needs the optional `onnx` package: `pip install 'backprop-service[onnx]'`).

Imports the core only (and, in `onnx.py`, onnx)."""

import io
import zipfile
from typing import Any

from service.core import Model, SpecError

from .native import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MEDIA_TYPE,
    SUFFIX,
    read_model_file,
    service_version,
    wrap_payload,
    write_model_file,
)

ONNX_MEDIA_TYPE = "application/onnx"
ONNX_SUFFIX = ".onnx"
ONNX_EXTRA = "pip install 'backprop-service[onnx]'"


class OnnxUnavailable(RuntimeError):
    """The `onnx` package is not installed, so no ONNX file can be written."""

    def __init__(self) -> None:
        super().__init__(
            f"ONNX export needs the onnx package, an optional extra: {ONNX_EXTRA} "
            "(the container image has it)"
        )


def write_onnx(model: Model, about: dict[str, Any] | None = None) -> bytes:
    """`model` as a serialized ONNX model (see `service.formats.onnx`); OnnxUnavailable
    when the optional onnx package is not installed."""
    try:
        from service.formats.onnx import to_onnx
    except ModuleNotFoundError as error:
        # onnx, or the protobuf it needs; any other missing module is a bug to show.
        if (error.name or "").split(".")[0] not in ("onnx", "google"):
            raise
        raise OnnxUnavailable() from None
    return to_onnx(model, about)


def load_model(data: bytes, max_bytes: int | None = None) -> Model:
    """A model from a native model file (every check of `read_model_file`), or from the
    bare model archive that `backprop train --out` writes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bare = MANIFEST not in archive.namelist()
    except zipfile.BadZipFile:
        raise SpecError("file", "is not a backprop model file (not a zip archive)") from None
    if bare:
        return Model.from_bytes(data)
    return read_model_file(data, max_bytes)[0]


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MEDIA_TYPE",
    "ONNX_EXTRA",
    "ONNX_MEDIA_TYPE",
    "ONNX_SUFFIX",
    "SUFFIX",
    "OnnxUnavailable",
    "load_model",
    "read_model_file",
    "service_version",
    "wrap_payload",
    "write_model_file",
    "write_onnx",
]
