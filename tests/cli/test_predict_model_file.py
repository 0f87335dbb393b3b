"""`backprop predict --json` answers the predict route's body for a model written by
`backprop train` too, and a damaged model file is refused naming the file."""

import json
import subprocess
from pathlib import Path

import orjson

from service.api.predictions import prediction_body
from service.core import Model
from service.formats import write_model_file
from tests.cli.test_label_column import SPEC, write_pets
from tests.helpers import backprop_command


def backprop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        backprop_command(*args), capture_output=True, text=True, timeout=120, check=False
    )


def test_predict_json_is_the_services_body_for_a_trained_archive_and_its_model_file(
    tmp_path: Path,
) -> None:
    spec, data, archive = tmp_path / "spec.json", tmp_path / "pets.csv", tmp_path / "pets.npz"
    spec.write_text(json.dumps(SPEC))
    write_pets(data)
    inputs = tmp_path / "new.csv"
    inputs.write_text("weight,height\n1.5,2.25\n98,3\n2,97\n")
    assert backprop("train", str(spec), "--data", str(data), "--label-column", "kind",
                    "--out", str(archive), "--json").returncode == 0  # fmt: skip
    model = Model.from_bytes(archive.read_bytes())
    model_file = tmp_path / "pets.backprop"
    model_file.write_bytes(write_model_file(model))
    # What the service would write for these rows, parsed: floats compared with ==.
    body = prediction_body(model, [[1.5, 2.25], [98.0, 3.0], [2.0, 97.0]])
    expected = json.loads(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    for path in (archive, model_file):
        predicted = backprop("predict", str(path), "--data", str(inputs), "--json")
        assert predicted.returncode == 0, predicted.stderr
        assert json.loads(predicted.stdout) == expected, path.name
        assert expected["classes"] == ["cat", "dog", "fox"]


def test_a_damaged_model_file_is_refused_naming_it(tmp_path: Path) -> None:
    damaged = tmp_path / "bad.backprop"
    damaged.write_bytes(b"PK\x03\x04 not really")
    inputs = tmp_path / "in.csv"
    inputs.write_text("1,2\n")

    predicted = backprop("predict", str(damaged), "--data", str(inputs))

    assert predicted.returncode == 2
    assert str(damaged) in predicted.stderr and "not a backprop model file" in predicted.stderr
