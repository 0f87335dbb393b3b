"""The engine actually learns: XOR, two moons, and the notebook's own configuration."""

import math

import numpy as np
from sklearn.datasets import make_moons

from service.core import RunSpec, Trainer
from tests.helpers import example_spec

XOR_INPUTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_TARGETS = np.array([[0.0], [1.0], [1.0], [0.0]])


def _xor_spec(seed: int) -> RunSpec:
    return RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {
                "layers": [2, 8, 1],
                "hidden_activation": "tanh",
                "output_activation": "identity",
                "init": "xavier_uniform",
            },
            "training": {
                "loss": "mse",
                "optimizer": "sgd",
                "learning_rate": 0.05,
                "epochs": 2000,
                "batch_size": 1,
                "shuffle": True,
                "seed": seed,
            },
        }
    )


def test_xor_is_solved_by_a_2_8_1_tanh_network_for_nine_of_ten_seeds() -> None:
    solved = []
    for seed in range(10):
        trainer = Trainer(_xor_spec(seed), XOR_INPUTS, XOR_TARGETS)
        records = list(trainer.run())
        outputs = trainer.model().predict(XOR_INPUTS)
        right_side = bool(np.all((outputs > 0.5) == (XOR_TARGETS > 0.5)))
        final_loss = trainer.backprop.loss(trainer.params, XOR_INPUTS, XOR_TARGETS)
        assert len(records) == 2000
        solved.append(right_side and final_loss < 0.01)
    assert sum(solved) >= 9, solved


def test_two_moons_classifier_exceeds_97_percent_on_held_out_data() -> None:
    x, labels = make_moons(n_samples=600, noise=0.15, random_state=0)
    train_x, test_x = x[:400], x[400:]
    train_t, test_labels = labels[:400, None].astype(float), labels[400:]
    spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {
                "layers": [2, 16, 16, 1],
                "hidden_activation": "tanh",
                "output_activation": "sigmoid",
                "init": "xavier_uniform",
            },
            "training": {
                "loss": "binary_crossentropy",
                "optimizer": "adam",
                "learning_rate": 0.01,
                "epochs": 150,
                "batch_size": 16,
                "seed": 0,
            },
        }
    )
    trainer = Trainer(spec, train_x, train_t)
    records = list(trainer.run())
    model = trainer.model()

    predicted = model.labels(model.predict(test_x))[:, 0]

    assert records[-1].accuracy is not None and records[-1].accuracy > 0.97
    assert np.mean(predicted == test_labels) > 0.97


def test_notebook_configuration_runs_and_records_its_rmse_history() -> None:
    # examples/notebook.json: 2-2-1 relu, identity output, standard-normal init, lr 0.01,
    # per sample, 500 epochs, shuffled, the dirty update rule.
    spec = RunSpec.from_dict(example_spec("notebook"))
    inputs = [[1, 1], [-1, 1], [1, -1], [-1, -1]]
    targets = [1, 0, 0, 1]
    trainer = Trainer(spec, inputs, targets)

    records = list(trainer.run())

    assert [r.epoch for r in records] == list(range(1, 501))
    assert all(math.isfinite(r.rmse) and r.rmse >= 0 for r in records)
    assert all(r.learning_rate == 0.01 for r in records)
    assert trainer.stop_reason is None and not trainer.diverged
    # rmse is the notebook's sqrt(mean((output - target)^2)); loss is half the mean square.
    assert all(math.isclose(r.loss, 0.5 * r.rmse**2, rel_tol=1e-9) for r in records)
