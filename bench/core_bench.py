"""Benchmark the NumPy backprop core against the notebook's loop, scikit-learn and PyTorch.

Run from the repository root, after `.venv/bin/pip install -e '.[bench]'`:

    .venv/bin/python bench/core_bench.py [--quick] [--only a|b|c]

Cases (see bench/README.md for what each measures and the latest results):
  (a) XOR 2-2-1, per-sample SGD: ours (NumPy and compiled engine, standard and dirty
      rule, and `auto`) vs the notebook's loop vs scikit-learn MLPRegressor vs PyTorch;
      microseconds per sample step, the per-epoch history included.
  (a2) two moons, 10,000 x 2, 2-64-64-1 at batch 1 and 8: ours (NumPy, compiled, auto)
      vs scikit-learn vs PyTorch (1 thread); microseconds per sample step.
  (b) two moons, 10,000 x 2, 2-64-64-1, batch 32, 20 epochs: samples/s, ours (NumPy
      engine; compiled and auto in float64) vs scikit-learn MLPClassifier vs PyTorch
      (default threads and 1 thread), f64 and f32.
  (c) 60,000 x 784 random data, 784-256-128-10 softmax, batch 128: samples/s per epoch,
      ours vs scikit-learn vs PyTorch, plus NumPy's matmul peak and our fraction of it.

Every implementation gets the same data. Each is warmed up once, then the implementations
of a case are timed round-robin (so machine noise spreads evenly) and medians are reported.
"""

import argparse
import os
import platform
import random
import statistics
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from time import perf_counter, process_time
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_info, threadpool_limits

from service.core import RunSpec, Trainer
from service.core.training import History

# One timed repeat: does its own (untimed) setup and returns the seconds of the timed part.
Run = Callable[[], float]


# --------------------------------------------------------------------------- timing helpers


