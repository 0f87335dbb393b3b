"""The native model file: a zip of `manifest.json` and `model.npz`.

`model.npz` is `Model.to_bytes()` as the service stores it (the network spec, the flat
parameters, the preprocessing statistics, the classes, the loss and the feature names:
NumPy arrays and JSON, no pickle); `manifest.json` names the format and its version,
holds the payload's SHA-256, and says where the model came from. Reading checks every
part before anything else sees the model, and every refusal is a SpecError naming
`file`.
"""

import hashlib
import io
import json
import zipfile
import zlib
from datetime import datetime
from importlib import metadata
from typing import Any

import numpy as np

from service.core import Model, NetworkSpec, SpecError
from service.core.labels import check_labels_fit
from service.core.serialization import unpack

FORMAT = "backprop-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PAYLOAD = "model.npz"
MEDIA_TYPE = "application/vnd.backprop.model+zip"
SUFFIX = ".backprop"
FIELD = "file"
# The zip entries' timestamp: fixed, so one model always makes the same bytes (and ETag).
ENTRY_TIME = (1980, 1, 1, 0, 0, 0)
# What a damaged zip archive raises while it is read.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,  # an encrypted entry
)
# A manifest is a few hundred bytes; anything much larger is not one.
MAX_MANIFEST_BYTES = 64 * 1024


def service_version() -> str:
    """The installed backprop-service version, or `unknown` when run from a bare tree."""
    try:
        return metadata.version("backprop-service")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_model_file(model: Model, about: dict[str, Any] | None = None) -> bytes:
    """The model file's bytes; `about` adds informative manifest fields (where the model
    came from, e.g. `{"model": {"name": ..., "version": ...}}`), which reading ignores."""
    return _zip(model.to_bytes(), about or {})


def wrap_payload(payload: bytes, about: dict[str, Any] | None = None) -> bytes:
    """The model file around `payload`, a model's bytes as stored (`Model.to_bytes()`):
    a download ships the very bytes the registry holds, so its checksum is theirs."""
    return _zip(payload, about or {})


def _zip(payload: bytes, about: dict[str, Any]) -> bytes:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "payload": PAYLOAD,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload_bytes": len(payload),
        "service_version": service_version(),
        **{key: _json_value(value) for key, value in about.items()},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # The manifest first, so `unzip -l` and a streaming reader meet it before the payload.
        archive.writestr(_entry(MANIFEST, zipfile.ZIP_DEFLATED), json.dumps(manifest, indent=2))
        # Stored, not deflated: `unzip -p FILE model.npz | sha256sum` is then a plain copy.
        archive.writestr(_entry(PAYLOAD, zipfile.ZIP_STORED), payload)
    return buffer.getvalue()


def _entry(name: str, compression: int) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=ENTRY_TIME)
    entry.compress_type = compression
    entry.external_attr = 0o644 << 16
    return entry


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def _refuse(message: str) -> SpecError:
    return SpecError(FIELD, message)


