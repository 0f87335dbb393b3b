"""`backprop train --label-column` on a CSV of class names and `backprop predict` answering
with those names: the local path takes the same files and specs as the API."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

# No output activation or loss: they default from the task, as a job's do.
SPEC = {
    "network": {"layers": [2, 8, 3], "hidden_activation": "tanh"},
    "training": {"optimizer": "adam", "learning_rate": 0.05, "epochs": 150, "batch_size": 8},
}
CENTRES = {"cat": (0.0, 0.0), "dog": (100.0, 0.0), "fox": (0.0, 100.0)}


def backprop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=120
    )


def write_pets(path: Path, rows_per_class: int = 20) -> None:
    """Three well-separated clusters in raw units (0 to 100), class names last."""
    rng = np.random.default_rng(0)
    lines = ["weight,height,kind"]
    for kind, (x, y) in CENTRES.items():
        for dx, dy in rng.normal(0, 5, (rows_per_class, 2)):
            lines.append(f"{x + dx:.3f},{y + dy:.3f},{kind}")
    path.write_text("\n".join(lines) + "\n")


def test_a_model_trained_on_class_names_predicts_class_names(tmp_path: Path) -> None:
    spec, data, model = tmp_path / "spec.json", tmp_path / "pets.csv", tmp_path / "pets.npz"
    spec.write_text(json.dumps(SPEC))
    write_pets(data)
    inputs = tmp_path / "new.csv"
    # A header row with the feature names is accepted in the rows to predict.
    inputs.write_text("weight,height\n1,2\n98,3\n2,97\n99,-1\n")

    trained = backprop("train", str(spec), "--data", str(data), "--label-column", "kind",
                       "--out", str(model), "--json")  # fmt: skip
    predicted = backprop("predict", str(model), "--data", str(inputs))

    assert trained.returncode == 0, trained.stderr
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.splitlines() == ["cat", "dog", "fox", "dog"]


def test_the_label_column_may_be_an_index_and_integer_labels_come_back_as_integers(
    tmp_path: Path,
) -> None:
    spec, data, model = tmp_path / "spec.json", tmp_path / "d.csv", tmp_path / "m.npz"
    spec.write_text(json.dumps(SPEC))
    write_pets(data)
    text = data.read_text().replace(",cat", ",3").replace(",dog", ",7").replace(",fox", ",9")
    data.write_text("\n".join(text.splitlines()[1:]) + "\n")  # no header: index only
    inputs = tmp_path / "new.csv"
    inputs.write_text("1,2\n98,3\n2,97\n")

    trained = backprop("train", str(spec), "--data", str(data), "--label-column", "2",
                       "--out", str(model))  # fmt: skip
    predicted = backprop("predict", str(model), "--data", str(inputs))

    assert trained.returncode == 0, trained.stderr
    assert predicted.stdout.splitlines() == ["3", "7", "9"]


def test_a_label_column_not_in_the_header_is_named(tmp_path: Path) -> None:
    spec, data = tmp_path / "spec.json", tmp_path / "pets.csv"
    spec.write_text(json.dumps(SPEC))
    write_pets(data)

    trained = backprop("train", str(spec), "--data", str(data), "--label-column", "species")

    assert trained.returncode == 2
    assert "--label-column" in trained.stderr and "species" in trained.stderr


def test_label_column_and_targets_together_are_refused(tmp_path: Path) -> None:
    spec, data = tmp_path / "spec.json", tmp_path / "pets.csv"
    spec.write_text(json.dumps(SPEC))
    write_pets(data)

    trained = backprop("train", str(spec), "--data", str(data), "--label-column", "kind",
                       "--targets", "1")  # fmt: skip

    assert trained.returncode == 2
    assert "--label-column" in trained.stderr