def measure(runs: dict[str, Run], repeats: int) -> dict[str, list[float]]:
    """Warm every run up once, then time them round-robin `repeats` times."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    return times


@dataclass
class Row:
    label: str
    values: list[float]  # in `unit`, one per repeat
    unit: str

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass
class Check:
    what: str
    ratio: float
    target: float | None  # None: reported, no target
    suffix: str = "x"

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "PASS" if self.ratio >= self.target else "MISS"


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def print_section(section: Section) -> None:
    print(f"\n## {section.title}\n")
    width = max(len(r.label) for r in section.rows)
    print(f"| {'implementation':<{width}} | median | min | max | unit |")
    print(f"|{'-' * (width + 2)}|---:|---:|---:|---|")
    for r in section.rows:
        print(
            f"| {r.label:<{width}} | {fmt(r.median)} | {fmt(min(r.values))} "
            f"| {fmt(max(r.values))} | {r.unit} |"
        )
    if section.checks:
        print()
        width = max(len(c.what) for c in section.checks)
        print(f"| {'comparison':<{width}} | value | target | verdict |")
        print(f"|{'-' * (width + 2)}|---:|---:|---|")
        for c in section.checks:
            target = "-" if c.target is None else f">= {c.target:g}{c.suffix}"
            print(f"| {c.what:<{width}} | {c.ratio:.2f}{c.suffix} | {target} | {c.verdict} |")
    for note in section.notes:
        print(f"- {note}")
    sys.stdout.flush()


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux /proc/stat), None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def per_step_us(times: list[float], steps: int) -> list[float]:
    return [t / steps * 1e6 for t in times]


def per_second(times: list[float], samples: int) -> list[float]:
    return [samples / t for t in times]


def ignore_convergence_warnings() -> None:
    warnings.filterwarnings("ignore", category=ConvergenceWarning)


# --------------------------------------------------------------------------- machine


def describe_machine() -> None:
    print("# core_bench")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP", "MKL"))}
    env["GLIBC_TUNABLES"] = os.environ.get("GLIBC_TUNABLES", "(unset)")
    print("environment:", ", ".join(f"{k}={v}" for k, v in sorted(env.items())))
    for pool in threadpool_info():
        if pool.get("internal_api") == "openmp":
            continue
        print(
            f"BLAS: {pool.get('internal_api')} {pool.get('version')} "
            f"kernel={pool.get('architecture')} threads={pool.get('num_threads')} "
            f"({os.path.basename(str(pool.get('filepath')))})"
        )
    blas = "mkl" if "BLAS_INFO=mkl" in torch.__config__.show() else "see torch.__config__"
    print(f"torch: BLAS {blas}, intra-op threads {torch.get_num_threads()}")
    sys.stdout.flush()


# --------------------------------------------------------------------------- case (a)

XOR_X = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
XOR_Y = np.array([1.0, 0.0, 0.0, 1.0]).reshape(-1, 1)


def train_all(trainer: Trainer) -> list[History]:
    """The whole run as the worker trains it: chunks of epochs, each with its history
    (columns from the compiled engine, records from the NumPy engine)."""
    histories = []
    while not trainer.done:
        histories.append(trainer.train_epochs(trainer.spec.training.epochs))
    return histories


def ours_xor(epochs: int, update_rule: str, engine: str) -> Run:
    spec = RunSpec.from_dict(
        {
            "network": {"layers": [2, 2, 1], "hidden_activation": "relu"},
            "training": {
                "loss": "mse",
                "optimizer": "sgd",
                "learning_rate": 0.01,
                "epochs": epochs,
                "batch_size": 1,
                "shuffle": True,
                "update_rule": update_rule,
                "seed": 0,
                "engine": engine,
            },
        }
    )

    def run() -> float:
        trainer = Trainer(spec, XOR_X, XOR_Y)
        start = perf_counter()
        histories = train_all(trainer)
        elapsed = perf_counter() - start
        assert trainer.epoch == epochs == sum(map(len, histories)), trainer.stop_reason
        return elapsed

    return run


def notebook_xor(epochs: int) -> Run:
    """The notebook's complete program (seed file 000), verbatim except for one bug fix:
    `back_prop` read the global `delta_layer2` instead of its `prev_delta` argument."""

    def forward_prop(x: Any, bias: Any, W: Any, is_lastlayer: bool) -> tuple[Any, Any]:
        a = np.dot(W, x)
        a = a.reshape(W.shape[0], 1)
        a = a + bias
        if is_lastlayer:
            h = a
        else:
            """using a relu activation function"""
            h = np.maximum(np.zeros((W.shape[0], 1)), a)
        return a, h

    def error(output: Any, target: Any) -> Any:
        marginalize = len(target)
        sq_loss = np.sum(np.power((target - output), 2))
        rmse_loss = np.sqrt(sq_loss / marginalize)
        return rmse_loss

    def back_prop(
        prev_delta: Any,
        is_last_layer: bool,
        forward_weights: Any,
        learn_rate: float,
        weights: Any,
        forward_activation: Any,
        backward_activation: Any,
    ) -> tuple[Any, Any]:
        """derivative of activation"""
        der_activation = forward_activation.copy()
        der_activation[der_activation >= 0] = 1
        der_activation[der_activation < 0] = 0
        """error propogated through activation in front of the weights"""
        activation_prop = prev_delta * der_activation  # the fix: was `delta_layer2 * ...`
        if is_last_layer:
            delta = prev_delta
            grad_weight = delta * backward_activation.T
        else:
            delta = forward_weights.T * activation_prop
            grad_weight = np.dot(delta, backward_activation.T)
        weights = weights - learn_rate * grad_weight
        return delta, weights

    def run() -> float:
        random.seed(0)
        np.random.seed(seed=0)
        learn_rate = 0.01
        x, y = XOR_X, XOR_Y
        bias_layer1 = np.random.randn(2, 1)
        w1 = np.random.randn(2, 2)
        bias_layer2 = np.random.randn(1, 1)
        w2 = np.random.randn(1, 2)
        n = len(x)
        loss_list = []
        x_order = np.arange(n)
        start = perf_counter()
        for _epoch in range(epochs):
            prediction_list = []
            random.shuffle(x_order)  # type: ignore[arg-type]  # the notebook shuffles an ndarray
            for i in x_order:
                _a1, h1 = forward_prop(x[i], bias_layer1, w1, False)
                _a2, h2 = forward_prop(h1, bias_layer2, w2, True)
                output = h2
                prediction_list.append(output)
                der_err = output - y[i]
                delta_layer2, w2 = back_prop(der_err, True, None, learn_rate, w2, h2, h1)
                _delta_layer1, w1 = back_prop(
                    delta_layer2, False, w2, learn_rate, w1, h1, x[i].reshape(-1, 1)
                )
            prediction = np.array(prediction_list).reshape(-1, 1)
            loss = error(y, prediction)
            loss_list.append(loss)
        elapsed = perf_counter() - start
        assert np.isfinite(loss_list[-1])
        return elapsed

    return run


def sklearn_sgd(estimator: Any, hidden: tuple[int, ...], batch: int, **options: Any) -> Any:
    """A scikit-learn MLP with the plain SGD every case compares: constant lr 0.01, no
    momentum, no L2, relu, shuffled each epoch."""
    return estimator(
        hidden_layer_sizes=hidden,
        activation="relu",
        solver="sgd",
        batch_size=batch,
        learning_rate_init=0.01,
        momentum=0.0,
        alpha=0.0,
        shuffle=True,
        random_state=0,
        **options,
    )


def sklearn_fit(
    estimator: Any, x: np.ndarray, y: np.ndarray, hidden: tuple[int, ...], batch: int, epochs: int
) -> Run:
    """A whole fit of exactly `epochs` epochs (no early convergence stop)."""

    def run() -> float:
        model = sklearn_sgd(
            estimator, hidden, batch, max_iter=epochs, tol=0.0, n_iter_no_change=np.inf
        )
        with warnings.catch_warnings():
            ignore_convergence_warnings()
            start = perf_counter()
            model.fit(x, y)
            elapsed = perf_counter() - start
        assert model.n_iter_ == epochs
        return elapsed

    return run


def torch_per_sample(layers: list[int], x: np.ndarray, t: np.ndarray, epochs: int) -> Run:
    """PyTorch, 1 thread, plain SGD one sample at a time, with each epoch's mean loss."""
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)

    def run() -> float:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            torch.manual_seed(0)
            model = torch_mlp(layers, tx.dtype)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            loss_fn = torch.nn.MSELoss()
            history = []
            start = perf_counter()
            for _ in range(epochs):
                total = 0.0
                for i in torch.randperm(len(tx)).tolist():
                    optimizer.zero_grad()
                    loss = loss_fn(model(tx[i : i + 1]), tt[i : i + 1])
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
                history.append(total / len(tx))
            return perf_counter() - start
        finally:
            torch.set_num_threads(previous)

    return run