def read_model_file(
    data: bytes, max_bytes: int | None = None, max_parameters: int | None = None
) -> tuple[Model, dict[str, Any], bytes]:
    """The model, the manifest and the checked payload (`model.npz`'s bytes) of a model
    file. Refused with a SpecError naming `file`: not a zip, no or an unknown manifest, a
    payload whose SHA-256 differs from the manifest's, larger than `max_bytes` unpacked,
    more parameters than `max_parameters`, arrays that do not fit the network, values
    that are not finite, classes or feature names that do not fit its widths."""
    if max_bytes is not None and len(data) > max_bytes:
        raise _refuse(f"is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = _manifest(archive)
            payload = _payload(archive, manifest, max_bytes)
    except SpecError:
        raise
    except ZIP_ERRORS as error:
        raise _refuse(f"is damaged or not a backprop model file ({error})") from None
    if hashlib.sha256(payload).hexdigest() != manifest["sha256"]:
        raise _refuse(f"{PAYLOAD} does not match the manifest's sha256: the file was altered")
    _check_npz(payload, max_bytes)
    model = _decode(payload)
    _check_model(model, max_parameters)
    return model, manifest, payload


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        entry = archive.getinfo(MANIFEST)
    except KeyError:
        raise _refuse(f"is not a backprop model file (no {MANIFEST})") from None
    if entry.file_size > MAX_MANIFEST_BYTES:
        raise _refuse(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(archive.read(entry))
    except (ValueError, UnicodeDecodeError) as error:
        raise _refuse(f"{MANIFEST} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(f"is not a backprop model file ({MANIFEST} does not name {FORMAT!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise _refuse(
            f"has format_version {version!r}; this service reads format_version {FORMAT_VERSION}"
        )
    digest = manifest.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise _refuse(f"{MANIFEST} has no sha256 of {PAYLOAD}")
    return manifest


def _payload(archive: zipfile.ZipFile, manifest: dict[str, Any], max_bytes: int | None) -> bytes:
    if manifest.get("payload", PAYLOAD) != PAYLOAD:
        raise _refuse(f"{MANIFEST} names payload {manifest.get('payload')!r}, not {PAYLOAD!r}")
    try:
        entry = archive.getinfo(PAYLOAD)
    except KeyError:
        raise _refuse(f"has no {PAYLOAD}") from None
    # The size the entry claims unpacked, before unpacking it: no zip bomb gets inflated.
    if max_bytes is not None and entry.file_size > max_bytes:
        raise _refuse(f"{PAYLOAD} unpacks to {entry.file_size} bytes; the limit is {max_bytes}")
    return archive.read(entry)


def _check_npz(payload: bytes, max_bytes: int | None) -> None:
    """Refuse an archive whose arrays claim more memory than their entries hold (NumPy
    allocates what a header claims before it reads), or more than `max_bytes` in all."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            entries = archive.infolist()
            total = sum(entry.file_size for entry in entries)
            if max_bytes is not None and total > max_bytes:
                raise _refuse(f"{PAYLOAD} unpacks to {total} bytes; the limit is {max_bytes}")
            for entry in entries:
                with archive.open(entry) as member:
                    major, _ = np.lib.format.read_magic(member)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if major == 1
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)
                claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if claimed > entry.file_size:
                    raise _refuse(f"{PAYLOAD}: {entry.filename} claims more data than it holds")
    except SpecError:
        raise
    except ZIP_ERRORS as error:
        raise _refuse(f"{PAYLOAD} is not a valid model archive ({error})") from None


def _decode(payload: bytes) -> Model:
    try:
        _check_shape(*unpack("model", payload))
        return Model.from_bytes(payload)
    except SpecError as error:
        if error.field == FIELD:
            raise
        raise _refuse(f"{PAYLOAD}: {error}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise _refuse(f"{PAYLOAD} is not a valid model archive ({error})") from None


def _check_shape(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """The flat parameters against the layers, before the model is built from them."""
    spec = NetworkSpec.from_dict(meta.get("network", {}))
    flat = arrays.get("flat")
    if flat is None:
        raise _refuse(f"{PAYLOAD} holds no parameters")
    if flat.shape != (spec.n_parameters,):
        raise _refuse(
            f"has parameters of shape {list(flat.shape)}; layers {list(spec.layers)} need "
            f"{spec.n_parameters}"
        )


def _check_model(model: Model, max_parameters: int | None) -> None:
    spec, flat = model.spec, model.parameters.flat
    if max_parameters is not None and spec.n_parameters > max_parameters:
        raise _refuse(
            f"the network has {spec.n_parameters} parameters; the limit is {max_parameters}"
        )
    if flat.ndim != 1 or flat.dtype not in (np.float32, np.float64):
        raise _refuse(f"parameters must be a flat float32 or float64 vector, got {flat.dtype}")
    if flat.size != spec.n_parameters:
        raise _refuse(
            f"has {flat.size} parameters; layers {list(spec.layers)} need {spec.n_parameters}"
        )
    if not np.isfinite(flat).all():
        raise _refuse("parameters must be finite (no NaN or infinity)")
    preprocessing = model.preprocessing
    scalers = [] if preprocessing is None else [preprocessing.inputs, preprocessing.targets]
    for scaler in scalers:
        if scaler is not None and not (
            np.isfinite(scaler.shift).all() and np.isfinite(scaler.scale).all()
        ):
            raise _refuse("preprocessing statistics must be finite (no NaN or infinity)")
    if model.classes is not None:
        _check_classes(model)
    names = model.feature_names
    if names is not None and (
        len(names) != spec.n_inputs or not all(isinstance(name, str) for name in names)
    ):
        raise _refuse(f"feature_names must be {spec.n_inputs} strings, one per input")


def _check_classes(model: Model) -> None:
    classes = model.classes
    assert classes is not None
    kinds = {bool if isinstance(name, bool) else type(name) for name in classes}
    if not kinds <= {str, int, bool} or len(kinds) != 1 or len(set(classes)) != len(classes):
        raise _refuse("classes must be distinct strings, integers or booleans of one kind")
    try:
        check_labels_fit(model.spec, len(classes))
    except SpecError as error:
        raise _refuse(f"classes do not fit the network: {error.message}") from None
