"""Preprocessing travels with the model: fitted on the training rows only, applied inside
predict, saved in checkpoints, and harmless on constant columns."""

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score

from service.core import Model, RunSpec, SpecError, Trainer
from service.core.preprocessing import Preprocessing, Scaler
from service.core.serialization import pack, unpack
from service.core.spec import PreprocessingSpec


def _data(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = np.tanh(x @ np.array([[0.5], [-1.0], [0.25]])) + 0.1 * rng.normal(size=(n, 1))
    return x, y


def _spec(
    inputs: str = "standardize", targets: str = "none", init: str = "auto", **training: Any
) -> RunSpec:
    return RunSpec.from_dict(
        {
            "network": {"layers": [3, 6, 1], "hidden_activation": "tanh", "init": init},
            "training": {"learning_rate": 0.05, "epochs": 30, "batch_size": 4, **training},
            "preprocessing": {"inputs": inputs, "targets": targets},
        }
    )


def _trained(spec: RunSpec, x: np.ndarray, y: np.ndarray) -> Model:
    trainer = Trainer(spec, x, y)
    records = list(trainer.run())
    assert len(records) == spec.training.epochs
    return trainer.model()


@pytest.mark.parametrize("inputs", ["standardize", "minmax"])
def test_model_trained_on_rescaled_inputs_predicts_the_same_from_raw_rows(inputs: str) -> None:
    x, y = _data()
    unscaled = x * 1000 + 5

    plain = _trained(_spec(inputs), x, y)
    raw = _trained(_spec(inputs), unscaled, y)

    # Both see the same scaled problem, so from their own raw rows they answer alike.
    np.testing.assert_allclose(raw.predict(unscaled), plain.predict(x), rtol=0, atol=1e-9)
    # ... and the model really takes raw rows: the scaled rows give something else.
    assert not np.allclose(raw.predict(x), plain.predict(x), atol=1e-3)


def test_model_trained_on_rescaled_targets_answers_in_raw_units() -> None:
    x, y = _data()
    spec = _spec("standardize", "standardize")

    plain = _trained(spec, x, y)
    raw = _trained(spec, x, y * 1000 + 5)

    np.testing.assert_allclose(raw.predict(x), plain.predict(x) * 1000 + 5, rtol=1e-9)
    # The training loss is on the scaled problem, the same for both.
    assert plain.preprocessing is not None and raw.preprocessing is not None
    assert raw.preprocessing.targets is not None
    np.testing.assert_allclose(raw.network_outputs(x), plain.network_outputs(x), atol=1e-9)


def test_scaled_model_survives_its_bytes() -> None:
    x, y = _data()
    model = _trained(_spec("minmax", "standardize"), x * 50 - 3, y * 7)

    again = Model.from_bytes(model.to_bytes())

    assert again.predict(x).tobytes() == model.predict(x).tobytes()
    assert again.preprocessing is not None and model.preprocessing is not None
    assert again.preprocessing.same_as(model.preprocessing)


@pytest.mark.parametrize("inputs", ["standardize", "minmax"])
def test_constant_column_gives_no_nan_and_trains(inputs: str) -> None:
    x, y = _data()
    x[:, 1] = 0.1  # its mean is off by rounding: a std of 1e-17, not 0, if computed
    spec = _spec(inputs)

    trainer = Trainer(spec, x, y)
    records = list(trainer.run())

    assert trainer.preprocessing.inputs is not None
    assert trainer.preprocessing.inputs.scale[1] == 1.0
    assert np.isfinite(trainer.train_x).all()
    assert np.abs(trainer.train_x[:, 1]).max() < 1e-12
    assert len(records) == 30 and all(np.isfinite(r.loss) for r in records)
    assert records[-1].loss < records[0].loss
    assert np.isfinite(trainer.model().predict(x)).all()


def test_scaler_maps_to_unit_spread_and_back() -> None:
    data = np.array([[1.0, 10.0, 4.0], [3.0, 30.0, 4.0], [5.0, 20.0, 4.0]])

    standard = Scaler.fit("standardize", data)
    minmax = Scaler.fit("minmax", data)

    z = standard.transform(data)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-15)
    np.testing.assert_allclose(z.std(axis=0), [1, 1, 0], atol=1e-15)
    np.testing.assert_allclose(minmax.transform(data).min(axis=0), [0, 0, 0])
    np.testing.assert_allclose(minmax.transform(data).max(axis=0), [1, 1, 0])
    for scaler in (standard, minmax):
        np.testing.assert_allclose(scaler.inverse(scaler.transform(data)), data, rtol=1e-15)
    assert Preprocessing.fit(PreprocessingSpec("none", "none"), data, data).is_identity


