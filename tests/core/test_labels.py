"""Class labels as users give them: strings, integers or booleans in, the same names out;
a stratified split that keeps each class's share."""

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from service.core import Labels, Model, NetworkSpec, RunSpec, SpecError, Trainer
from service.core.labels import labels_from_targets


@pytest.mark.parametrize(
    ("values", "classes", "indices"),
    [
        (["dog", "cat", "dog", "bird"], ("bird", "cat", "dog"), [2, 1, 2, 0]),
        ([2, 0, 1, 2], (0, 1, 2), [2, 0, 1, 2]),
        ([10, -3, 10], (-3, 10), [1, 0, 1]),
        ([True, False, True], (False, True), [1, 0, 1]),
        (np.array(["b", "a"]), ("a", "b"), [1, 0]),
    ],
)
def test_labels_keep_their_classes_sorted_and_as_given(
    values: Any, classes: tuple[Any, ...], indices: list[int]
) -> None:
    labels = Labels.from_values(values)

    assert labels.classes == classes
    assert [type(c) for c in labels.classes] == [type(c) for c in classes]
    assert labels.indices.tolist() == indices
    assert labels.counts() == [indices.count(i) for i in range(len(classes))]


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        (["cat", 1, "dog"], "labels[1]"),
        ([1, 2, True], "labels[2]"),
        ([False, "yes"], "labels[1]"),
    ],
)
def test_labels_of_mixed_types_are_refused(values: list[Any], bad: str) -> None:
    with pytest.raises(SpecError) as error:
        Labels.from_values(values)

    assert error.value.field == "labels"
    assert "mixed types" in error.value.message
    assert bad in error.value.message


@pytest.mark.parametrize(("values", "field"), [([1, 2.0], "labels[1]"), (["a", None], "labels[1]")])
def test_floats_and_nulls_are_not_labels(values: list[Any], field: str) -> None:
    with pytest.raises(SpecError) as error:
        Labels.from_values(values, field="labels")

    assert error.value.field == field


@pytest.mark.parametrize("values", [[], "abc", None])
def test_labels_must_be_a_nonempty_list(values: Any) -> None:
    with pytest.raises(SpecError) as error:
        Labels.from_values(values)

    assert error.value.field == "labels"


def _network(width: int, output: str = "softmax") -> NetworkSpec:
    return NetworkSpec.from_dict({"layers": [2, 4, width], "output_activation": output})


def test_labels_become_one_hot_or_a_01_column_for_the_output_width() -> None:
    labels = Labels.from_values(["b", "a", "c", "a"])
    pair = Labels.from_values(["no", "yes", "yes"])

    np.testing.assert_array_equal(
        labels.targets_for(_network(3)), [[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]]
    )
    np.testing.assert_array_equal(pair.targets_for(_network(1, "sigmoid")), [[0], [1], [1]])
    np.testing.assert_array_equal(pair.targets_for(_network(2)), [[1, 0], [0, 1], [0, 1]])


@pytest.mark.parametrize("width", [1, 2, 4])
def test_output_width_that_does_not_fit_the_classes_names_the_number(width: int) -> None:
    labels = Labels.from_values(["b", "a", "c"])

    with pytest.raises(SpecError) as error:
        labels.targets_for(_network(width, "sigmoid" if width == 1 else "softmax"))

    assert error.value.field == "network.layers[2]"
    assert error.value.message == (
        f"output width {width} does not fit the dataset's 3 classes; use 3 (or 1 for two classes)"
    )


def test_generator_targets_become_integer_labels() -> None:
    column = labels_from_targets(np.array([[0.0], [1.0], [1.0]]))
    one_hot = labels_from_targets(np.eye(3)[[2, 0, 1, 2]])

    assert (column.classes, column.indices.tolist()) == ((0, 1), [0, 1, 1])
    assert (one_hot.classes, one_hot.indices.tolist()) == ((0, 1, 2), [2, 0, 1, 2])
    with pytest.raises(SpecError) as error:
        labels_from_targets(np.array([[0.5], [1.0]]))
    assert error.value.field == "targets"


def _classifier_spec(width: int, **training: Any) -> RunSpec:
    output = "sigmoid" if width == 1 else "softmax"
    loss = "binary_crossentropy" if width == 1 else "categorical_crossentropy"
    return RunSpec.from_dict(
        {
            "network": {"layers": [2, 8, width], "output_activation": output},
            "training": {"loss": loss, "epochs": 5, "batch_size": 8, **training},
        }
    )


