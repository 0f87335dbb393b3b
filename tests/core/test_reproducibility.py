"""Same spec and seed, same bytes: repeated runs, resumed runs and saved models."""

import io
from typing import Any

import numpy as np
import pytest

from service.core import EpochRecord, Model, RunSpec, Trainer

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam"]
UPDATE_RULES = ["standard", "dirty"]
LEARNING_RATES = {"sgd": 0.03, "momentum": 0.004, "nesterov": 0.004, "adam": 0.004}


def _noisy_regression() -> tuple[np.ndarray, np.ndarray]:
    # 37 samples: validation_split 0.2 keeps 7 apart, and 30 training samples in batches of 8
    # end every epoch with a partial batch of 6. The noise makes validation loss turn up, so
    # early stopping triggers.
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (37, 2))
    y = np.sin(2 * x[:, :1]) + 0.5 * rng.normal(size=(37, 1))
    return x, y


def _spec(optimizer: str, update_rule: str, **training: Any) -> RunSpec:
    return RunSpec.from_dict(
        {
            "network": {
                "layers": [2, 24, 1],
                "hidden_activation": "tanh",
                "output_activation": "identity",
                "init": "xavier_uniform",
            },
            "training": {
                "optimizer": optimizer,
                "learning_rate": LEARNING_RATES[optimizer],
                "epochs": 150,
                "batch_size": 8,
                "shuffle": True,
                "validation_split": 0.2,
                "early_stopping_patience": 8,
                "update_rule": update_rule,
                "seed": 3,
                **training,
            },
        }
    )


def _archive_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Every array of an `.npz` archive, loaded the way that refuses pickled objects."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    assert all(array.dtype != object for array in arrays.values())
    return arrays


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_two_runs_with_the_same_spec_and_seed_give_identical_weights(optimizer: str) -> None:
    x, y = _noisy_regression()
    first = Trainer(_spec(optimizer, "standard"), x, y)
    second = Trainer(_spec(optimizer, "standard"), x, y)
    other_seed = Trainer(_spec(optimizer, "standard", seed=4), x, y)

    first_history, second_history = list(first.run()), list(second.run())
    list(other_seed.run())

    assert first.params.flat.tobytes() == second.params.flat.tobytes()
    assert first_history == second_history
    assert first.params.flat.tobytes() != other_seed.params.flat.tobytes()


@pytest.mark.parametrize("update_rule", UPDATE_RULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_run_resumed_from_checkpoint_ends_with_the_uninterrupted_weights_and_history(
    optimizer: str, update_rule: str
) -> None:
    x, y = _noisy_regression()
    spec = _spec(optimizer, update_rule)
    uninterrupted = Trainer(spec, x, y)
    history: list[EpochRecord] = []
    weights_after_epoch: dict[int, bytes] = {}
    for record in uninterrupted.run():
        history.append(record)
        weights_after_epoch[record.epoch] = uninterrupted.params.flat.tobytes()
    final_weights = uninterrupted.params.flat.tobytes()

    # Early stopping triggered and the final weights are the best validation epoch's.
    assert uninterrupted.stop_reason is not None
    assert uninterrupted.stop_reason.startswith("early stopping")
    assert not uninterrupted.diverged
    val_losses = [r.val_loss for r in history]
    assert all(v is not None for v in val_losses)
    best_epoch = history[int(np.argmin(np.array(val_losses, dtype=float)))].epoch
    assert uninterrupted.best_epoch == best_epoch < history[-1].epoch
    assert final_weights == weights_after_epoch[best_epoch]
    assert final_weights != weights_after_epoch[history[-2].epoch]

    for stop in sorted({1, 2, best_epoch, best_epoch + 1, len(history) - 1}):
        first_part = Trainer(spec, x, y)
        resumed_history = [record for _, record in zip(range(stop), first_part.run(), strict=False)]
        assert first_part.epoch == stop
        checkpoint = first_part.checkpoint()
        _archive_arrays(checkpoint)

        second_part = Trainer(spec, x, y, checkpoint=checkpoint)
        assert second_part.epoch == stop
        resumed_history += list(second_part.run())

        assert resumed_history == history, f"stopped at epoch {stop}"
        assert second_part.params.flat.tobytes() == final_weights, f"stopped at epoch {stop}"
        assert second_part.stop_reason == uninterrupted.stop_reason


def test_checkpoint_of_a_finished_run_restores_a_finished_run() -> None:
    x, y = _noisy_regression()
    spec = _spec("adam", "standard")
    trainer = Trainer(spec, x, y)
    list(trainer.run())

    restored = Trainer(spec, x, y, checkpoint=trainer.checkpoint())

    assert restored.done
    assert list(restored.run()) == []
    assert restored.params.flat.tobytes() == trainer.params.flat.tobytes()


def test_model_bytes_round_trip_gives_identical_predictions_without_pickle() -> None:
    x, y = _noisy_regression()
    trainer = Trainer(_spec("momentum", "dirty"), x, y)
    list(trainer.run())
    model = trainer.model()

    data = model.to_bytes()
    arrays = _archive_arrays(data)
    restored = Model.from_bytes(data)

    assert "flat" in arrays
    assert restored.spec == model.spec
    assert restored.parameters.flat.tobytes() == model.parameters.flat.tobytes()
    assert restored.predict(x).tobytes() == model.predict(x).tobytes()
