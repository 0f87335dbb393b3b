"""The native model file: what it holds, and every way a damaged or forged one is refused
with an error naming `file` before anything uses it."""

import hashlib
import io
import json
import zipfile
from typing import Any

import numpy as np
import pytest

from service.core import Model, Parameters, RunSpec, SpecError, Trainer
from service.core.serialization import pack
from service.formats import load_model, read_model_file, write_model_file
from service.formats.native import MANIFEST, PAYLOAD

RNG = np.random.default_rng(0)
INPUTS = RNG.normal(size=(30, 3)) * 50 + 7
TARGETS = INPUTS @ np.array([[1.0], [-2.0], [0.5]]) + 100


def trained(**preprocessing: str) -> Model:
    spec = RunSpec.from_dict(
        {
            "network": {"layers": [3, 6, 1], "hidden_activation": "tanh"},
            "training": {"epochs": 5, "batch_size": 5},
            "preprocessing": preprocessing or {"inputs": "standardize", "targets": "standardize"},
        }
    )
    trainer = Trainer(spec, INPUTS, TARGETS, feature_names=("a", "b", "c"))
    for _ in trainer.run():
        pass
    return trainer.model()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezipped(manifest: dict[str, Any], payload: bytes) -> bytes:
    """A file as someone re-zipping it would write it (valid zip CRCs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        archive.writestr(PAYLOAD, payload)
    return buffer.getvalue()


def forged(payload: bytes, **manifest: Any) -> bytes:
    """`payload` with a manifest whose checksum matches it: only the deeper checks stop it."""
    base = {"format": "backprop-model", "format_version": 1, "payload": PAYLOAD}
    return rezipped({**base, "sha256": hashlib.sha256(payload).hexdigest(), **manifest}, payload)


def refusal(data: bytes, **limits: int) -> str:
    with pytest.raises(SpecError) as raised:
        read_model_file(data, **limits)
    assert raised.value.field == "file"
    return raised.value.message


def test_a_model_file_holds_the_stored_payload_and_a_manifest_with_its_sha256() -> None:
    model = trained()
    data = write_model_file(model, {"model": {"name": "m", "version": 3}})

    files = members(data)
    manifest = json.loads(files[MANIFEST])
    read, read_manifest, payload = read_model_file(data)

    assert list(files) == [MANIFEST, PAYLOAD]
    assert manifest["format"] == "backprop-model" and manifest["format_version"] == 1
    assert manifest["sha256"] == hashlib.sha256(files[PAYLOAD]).hexdigest()
    assert manifest["model"] == {"name": "m", "version": 3}
    assert read_manifest == manifest and payload == files[PAYLOAD]
    assert np.array_equal(read.predict(INPUTS), model.predict(INPUTS))
    assert read.feature_names == ("a", "b", "c")
    assert read.preprocessing is not None and read.preprocessing.kinds() == {
        "inputs": "standardize",
        "targets": "standardize",
    }


def test_one_model_always_makes_the_same_bytes() -> None:
    model = trained()
    assert write_model_file(model) == write_model_file(model)


def test_the_cli_reads_a_model_file_and_a_bare_archive_alike() -> None:
    model = trained()
    for data in (write_model_file(model), model.to_bytes()):
        assert np.array_equal(load_model(data).predict(INPUTS), model.predict(INPUTS))


def test_a_flipped_byte_anywhere_is_refused() -> None:
    data = write_model_file(trained())
    for position in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        try:
            read_model_file(bytes(damaged))
        except SpecError as error:
            assert error.field == "file"
        else:
            # A flip in a zip field nothing reads (a timestamp, an attribute) harms nothing.
            assert read_model_file(bytes(damaged))[2] == members(data)[PAYLOAD]


def test_a_payload_altered_and_rezipped_fails_the_checksum() -> None:
    data = write_model_file(trained())
    files = members(data)
    payload = bytearray(files[PAYLOAD])
    payload[-200] ^= 0x01

    assert "sha256" in refusal(rezipped(json.loads(files[MANIFEST]), bytes(payload)))


@pytest.mark.parametrize("cut", [0, 10, 100, -100, -1])
def test_a_truncated_file_is_refused(cut: int) -> None:
    data = write_model_file(trained())
    refusal(data[:cut])


def test_a_file_that_is_not_a_zip_or_not_a_model_file_is_refused() -> None:
    assert "damaged or not a backprop model file" in refusal(b"inputs,targets\n1,2\n")
    assert "no manifest.json" in refusal(_zip_of({"x.txt": b"hi"}))
    assert "does not name 'backprop-model'" in refusal(_zip_of({MANIFEST: b'{"format": "x"}'}))
    assert "not valid JSON" in refusal(_zip_of({MANIFEST: b"{"}))


def _zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_newer_format_version_is_refused_naming_both_versions() -> None:
    payload = trained().to_bytes()
    message = refusal(forged(payload, format_version=2))
    assert "format_version 2" in message and "format_version 1" in message


def test_nan_weights_are_refused_even_with_a_matching_checksum() -> None:
    model = trained()
    flat = model.parameters.flat.copy()
    flat[3] = np.nan
    payload = Model(model.spec, Parameters(model.spec.layers, flat)).to_bytes()

    assert "finite" in refusal(forged(payload))


def test_infinite_preprocessing_statistics_are_refused() -> None:
    model = trained()
    assert model.preprocessing is not None and model.preprocessing.targets is not None
    meta, arrays = model.preprocessing.to_blob()
    arrays["preprocessing.targets.scale"] = np.array([np.inf])
    payload = pack(
        "model", {"network": model.spec.to_dict(), "preprocessing": meta},
        {"flat": model.parameters.flat, **arrays},
    )  # fmt: skip

    assert "finite" in refusal(forged(payload))


def test_weights_of_the_wrong_shape_are_refused() -> None:
    model = trained()
    payload = pack(
        "model", {"network": {**model.spec.to_dict(), "layers": [3, 7, 1]}},
        {"flat": model.parameters.flat},
    )  # fmt: skip

    assert refusal(forged(payload)) == "has parameters of shape [31]; layers [3, 7, 1] need 36"


def test_classes_that_do_not_fit_the_outputs_are_refused() -> None:
    model = trained()
    payload = pack(
        "model", {"network": model.spec.to_dict(), "classes": ["a", "b", "c"]},
        {"flat": model.parameters.flat},
    )  # fmt: skip

    assert "classes do not fit" in refusal(forged(payload))


def test_an_array_header_claiming_more_than_its_entry_holds_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        )
        archive.writestr("flat.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
    assert "claims more data" in refusal(forged(buffer.getvalue()))


def test_size_limits_are_checked_before_unpacking() -> None:
    data = write_model_file(trained())
    assert "the limit is 100" in refusal(data, max_bytes=100)
    assert "parameters; the limit is 10" in refusal(data, max_parameters=10)