def _validation_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """The rows a regression split validates on: the first of the seeded permutation."""
    return np.random.default_rng([seed, 1]).permutation(n)[: round(fraction * n)]


@pytest.mark.parametrize("inputs", ["standardize", "minmax"])
def test_statistics_come_from_the_training_rows_only(inputs: str) -> None:
    x, y = _data(n=40)
    val = _validation_rows(40, 0.25, seed=3)
    # Validation rows far out: had they leaked into the fit, mean, std, min and max would
    # all move by orders of magnitude.
    x[val] = 1e6 + x[val]
    y[val] = -1e5 + y[val]
    train = np.setdiff1d(np.arange(40), val)

    trainer = Trainer(_spec(inputs, "standardize", validation_split=0.25, seed=3), x, y)

    fitted = trainer.preprocessing
    assert fitted.inputs is not None and fitted.targets is not None
    if inputs == "standardize":
        np.testing.assert_allclose(fitted.inputs.shift, x[train].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(fitted.inputs.scale, x[train].std(axis=0), rtol=1e-12)
    else:
        np.testing.assert_allclose(fitted.inputs.shift, x[train].min(axis=0), rtol=1e-12)
        np.testing.assert_allclose(
            fitted.inputs.scale, x[train].max(axis=0) - x[train].min(axis=0), rtol=1e-12
        )
    np.testing.assert_allclose(fitted.targets.shift, y[train].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fitted.targets.scale, y[train].std(axis=0), rtol=1e-12)
    # The training part is scaled to unit spread; the validation part by the same numbers.
    assert np.abs(trainer.train_x).max() < 10
    assert trainer.val_x is not None and trainer.val_x.min() > 1e3
    # The model carries exactly those statistics.
    model_prep = trainer.model().preprocessing
    assert model_prep is not None and model_prep.same_as(fitted)


def test_validation_metrics_are_in_raw_units_of_the_validation_rows() -> None:
    x, y = _data(n=40)
    spec = _spec("standardize", "standardize", validation_split=0.25, seed=3, epochs=5)
    trainer = Trainer(spec, x, y * 100 + 7)

    record = list(trainer.run())[-1]

    model = trainer.model()
    val = _validation_rows(40, 0.25, seed=3)
    train = np.setdiff1d(np.arange(40), val)
    raw_val = (y * 100 + 7)[val]
    outputs = model.predict(x[val])
    assert record.val_mae == pytest.approx(np.abs(outputs - raw_val).mean(), rel=1e-9)
    total = ((raw_val - raw_val.mean()) ** 2).sum()
    assert record.val_r2 == pytest.approx(1 - ((outputs - raw_val) ** 2).sum() / total, rel=1e-9)
    assert record.mae is not None and record.r2 is not None
    # The training part's MAE is of the epoch's outputs, in raw units: between a hundredth
    # and ten times the raw spread, where a scaled-unit MAE (spread ~1) would not be.
    spread = float((y * 100 + 7)[train].std())
    assert spread / 100 < record.mae < 10 * spread
    assert record.val_precision is None and record.accuracy is None


def _resumed(spec: RunSpec, x: np.ndarray, y: np.ndarray, stop_after: int) -> Trainer:
    first = Trainer(spec, x, y)
    for _ in range(stop_after):
        first.train_epoch()
    return Trainer(spec, x, y, checkpoint=first.checkpoint())


def test_checkpoint_resume_with_preprocessing_is_byte_identical() -> None:
    x, y = _data()
    x, y = x * 300 + 20, y * 40 - 2
    spec = _spec("minmax", "standardize", validation_split=0.2, epochs=12, optimizer="adam")
    straight = Trainer(spec, x, y)
    history = list(straight.run())

    resumed = _resumed(spec, x, y, stop_after=5)
    rest = list(resumed.run())

    assert rest == history[5:]
    assert resumed.params.flat.tobytes() == straight.params.flat.tobytes()
    assert resumed.model().to_bytes() == straight.model().to_bytes()


def test_checkpoint_with_other_statistics_is_refused() -> None:
    x, y = _data()
    spec = _spec("standardize", "standardize", epochs=3)
    checkpoint = Trainer(spec, x, y).checkpoint()

    # Same spec, same number of rows, other values: the statistics give it away.
    with pytest.raises(SpecError) as error:
        Trainer(spec, x * 2, y, checkpoint=checkpoint)

    assert error.value.field == "checkpoint"
    assert "preprocessing statistics differ" in error.value.message


def test_checkpoint_written_before_preprocessing_resumes_byte_identically() -> None:
    # A checkpoint as the service wrote it before preprocessing existed: its spec has no
    # `preprocessing` key and it holds no statistics. The job's stored spec is read with
    # preprocessing none, and the run continues exactly as an uninterrupted one.
    x, y = _data()
    spec = _spec("none", "none", validation_split=0.2, epochs=10, init="normal")
    straight = Trainer(spec, x, y)
    history = list(straight.run())
    first = Trainer(spec, x, y)
    for _ in range(4):
        first.train_epoch()
    meta, arrays = unpack("checkpoint", first.checkpoint())
    old_spec = {key: value for key, value in meta["spec"].items() if key != "preprocessing"}
    old = pack("checkpoint", {**meta, "spec": old_spec}, arrays)
    assert "preprocessing" not in unpack("checkpoint", old)[0]["spec"]

    resumed = Trainer(spec, x, y, checkpoint=old)

    assert list(resumed.run()) == history[4:]
    assert resumed.params.flat.tobytes() == straight.params.flat.tobytes()
    # A spec that scales would not have made that checkpoint.
    with pytest.raises(SpecError, match="different spec"):
        Trainer(_spec("standardize", "none", validation_split=0.2, epochs=10), x, y, checkpoint=old)


@pytest.mark.parametrize("n_targets", [1, 2])
@pytest.mark.parametrize("targets", ["none", "standardize"])
def test_training_mae_and_r2_are_those_of_the_epochs_outputs_in_raw_units(
    n_targets: int, targets: str
) -> None:
    # Full batch, no shuffle: the first epoch's outputs are the starting weights' outputs.
    x, y = _data()
    y = np.column_stack([y * 30 + 4, -y[:, 0] * 2 + 1])[:, :n_targets]
    spec = RunSpec.from_dict(
        {
            "network": {"layers": [3, 5, n_targets], "hidden_activation": "tanh"},
            "training": {"epochs": 1, "batch_size": None, "shuffle": False},
            "preprocessing": {"inputs": "standardize", "targets": targets},
        }
    )
    trainer = Trainer(spec, x, y)
    start = Model(spec.network, trainer.params.copy(), preprocessing=trainer.preprocessing)

    (record,) = list(trainer.run())

    outputs = start.predict(x)
    assert record.mae == pytest.approx(mean_absolute_error(y, outputs), rel=1e-9)
    assert record.r2 == pytest.approx(r2_score(y, outputs), rel=1e-9)
