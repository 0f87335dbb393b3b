"""The compiled engine against the NumPy engine, the reference: the notebook's golden first
step, agreement after 100 steps for every activation, loss, optimizer and update rule,
reproducibility, checkpoints and resume, early stopping, divergence and `auto`'s choice."""

from typing import Any

import numpy as np
import pytest

from service.core import EpochRecord, NetworkSpec, Parameters, RunSpec, SpecError, Trainer
from service.core.activations import HIDDEN
from service.core.compiled import AUTO_MAX_BATCH_PARAMETERS, auto_engine
from service.core.losses import VALID_LOSSES
from service.core.optimizers import OPTIMIZERS
from service.core.serialization import pack, unpack
from tests.core.test_trace_golden import (
    DIRTY_UPDATED_B1,
    DIRTY_UPDATED_W1,
    UPDATED_B2,
    UPDATED_W2,
    _trace,
)
from tests.helpers import NOTEBOOK_NETWORK, notebook_layers

XOR_X = [[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]
XOR_Y = [[1.0], [0.0], [0.0], [1.0]]


def spec(network: dict[str, Any], **training: Any) -> RunSpec:
    return RunSpec.from_dict({"network": network, "training": training})


def train_until(trainer: Trainer, epoch: int) -> list[EpochRecord]:
    """Train in chunks, as the runner does, until `epoch`."""
    records: list[EpochRecord] = []
    while trainer.epoch < epoch:
        records += trainer.train_epochs(epoch - trainer.epoch).records()
    return records


def both_engines(run_spec: RunSpec, inputs: Any, targets: Any, **options: Any) -> list[Trainer]:
    """A NumPy and a compiled trainer of the same run."""
    data = run_spec.to_dict()
    trainers = []
    for engine in ("numpy", "compiled"):
        data["training"]["engine"] = engine
        trainers.append(Trainer(RunSpec.from_dict(data), inputs, targets, **options))
    return trainers


def assert_records_close(
    actual: list[EpochRecord], expected: list[EpochRecord], rtol: float = 1e-10
) -> None:
    assert [r.epoch for r in actual] == [r.epoch for r in expected]
    for mine, reference in zip(actual, expected, strict=True):
        for name, value in reference.to_dict().items():
            other = mine.to_dict()[name]
            if value is None:
                assert other is None, name
            else:
                assert other == pytest.approx(value, rel=rtol, abs=1e-13), (mine.epoch, name)


def assert_parameters_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-10) -> None:
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("update_rule", ["standard", "dirty"])
def test_the_compiled_engine_takes_the_notebooks_golden_first_step(update_rule: str) -> None:
    network = NetworkSpec.from_dict(NOTEBOOK_NETWORK)
    start = Parameters.from_layers(network.layers, notebook_layers())
    run_spec = RunSpec.from_dict(
        {
            "preprocessing": {"inputs": "none"},
            "network": NOTEBOOK_NETWORK,
            "training": {
                "learning_rate": 0.01,
                "epochs": 1,
                "batch_size": 1,
                "update_rule": update_rule,
                "engine": "compiled",
            },
        }
    )
    trainer = Trainer(run_spec, [[1.0, 1.0]], [[1.0]], initial_parameters=start)

    list(trainer.run())

    assert trainer.engine == "compiled"
    traced = _trace(network, start, update_rule)["updated"]["layers"]
    for layer, expected in enumerate(traced):
        np.testing.assert_allclose(trainer.params.weights[layer], expected["weights"], atol=1e-12)
        np.testing.assert_allclose(trainer.params.biases[layer], expected["bias"], atol=1e-12)
    np.testing.assert_allclose(trainer.params.weights[1], UPDATED_W2, atol=1e-7)
    np.testing.assert_allclose(trainer.params.biases[1], UPDATED_B2, atol=1e-7)
    if update_rule == "dirty":
        np.testing.assert_allclose(trainer.params.weights[0], DIRTY_UPDATED_W1, atol=1e-7)
        np.testing.assert_allclose(trainer.params.biases[0], DIRTY_UPDATED_B1, atol=1e-7)


