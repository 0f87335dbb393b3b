"""`backprop train` and `backprop predict` on CSV files, run as real processes."""

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def backprop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_train_prints_one_json_object_per_epoch_and_predict_solves_xor(tmp_path: Path) -> None:
    model = tmp_path / "xor.npz"

    trained = backprop(
        "train", str(EXAMPLES / "xor-tanh.json"), "--data", str(EXAMPLES / "xor.csv"),
        "--out", str(model), "--json",
    )  # fmt: skip
    predicted = backprop("predict", str(model), "--data", str(EXAMPLES / "xor-inputs.csv"))

    assert trained.returncode == 0, trained.stderr
    records = [json.loads(line) for line in trained.stdout.splitlines()]
    assert [record["epoch"] for record in records] == list(range(1, 501))
    assert all("loss" in record for record in records)
    assert predicted.returncode == 0, predicted.stderr
    outputs = [float(line) for line in predicted.stdout.splitlines()]
    assert [output > 0.5 for output in outputs] == [True, False, False, True]


def test_train_shows_a_progress_bar_without_json(tmp_path: Path) -> None:
    trained = backprop(
        "train", str(EXAMPLES / "notebook.json"), "--data", str(EXAMPLES / "xor.csv"),
        "--out", str(tmp_path / "m.npz"),
    )  # fmt: skip

    assert trained.returncode == 0, trained.stderr
    assert trained.stdout == ""
    assert "500/500" in trained.stderr and "epoch" in trained.stderr


def test_a_csv_row_that_is_not_numbers_is_named(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("x1,x2,y\n1,1,1\n-1,oops,0\n")

    trained = backprop("train", str(EXAMPLES / "xor-tanh.json"), "--data", str(data))

    assert trained.returncode == 2
    assert "row 2" in trained.stderr and str(data) in trained.stderr


def test_targets_leaving_no_input_column_are_refused(tmp_path: Path) -> None:
    trained = backprop(
        "train", str(EXAMPLES / "xor-tanh.json"), "--data", str(EXAMPLES / "xor.csv"),
        "--targets", "3",
    )  # fmt: skip

    assert trained.returncode == 2
    assert "--targets" in trained.stderr
