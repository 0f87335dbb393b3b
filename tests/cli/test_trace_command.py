"""`backprop trace TRACE.json` run as a real process prints `trace_step`'s dict as JSON."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.core import NetworkSpec, Parameters, trace_step
from tests.helpers import NOTEBOOK_NETWORK, notebook_layers


def _run_trace(body: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(body))
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "trace", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _body(update_rule: str) -> dict[str, Any]:
    return {
        "network": NOTEBOOK_NETWORK,
        "parameters": notebook_layers(),
        "input": [1, 1],
        "target": [1],
        "loss": "mse",
        "learning_rate": 0.01,
        "update_rule": update_rule,
    }


@pytest.mark.parametrize("update_rule", ["standard", "dirty"])
def test_cli_trace_prints_exactly_what_trace_step_returns(tmp_path: Path, update_rule: str) -> None:
    completed = _run_trace(_body(update_rule), tmp_path)

    assert completed.returncode == 0, completed.stderr
    printed = json.loads(completed.stdout)
    network = NetworkSpec.from_dict(NOTEBOOK_NETWORK)
    expected = trace_step(
        network,
        Parameters.from_layers(network.layers, notebook_layers()),
        [1, 1],
        [1],
        loss="mse",
        learning_rate=0.01,
        update_rule=update_rule,
    )
    # JSON floats round-trip exactly, so the printed dict equals the in-process one.
    assert printed == expected


def test_cli_trace_prints_the_notebook_golden_numbers(tmp_path: Path) -> None:
    completed = _run_trace(_body("dirty"), tmp_path)

    assert completed.returncode == 0, completed.stderr
    printed = json.loads(completed.stdout)

    def close(actual: object, expected: object) -> None:
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=1e-7)

    close(printed["forward"][0]["aggregate"], [4.98368353, 1.29043732])
    close(printed["output"], [0.06257453])
    close(printed["output_error"], [-0.93742547])
    close(printed["backward"][1]["weight_gradient"], [[-4.67183186, -1.20968881]])
    close(printed["updated"]["layers"][1]["weights"], [[-0.10463889, -0.09112196]])
    close(printed["updated"]["layers"][1]["bias"], [0.95946267])
    close(printed["backward"][0]["delta"], [0.09809116, 0.08542005])
    close(
        printed["updated"]["layers"][0]["weights"],
        [[0.97775707, 2.23991229], [1.86670379, -0.97813208]],
    )
    close(printed["updated"]["layers"][0]["bias"], [1.76307143, 0.39930301])


def test_cli_trace_rejects_a_bad_field_with_its_name_and_exit_code_2(tmp_path: Path) -> None:
    body = _body("dirty")
    body["learning_rate"] = -1

    completed = _run_trace(body, tmp_path)

    assert completed.returncode == 2
    assert "learning_rate" in completed.stderr
    assert completed.stdout == ""
