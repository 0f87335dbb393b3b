"""What a user reads off a run or a model: losses and accuracies per epoch, class labels,
predictions for large inputs, and outputs that stay finite at the edges."""

from typing import Any

import numpy as np
import pytest

from service.core import Backprop, Model, NetworkSpec, Parameters, RunSpec, Trainer, predict
from service.core.activations import HIDDEN, OUTPUT, ZEROS_ABOVE
from service.core.losses import LOSSES


def _full_batch_spec(layers: list[int], output: str, loss: str, **training: Any) -> RunSpec:
    return RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": layers, "hidden_activation": "tanh", "output_activation": output},
            "training": {
                "loss": loss,
                "learning_rate": 0.1,
                "epochs": 2,
                "batch_size": None,
                "shuffle": False,
                **training,
            },
        }
    )


def _random_parameters(layers: list[int], seed: int) -> Parameters:
    params = Parameters.zeros(layers)
    params.flat[...] = np.random.default_rng(seed).normal(0, 0.8, params.flat.size)
    return params


@pytest.mark.parametrize(
    ("output", "loss", "n_outputs"),
    [("sigmoid", "binary_crossentropy", 1), ("softmax", "categorical_crossentropy", 3)],
)
def test_first_epoch_loss_and_accuracy_are_those_of_the_starting_weights(
    output: str, loss: str, n_outputs: int
) -> None:
    # One full batch: the epoch's outputs are the starting weights' predictions.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    labels = rng.integers(0, n_outputs if n_outputs > 1 else 2, 40)
    targets = labels[:, None].astype(float) if n_outputs == 1 else np.eye(n_outputs)[labels]
    layers = [2, 5, n_outputs]
    start = _random_parameters(layers, seed=2)
    spec = _full_batch_spec(layers, output, loss)
    outputs = predict(spec.network, start, x)
    predicted = (outputs[:, 0] >= 0.5).astype(int) if n_outputs == 1 else outputs.argmax(axis=1)
    expected_accuracy = float(np.mean(predicted == labels))

    record = Trainer(spec, x, targets, initial_parameters=start).train_epoch()

    assert record is not None
    assert 0.2 < expected_accuracy < 0.8
    assert record.accuracy == expected_accuracy
    assert record.loss == pytest.approx(LOSSES[loss][0](outputs, targets).mean(), rel=1e-12)
    assert record.rmse == pytest.approx(np.sqrt(np.mean((outputs - targets) ** 2)), rel=1e-12)


def test_validation_accuracy_is_that_of_the_weights_after_the_epoch() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 60)
    x = rng.normal(size=(60, 2)) + labels[:, None]
    spec = _full_batch_spec([2, 5, 3], "softmax", "categorical_crossentropy", validation_split=0.5)
    trainer = Trainer(
        spec, x, np.eye(3)[labels], initial_parameters=_random_parameters([2, 5, 3], 4)
    )

    record = trainer.train_epoch()

    assert record is not None and trainer.val_x is not None and trainer.val_t is not None
    outputs = trainer.model().predict(trainer.val_x)
    expected = float(np.mean(outputs.argmax(axis=1) == trainer.val_t.argmax(axis=1)))
    assert 0.2 < expected < 0.8
    assert record.val_accuracy == expected
    assert record.val_loss == pytest.approx(
        LOSSES["categorical_crossentropy"][0](outputs, trainer.val_t).mean(), rel=1e-12
    )


@pytest.mark.parametrize(
    ("targets", "accuracy"),
    [
        # An output of exactly 0.5 counts as class 1, as in Model.labels.
        ([1.0, 1.0, 1.0, 0.0], 0.75),
        # So does a target of exactly 0.5.
        ([1.0, 0.5, 0.0, 0.0], 0.5),
    ],
)
def test_sigmoid_accuracy_puts_one_half_in_class_one(targets: list[float], accuracy: float) -> None:
    # Zero weights: every output is sigmoid(0) = 0.5 exactly.
    spec = _full_batch_spec([1, 1], "sigmoid", "binary_crossentropy")
    inputs = [[0.0], [1.0], [2.0], [3.0]]
    trainer = Trainer(
        spec, inputs, [[t] for t in targets], initial_parameters=Parameters.zeros([1, 1])
    )

    record = trainer.train_epoch()

    assert record is not None and record.accuracy == accuracy


def test_model_labels_are_the_argmax_class_or_p_at_least_one_half() -> None:
    softmax = Model(
        NetworkSpec.from_dict({"layers": [2, 3], "output_activation": "softmax"}),
        Parameters.zeros([2, 3]),
    )
    sigmoid = Model(
        NetworkSpec.from_dict({"layers": [2, 1], "output_activation": "sigmoid"}),
        Parameters.zeros([2, 1]),
    )

    classes = softmax.labels(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5]]))
    flags = sigmoid.labels(np.array([[0.5], [0.49], [0.9]]))

    assert classes.tolist() == [[1], [0], [2]]
    assert flags.tolist() == [[1], [0], [1]]
    assert classes.dtype == flags.dtype == np.int64


def test_predict_on_many_rows_equals_predicting_each_row_alone() -> None:
    spec = NetworkSpec.from_dict({"layers": [3, 6, 2], "hidden_activation": "relu"})
    params = _random_parameters([3, 6, 2], seed=5)
    x = np.random.default_rng(6).normal(size=(1500, 3))

    outputs = predict(spec, params, x)

    hidden = np.maximum(x @ params.weights[0].T + params.biases[0], 0)
    np.testing.assert_allclose(outputs, hidden @ params.weights[1].T + params.biases[1], atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [2, 64])