def auto_check(
    times: dict[str, list[float]], numpy: str, compiled: str, auto: str, what: str
) -> Check:
    """`auto` against the faster of the two engines: >= 0.9 is within 10%. By the fastest
    repeat of each: `auto` runs the very code of one engine, so what differs is its
    choice, while the medians of millisecond runs on a shared machine differ by noise."""
    best = {name: min(times[name]) for name in (numpy, compiled, auto)}
    return Check(
        f"faster engine / auto (fastest repeats), {what}",
        min(best[numpy], best[compiled]) / best[auto],
        0.9,
    )


def case_a(quick: bool, repeats: int | None) -> Section:
    epochs = 200 if quick else 2000
    repeats = repeats or (3 if quick else 5)
    steps = epochs * len(XOR_X)
    notebook = "notebook loop (dirty rule, no bias updates)"
    runs = {
        "ours numpy engine, standard rule": ours_xor(epochs, "standard", "numpy"),
        "ours numpy engine, dirty rule": ours_xor(epochs, "dirty", "numpy"),
        "ours compiled engine, standard rule": ours_xor(epochs, "standard", "compiled"),
        "ours compiled engine, dirty rule": ours_xor(epochs, "dirty", "compiled"),
        "ours auto, standard rule": ours_xor(epochs, "standard", "auto"),
        notebook: notebook_xor(epochs),
        "scikit-learn MLPRegressor sgd": sklearn_fit(
            MLPRegressor, XOR_X, XOR_Y.ravel(), (2,), 1, epochs
        ),
        "PyTorch, 1 thread, per sample": torch_per_sample([2, 2, 1], XOR_X, XOR_Y, epochs),
    }
    times = measure(runs, repeats)
    section = Section(
        f"(a) XOR 2-2-1 relu/identity, mse, sgd lr 0.01, batch 1, shuffled, {epochs} epochs "
        f"= {steps} steps; median of {repeats}"
    )
    section.rows = [Row(name, per_step_us(t, steps), "us/step") for name, t in times.items()]
    med = {name: statistics.median(t) for name, t in times.items()}
    nb, sk = med[notebook], med["scikit-learn MLPRegressor sgd"]
    std, dirty = med["ours numpy engine, standard rule"], med["ours numpy engine, dirty rule"]
    compiled_std = med["ours compiled engine, standard rule"]
    compiled_dirty = med["ours compiled engine, dirty rule"]
    section.checks = [
        Check("notebook / ours compiled (dirty rule)", nb / compiled_dirty, 50.0),
        Check("notebook / ours compiled (standard rule)", nb / compiled_std, 50.0),
        Check("notebook / ours compiled (dirty rule), moonshot", nb / compiled_dirty, 100.0),
        Check("notebook / ours numpy (dirty rule)", nb / dirty, 1.0),
        Check("notebook / ours numpy (standard rule)", nb / std, 1.0),
        Check("scikit-learn / ours compiled (standard rule)", sk / compiled_std, None),
        Check(
            "PyTorch / ours compiled (standard rule)",
            med["PyTorch, 1 thread, per sample"] / compiled_std,
            None,
        ),
        auto_check(
            times,
            "ours numpy engine, standard rule",
            "ours compiled engine, standard rule",
            "ours auto, standard rule",
            "XOR",
        ),
    ]
    section.notes.append(
        "Times include each implementation's per-epoch work (shuffle, epoch loss; ours: the "
        "whole per-epoch history, as arrays from the compiled engine); ratio > 1 means ours "
        "is faster. Ours trains as the worker does, in chunks (`Trainer.train_epochs`)."
    )
    return section


