"""Bad specs and data raise SpecError naming the offending field; divergence stops a run."""

import copy
import math
from typing import Any

import numpy as np
import pytest

from service.core import RunSpec, SpecError, Trainer
from tests.helpers import diverging_run

VALID: dict[str, Any] = {
    "network": {
        "layers": [2, 3, 1],
        "hidden_activation": "tanh",
        "output_activation": "identity",
        "init": "normal",
    },
    "training": {"loss": "mse", "learning_rate": 0.1, "epochs": 3},
}
INPUTS = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
TARGETS = [[1.0], [1.0], [0.0], [0.0]]


def _with(section: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    data[section].update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_with("network", hidden_activation="swish"), "network.hidden_activation"),
        (_with("network", output_activation="softmax"), "network.output_activation"),
        (_with("network", layers=[2, 0, 1]), "network.layers[1]"),
        (_with("training", learning_rate=0), "training.learning_rate"),
        (_with("training", learning_rate=-0.5), "training.learning_rate"),
        (_with("training", loss="binary_crossentropy"), "training.loss"),
        (_with("training", bogus=1), "training.bogus"),
    ],
    ids=[
        "unknown-hidden-activation",
        "softmax-with-one-output",
        "layer-of-width-zero",
        "zero-learning-rate",
        "negative-learning-rate",
        "loss-not-fitting-identity-output",
        "unknown-training-field",
    ],
)
def test_bad_spec_raises_spec_error_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as raised:
        RunSpec.from_dict(data)
    assert raised.value.field == field


def test_valid_spec_is_accepted() -> None:
    spec = RunSpec.from_dict(VALID)

    assert spec.network.layers == (2, 3, 1)
    assert RunSpec.from_dict(spec.to_dict()) == spec


def _rows_with(rows: list[list[float]], row: int, column: int, value: float) -> list[list[float]]:
    changed = [list(r) for r in rows]
    changed[row][column] = value
    return changed


@pytest.mark.parametrize(
    ("inputs", "targets", "field"),
    [
        (_rows_with(INPUTS, 2, 1, math.nan), TARGETS, "inputs[2]"),
        (_rows_with(INPUTS, 1, 0, math.inf), TARGETS, "inputs[1]"),
        (INPUTS, _rows_with(TARGETS, 3, 0, math.nan), "targets[3]"),
        ([[*row, 0.0] for row in INPUTS], TARGETS, "network.layers[0]"),
        (INPUTS, [[*row, 0.0] for row in TARGETS], "network.layers[2]"),
        (INPUTS, TARGETS[:3], "targets"),
    ],
    ids=[
        "nan-in-inputs",
        "infinity-in-inputs",
        "nan-in-targets",
        "inputs-wider-than-input-layer",
        "targets-wider-than-output-layer",
        "fewer-target-rows-than-input-rows",
    ],
)
def test_bad_data_raises_spec_error_naming_the_field(
    inputs: list[list[float]], targets: list[list[float]], field: str
) -> None:
    spec = RunSpec.from_dict(VALID)

    with pytest.raises(SpecError) as raised:
        Trainer(spec, inputs, targets)
    assert raised.value.field == field


def test_huge_learning_rate_diverges_and_keeps_the_previous_epochs_weights() -> None:
    spec, x, y = diverging_run()
    trainer = Trainer(spec, x, y)
    weights_after: dict[int, np.ndarray] = {0: trainer.params.flat.copy()}

    records = []
    for record in trainer.run():
        records.append(record)
        weights_after[record.epoch] = trainer.params.flat.copy()

    assert trainer.diverged
    diverged_epoch = trainer.epoch
    assert diverged_epoch < 500
    assert [r.epoch for r in records] == list(range(1, diverged_epoch))
    assert trainer.stop_reason is not None
    assert f"epoch {diverged_epoch}" in trainer.stop_reason
    assert np.isfinite(trainer.params.flat).all()
    assert trainer.params.flat.tobytes() == weights_after[diverged_epoch - 1].tobytes()
    assert list(trainer.run()) == []