def test_relu_of_small_and_large_layers_is_max_of_aggregate_and_zero(rows: int, dtype: str) -> None:
    # Large layers take max(a, 0) against a zero array rather than the scalar 0 (faster):
    # the values must be the same, infinities and NaN (a diverging run) included.
    aggregates = np.random.default_rng(7).normal(size=(rows, 40)).astype(dtype)
    assert (aggregates.size > ZEROS_ABOVE) == (rows == 64)  # both ways are exercised
    aggregates[0, :4] = [np.inf, -np.inf, np.nan, 0.0]
    out = np.full_like(aggregates, 5.0)

    HIDDEN["relu"][0](aggregates, out)

    expected = np.where(aggregates > 0, aggregates, 0.0)
    expected[0, 2] = np.nan
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == aggregates.dtype


def test_softmax_is_finite_for_rows_of_very_different_scale() -> None:
    aggregates = np.array([[1000.0, 1001.0], [-1000.0, -1001.0], [0.0, 0.0]])
    out = np.zeros_like(aggregates)

    OUTPUT["softmax"][0](aggregates.copy(), out)

    e = np.exp(-1.0)
    np.testing.assert_allclose(
        out, [[e / (1 + e), 1 / (1 + e)], [1 / (1 + e), e / (1 + e)], [0.5, 0.5]]
    )


@pytest.mark.parametrize("loss", ["binary_crossentropy", "categorical_crossentropy"])
def test_cross_entropy_of_a_certain_wrong_output_is_large_but_finite(loss: str) -> None:
    per_sample, gradient = LOSSES[loss]
    outputs = np.array([[0.0, 1.0], [1.0, 0.0]])
    targets = np.array([[1.0, 0.0], [0.0, 1.0]])
    grad = np.zeros_like(outputs)

    values = per_sample(outputs, targets)
    gradient(outputs, targets, grad)

    # Probabilities are clipped to [eps, 1 - eps]: log(eps) = -36.04 for float64.
    bound = -np.log(np.finfo(np.float64).eps)
    expected = 2 * bound if loss == "binary_crossentropy" else bound
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert np.isfinite(grad).all()


@pytest.mark.parametrize(("hidden", "slope_at_zero"), [("relu", 0.0), ("leaky_relu", 0.01)])
def test_relu_slope_at_exactly_zero_is_the_left_one(hidden: str, slope_at_zero: float) -> None:
    # Hidden unit 1 has zero weight and bias, so its aggregate is exactly 0; its incoming
    # gradient is (output error) * (its output weight) * slope(0) * (its input).
    spec = NetworkSpec.from_dict({"layers": [1, 2, 1], "hidden_activation": hidden})
    params = Parameters.zeros([1, 2, 1])
    params.weights[0][0, 0], params.biases[0][0] = 1.0, 0.5
    params.weights[1][0] = [1.0, 2.0]
    x, target = np.array([[3.0]]), np.array([[1.0]])

    grads = Backprop(spec, "mse").gradients(params, x, target)

    # output = 1 * (3 + 0.5) + 2 * 0 = 3.5, error 2.5
    assert grads.weights[0][1, 0] == pytest.approx(2.5 * 2.0 * slope_at_zero * 3.0)
    assert grads.biases[0][1] == pytest.approx(2.5 * 2.0 * slope_at_zero)


def test_float32_parameters_get_float32_gradients() -> None:
    spec = NetworkSpec.from_dict({"layers": [2, 3, 1], "hidden_activation": "tanh"})
    params = _random_parameters([2, 3, 1], seed=7).astype("float32")
    x = np.random.default_rng(8).normal(size=(5, 2))

    grads = Backprop(spec, "mse").gradients(params, x, np.ones((5, 1)))

    assert grads.flat.dtype == np.float32
    reference = Backprop(spec, "mse").gradients(params.astype("float64"), x, np.ones((5, 1)))
    np.testing.assert_allclose(grads.flat, reference.flat, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("output", "loss"), [("identity", "mse"), ("sigmoid", "binary_crossentropy")]
)
def test_epoch_loss_is_the_mean_of_batch_means_with_a_short_last_batch(
    output: str, loss: str
) -> None:
    # 10 rows in batches of 4, 4 and 2. A rate of 1e-12 keeps every batch's weights those
    # of the start, so each batch's loss is known; the short batch weighs as much as a full
    # one, as in the mean of batch losses the record promises.
    rng = np.random.default_rng(9)
    x = rng.normal(size=(10, 2))
    targets = (rng.uniform(size=(10, 1)) > 0.5).astype(float)
    layers = [2, 4, 1]
    start = _random_parameters(layers, seed=10)
    spec = _full_batch_spec(layers, output, loss, batch_size=4, learning_rate=1e-12)
    per_sample = LOSSES[loss][0](predict(spec.network, start, x), targets)
    batch_means = [per_sample[0:4].mean(), per_sample[4:8].mean(), per_sample[8:10].mean()]

    record = Trainer(spec, x, targets, initial_parameters=start).train_epoch()

    assert record is not None
    assert abs(np.mean(batch_means) - per_sample.mean()) > 1e-3
    assert record.loss == pytest.approx(np.mean(batch_means), rel=1e-9)
