"""A model answers a few rows (a served request) through its layers directly, and a large
batch through `network.predict`'s chunks: the same numbers either way."""

import itertools

import numpy as np
import pytest

from service.core import Model, NetworkSpec, Parameters, predict
from service.core.activations import HIDDEN, OUTPUT
from service.core.network import PREDICT_CHUNK_ROWS
from service.core.preprocessing import Preprocessing, Scaler


@pytest.mark.parametrize(
    ("hidden", "output"), list(itertools.product(sorted(HIDDEN), sorted(OUTPUT)))
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_few_rows_predict_bit_for_bit_as_the_chunked_pass(
    hidden: str, output: str, dtype: str
) -> None:
    spec = NetworkSpec.from_dict(
        {"layers": [3, 5, 4, 2], "hidden_activation": hidden, "output_activation": output}
    )
    params = Parameters.initialize(spec, np.random.default_rng(1), dtype)
    rows = np.random.default_rng(2).normal(size=(PREDICT_CHUNK_ROWS + 3, 3)) * 3
    scaled = Preprocessing(
        Scaler("standardize", np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, 3.0])),
        Scaler("minmax", np.array([-1.0, 4.0]), np.array([10.0, 0.25])),
    )
    for preprocessing in (None, scaled):
        model = Model(spec, params, preprocessing=preprocessing)
        whole = model.predict(rows)  # more rows than a chunk: network.predict itself
        network_inputs = rows if preprocessing is None else scaled.transform_inputs(rows)
        reference = predict(spec, params, network_inputs)
        if preprocessing is not None:
            reference = scaled.inverse_targets(reference)
        assert whole.tobytes() == reference.tobytes()
        for count in (1, 2, 7, PREDICT_CHUNK_ROWS):
            few = model.predict(rows[:count].tolist())
            expected = predict(spec, params, network_inputs[:count])
            if preprocessing is not None:
                expected = scaled.inverse_targets(expected)
            assert few.dtype == expected.dtype and few.shape == (count, 2)
            assert few.tobytes() == expected.tobytes(), (preprocessing, count)
            # And row for row what the large batch answers, to rounding (BLAS may sum a
            # 1-row product in another order than a 515-row one).
            np.testing.assert_allclose(
                few, whole[:count], rtol=1e-12 if dtype == "float64" else 1e-5
            )
