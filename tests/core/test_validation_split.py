"""The validation split: a seeded shuffle, stratified by class where the targets are labels."""

from typing import Any

import numpy as np
import pytest

from service.core import RunSpec, Trainer

SEEDS = range(12)


def _spec(output: str, loss: str, n_outputs: int, seed: int, fraction: float) -> RunSpec:
    return RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": {"layers": [2, 4, n_outputs], "output_activation": output},
            "training": {
                "loss": loss,
                "epochs": 3,
                "batch_size": 8,
                "seed": seed,
                "validation_split": fraction,
            },
        }
    )


def _inputs(n: int) -> np.ndarray:
    """Inputs whose first column is the row number, so a split shows which rows it took."""
    return np.column_stack([np.arange(n, dtype=float), np.linspace(-1, 1, n)])


def _rows(x: np.ndarray | None) -> list[int]:
    assert x is not None
    return [int(row) for row in x[:, 0]]


def _split(spec: RunSpec, n: int, targets: np.ndarray) -> tuple[list[int], list[int]]:
    trainer = Trainer(spec, _inputs(n), targets)
    return _rows(trainer.val_x), _rows(trainer.train_x)


def test_regression_split_is_a_seeded_shuffle_of_all_rows() -> None:
    n, fraction = 40, 0.25
    targets = np.linspace(0, 1, n)[:, None]
    splits = {
        seed: _split(_spec("identity", "mse", 1, seed, fraction), n, targets) for seed in SEEDS
    }

    for val, train in splits.values():
        assert len(val) == 10
        assert sorted(val + train) == list(range(n))
        assert val != list(range(10)) and val != list(range(n - 10, n))
    # Same seed, same split; another seed, another split.
    assert _split(_spec("identity", "mse", 1, 5, fraction), n, targets) == splits[5]
    assert len({tuple(val) for val, _ in splits.values()}) == len(SEEDS)


def _assert_stratified(val_labels: np.ndarray, all_labels: np.ndarray) -> None:
    """Each class's count in the validation part is within one sample of its share."""
    n_classes = int(all_labels.max()) + 1
    whole = np.bincount(all_labels, minlength=n_classes)
    share = whole * len(val_labels) / len(all_labels)
    in_validation = np.bincount(val_labels, minlength=n_classes)
    assert np.all(np.abs(in_validation - share) < 1), (in_validation, share)


def _classes_sorted(sizes: list[int]) -> np.ndarray:
    """Class labels, all of class 0 first, then all of class 1, ...: the first or last rows
    of such data are never a fair sample."""
    return np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_hot_split_keeps_every_class_share(seed: int) -> None:
    labels = _classes_sorted([47, 31, 19])
    one_hot = np.eye(3)[labels]
    spec = _spec("softmax", "categorical_crossentropy", 3, seed, 0.25)
    trainer = Trainer(spec, _inputs(len(labels)), one_hot)

    assert trainer.val_t is not None and len(trainer.val_t) == 24
    _assert_stratified(trainer.val_t.argmax(axis=1), labels)
    # Shares 11.63, 7.67 and 4.70 of 24: floors 11, 7, 4, and the two samples left go to
    # the largest remainders.
    assert np.bincount(trainer.val_t.argmax(axis=1)).tolist() == [11, 8, 5]
    assert sorted(_rows(trainer.val_x) + _rows(trainer.train_x)) == list(range(len(labels)))
    # The rows of each class in validation are a shuffle, not the class's first rows.
    val_rows = _rows(trainer.val_x)
    assert val_rows[:11] != list(range(11))


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_split_keeps_the_rare_class_share(seed: int) -> None:
    labels = _classes_sorted([50, 10])
    spec = _spec("sigmoid", "binary_crossentropy", 1, seed, 0.3)
    trainer = Trainer(spec, _inputs(len(labels)), labels[:, None].astype(float))

    assert trainer.val_t is not None and len(trainer.val_t) == 18
    # 10 of 60 rows are positive: 3 of the 18 validation rows are.
    assert int(trainer.val_t.sum()) == 3
    _assert_stratified(trainer.val_t[:, 0].astype(np.int64), labels)


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_label_split_keeps_each_label_combination_share(seed: int) -> None:
    combinations = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    labels = _classes_sorted([30, 12, 9, 5])
    spec = _spec("sigmoid", "binary_crossentropy", 2, seed, 0.2)
    trainer = Trainer(spec, _inputs(len(labels)), combinations[labels])

    assert trainer.val_t is not None
    val_labels = (trainer.val_t @ np.array([2, 1])).astype(np.int64)
    _assert_stratified(val_labels, labels)


def _reference_split(seed: int, n: int, takes: dict[int, int], labels: np.ndarray) -> list[int]:
    """Written out plainly: walk the seeded permutation of the rows and keep each row while
    its class still needs validation rows."""
    order = np.random.default_rng([seed, 1]).permutation(n)
    wanted = dict(takes)
    chosen = []
    for row in order:
        label = int(labels[row])
        if wanted.get(label, 0) > 0:
            chosen.append(int(row))
            wanted[label] -= 1
    return sorted(chosen)


@pytest.mark.parametrize("seed", [0, 7])
def test_split_rows_are_the_seeded_permutations_first_rows_of_each_class(seed: int) -> None:
    labels = _classes_sorted([47, 31, 19])
    spec = _spec("softmax", "categorical_crossentropy", 3, seed, 0.25)
    unlabelled = _spec("identity", "mse", 3, seed, 0.25)

    val, _ = _split(spec, len(labels), np.eye(3)[labels])
    plain, _ = _split(unlabelled, len(labels), np.eye(3)[labels])

    assert val == _reference_split(seed, len(labels), {0: 11, 1: 8, 2: 5}, labels)
    # Regression targets (identity output): the permutation's first 24 rows, whatever class.
    assert plain == _reference_split(seed, len(labels), {0: 24}, np.zeros(97))


def test_stratified_split_is_seeded() -> None:
    labels = _classes_sorted([47, 31, 19])
    one_hot = np.eye(3)[labels]

    def split(seed: int) -> tuple[list[int], list[int]]:
        spec = _spec("softmax", "categorical_crossentropy", 3, seed, 0.25)
        return _split(spec, len(labels), one_hot)

    assert split(3) == split(3)
    assert len({tuple(split(seed)[0]) for seed in SEEDS}) == len(SEEDS)


def test_classifier_run_with_validation_resumes_bit_for_bit() -> None:
    labels = _classes_sorted([27, 14, 9])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(labels), 2)) + labels[:, None]
    one_hot = np.eye(3)[labels]
    settings: dict[str, Any] = {
        "preprocessing": {"inputs": "none"},
        "network": {
            "layers": [2, 6, 3],
            "hidden_activation": "tanh",
            "output_activation": "softmax",
        },
        "training": {
            "loss": "categorical_crossentropy",
            "optimizer": "adam",
            "learning_rate": 0.01,
            "epochs": 12,
            "batch_size": 4,
            "validation_split": 0.3,
            "seed": 2,
        },
    }
    spec = RunSpec.from_dict(settings)
    whole = Trainer(spec, x, one_hot)
    history = list(whole.run())
    first = Trainer(spec, x, one_hot)
    first_history = [first.train_epoch() for _ in range(5)]

    resumed = Trainer(spec, x, one_hot, checkpoint=first.checkpoint())
    resumed_history = list(resumed.run())

    assert first_history + resumed_history == history
    assert all(record.val_accuracy is not None for record in history)
    assert resumed.params.flat.tobytes() == whole.params.flat.tobytes()