# --------------------------------------------------------------------------- case (a2)


def moons_small_batch_spec(batch: int, epochs: int, engine: str) -> dict[str, Any]:
    spec = moons_spec(epochs, "float64")
    spec["training"].update(batch_size=batch, engine=engine)
    return spec


def case_a2(quick: bool, repeats: int | None) -> Section:
    n, default_repeats = (2000, 3) if quick else (10_000, 3)
    repeats = repeats or default_repeats
    x, labels = make_moons(n_samples=n, noise=0.2, random_state=0)
    y = labels.astype(np.float64).reshape(-1, 1)
    section = Section(
        f"(a2) two moons {n} x 2, 2-64-64-1 relu, sigmoid + binary cross-entropy, sgd lr 0.01, "
        f"batch 1 and 8, float64; median of {repeats}"
    )
    bce = torch.nn.BCEWithLogitsLoss()
    for batch in (1, 8):
        epochs = 1 if batch == 1 else 2
        steps = n * epochs
        runs = {
            f"ours numpy engine, batch {batch}": ours_train(
                moons_small_batch_spec(batch, epochs, "numpy"), x, y
            ),
            f"ours compiled engine, batch {batch}": ours_train(
                moons_small_batch_spec(batch, epochs, "compiled"), x, y
            ),
            f"ours auto, batch {batch}": ours_train(
                moons_small_batch_spec(batch, epochs, "auto"), x, y
            ),
            f"scikit-learn, batch {batch}": sklearn_fit(
                MLPClassifier, x, labels, (64, 64), batch, epochs
            ),
            f"PyTorch, 1 thread, batch {batch}": torch_train(
                [2, 64, 64, 1], x, y, bce, batch, epochs, 1
            ),
        }
        times = measure(runs, repeats)
        section.rows += [Row(k, per_step_us(t, steps), "us/sample") for k, t in times.items()]
        med = {k: statistics.median(t) for k, t in times.items()}
        numpy, compiled = (
            f"ours numpy engine, batch {batch}",
            f"ours compiled engine, batch {batch}",
        )
        section.checks += [
            Check(
                f"numpy engine / compiled engine, batch {batch}",
                med[numpy] / med[compiled],
                4.0 if batch == 1 else None,
            ),
            Check(
                f"fastest PyTorch / ours compiled, batch {batch}",
                med[f"PyTorch, 1 thread, batch {batch}"] / med[compiled],
                None,
            ),
            Check(
                f"scikit-learn / ours compiled, batch {batch}",
                med[f"scikit-learn, batch {batch}"] / med[compiled],
                None,
            ),
            auto_check(times, numpy, compiled, f"ours auto, batch {batch}", f"batch {batch}"),
        ]
    section.notes.append(
        "Microseconds per sample (one sample step at batch 1); a whole run each, the "
        "per-epoch history included; ratios > 1: the first named is slower."
    )
    return section


