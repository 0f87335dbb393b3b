"""Model files over HTTP: a download's bytes, headers and documentation, and reading an
uploaded file. The formats themselves are `service.formats`'."""

import hashlib
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query, Response, UploadFile

from service import formats
from service.config import Settings
from service.core import Model
from service.errors import NotAvailable


class FileFormat(StrEnum):
    """What a download is: the native model file or an ONNX graph."""

    NATIVE = "native"
    ONNX = "onnx"


FormatParam = Annotated[
    FileFormat,
    Query(
        alias="format",
        description="`native` (default): the model file `backprop predict` and the upload "
        "route read; `onnx`: an ONNX graph (opset 17) for onnxruntime and other runtimes.",
    ),
]

MEDIA_TYPES = {FileFormat.NATIVE: formats.MEDIA_TYPE, FileFormat.ONNX: formats.ONNX_MEDIA_TYPE}
SUFFIXES = {FileFormat.NATIVE: formats.SUFFIX, FileFormat.ONNX: formats.ONNX_SUFFIX}
BINARY = {"schema": {"type": "string", "format": "binary"}}
DOWNLOAD_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The model as one file, as an attachment: the native model file "
        "(a zip of `manifest.json` and `model.npz`) or, with `format=onnx`, an ONNX model.",
        "content": {media_type: BINARY for media_type in MEDIA_TYPES.values()},
        "headers": {
            "Content-Disposition": {
                "description": "`attachment; filename=...`",
                "schema": {"type": "string"},
            },
            "ETag": {
                "description": "The SHA-256 of the file's bytes.",
                "schema": {"type": "string"},
            },
        },
    }
}


def download(weights: bytes, file_format: FileFormat, stem: str, about: dict[str, Any]) -> Response:
    """The stored model `weights` as an attachment named `stem` plus the format's suffix;
    `about` (where it came from) goes into the manifest or the ONNX metadata."""
    if file_format is FileFormat.ONNX:
        try:
            data = formats.write_onnx(Model.from_bytes(weights), about)
        except formats.OnnxUnavailable as error:
            raise NotAvailable(str(error)) from None
    else:
        data = formats.wrap_payload(weights, about)
    filename = f"{stem}{SUFFIXES[file_format]}"
    return Response(
        data,
        media_type=MEDIA_TYPES[file_format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
        },
    )


def read_upload(settings: Settings, file: UploadFile) -> tuple[Model, bytes]:
    """The uploaded model file's model and its checked payload, as the registry stores it;
    a SpecError naming `file` for anything that is not a sound model file."""
    data = file.file.read(settings.max_upload_bytes + 1)
    model, _, payload = formats.read_model_file(
        data, max_bytes=settings.max_upload_bytes, max_parameters=settings.max_parameters
    )
    return model, payload
