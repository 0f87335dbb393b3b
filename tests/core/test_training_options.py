"""float32 runs and learning-rate schedules."""

import math

import numpy as np
import pytest

from service.core import Backprop, Model, Parameters, RunSpec, Trainer
from service.core import training as training_module


def _regression() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, 3))
    return x, np.tanh(x @ np.array([[0.5], [-1.0], [0.25]]))


def _spec(**training: object) -> RunSpec:
    return RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": [3, 6, 1], "hidden_activation": "tanh", "init": "xavier_normal"},
            "training": {"learning_rate": 0.05, "epochs": 20, "batch_size": 4, **training},
        }
    )


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam"])
def test_float32_run_keeps_float32_parameters_and_tracks_float64(optimizer: str) -> None:
    x, y = _regression()
    single = Trainer(_spec(dtype="float32", optimizer=optimizer), x, y)
    double = Trainer(_spec(dtype="float64", optimizer=optimizer), x, y)

    records = list(single.run())
    list(double.run())

    assert single.params.flat.dtype == np.float32
    assert all(w.dtype == np.float32 for w in single.params.weights)
    assert all(b.dtype == np.float32 for b in single.params.biases)
    assert all(math.isfinite(r.loss) for r in records)
    assert records[-1].loss < records[0].loss
    np.testing.assert_allclose(single.params.flat, double.params.flat, rtol=1e-3, atol=1e-4)
    model = Model.from_bytes(single.model().to_bytes())
    assert model.parameters.flat.dtype == np.float32
    assert model.predict(x).dtype == np.float32


def test_float32_run_resumes_from_checkpoint_bit_for_bit() -> None:
    x, y = _regression()
    spec = _spec(dtype="float32", optimizer="adam")
    whole = Trainer(spec, x, y)
    list(whole.run())
    first = Trainer(spec, x, y)
    for _ in range(7):
        first.train_epoch()

    resumed = Trainer(spec, x, y, checkpoint=first.checkpoint())
    list(resumed.run())

    assert resumed.params.flat.dtype == np.float32
    assert resumed.params.flat.tobytes() == whole.params.flat.tobytes()


BASE_RATE = 0.1
DECAY = 0.5
EVERY = 3
EPOCHS = 10
EXPECTED_RATES = {
    "constant": [BASE_RATE] * EPOCHS,
    "step": [BASE_RATE * DECAY ** (e // EVERY) for e in range(EPOCHS)],
    "exponential": [BASE_RATE * DECAY ** (e / EVERY) for e in range(EPOCHS)],
    "inverse_time": [BASE_RATE / (1 + DECAY * e / EVERY) for e in range(EPOCHS)],
    "cosine": [BASE_RATE * 0.5 * (1 + math.cos(math.pi * e / EPOCHS)) for e in range(EPOCHS)],
}


@pytest.mark.parametrize("schedule", sorted(EXPECTED_RATES))
def test_learning_rate_schedule_sets_each_epochs_rate(schedule: str) -> None:
    x, y = _regression()
    spec = _spec(
        optimizer="sgd",
        learning_rate=BASE_RATE,
        lr_schedule=schedule,
        lr_decay=DECAY,
        lr_decay_every=EVERY,
        epochs=EPOCHS,
        batch_size=None,
        shuffle=False,
    )
    trainer = Trainer(spec, x, y)
    backprop = Backprop(spec.network, "mse")

    for epoch, expected in enumerate(EXPECTED_RATES[schedule], start=1):
        before = trainer.params.copy()
        gradient = backprop.gradients(before, x, y).flat
        record = trainer.train_epoch()

        assert record is not None and record.epoch == epoch
        assert record.learning_rate == pytest.approx(expected, rel=1e-12)
        # Full-batch plain SGD: the epoch's one step is exactly rate * gradient.
        np.testing.assert_allclose(
            before.flat - trainer.params.flat, expected * gradient, rtol=1e-9, atol=1e-15
        )
    rates = [EXPECTED_RATES[schedule][0], EXPECTED_RATES[schedule][-1]]
    assert (rates[0] == rates[1]) == (schedule == "constant")


def test_parameters_round_trip_through_layers_json() -> None:
    params = Parameters.zeros([3, 4, 2])
    params.flat[...] = np.arange(params.flat.size, dtype=float) / 7

    again = Parameters.from_layers([3, 4, 2], params.to_layers())

    assert again.flat.tobytes() == params.flat.tobytes()


def test_large_data_gathered_per_batch_trains_exactly_like_a_whole_shuffle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    inputs, labels = rng.standard_normal((300, 20)), rng.integers(0, 3, 300)
    spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": [20, 8, 3], "output_activation": "softmax"},
            "training": {
                "loss": "categorical_crossentropy",
                "optimizer": "adam",
                "batch_size": 32,
                "epochs": 4,
                "validation_split": 0.1,
            },
        }
    )
    monkeypatch.setattr(training_module, "GATHER_ABOVE_BYTES", 0)
    gathered = Trainer(spec, inputs, np.eye(3)[labels])
    gathered_history = list(gathered.run())
    monkeypatch.setattr(training_module, "GATHER_ABOVE_BYTES", 10**12)
    shuffled = Trainer(spec, inputs, np.eye(3)[labels])
    shuffled_history = list(shuffled.run())

    assert gathered._gather and not shuffled._gather
    assert gathered.params.flat.tobytes() == shuffled.params.flat.tobytes()
    assert gathered_history == shuffled_history