def _animals(n_cat: int, n_dog: int, n_bird: int, seed: int = 0) -> tuple[np.ndarray, Labels]:
    values = ["cat"] * n_cat + ["dog"] * n_dog + ["bird"] * n_bird
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(values))
    labels = Labels.from_values([values[i] for i in order])
    centres = np.array([[0.0, 3.0], [0.0, 0.0], [3.0, 0.0]])  # bird, cat, dog
    x = centres[labels.indices] + 0.5 * rng.normal(size=(len(values), 2))
    return x, labels


@pytest.mark.parametrize("seed", range(5))
def test_stratified_split_keeps_the_class_ratios_of_string_labels(seed: int) -> None:
    x, labels = _animals(60, 30, 10, seed=seed)
    spec = _classifier_spec(3, validation_split=0.2, seed=seed)

    trainer = Trainer(spec, x, labels.targets_for(spec.network), classes=labels.classes)

    assert trainer.val_t is not None
    # bird, cat, dog: 10, 60, 30 rows; a fifth of each validates.
    assert trainer.val_t.sum(axis=0).tolist() == [2, 12, 6]
    assert trainer.train_t.sum(axis=0).tolist() == [8, 48, 24]


def test_a_class_with_one_sample_cannot_be_split_and_says_so() -> None:
    x, labels = _animals(20, 20, 1)
    spec = _classifier_spec(3, validation_split=0.25)

    with pytest.raises(SpecError) as error:
        Trainer(spec, x, labels.targets_for(spec.network), classes=labels.classes)

    assert error.value.field == "training.validation_split"
    assert "class 'bird' has 1 sample(s)" in error.value.message
    assert "at least 2 of every class" in error.value.message
    # Without a validation split the same data trains.
    plain = _classifier_spec(3)
    Trainer(plain, x, labels.targets_for(plain.network), classes=labels.classes)


def test_scaling_class_targets_is_refused() -> None:
    x, labels = _animals(10, 10, 10)
    data = _classifier_spec(3).to_dict()
    data["preprocessing"]["targets"] = "standardize"
    spec = RunSpec.from_dict(data)

    with pytest.raises(SpecError) as error:
        Trainer(spec, x, labels.targets_for(spec.network), classes=labels.classes)

    assert error.value.field == "preprocessing.targets"


@pytest.mark.parametrize(
    ("values", "width"),
    [
        (["cat", "dog", "bird"], 3),
        ([3, 1, 2], 3),
        ([True, False, False], 1),
        (["no", "yes", "no"], 2),
    ],
)
def test_model_answers_with_class_names_of_their_own_type(values: list[Any], width: int) -> None:
    labels = Labels.from_values(values * 20)
    x = np.random.default_rng(0).normal(size=(60, 2)) + labels.indices[:, None] * 6
    spec = _classifier_spec(width, epochs=30, optimizer="adam", learning_rate=0.05)
    trainer = Trainer(spec, x, labels.targets_for(spec.network), classes=labels.classes)
    list(trainer.run())

    model = Model.from_bytes(trainer.model().to_bytes())
    outputs = model.predict(x)
    names = model.labels(outputs)
    probabilities = model.probabilities(outputs)

    assert model.classes == labels.classes
    assert all(type(name) is type(values[0]) for name in names)
    assert set(names) <= set(values)
    # The rows' own labels, as given.
    assert np.mean([a == b for a, b in zip(names, values * 20, strict=True)]) > 0.9
    assert probabilities.shape == (60, len(labels.classes))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1)
    assert names == [model.classes[i] for i in probabilities.argmax(axis=1)]


def test_validation_precision_recall_f1_are_macro_over_the_validation_part() -> None:
    x, labels = _animals(40, 30, 20)
    spec = _classifier_spec(3, validation_split=0.3, epochs=3, learning_rate=0.001)
    trainer = Trainer(spec, x, labels.targets_for(spec.network), classes=labels.classes)

    record = list(trainer.run())[-1]

    assert trainer.val_x is not None and trainer.val_t is not None
    predicted = Model(spec.network, trainer.params).predict(trainer.val_x).argmax(axis=1)
    truth = trainer.val_t.argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=[0, 1, 2], average="macro", zero_division=0
    )
    assert (record.val_precision, record.val_recall, record.val_f1) == pytest.approx(
        (precision, recall, f1), abs=1e-12
    )
    assert record.mae is None and record.val_r2 is None
