"""Real tabular data through the HTTP API with the defaults, against scikit-learn.

Run from the repository root (needs the bench extras: `.venv/bin/pip install -e '.[bench]'`):

    .venv/bin/python bench/sklearn_bench.py [--epochs 200] [--repeats 3]

For each of scikit-learn's bundled datasets (no download: they ship inside the package),
raw features as they come and, for classifiers, the class NAMES as labels:
  iris, wine, breast_cancer (classification: test accuracy) and diabetes (regression:
  test R^2 on raw targets),
one stratified 75/25 split (seed 0), then side by side:
  - ours: a real `backprop serve` (SQLite, one worker) on 127.0.0.1; the training part
    uploaded as JSON rows with `labels` (or `targets`), a job that names only what the
    comparison fixes (layers, hidden relu, adam, learning rate, batch size, epochs, seed)
    and leaves the rest to the defaults (preprocessing: standardize the inputs; init
    auto; output activation and loss from the task), then `POST /v1/models/{name}/predict`
    with the raw test rows. Wall time: from the dataset POST to the predictions received,
    HTTP, queueing and polling included.
  - scikit-learn: `make_pipeline(StandardScaler(), MLPClassifier | MLPRegressor)` with the
    same hidden layer, adam, learning rate, batch size and number of epochs (early
    stopping off: `tol=0`, `n_iter_no_change=epochs`, so both run every epoch), `alpha=0`
    (ours has no L2 by default). Wall time: fit + predict.
Both run `--repeats` times with seeds 0, 1, ...; the table shows the mean score (a test
set of 38 to 143 rows makes one row 0.7 to 2.6 points, so a median over few seeds jumps
by whole rows) and the median wall time.
Targets: ours within 1 point of scikit-learn on every dataset, in no more wall time.
"""

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Run as a script from bench/, as its neighbour is: mypy sees both as `bench.*` modules.
from service_bench import start_service, wait_for, workspace  # type: ignore[import-not-found]
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HIDDEN = 32
BATCH_SIZE = 32
LEARNING_RATE = 0.001


@dataclass(frozen=True)
class Data:
    name: str
    task: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load(name: str, loader: Callable[[], Any], task: str) -> Data:
    bunch = loader()
    x = bunch.data
    # Class names as users have them ("setosa", "malignant"), not 0/1/2.
    y = bunch.target_names[bunch.target] if task == "classification" else bunch.target
    stratify = y if task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=stratify
    )
    return Data(name, task, x_train, x_test, y_train, y_test)


DATASETS = [
    ("iris", load_iris, "classification"),
    ("wine", load_wine, "classification"),
    ("breast_cancer", load_breast_cancer, "classification"),
    ("diabetes", load_diabetes, "regression"),
]


@dataclass
class Result:
    score: float
    seconds: float


def score(data: Data, predicted: np.ndarray) -> float:
    if data.task == "classification":
        return float(accuracy_score(data.y_test, predicted))
    return float(r2_score(data.y_test, predicted))


def ours(client: Any, data: Data, epochs: int, seed: int, run: str = "") -> Result:
    n_features = data.x_train.shape[1]
    classes = sorted(set(data.y_train.tolist())) if data.task == "classification" else []
    # Two classes: one sigmoid output; more: one softmax output per class; regression: one.
    n_outputs = 1 if len(classes) <= 2 else len(classes)
    rows: dict[str, Any] = {"name": data.name, "inputs": data.x_train.tolist()}
    if data.task == "classification":
        rows["labels"] = data.y_train.tolist()
    else:
        rows["targets"] = data.y_train[:, None].tolist()
    model_name = f"{data.name}-{seed}{run}"
    job = {
        "model_name": model_name,
        "network": {"layers": [n_features, HIDDEN, n_outputs], "hidden_activation": "relu"},
        "training": {
            "optimizer": "adam",
            "learning_rate": LEARNING_RATE,
            "batch_size": BATCH_SIZE,
            "epochs": epochs,
            "seed": seed,
        },
        "checkpoint_every": epochs,
    }
    start = time.perf_counter()
    dataset = client.post("/v1/datasets", json=rows).raise_for_status().json()
    submitted = client.post("/v1/jobs", json={"dataset_id": dataset["id"], **job})
    if submitted.status_code != 202:
        raise RuntimeError(f"job refused: {submitted.status_code} {submitted.text}")
    job = wait_for(client, submitted.json()["id"], timeout=600)
    # The version this job registered, by number: "the latest" may be served from the
    # resolver's cache for up to a second after a new version lands.
    question = {"inputs": data.x_test.tolist(), "version": job["model_version"]}
    answer = client.post(f"/v1/models/{model_name}/predict", json=question).raise_for_status()
    seconds = time.perf_counter() - start
    body = answer.json()
    if data.task == "classification":
        predicted = np.asarray(body["labels"])
    else:
        predicted = np.asarray(body["outputs"])[:, 0]
    return Result(score(data, predicted), seconds)