# --------------------------------------------------------------------------- case (b)


def ours_train(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Run:
    """A whole run of `spec` (Trainer construction untimed)."""
    run_spec = RunSpec.from_dict(spec)

    def run() -> float:
        trainer = Trainer(run_spec, x, y)
        start = perf_counter()
        train_all(trainer)
        elapsed = perf_counter() - start
        assert trainer.epoch == run_spec.training.epochs, trainer.stop_reason
        return elapsed

    return run


def moons_spec(epochs: int, dtype: str, engine: str = "numpy") -> dict[str, Any]:
    return {
        "network": {
            "layers": [2, 64, 64, 1],
            "hidden_activation": "relu",
            "output_activation": "sigmoid",
            "init": "xavier_uniform",
        },
        "training": {
            "loss": "binary_crossentropy",
            "optimizer": "sgd",
            "learning_rate": 0.01,
            "epochs": epochs,
            "batch_size": 32,
            "shuffle": True,
            "seed": 0,
            "dtype": dtype,
            "engine": engine,
        },
    }


def torch_mlp(layers: list[int], dtype: Any) -> Any:
    modules: list[Any] = []
    for i, (n_in, n_out) in enumerate(pairwise(layers)):
        modules.append(torch.nn.Linear(n_in, n_out, dtype=dtype))
        if i < len(layers) - 2:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules)


def torch_epoch(model: Any, optimizer: Any, loss_fn: Any, x: Any, t: Any, batch: int) -> None:
    """One epoch: shuffle the whole tensor, then plain mini-batch SGD over it."""
    order = torch.randperm(len(x))
    xs, ts = x[order], t[order]
    for start in range(0, len(xs), batch):
        optimizer.zero_grad()
        loss = loss_fn(model(xs[start : start + batch]), ts[start : start + batch])
        loss.backward()
        optimizer.step()


def torch_train(
    layers: list[int],
    x: np.ndarray,
    t: np.ndarray,
    loss_fn: Any,
    batch: int,
    epochs: int,
    threads: int,
) -> Run:
    """A whole PyTorch run (model construction untimed) with `threads` intra-op threads."""
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)

    def run() -> float:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(0)
            model = torch_mlp(layers, tx.dtype)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
            start = perf_counter()
            for _ in range(epochs):
                torch_epoch(model, optimizer, loss_fn, tx, tt, batch)
            return perf_counter() - start
        finally:
            torch.set_num_threads(previous)

    return run


