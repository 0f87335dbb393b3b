"""Early stopping counts epochs exactly; checkpoints restore every kind of stopped run and
refuse archives that are not theirs."""

import io
from typing import Any

import numpy as np
import pytest

from service.core import Model, Parameters, RunSpec, SpecError, Trainer
from service.core.serialization import pack
from tests.helpers import diverging_run

# y = 2x + 1, and a 1-1 identity network that starts at w = 2, b = 1: every loss is exactly
# 0, so no epoch after the first improves on it.
LINE_X = [[0.0], [1.0], [2.0], [3.0]]
LINE_Y = [[1.0], [3.0], [5.0], [7.0]]


def _exact_line_trainer(patience: int, min_delta: float, validation_split: float) -> Trainer:
    spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": [1, 1], "output_activation": "identity"},
            "training": {
                "learning_rate": 0.1,
                "epochs": 50,
                "batch_size": None,
                "shuffle": False,
                "validation_split": validation_split,
                "early_stopping_patience": patience,
                "early_stopping_min_delta": min_delta,
            },
        }
    )
    start = Parameters.zeros([1, 1])
    start.flat[...] = [2.0, 1.0]
    return Trainer(spec, LINE_X, LINE_Y, initial_parameters=start)


@pytest.mark.parametrize("min_delta", [0.0, 0.5])
@pytest.mark.parametrize(
    ("validation_split", "monitored"), [(0.0, "training loss"), (0.25, "validation loss")]
)
def test_early_stopping_stops_after_exactly_patience_epochs_without_improvement(
    validation_split: float, monitored: str, min_delta: float
) -> None:
    trainer = _exact_line_trainer(3, min_delta, validation_split)

    records = list(trainer.run())

    # Epoch 1 improves on nothing-yet; a loss equal to the best is not an improvement, so
    # epochs 2, 3 and 4 are the three without one.
    assert all(r.loss == 0.0 for r in records)
    assert [r.epoch for r in records] == [1, 2, 3, 4]
    assert trainer.diverged is False
    assert trainer.best_epoch == 1
    assert trainer.stop_reason == (
        f"early stopping at epoch 4: no {monitored} improvement for 3 epochs; "
        "restored the weights of epoch 1"
    )


def test_an_improvement_smaller_than_min_delta_does_not_count() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    y = np.tanh(x @ np.array([[1.0], [-1.0]]))
    settings: dict[str, Any] = {
        "preprocessing": {"inputs": "none"},
        "network": {"layers": [2, 4, 1], "hidden_activation": "tanh", "init": "xavier_uniform"},
        "training": {"learning_rate": 0.01, "epochs": 40, "batch_size": None, "shuffle": False},
    }
    free = Trainer(RunSpec.from_dict(settings), x, y)
    losses = [r.loss for r in free.run()]
    steps = -np.diff(losses)
    assert (steps > 0).all()  # the loss falls every epoch, by less than 0.5 each time
    settings["training"] |= {"early_stopping_patience": 2, "early_stopping_min_delta": 0.5}

    stopped = Trainer(RunSpec.from_dict(settings), x, y)
    records = list(stopped.run())

    assert [r.epoch for r in records] == [1, 2, 3]
    assert stopped.best_epoch == 1


def test_checkpoint_of_a_diverged_run_restores_a_diverged_run() -> None:
    spec, x, y = diverging_run()
    trainer = Trainer(spec, x, y)
    list(trainer.run())
    assert trainer.diverged

    restored = Trainer(spec, x, y, checkpoint=trainer.checkpoint())

    assert restored.diverged and restored.done
    assert restored.stop_reason == trainer.stop_reason
    assert restored.epoch == trainer.epoch
    assert restored.params.flat.tobytes() == trainer.params.flat.tobytes()
    assert list(restored.run()) == []


def test_checkpoint_taken_before_the_first_epoch_resumes_like_a_fresh_run() -> None:
    x, y = np.array(LINE_X), np.array(LINE_Y) + np.array([[0.1], [-0.2], [0.3], [0.0]])
    spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": [1, 3, 1], "hidden_activation": "tanh"},
            "training": {"epochs": 30, "early_stopping_patience": 2, "seed": 4},
        }
    )
    fresh = Trainer(spec, x, y)
    history = list(fresh.run())

    resumed = Trainer(spec, x, y, checkpoint=Trainer(spec, x, y).checkpoint())

    assert list(resumed.run()) == history
    assert resumed.params.flat.tobytes() == fresh.params.flat.tobytes()