PAIRS = [(output, loss) for output, losses in VALID_LOSSES.items() for loss in sorted(losses)]


@pytest.mark.parametrize("update_rule", ["standard", "dirty"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize(("output", "loss"), PAIRS)
@pytest.mark.parametrize("hidden", sorted(HIDDEN))
def test_the_engines_agree_after_100_steps(
    hidden: str, output: str, loss: str, optimizer: str, update_rule: str
) -> None:
    rng = np.random.default_rng(7)
    inputs = rng.normal(size=(10, 3))
    targets = np.eye(3)[rng.integers(0, 3, 10)]
    # 10 rows in batches of 4: three steps an epoch, the last one short; 34 epochs.
    run_spec = spec(
        {"layers": [3, 5, 4, 3], "hidden_activation": hidden, "output_activation": output},
        loss=loss,
        optimizer=optimizer,
        learning_rate=0.01 if optimizer == "adam" else 0.05,
        lr_schedule="exponential",
        lr_decay=0.9,
        lr_decay_every=10,
        l2=0.01,
        epochs=34,
        batch_size=4,
        update_rule=update_rule,
        seed=3,
    )
    reference, compiled = both_engines(run_spec, inputs, targets)

    expected, actual = list(reference.run()), list(compiled.run())

    assert compiled.engine == "compiled" and reference.engine == "numpy"
    assert_parameters_close(compiled.params.flat, reference.params.flat)
    assert_records_close(actual, expected)
    for name, value in reference.optimizer.state().items():
        assert_parameters_close(compiled.optimizer.state()[name], value)
    assert compiled.rng.bit_generator.state == reference.rng.bit_generator.state


@pytest.mark.parametrize("update_rule", ["standard", "dirty"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_the_engines_agree_after_100_single_sample_steps(
    optimizer: str, update_rule: str, l2: float
) -> None:
    # Batch 1 has a path of its own for plain SGD (each weight stepped as its gradient
    # is computed).
    rng = np.random.default_rng(8)
    inputs = rng.normal(size=(5, 3))
    targets = rng.normal(size=(5, 2))
    run_spec = spec(
        {"layers": [3, 6, 4, 2], "hidden_activation": "tanh"},
        optimizer=optimizer,
        learning_rate=0.01,
        l2=l2,
        epochs=20,
        update_rule=update_rule,
    )
    reference, compiled = both_engines(run_spec, inputs, targets)

    expected, actual = list(reference.run()), list(compiled.run())

    assert_parameters_close(compiled.params.flat, reference.params.flat)
    assert_records_close(actual, expected)


def test_the_engines_agree_on_regression_scores_and_full_batches() -> None:
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(30, 2))
    targets = inputs @ [[2.0], [-1.0]] + 5.0
    run_spec = RunSpec.from_dict(
        {
            "network": {"layers": [2, 8, 1], "hidden_activation": "tanh"},
            "training": {"epochs": 40, "batch_size": None, "learning_rate": 0.1},
            "preprocessing": {"targets": "standardize"},
        }
    )
    reference, compiled = both_engines(run_spec, inputs, targets)

    expected, actual = list(reference.run()), list(compiled.run())

    assert expected[-1].mae is not None and expected[-1].r2 is not None
    assert_records_close(actual, expected)


CLASSIFIER = {"layers": [2, 6, 1], "hidden_activation": "tanh", "output_activation": "sigmoid"}


def moons(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(n, 2))
    return inputs, (inputs[:, :1] * inputs[:, 1:] > 0).astype(float)


def test_the_compiled_engine_reproduces_itself_bit_for_bit() -> None:
    run_spec = spec(
        CLASSIFIER, loss="binary_crossentropy", optimizer="adam", epochs=50, engine="compiled"
    )
    inputs, targets = moons()
    first, second = Trainer(run_spec, inputs, targets), Trainer(run_spec, inputs, targets)

    assert list(first.run()) == list(second.run())
    assert first.params.flat.tobytes() == second.params.flat.tobytes()


def test_chunks_train_the_same_epochs_as_one_epoch_at_a_time() -> None:
    run_spec = spec(CLASSIFIER, loss="binary_crossentropy", epochs=60, engine="compiled")
    inputs, targets = moons()
    chunked, single = Trainer(run_spec, inputs, targets), Trainer(run_spec, inputs, targets)

    records, chunks = [], []
    while not chunked.done:
        history = chunked.train_epochs(60)
        chunks.append(len(history))
        records += history.records()
    by_epoch = [single.train_epoch() for _ in range(60)]

    assert max(chunks) > 1, chunks
    assert records == by_epoch
    assert chunked.params.flat.tobytes() == single.params.flat.tobytes()


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_the_compiled_engine_resumes_bit_exactly_from_its_own_checkpoint(optimizer: str) -> None:
    run_spec = spec(
        CLASSIFIER, loss="binary_crossentropy", optimizer=optimizer, epochs=40, engine="compiled"
    )
    inputs, targets = moons()
    uninterrupted = Trainer(run_spec, inputs, targets)
    expected = list(uninterrupted.run())

    first = Trainer(run_spec, inputs, targets)
    history = train_until(first, 15)
    assert first.epoch == 15
    resumed = Trainer(run_spec, inputs, targets, checkpoint=first.checkpoint())
    history += list(resumed.run())

    assert history == expected
    assert resumed.params.flat.tobytes() == uninterrupted.params.flat.tobytes()
    assert resumed.rng.bit_generator.state == uninterrupted.rng.bit_generator.state
    for name, value in uninterrupted.optimizer.state().items():
        assert resumed.optimizer.state()[name].tobytes() == value.tobytes()


def checkpoint_after(engine: str, epochs: int = 5) -> bytes:
    trainer = Trainer(spec(CLASSIFIER, epochs=20, engine=engine), *moons())
    train_until(trainer, epochs)
    return trainer.checkpoint()


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_a_checkpoint_records_its_engine(engine: str) -> None:
    meta, _ = unpack("checkpoint", checkpoint_after(engine))

    assert meta["engine"] == engine


@pytest.mark.parametrize(
    ("made_by", "resumed_with"), [("numpy", "compiled"), ("compiled", "numpy")]
)
def test_resuming_with_the_other_engine_is_refused(made_by: str, resumed_with: str) -> None:
    checkpoint = checkpoint_after(made_by)

    with pytest.raises(SpecError) as refused:
        Trainer(spec(CLASSIFIER, epochs=20, engine=resumed_with), *moons(), checkpoint=checkpoint)

    assert refused.value.field == "training.engine"
    assert f"made by the {made_by} engine" in str(refused.value)


@pytest.mark.parametrize("made_by", ["numpy", "compiled"])
def test_auto_resumes_with_the_checkpoints_engine(made_by: str) -> None:
    uninterrupted = Trainer(spec(CLASSIFIER, epochs=20, engine=made_by), *moons())
    list(uninterrupted.run())

    resumed = Trainer(spec(CLASSIFIER, epochs=20), *moons(), checkpoint=checkpoint_after(made_by))
    list(resumed.run())

    assert resumed.engine == made_by
    assert resumed.params.flat.tobytes() == uninterrupted.params.flat.tobytes()


def test_a_checkpoint_from_before_engines_is_the_numpy_engines() -> None:
    meta, arrays = unpack("checkpoint", checkpoint_after("numpy"))
    del meta["engine"]
    del meta["spec"]["training"]["engine"]
    old = pack("checkpoint", meta, arrays)

    resumed = Trainer(spec(CLASSIFIER, epochs=20), *moons(), checkpoint=old)

    assert resumed.engine == "numpy"
    assert resumed.epoch == 5
    with pytest.raises(SpecError, match="made by the numpy engine"):
        Trainer(spec(CLASSIFIER, epochs=20, engine="compiled"), *moons(), checkpoint=old)


@pytest.mark.parametrize("validation_split", [0.0, 0.25])
def test_early_stopping_agrees_with_the_numpy_engine(validation_split: float) -> None:
    run_spec = spec(
        CLASSIFIER,
        loss="binary_crossentropy",
        learning_rate=0.5,
        epochs=400,
        batch_size=8,
        validation_split=validation_split,
        early_stopping_patience=5,
        early_stopping_min_delta=1e-3,
    )
    reference, compiled = both_engines(run_spec, *moons(80))

    expected, actual = list(reference.run()), list(compiled.run())

    assert reference.stop_reason is not None and reference.stop_reason.startswith("early")
    assert compiled.stop_reason == reference.stop_reason
    assert compiled.weights_epoch == reference.weights_epoch < 400
    assert_records_close(actual, expected)
    assert_parameters_close(compiled.params.flat, reference.params.flat)


@pytest.mark.parametrize("patience", [None, 50])
def test_divergence_agrees_with_the_numpy_engine(patience: int | None) -> None:
    run_spec = spec(
        {"layers": [2, 8, 1]},
        learning_rate=3.0,
        epochs=200,
        early_stopping_patience=patience,
    )
    inputs = np.random.default_rng(0).normal(size=(20, 2)) * 10
    targets = inputs[:, :1] ** 2
    reference, compiled = both_engines(run_spec, inputs, targets)

    expected, actual = list(reference.run()), list(compiled.run())

    assert reference.diverged and compiled.diverged
    assert compiled.stop_reason == reference.stop_reason
    assert compiled.epoch == reference.epoch
    assert compiled.weights_epoch == reference.weights_epoch
    assert_records_close(actual, expected, rtol=1e-8)
    assert_parameters_close(compiled.params.flat, reference.params.flat, rtol=1e-8)


def test_auto_picks_compiled_for_small_networks_and_batches_only() -> None:
    n = 10_000
    moons_net = {"layers": [2, 64, 64, 1]}
    mnist_net = {"layers": [784, 256, 128, 10]}

    assert auto_engine(spec(moons_net, batch_size=1), n) == "compiled"
    assert auto_engine(spec(moons_net, batch_size=8), n) == "compiled"
    assert auto_engine(spec(moons_net, batch_size=32), n) == "numpy"
    assert auto_engine(spec(moons_net, batch_size=None), n) == "numpy"
    assert auto_engine(spec(moons_net, batch_size=None), 8) == "compiled"
    assert auto_engine(spec(mnist_net, batch_size=1), n) == "compiled"
    assert auto_engine(spec(mnist_net, batch_size=128), n) == "numpy"
    assert auto_engine(spec(moons_net, batch_size=1, dtype="float32"), n) == "numpy"
    assert 8 * 4417 <= AUTO_MAX_BATCH_PARAMETERS < 32 * 4417
    assert Trainer(spec(CLASSIFIER), *moons()).engine == "compiled"
    assert Trainer(spec(CLASSIFIER, batch_size=None), *moons(20_000)).engine == "numpy"


def test_the_engine_field_refuses_unknown_engines_and_compiled_float32() -> None:
    with pytest.raises(SpecError) as unknown:
        spec(CLASSIFIER, engine="fortran")
    with pytest.raises(SpecError) as single:
        spec(CLASSIFIER, engine="compiled", dtype="float32")

    assert unknown.value.field == "training.engine"
    assert "auto, compiled, numpy" in str(unknown.value)
    assert single.value.field == "training.engine"
    assert "float64 only" in str(single.value)
