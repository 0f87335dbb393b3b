"""A prediction body's fast path (orjson and one NumPy array) accepts only what the
pydantic model accepts, with the same numbers; everything else is the model's to answer."""

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from service.api.deps import FAST_ROWS_BYTES, _fast_rows_body
from service.api.schemas.predictions import JobPredictRequest, PredictRequest
from tests.api.test_predict_path import stored
from tests.api.test_predictions import RAW_INPUTS

BODIES = [
    b'{"inputs": [[1, 2]]}',
    b'{"inputs": [[1.5, -2e-3], [0, 1e300]]}',
    b'{"inputs": [[0.1, 0.2, 0.30000000000000004]], "version": 3}',
    b'{"inputs": [[1]], "version": 2.0}',
    b'{"inputs": [[1]], "version": 2.5}',
    b'{"inputs": [[1]], "version": 0}',
    b'{"inputs": [[1]], "version": null, "alias": "prod"}',
    b'{"inputs": [[1]], "version": 1, "alias": "prod"}',
    b'{"inputs": [[1]], "alias": "bad name"}',
    b'{"inputs": [[1]], "alias": 7}',
    b'{"inputs": [[1]], "epoch": 4}',
    b'{"inputs": [[1]], "epoch": -1}',
    b'{"inputs": [[1]], "colour": "red"}',
    b'{"inputs": [[1]], "version": true}',
    b'{"inputs": [[1, true]]}',
    b'{"inputs": [[1, false]]}',
    b'{"inputs": [[1, "2"]]}',
    b'{"inputs": [["1e3"]]}',
    b'{"inputs": [[1, null]]}',
    b'{"inputs": [[1, NaN]]}',
    b'{"inputs": [[1e400]]}',
    b'{"inputs": [[1e-400, -0.0, 5E-324, 1.7976931348623157e308]]}',
    b'{"inputs": [[123456789012345678901234567890, -9223372036854775809]]}',
    b'{"inputs": [[1, 2], [3]]}',
    b'{"inputs": [[]]}',
    b'{"inputs": []}',
    b'{"inputs": [1, 2]}',
    b'{"inputs": [[[1]]]}',
    b'{"inputs": [{}]}',
    b'{"inputs": [[1], {}]}',
    b'{"inputs": [[1]], "inputs": [[2]]}',
    b'{"inputs": "[[1]]"}',
    b'{"inputs": [[1]]} ',
    b'{"inputs": [[1]]}x',
    b'{"\\u0069nputs": [[1]]}',
    b'{"inputs": [[1]], "alias": "a\\"b"}',
    b"[[1]]",
    b"null",
    b"",
    b"\xef\xbb\xbf" + b'{"inputs": [[1]]}',
    b'{"version": 1}',
]


def reference(raw: bytes, model: type[BaseModel]) -> BaseModel | None:
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None


def assert_same(raw: bytes, model: type[BaseModel]) -> None:
    fast = _fast_rows_body(raw, model)
    expected = reference(raw, model)
    if fast is None:
        return  # the model answers it itself
    assert expected is not None, f"the fast path accepts what the model refuses: {raw!r}"
    assert isinstance(fast.inputs, np.ndarray)  # type: ignore[attr-defined]
    assert fast.inputs.dtype == np.float64  # type: ignore[attr-defined]
    # The same numbers, bit for bit, and the same other fields.
    np.testing.assert_array_equal(fast.inputs, np.array(expected.inputs, dtype=np.float64))  # type: ignore[attr-defined]
    assert fast.model_dump(exclude={"inputs"}) == expected.model_dump(exclude={"inputs"})


@pytest.mark.parametrize("model", [PredictRequest, JobPredictRequest])
@pytest.mark.parametrize("raw", BODIES)
def test_the_fast_path_accepts_only_what_the_model_accepts(
    raw: bytes, model: type[BaseModel]
) -> None:
    assert_same(raw, model)


def test_random_numbers_come_out_bit_for_bit_as_the_model_reads_them() -> None:
    generator = np.random.default_rng(12)
    values = np.concatenate(
        [
            generator.normal(size=300),
            generator.normal(scale=1e300, size=100),
            generator.normal(scale=1e-300, size=100),
            generator.integers(-(2**62), 2**62, size=100).astype(np.float64),
        ]
    ).reshape(-1, 2)
    # As clients write them: shortest round-trip repr, 17 digits, integers, exponents.
    writings = [
        orjson.dumps({"inputs": values.tolist()}),
        (
            "{"
            + '"inputs": ['
            + ",".join("[" + ",".join(f"{value:.17g}" for value in row) + "]" for row in values)
            + "]}"
        ).encode(),
        orjson.dumps({"inputs": [[int(value) for value in row] for row in values[-50:]]}),
    ]
    for raw in writings:
        fast = _fast_rows_body(raw, PredictRequest)
        assert fast is not None
        assert_same(raw, PredictRequest)


def test_plain_bodies_take_the_fast_path() -> None:
    # Not a timing: that the common bodies are not all sent to the slow path.
    for raw in (b'{"inputs": [[1, 2]]}', b'{"inputs": [[1.5, 2]], "alias": "prod"}'):
        assert _fast_rows_body(raw, PredictRequest) is not None


def test_a_large_body_answers_as_its_rows_sent_in_small_bodies(client: TestClient) -> None:
    job_id = stored(client, "pets")
    rows = np.tile(RAW_INPUTS, (40, 1)).tolist()
    assert len(orjson.dumps({"inputs": rows})) >= FAST_ROWS_BYTES
    for path in ("/v1/models/pets/predict", f"/v1/jobs/{job_id}/predict"):
        large = client.post(path, content=orjson.dumps({"inputs": rows}))
        assert large.status_code == 200, large.text
        small = [client.post(path, json={"inputs": rows[i : i + 8]}).json() for i in (0, 80)]
        answer = large.json()
        for start, part in zip((0, 80), small, strict=True):
            np.testing.assert_allclose(
                part["outputs"], answer["outputs"][start : start + 8], rtol=1e-12
            )
            assert part["labels"] == answer["labels"][start : start + 8]
        # A large body with one bad value is the model's precise 422, naming the value.
        bad = [*rows[:-1], [rows[-1][0], True]]
        refused = client.post(path, content=orjson.dumps({"inputs": bad}))
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["loc"] == ["body", "inputs", len(rows) - 1, 1]