@pytest.mark.parametrize(
    ("hidden", "optimizer", "learning_rate", "output", "loss"),
    [
        ("relu", "sgd", 100.0, "identity", "mse"),
        ("sigmoid", "momentum", 5.0, "identity", "mse"),
        ("leaky_relu", "sgd", 100.0, "softmax", "categorical_crossentropy"),
        ("relu", "sgd", 1e6, "sigmoid", "binary_crossentropy"),
    ],
)
def test_divergence_stops_cleanly_without_numpy_floating_point_warnings(
    hidden: str, optimizer: str, learning_rate: float, output: str, loss: str
) -> None:
    # pytest turns warnings into errors: an overflow RuntimeWarning from NumPy in the middle
    # of an epoch must not escape; divergence is detected and reported by the trainer itself.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    y = 10 * x @ np.array([[1.0], [2.0], [-3.0]])
    targets = {
        "identity": y,
        "sigmoid": (y > 0).astype(float),
        "softmax": np.eye(2)[(y[:, 0] > 0).astype(int)],
    }[output]
    spec = RunSpec.from_dict(
        {
            "network": {
                "layers": [3, 8, targets.shape[1]],
                "hidden_activation": hidden,
                "output_activation": output,
            },
            "training": {
                "loss": loss,
                "optimizer": optimizer,
                "learning_rate": learning_rate,
                "epochs": 300,
                "batch_size": 4,
            },
        }
    )
    trainer = Trainer(spec, x, targets)
    weights_after: dict[int, bytes] = {0: trainer.params.flat.tobytes()}

    for record in trainer.run():
        weights_after[record.epoch] = trainer.params.flat.tobytes()

    assert trainer.diverged
    assert trainer.stop_reason is not None and f"epoch {trainer.epoch}" in trainer.stop_reason
    assert np.isfinite(trainer.params.flat).all()
    assert trainer.params.flat.tobytes() == weights_after[trainer.epoch - 1]


def test_categorical_targets_whose_rows_do_not_sum_to_one_are_rejected() -> None:
    # softmax + categorical cross-entropy trains with delta = output - target, which is the
    # loss's gradient only when each target row sums to 1; other rows would train on a
    # gradient of some other function than the reported loss.
    spec = RunSpec.from_dict(
        {
            "network": {"layers": [2, 3, 3], "output_activation": "softmax"},
            "training": {"loss": "categorical_crossentropy"},
        }
    )
    targets = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]

    with pytest.raises(SpecError) as raised:
        Trainer(spec, [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], targets)
    assert raised.value.field == "targets[1]"


@pytest.mark.parametrize("schedule", ["step", "exponential"])
def test_a_decay_factor_above_one_is_refused_where_it_would_grow_the_rate(schedule: str) -> None:
    with pytest.raises(SpecError) as raised:
        RunSpec.from_dict(_with("training", lr_schedule=schedule, lr_decay=1.5))

    assert raised.value.field == "training.lr_decay"
    assert f"at most 1 with lr_schedule {schedule}" in str(raised.value)
    # 1 is a constant rate, and inverse_time's decay is a rate of decay: both are fine.
    RunSpec.from_dict(_with("training", lr_schedule=schedule, lr_decay=1.0))
    RunSpec.from_dict(_with("training", lr_schedule="inverse_time", lr_decay=1.5))


def test_a_stored_spec_accepted_before_the_decay_rule_still_reads_and_trains() -> None:
    stored = _with("training", lr_schedule="step", lr_decay=2.0, lr_decay_every=1)

    spec = RunSpec.from_stored(stored)
    trainer = Trainer(spec, INPUTS, TARGETS)
    rates = [record.learning_rate for record in trainer.run()]

    assert spec.training.lr_decay == 2.0
    assert rates == [0.1, 0.2, 0.4]
