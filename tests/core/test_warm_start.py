"""A Trainer warm-started from a model: its parameters and preprocessing, never refitted;
layers and classes checked; a checkpoint of a warm-started run resumes bit for bit."""

from typing import Any

import numpy as np
import pytest

from service.core import RunSpec, SpecError, Trainer
from service.core.datasets import generate

SPEC: dict[str, Any] = {
    "network": {"layers": [2, 6, 1], "hidden_activation": "tanh", "output_activation": "sigmoid"},
    "training": {"loss": "binary_crossentropy", "learning_rate": 0.05, "epochs": 20},
}


def trained(spec: dict[str, Any] = SPEC) -> Trainer:
    x, t = generate("moons", 80, 0.1)
    trainer = Trainer(RunSpec.from_dict(spec), x * 50 + 3, t)
    for _ in trainer.run():
        pass
    return trainer


def test_a_warm_start_begins_at_the_models_weights_with_its_preprocessing() -> None:
    model = trained().model()
    x, t = generate("circles", 60, 0.1)  # other data: its statistics must not be fitted

    trainer = Trainer(RunSpec.from_dict(SPEC), x, t, start_from=model)

    assert np.array_equal(trainer.params.flat, model.parameters.flat)
    assert model.preprocessing is not None
    assert trainer.preprocessing.same_as(model.preprocessing)
    assert trainer.weights_epoch == 0


def test_a_checkpoint_of_a_warm_started_run_resumes_bit_for_bit() -> None:
    model = trained().model()
    x, t = generate("moons", 80, 0.2, 1)
    spec = RunSpec.from_dict(SPEC)
    whole = Trainer(spec, x, t, start_from=model)
    for _ in whole.run():
        pass

    first = Trainer(spec, x, t, start_from=model)
    for _ in range(7):
        first.train_epoch()
    resumed = Trainer(spec, x, t, first.checkpoint(), start_from=model)
    for _ in resumed.run():
        pass

    assert resumed.params.flat.tobytes() == whole.params.flat.tobytes()


def test_a_warm_start_refuses_other_layers_naming_both() -> None:
    model = trained().model()
    other = {**SPEC, "network": {**SPEC["network"], "layers": [2, 4, 1]}}
    x, t = generate("moons", 20, 0.1)

    with pytest.raises(SpecError) as raised:
        Trainer(RunSpec.from_dict(other), x, t, start_from=model)

    assert "the model has layers [2, 6, 1], the job's network has [2, 4, 1]" in str(raised.value)


def test_a_warm_start_refuses_a_model_of_other_classes() -> None:
    model = trained().model()
    x, t = generate("moons", 20, 0.1)

    with pytest.raises(SpecError, match=r"the model was trained on target values, the data has"):
        Trainer(RunSpec.from_dict(SPEC), x, t, classes=["a", "b"], start_from=model)


def test_weights_epoch_follows_early_stopping_and_a_checkpoint() -> None:
    spec = {
        **SPEC,
        "training": {
            **SPEC["training"],
            "epochs": 200,
            "early_stopping_patience": 2,
            "early_stopping_min_delta": 1.0,
        },
    }
    trainer = trained(spec=spec)

    assert (trainer.epoch, trainer.best_epoch, trainer.weights_epoch) == (3, 1, 1)