def sklearn(data: Data, epochs: int, seed: int) -> Result:
    options: dict[str, Any] = {
        "hidden_layer_sizes": (HIDDEN,),
        "activation": "relu",
        "solver": "adam",
        "learning_rate_init": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "max_iter": epochs,
        "tol": 0.0,
        "n_iter_no_change": epochs,
        "alpha": 0.0,
        "random_state": seed,
    }
    classifier = data.task == "classification"
    estimator = MLPClassifier(**options) if classifier else MLPRegressor(**options)
    pipeline = make_pipeline(StandardScaler(), estimator)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # "Stochastic Optimizer: Maximum iterations reached": asked for, on purpose.
        warnings.simplefilter("ignore")
        pipeline.fit(data.x_train, data.y_train)
    predicted = pipeline.predict(data.x_test)
    seconds = time.perf_counter() - start
    assert estimator.n_iter_ == epochs, estimator.n_iter_
    return Result(score(data, predicted), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10, help="seeds per dataset")
    args = parser.parse_args()
    datasets = [load(*entry) for entry in DATASETS]
    lines = [
        "| dataset | task | n train / test | metric | ours | scikit-learn | difference "
        "| ours s | scikit-learn s | time ratio | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    failed = False
    with workspace() as (workdir, processes):
        # Workers poll every 10 ms, as a deployment that wants quick jobs would set it.
        _, client = start_service(processes, workdir, "service", poll_interval_seconds="0.01")
        with client:
            # Untimed: the worker's first job pays for imports and first-call setup once.
            ours(client, datasets[0], 1, seed=0, run="-warm-up")
            for data in datasets:
                runs_ours, runs_theirs = [], []
                # Interleaved, so machine noise falls on both alike.
                for seed in range(args.repeats):
                    runs_ours.append(ours(client, data, args.epochs, seed))
                    runs_theirs.append(sklearn(data, args.epochs, seed))
                mine = statistics.mean(r.score for r in runs_ours)
                theirs = statistics.mean(r.score for r in runs_theirs)
                my_time = statistics.median(r.seconds for r in runs_ours)
                their_time = statistics.median(r.seconds for r in runs_theirs)
                metric = "accuracy" if data.task == "classification" else "R^2"
                ok = mine >= theirs - 0.01 and my_time <= their_time
                failed |= not ok
                lines.append(
                    f"| {data.name} | {data.task} | {len(data.x_train)} / {len(data.x_test)} "
                    f"| {metric} | {mine:.3f} | {theirs:.3f} | {100 * (mine - theirs):+.1f} pt "
                    f"| {my_time:.2f} | {their_time:.2f} | {my_time / their_time:.2f}x "
                    f"| {'met' if ok else 'MISSED'} |"
                )
    print(
        f"\n{args.epochs} epochs, hidden {HIDDEN} relu, adam lr {LEARNING_RATE}, "
        f"batch {BATCH_SIZE}; mean score and median time of {args.repeats} seeds\n"
    )
    print("\n".join(lines))
    if failed:
        sys.exit("\nsome targets were missed (see the table)")


if __name__ == "__main__":
    main()