def case_b(quick: bool, repeats: int | None) -> Section:
    n, epochs, default_repeats = (2000, 3, 3) if quick else (10_000, 20, 5)
    repeats = repeats or default_repeats
    x64, labels = make_moons(n_samples=n, noise=0.2, random_state=0)
    y64 = labels.astype(np.float64).reshape(-1, 1)
    samples = n * epochs
    threads = torch.get_num_threads()
    section = Section(
        f"(b) two moons {n} x 2, 2-64-64-1 relu, sigmoid + binary cross-entropy, sgd lr 0.01, "
        f"batch 32, {epochs} epochs; median of {repeats}"
    )
    for dtype in ("float64", "float32"):
        x, y = x64.astype(dtype), y64.astype(dtype)
        bce = torch.nn.BCEWithLogitsLoss()
        runs = {
            f"ours {dtype}": ours_train(moons_spec(epochs, dtype), x, y),
            f"scikit-learn {dtype}": sklearn_fit(MLPClassifier, x, labels, (64, 64), 32, epochs),
            # The compiled engine trains float64 only.
            **(
                {
                    "ours compiled engine float64": ours_train(
                        moons_spec(epochs, dtype, "compiled"), x, y
                    ),
                    "ours auto float64": ours_train(moons_spec(epochs, dtype, "auto"), x, y),
                }
                if dtype == "float64"
                else {}
            ),
            f"PyTorch {dtype}, {threads} threads": torch_train(
                [2, 64, 64, 1], x, y, bce, 32, epochs, threads
            ),
            f"PyTorch {dtype}, 1 thread": torch_train([2, 64, 64, 1], x, y, bce, 32, epochs, 1),
        }
        times = measure(runs, repeats)
        section.rows += [Row(k, per_second(t, samples), "samples/s") for k, t in times.items()]
        med = {k: statistics.median(t) for k, t in times.items()}
        ours = med[f"ours {dtype}"]
        best_torch = min(
            med[f"PyTorch {dtype}, {threads} threads"], med[f"PyTorch {dtype}, 1 thread"]
        )
        section.checks += [
            Check(f"ours / scikit-learn, {dtype}", med[f"scikit-learn {dtype}"] / ours, 3.0),
            Check(f"ours / fastest PyTorch, {dtype}", best_torch / ours, 5.0),
        ]
        if dtype == "float64":
            compiled = "ours compiled engine float64"
            section.checks += [
                Check("numpy engine / compiled engine, float64", ours / med[compiled], None),
                auto_check(times, "ours float64", compiled, "ours auto float64", "batch 32"),
            ]
    section.notes.append(
        "PyTorch uses BCEWithLogitsLoss (sigmoid fused into the loss); scikit-learn "
        "MLPClassifier's logistic output + log loss; ours sigmoid + binary_crossentropy "
        "(backward uses output - target). Ratios are speed-ups of ours (> 1: ours faster). "
        "'ours' is the NumPy engine; the compiled engine and `auto` are float64 rows."
    )
    return section


# --------------------------------------------------------------------------- case (c)


def matmul_gflops(n: int, dtype: str, repeats: int, threads: int | None = None) -> list[float]:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    with threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=c)
        times = []
        for _ in range(repeats):
            start = perf_counter()
            np.matmul(a, b, out=c)
            times.append(perf_counter() - start)
    return [2 * n**3 / t / 1e9 for t in times]


MNIST_LAYERS = [784, 256, 128, 10]


def flops_per_sample(layers: list[int]) -> int:
    """Matmul FLOPs per sample of one SGD step, counting only what our core computes:
    forward W x, weight gradient delta h^T for every layer, input gradient W^T delta for
    every layer but the first: 2 * (2 * sum(n_in * n_out) + sum over layers 2.. of n_in * n_out).
    """
    products = [n_in * n_out for n_in, n_out in pairwise(layers)]
    return 2 * (2 * sum(products) + sum(products[1:]))