def _line_spec(**training: Any) -> RunSpec:
    return RunSpec.from_dict(
        {"network": {"layers": [1, 2, 1]}, "training": {"epochs": 5, **training}}
    )


def test_checkpoint_for_another_spec_or_data_size_is_refused() -> None:
    trainer = Trainer(_line_spec(), LINE_X, LINE_Y)
    trainer.train_epoch()
    checkpoint = trainer.checkpoint()

    with pytest.raises(SpecError) as other_spec:
        Trainer(_line_spec(learning_rate=0.5), LINE_X, LINE_Y, checkpoint=checkpoint)
    with pytest.raises(SpecError) as other_size:
        Trainer(_line_spec(), LINE_X[:3], LINE_Y[:3], checkpoint=checkpoint)

    assert (other_spec.value.field, other_spec.value.message) == (
        "checkpoint",
        "was made for a different spec",
    )
    assert (other_size.value.field, other_size.value.message) == (
        "checkpoint",
        "was made for a data set of another size",
    )


def test_bytes_that_are_not_a_checkpoint_are_refused() -> None:
    model_bytes = Model(_line_spec().network, Parameters.zeros([1, 2, 1])).to_bytes()

    with pytest.raises(SpecError) as garbage:
        Trainer(_line_spec(), LINE_X, LINE_Y, checkpoint=b"not an archive")
    with pytest.raises(SpecError) as a_model:
        Trainer(_line_spec(), LINE_X, LINE_Y, checkpoint=model_bytes)
    with pytest.raises(SpecError) as other_format:
        Model.from_bytes(pack("model", {"format": 2}, {}))

    assert garbage.value.field == "checkpoint"
    assert garbage.value.message.startswith("not a valid checkpoint archive (")
    assert (a_model.value.field, a_model.value.message) == (
        "checkpoint",
        "archive holds model format 1",
    )
    assert (other_format.value.field, other_format.value.message) == (
        "model",
        "archive holds model format 2",
    )


def test_a_model_file_holding_a_pickled_object_is_refused_not_unpickled() -> None:
    # A model file is user input; loading must never run pickle, whatever the file holds.
    good = Model(_line_spec().network, Parameters.zeros([1, 2, 1])).to_bytes()
    with np.load(io.BytesIO(good), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, payload=np.array([{"a": 1}], dtype=object), **arrays)

    with pytest.raises(SpecError) as refused:
        Model.from_bytes(buffer.getvalue())

    assert refused.value.field == "model"
    assert "not a valid model archive" in refused.value.message


def test_a_loss_overflowing_to_infinity_stops_the_run_though_the_weights_are_finite() -> None:
    # Output 1e160: its square overflows, while the step (rate 1e-300) leaves the weights
    # finite. The loss alone must stop the run, and the starting weights are kept.
    spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": [1, 1]},
            "training": {"learning_rate": 1e-300, "epochs": 3, "shuffle": False},
        }
    )
    start = Parameters.zeros([1, 1])
    start.flat[...] = [1e170, 0.0]
    trainer = Trainer(spec, [[1e-10]], [[0.0]], initial_parameters=start)

    records = list(trainer.run())

    assert records == []
    assert trainer.diverged
    assert trainer.stop_reason == (
        "diverged at epoch 1: the training loss became inf; "
        "kept the weights from the end of epoch 0"
    )
    assert trainer.params.flat.tolist() == [1e170, 0.0]


def test_a_run_diverging_with_early_stopping_on_restores_the_best_weights() -> None:
    spec, x, y = diverging_run()
    patient = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": spec.network.to_dict(),
            "training": {**spec.training.to_dict(), "early_stopping_patience": 1000},
        }
    )
    trainer = Trainer(patient, x, y)
    weights_after: dict[int, bytes] = {}
    for record in trainer.run():
        weights_after[record.epoch] = trainer.params.flat.tobytes()

    assert trainer.diverged and trainer.stop_reason is not None
    assert trainer.stop_reason.startswith(f"diverged at epoch {trainer.epoch}: the training loss")
    assert trainer.stop_reason.endswith(
        f"; restored the best weights, of epoch {trainer.best_epoch}"
    )
    assert trainer.params.flat.tobytes() == weights_after[trainer.best_epoch]
