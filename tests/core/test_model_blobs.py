"""Model bytes: every model stored so far still loads and predicts bit for bit, and bytes
that are no model are refused as bad input, not crashed on."""

import io
import json
import zipfile

import numpy as np
import pytest

from service.core import Model, NetworkSpec, Parameters, SpecError, predict
from service.core.labels import ClassName
from service.core.serialization import pack


def _old_blob(spec: NetworkSpec, params: Parameters) -> bytes:
    """A model as the service wrote it before preprocessing and classes: the network spec
    and the flat weights, nothing else."""
    return pack("model", {"network": spec.to_dict()}, {"flat": params.flat})


@pytest.mark.parametrize(
    ("network", "init"),
    [
        ({"layers": [2, 2, 1], "hidden_activation": "relu"}, "normal"),
        ({"layers": [4, 16, 3], "output_activation": "softmax"}, "xavier_uniform"),
        ({"layers": [3, 8, 8, 1], "output_activation": "sigmoid"}, "he_normal"),
    ],
)
def test_a_model_stored_before_preprocessing_predicts_bit_identically(
    network: dict[str, object], init: str
) -> None:
    spec = NetworkSpec.from_dict({**network, "init": init})
    params = Parameters.initialize(spec, np.random.default_rng(5))
    x = np.random.default_rng(6).normal(size=(50, spec.n_inputs)) * 40 + 3

    model = Model.from_bytes(_old_blob(spec, params))

    assert model.preprocessing is None and model.classes is None
    assert model.predict(x).tobytes() == predict(spec, params, x).tobytes()
    assert model.loss_name == {"identity": "mse", "softmax": "categorical_crossentropy"}.get(
        spec.output_activation, "binary_crossentropy"
    )
    if model.is_classifier:
        labels = model.labels(model.predict(x))
        assert isinstance(labels, np.ndarray) and labels.shape == (50, 1)
    # And written again it is the very same blob.
    assert Model(spec, params).to_bytes() == _old_blob(spec, params)


def _good() -> tuple[NetworkSpec, Parameters]:
    spec = NetworkSpec.from_dict({"layers": [2, 3, 1]})
    return spec, Parameters.initialize(spec, np.random.default_rng(0))


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"not a model at all",
        pack("model", {"network": {"layers": [2, 3, 1]}}, {"flat": np.zeros(5)}),
        pack("model", {"network": {"layers": [2, 3, 1]}}, {}),
        pack("model", {}, {"flat": np.zeros(13)}),
        pack("model", {"network": {"layers": "wide"}}, {"flat": np.zeros(13)}),
        pack("checkpoint", {"network": {"layers": [2, 3, 1]}}, {"flat": np.zeros(13)}),
        pack(
            "model",
            {"network": {"layers": [2, 3, 1]}, "preprocessing": {"inputs": "standardize"}},
            {"flat": np.zeros(13)},
        ),
        pack(
            "model",
            {"network": {"layers": [2, 3, 1]}, "preprocessing": {"inputs": "standardize"}},
            {
                "flat": np.zeros(13),
                "preprocessing.inputs.shift": np.zeros(3),
                "preprocessing.inputs.scale": np.ones(3),
            },
        ),
    ],
)
def test_bytes_that_are_no_model_are_refused_with_a_spec_error(blob: bytes) -> None:
    with pytest.raises(SpecError):
        Model.from_bytes(blob)


def test_a_model_with_classes_and_names_survives_its_bytes() -> None:
    spec, params = _good()

    named: list[tuple[ClassName, ...]] = [("no", "yes"), (0, 7), (False, True)]
    for classes in named:
        model = Model(spec, params, classes=classes, loss="mse", feature_names=("a", "b"))
        again = Model.from_bytes(model.to_bytes())
        assert again.classes == classes
        assert [type(c) for c in again.classes] == [type(c) for c in classes]
        assert (again.loss, again.feature_names) == ("mse", ("a", "b"))


def test_archives_are_npz_files_that_numpy_reads_back_value_for_value() -> None:
    arrays = {
        "flat": np.random.default_rng(0).standard_normal(9),
        "empty": np.zeros(0),
        "matrix": np.arange(12.0).reshape(3, 4),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10.0)[::3],
        "scalar": np.array(3, dtype=np.int64),
        "bytes": np.arange(5, dtype=np.uint8),
        "single": np.ones((2, 2), dtype=np.float32),
        "big_endian": np.array([1.5], dtype=">f8"),
        "text": np.array(["ab", "c"]),
    }
    blob = pack("checkpoint", {"epoch": 7}, arrays)

    assert zipfile.ZipFile(io.BytesIO(blob)).testzip() is None
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        assert json.loads(archive["__meta__"].tobytes()) == {
            "kind": "checkpoint",
            "format": 1,
            "epoch": 7,
        }
        for name, array in arrays.items():
            read = archive[name]
            assert (read.dtype, read.shape) == (array.dtype, array.shape), name
            assert read.tobytes() == np.ascontiguousarray(array).tobytes(), name
    # The same arrays give the same bytes (downloads are named by their hash).
    assert pack("checkpoint", {"epoch": 7}, arrays) == blob


def test_archives_refuse_object_arrays() -> None:
    with pytest.raises(ValueError, match="allow_pickle"):
        pack("checkpoint", {}, {"objects": np.array([{"a": 1}], dtype=object)})