def ours_epochs(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> Run:
    """One epoch per call of a single long run (the first call is the warm-up epoch)."""
    trainer = Trainer(RunSpec.from_dict(spec), x, y)

    def run() -> float:
        start = perf_counter()
        record = trainer.train_epoch()
        elapsed = perf_counter() - start
        assert record is not None, trainer.stop_reason
        return elapsed

    return run


def sklearn_epochs(x: np.ndarray, labels: np.ndarray, hidden: tuple[int, ...], batch: int) -> Run:
    """One epoch per call: MLPClassifier.partial_fit with sgd is one shuffled pass."""
    model = sklearn_sgd(MLPClassifier, hidden, batch)
    classes = np.unique(labels)

    def run() -> float:
        start = perf_counter()
        model.partial_fit(x, labels, classes=classes)
        return perf_counter() - start

    return run


def torch_epochs(layers: list[int], x: np.ndarray, labels: np.ndarray, batch: int) -> Run:
    """One epoch per call of one model, default intra-op threads."""
    tx, tl = torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))
    torch.manual_seed(0)
    model = torch_mlp(layers, tx.dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run() -> float:
        start = perf_counter()
        torch_epoch(model, optimizer, loss_fn, tx, tl, batch)
        return perf_counter() - start

    return run


def matmuls_only(layers: list[int], n: int, batch: int, dtype: str) -> Run:
    """Just our core's matmuls for one epoch (same shapes, orientation and `out=` buffers),
    no elementwise work: the ceiling BLAS allows at these shapes."""
    rng = np.random.default_rng(0)
    pairs = list(pairwise(layers))
    # Scaled so activations stay O(1): BLAS timings on overflowed (inf/NaN) data mislead.
    weights = [
        (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype) for n_in, n_out in pairs
    ]
    grads = [np.empty_like(w) for w in weights]
    hs = [rng.standard_normal((batch, width)).astype(dtype) for width in layers]
    deltas = [np.empty((batch, width), dtype) for width in layers]

    def run() -> float:
        start = perf_counter()
        for _ in range(n // batch):
            for i, w in enumerate(weights):
                np.matmul(hs[i], w.T, out=hs[i + 1])
            for i in range(len(weights) - 1, -1, -1):
                np.matmul(hs[i + 1].T, hs[i], out=grads[i])
                if i:
                    np.matmul(hs[i + 1], weights[i], out=deltas[i])
        return perf_counter() - start

    return run


def case_c(quick: bool, repeats: int | None) -> Section:
    n, peak_n = (6000, 1024) if quick else (60_000, 2048)
    repeats = repeats or 3
    batch = 128
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((n, 784))
    labels = rng.integers(0, 10, n)
    onehot = np.eye(10)[labels]
    flops = flops_per_sample(MNIST_LAYERS)
    section = Section(
        f"(c) random {n} x 784, 784-256-128-10 relu, softmax + categorical cross-entropy, "
        f"sgd lr 0.01, batch {batch}; samples/s per epoch, median of {repeats} epochs after "
        "one warm-up epoch"
    )
    peaks: dict[str, float] = {}
    for dtype in ("float32", "float64"):
        for threads in (None, 1):
            gflops = matmul_gflops(peak_n, dtype, 5, threads)
            label = f"NumPy {peak_n}x{peak_n} matmul peak, {dtype}" + (
                ", 1 thread" if threads == 1 else ""
            )
            section.rows.append(Row(label, gflops, "GFLOP/s"))
            if threads is None:
                peaks[dtype] = statistics.median(gflops)
    for dtype in ("float32", "float64"):
        x = x64.astype(dtype)
        ours_spec = {
            "network": {
                "layers": MNIST_LAYERS,
                "hidden_activation": "relu",
                "output_activation": "softmax",
                "init": "he_normal",
            },
            "training": {
                "loss": "categorical_crossentropy",
                "optimizer": "sgd",
                "learning_rate": 0.01,
                "epochs": repeats + 1,
                "batch_size": batch,
                "shuffle": True,
                "seed": 0,
                "dtype": dtype,
            },
        }
        runs = {
            f"ours {dtype}": ours_epochs(ours_spec, x64, onehot),
            f"scikit-learn {dtype}": sklearn_epochs(x, labels, (256, 128), batch),
            f"PyTorch {dtype}, {torch.get_num_threads()} threads": torch_epochs(
                MNIST_LAYERS, x, labels, batch
            ),
            f"matmuls only (our shapes), {dtype}": matmuls_only(MNIST_LAYERS, n, batch, dtype),
        }
        times = measure(runs, repeats)
        section.rows += [Row(k, per_second(t, n), "samples/s") for k, t in times.items()]
        med = {k: statistics.median(t) for k, t in times.items()}
        ours = med[f"ours {dtype}"]
        target = dtype == "float32"
        gflops_ours = flops * n / ours / 1e9
        gflops_mm = flops * n / med[f"matmuls only (our shapes), {dtype}"] / 1e9
        section.rows.append(Row(f"ours {dtype}, matmul GFLOP/s", [gflops_ours], "GFLOP/s"))
        torch_key = next(k for k in med if k.startswith(f"PyTorch {dtype}"))
        section.checks += [
            Check(
                f"ours / NumPy peak, {dtype}",
                100 * gflops_ours / peaks[dtype],
                60 if target else None,
                "%",
            ),
            Check(f"matmuls-only / NumPy peak, {dtype}", 100 * gflops_mm / peaks[dtype], None, "%"),
            Check(
                f"ours / scikit-learn, {dtype}",
                med[f"scikit-learn {dtype}"] / ours,
                1.2 if target else None,
            ),
            Check(f"ours / PyTorch, {dtype}", med[torch_key] / ours, 1.0 if target else None),
        ]
        del runs, times
    section.notes += [
        f"Matmul FLOPs per sample = 2 * (2 * sum(n_in*n_out) + sum over layers 2.. of n_in*n_out)"
        f" = {flops:,} ({flops * n / 1e9:.1f} GFLOP per epoch): forward, weight gradient, and "
        "input gradient except the first layer's, which our core skips.",
        "Peak: median of 5 NumPy matmuls after one warm-up; GFLOP/s = 2 n^3 / time.",
        "'matmuls only' replays our core's matmuls for one epoch with no elementwise work.",
        "Targets apply to float32; float64 is reported for information.",
    ]
    return section


# --------------------------------------------------------------------------- main


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke check")
    parser.add_argument(
        "--only",
        choices=("a", "a2", "b", "c"),
        action="append",
        help="run only this case (repeatable)",
    )
    parser.add_argument(
        "--repeats", type=int, help="timed repeats per implementation (default: 5, 5, 3)"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    cases: dict[str, Callable[[bool, int | None], Section]] = {
        "a": case_a,
        "a2": case_a2,
        "b": case_b,
        "c": case_c,
    }
    describe_machine()
    for key in args.only or cases:
        start, busy, own = perf_counter(), machine_busy_seconds(), process_time()
        section = cases[key](args.quick, args.repeats)
        elapsed = perf_counter() - start
        note = f"case ({key}) took {elapsed:.0f} s"
        busy_after = machine_busy_seconds()
        if busy is not None and busy_after is not None:
            others = (busy_after - busy) - (process_time() - own)
            share = max(others, 0.0) / (elapsed * (os.cpu_count() or 1))
            note += (
                f"; other processes used {100 * share:.0f}% of the machine's CPU meanwhile "
                "(above a few % the numbers are disturbed)"
            )
        section.notes.append(note)
        print_section(section)


if __name__ == "__main__":
    main()
