"""Helpers shared by the API, CLI and end-to-end tests."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
from sqlalchemy import func, select

from service.core import RunSpec
from service.db import Base, make_engine

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_spec(name: str) -> dict[str, Any]:
    """A `{"network", "training"}` spec from examples/, the files the README shows."""
    spec: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return spec


def row_counts(url: str) -> dict[str, int]:
    """Rows in every table, to show that a rejected request wrote nothing."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: connection.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


# The notebook's network, as examples/notebook.json (the README's example) has it.
NOTEBOOK_NETWORK: dict[str, Any] = example_spec("notebook")["network"]


def notebook_layers() -> dict[str, Any]:
    """The notebook's start weights as `{"layers": [{"weights", "bias"}, ...]}`."""
    # The notebook draws in this order from the legacy global generator seeded with 0.
    rng = np.random.RandomState(0)
    b1 = rng.randn(2, 1)
    w1 = rng.randn(2, 2)
    b2 = rng.randn(1, 1)
    w2 = rng.randn(1, 2)
    return {
        "layers": [
            {"weights": w1.tolist(), "bias": b1[:, 0].tolist()},
            {"weights": w2.tolist(), "bias": b2[:, 0].tolist()},
        ]
    }


def diverging_run() -> tuple[RunSpec, np.ndarray, np.ndarray]:
    """A spec and data `(20, 3)`, `(20, 1)` whose training diverges within its 500 epochs:
    learning rate 5 on targets of size ~10."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    y = 10 * x @ np.array([[1.0], [2.0], [-3.0]])
    spec = RunSpec.from_dict(
        {
            "network": {"layers": [3, 8, 1], "hidden_activation": "tanh"},
            "training": {"learning_rate": 5.0, "epochs": 500, "batch_size": 4},
        }
    )
    return spec, x, y


XOR_DATASET = {"name": "xor", "generator": {"kind": "xor", "n_samples": 4}}


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def backprop_command(*args: str) -> list[str]:
    """The `backprop` command line, run with this interpreter."""
    return [sys.executable, "-m", "service.cli", *args]


class Server:
    """`backprop serve` running as a process of its own: its address and its log file."""

    def __init__(self, process: subprocess.Popen[str], base_url: str, log: Path) -> None:
        self.process, self.base_url, self.log = process, base_url, log

    def worker_pids(self) -> list[int]:
        """The processes of `serve.workers_started`, read from the JSON lines logged so far
        (a line still being written is left out)."""
        logged = self.log.read_text()
        ended = logged[: logged.rfind("\n") + 1].splitlines()
        started = [
            line["pids"]
            for line in map(json.loads, ended)
            if line["message"] == "serve.workers_started"
        ]
        assert started, logged
        pids: list[int] = started[0]
        return pids


@contextmanager
def running_service(
    database_url: str, log: Path, workers: int, environment: dict[str, str] | None = None
) -> Iterator[Server]:
    """`backprop serve` with `workers` worker processes on the database at `database_url`
    (migrated first), once it is ready; stopped with Ctrl-C (SIGINT) afterwards. It logs
    JSON lines to `log`; `environment` adds settings (`BACKPROP_API_KEYS`, ...)."""
    env = {
        **os.environ,
        **(environment or {}),
        "BACKPROP_DATABASE_URL": database_url,
        "BACKPROP_WORKERS": str(workers),
        # Tests read the server's log lines as JSON.
        "BACKPROP_LOG_FORMAT": "json",
    }
    subprocess.run(backprop_command("db", "upgrade"), env=env, check=True, timeout=60)
    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            backprop_command("serve", "--port", str(port)),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                if httpx2.get(f"{server.base_url}/ready").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail(f"the service did not become ready:\n{log.read_text()}")
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def job_finished(client: httpx2.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once it has ended (succeeded, failed or cancelled), polled over HTTP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job_id} did not finish in {timeout} s: {job}")
