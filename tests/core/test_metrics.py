"""Metrics as scikit-learn defines them, and a model evaluated on data in the user's terms."""

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, precision_recall_fscore_support, r2_score

from service.core import Labels, Model, NetworkSpec, Parameters, SpecError, evaluate
from service.core.metrics import confusion_matrix, macro_scores, mae, r2
from service.core.preprocessing import Preprocessing, Scaler


def test_confusion_matrix_is_the_hand_count() -> None:
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2])

    matrix = confusion_matrix(true, predicted, 3)

    # Rows are the true class, columns the predicted one, counted by hand:
    # class 0: two right, one taken for 1; class 1: one right, one for 2;
    # class 2: three right, one for 0.
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]


@pytest.mark.parametrize("seed", range(6))
def test_macro_scores_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 4
    true = rng.integers(0, k, 30)
    # Some seeds never predict a class, or never see one: zero division counts 0.
    predicted = rng.integers(0, k - (seed % 2), 30)

    scores = macro_scores(confusion_matrix(true, predicted, k))

    expected = precision_recall_fscore_support(
        true, predicted, labels=list(range(k)), average="macro", zero_division=0
    )[:3]
    assert scores == pytest.approx(expected, abs=1e-12)


def test_mae_and_r2_match_scikit_learn_over_columns() -> None:
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(25, 3)) * [1, 10, 100]
    outputs = targets + rng.normal(size=(25, 3))

    assert mae(outputs, targets) == pytest.approx(mean_absolute_error(targets, outputs))
    assert r2(outputs, targets) == pytest.approx(r2_score(targets, outputs))
    constant = np.column_stack([targets[:, 0], np.full(25, 2.0)])
    exact = np.column_stack([outputs[:, 0], np.full(25, 2.0)])
    assert r2(exact, constant) == pytest.approx(r2_score(constant, exact))


def _classifier(classes: tuple[object, ...]) -> Model:
    spec = NetworkSpec.from_dict({"layers": [2, 3], "output_activation": "softmax"})
    params = Parameters.zeros(spec.layers)
    # Class i wins where input i is large (the third class wins nowhere).
    params.weights[0][...] = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]
    return Model(spec, params, classes=classes, loss="categorical_crossentropy")  # type: ignore[arg-type]


def test_evaluate_maps_labels_by_class_name_and_counts_the_confusion() -> None:
    model = _classifier(("bird", "cat", "dog"))
    x = np.array([[5.0, 0.0], [0.0, 5.0], [0.0, 5.0], [5.0, 0.0]])
    # Only two of the model's classes occur: matched by name, not by position.
    labels = Labels.from_values(["bird", "cat", "dog", "cat"])

    result = evaluate(model, x, labels=labels)

    assert result["n_samples"] == 4
    assert result["confusion_matrix"] == {
        "classes": ["bird", "cat", "dog"],
        "matrix": [[1, 0, 0], [1, 1, 0], [0, 1, 0]],
    }
    assert result["metrics"]["accuracy"] == 0.5
    expected = precision_recall_fscore_support(
        [0, 1, 2, 1], [0, 1, 1, 0], labels=[0, 1, 2], average="macro", zero_division=0
    )[:3]
    metrics = result["metrics"]
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == pytest.approx(expected)
    outputs = model.predict(x)
    one_hot = np.eye(3)[[0, 1, 2, 1]]
    assert result["loss"] == pytest.approx(-np.mean(np.log((outputs * one_hot).sum(axis=1))))


def test_evaluate_refuses_an_unknown_class_and_a_wrong_width() -> None:
    model = _classifier(("bird", "cat", "dog"))

    with pytest.raises(SpecError) as unknown:
        evaluate(model, [[1.0, 0.0], [0.0, 1.0]], labels=Labels.from_values(["cat", "fish"]))
    with pytest.raises(SpecError) as width:
        evaluate(model, [[1.0, 0.0, 2.0]], labels=Labels.from_values(["cat"]))

    assert unknown.value.field == "labels[1]"
    assert "'fish' is not one of the model's classes" in unknown.value.message
    assert width.value.field == "inputs"


def test_evaluate_regression_answers_in_raw_units_and_loss_on_the_scaled_problem() -> None:
    spec = NetworkSpec.from_dict({"layers": [1, 1]})
    params = Parameters.zeros(spec.layers)
    params.weights[0][...] = 1.0
    targets = Scaler("standardize", np.array([100.0]), np.array([10.0]))
    model = Model(spec, params, preprocessing=Preprocessing(None, targets), loss="mse")
    x = np.array([[0.0], [1.0], [2.0]])
    y = np.array([[100.0], [115.0], [118.0]])  # the model says 100, 110, 120

    result = evaluate(model, x, targets=y)

    assert result["confusion_matrix"] is None
    assert result["metrics"]["mae"] == pytest.approx((0 + 5 + 2) / 3)
    assert result["metrics"]["rmse"] == pytest.approx(np.sqrt((0 + 25 + 4) / 3))
    assert result["metrics"]["r2"] == pytest.approx(r2_score(y, [[100], [110], [120]]))
    # Scaled: outputs 0, 1, 2 against targets 0, 1.5, 1.8; half squared error.
    assert result["loss"] == pytest.approx(0.5 * (0 + 0.25 + 0.04) / 3)
