"""Benchmark the HTTP service against a bare FastAPI app and against the core alone.

Run from the repository root (needs `wrk`: `sudo apt-get install -y wrk`):

    .venv/bin/python bench/service_bench.py [--quick]

In one run, side by side, on 127.0.0.1 only (see bench/README.md, "## Service"):
  1. 1-row `POST /v1/models/{name}/predict` vs a bare FastAPI `GET` returning small JSON,
     both served by one uvicorn process with `backprop serve`'s settings: wrk, 2 threads,
     16 keep-alive connections, `--latency`; req/s and p99, rounds interleaved, medians.
  2. 10,000-row batch predict on 2-64-64-1 models (sigmoid + binary cross-entropy, and
     identity + mse) from a Python client: rows/s, split into client-side JSON encode,
     round trip (server + loopback), server CPU and client-side JSON decode; reference:
     the same parse -> predict -> serialize pipeline in this process.
  3. A training job's service overhead: core alone (`Trainer(...)` + iterating `.run()`
     here) vs the job's started_at..finished_at and the wall time from POST to succeeded.
  4. Submit-to-succeeded latency of the notebook's XOR job, polled every 10 ms, with the
     job row's created_at -> started_at -> finished_at breakdown.
  5. Training next to serving: the 1-row predict's p99 (wrk as in 1) on a service with two
     workers, idle and while both train 784-256-128-10 at batch 128 on random data.

Every process the bench starts is stopped at the end, also on errors or Ctrl-C.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import orjson
from threadpoolctl import threadpool_limits

from service.core import RunSpec, Trainer
from service.core.datasets import generate

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
JSON_HEADERS = {"content-type": "application/json"}

# Served exactly as `backprop serve` serves the service (service/api/server.py): one
# process, `uvicorn.run(app, host=..., port=..., log_level="info")`, so the default loop
# ("auto": uvloop when installed) and HTTP parser ("auto": httptools), access log on.
BARE_APP = """\
import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
"""

PREDICT_LUA = """\
wrk.method = "POST"
wrk.body = '{"inputs": [[1, 1]]}'
wrk.headers["Content-Type"] = "application/json"
"""

# The README's examples: the 2-8-1 tanh network and the notebook's own configuration.
XOR_TANH_JOB: dict[str, Any] = {
    "model_name": "xor-net",
    **json.loads((ROOT / "examples" / "xor-tanh.json").read_text()),
}
NOTEBOOK_JOB: dict[str, Any] = json.loads((ROOT / "examples" / "notebook.json").read_text())
MOONS: dict[str, Any] = {"kind": "moons", "n_samples": 2000, "noise": 0.2, "seed": 0}


def batch_job(output: str) -> dict[str, Any]:
    """A short 2-64-64-1 job on the moons data: a classifier or a regressor."""
    classifier = output == "sigmoid"
    return {
        "model_name": f"moons-{'clf' if classifier else 'reg'}",
        "network": {
            "layers": [2, 64, 64, 1],
            "hidden_activation": "relu",
            "output_activation": output,
            "init": "he_normal",
        },
        "training": {
            "loss": "binary_crossentropy" if classifier else "mse",
            "learning_rate": 0.05,
            "epochs": 5,
            "batch_size": 32,
            "seed": 0,
        },
    }


def overhead_job(epochs: int) -> dict[str, Any]:
    """About 2-3 s of core training on this machine at 350 epochs (shared, loaded CPUs)."""
    return {
        "network": {
            "layers": [2, 32, 32, 1],
            "hidden_activation": "tanh",
            "output_activation": "sigmoid",
            "init": "xavier_uniform",
        },
        "training": {
            "loss": "binary_crossentropy",
            "learning_rate": 0.05,
            "epochs": epochs,
            "batch_size": 8,
            "seed": 0,
        },
    }


@dataclass(frozen=True)
class Plan:
    wrk_seconds: int
    wrk_rounds: int
    batch_requests: int
    overhead_epochs: int
    overhead_rounds: int
    xor_runs: int
    load_rounds: int


FULL = Plan(
    wrk_seconds=10,
    wrk_rounds=3,
    batch_requests=25,
    overhead_epochs=350,
    overhead_rounds=3,
    xor_runs=10,
    load_rounds=3,
)
QUICK = Plan(
    wrk_seconds=2,
    wrk_rounds=1,
    batch_requests=5,
    overhead_epochs=10,
    overhead_rounds=1,
    xor_runs=3,
    load_rounds=1,
)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (not its children)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Processes:
    """Every server the bench starts, each in a session of its own, stopped by `stop_all`."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str], log: Path, ready_path: str
    ) -> Server:
        port = free_port()
        with log.open("w") as sink:
            process = subprocess.Popen(
                [*command, str(port)] if name == "bare" else [*command, "--port", str(port)],
                env=env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(name, process, f"http://{HOST}:{port}", log)
        self.servers.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx2.get(server.base_url + ready_path, timeout=2).status_code == 200:
                    return server
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not become ready in 60 s:\n{log.read_text()}")

    def stop_all(self) -> None:
        # SIGINT first: `backprop serve` then stops its workers itself.
        for server in self.servers:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGINT)
        for server in self.servers:
            try:
                server.process.wait(30)
            except subprocess.TimeoutExpired:
                print(f"{server.name} did not stop in 30 s; killing it", file=sys.stderr)
            # The whole session, so that no worker child outlives its server.
            with suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
        self.servers.clear()


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "service.cli", "db", "upgrade"],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
    )


def start_service(
    processes: Processes, workdir: Path, name: str, **settings: str
) -> tuple[Server, httpx2.Client]:
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"sqlite:///{workdir / name}.db",
        "BACKPROP_WORKERS": "1",
        **{f"BACKPROP_{key.upper()}": value for key, value in settings.items()},
    }
    migrate(env)
    command = [sys.executable, "-m", "service.cli", "serve"]
    server = processes.start(name, command, env, workdir / f"{name}.log", "/ready")
    return server, httpx2.Client(base_url=server.base_url, timeout=60)


# --------------------------------------------------------------------------- API helpers


def create_dataset(client: httpx2.Client, name: str, generator: dict[str, Any]) -> str:
    response = client.post("/v1/datasets", json={"name": name, "generator": generator})
    response.raise_for_status()
    dataset_id: str = response.json()["id"]
    return dataset_id


def create_target_dataset(client: httpx2.Client, name: str, generator: dict[str, Any]) -> str:
    """The generator's rows uploaded with numeric `targets`, not as labels: the in-process
    references below train on those same arrays with `Trainer(spec, inputs, targets)`."""
    inputs, targets = generate(
        generator["kind"], generator["n_samples"], generator["noise"], generator["seed"]
    )
    rows = {"name": name, "inputs": inputs.tolist(), "targets": targets.tolist()}
    response = client.post("/v1/datasets", json=rows)
    response.raise_for_status()
    dataset_id: str = response.json()["id"]
    return dataset_id


def submit(client: httpx2.Client, dataset_id: str, job: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json={"dataset_id": dataset_id, **job})
    if response.status_code != 202:
        raise RuntimeError(f"job refused: {response.status_code} {response.text}")
    job_id: str = response.json()["id"]
    return job_id


def wait_for(
    client: httpx2.Client, job_id: str, every: float = 0.01, timeout: float = 120
) -> dict[str, Any]:
    """Poll until the job ends; fail unless it succeeded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] == "succeeded":
            return job
        if job["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
        time.sleep(every)
    raise RuntimeError(f"job {job_id} did not finish in {timeout} s")


def seconds_between(job: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def core_seconds(job: dict[str, Any], generator: dict[str, Any]) -> float:
    """`Trainer(...)` + iterating `.run()` in this process, on the generator's data."""
    inputs, targets = generate(
        generator["kind"], generator["n_samples"], generator.get("noise", 0.0), generator["seed"]
    )
    spec = RunSpec.from_dict({"network": job["network"], "training": job["training"]})
    start = time.perf_counter()
    for _ in Trainer(spec, inputs, targets).run():
        pass
    return time.perf_counter() - start


# --------------------------------------------------------------------------- results


@dataclass
class Row:
    measurement: str
    ours: float
    reference: float | None
    unit: str
    target: str
    passed: bool | None
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.measurement}: {fmt(row.ours)} {row.unit}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  {text}", flush=True)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: Results) -> str:
    lines = [
        "| measurement | ours | reference | ours / ref | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for row in results.rows:
        ratio = f"{row.ours / row.reference:.2f}" if row.reference else "-"
        verdict = {True: "pass", False: "**MISS**", None: "info"}[row.passed]
        reference = f"{fmt(row.reference)} {row.note}".strip()
        lines.append(
            f"| {row.measurement} | {fmt(row.ours)} {row.unit} | {reference} | {ratio} "
            f"| {row.target} | {verdict} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- 1. wrk


@dataclass(frozen=True)
class WrkRun:
    requests_per_second: float
    p99_ms: float
    bad: int


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit(
            "error: wrk is not installed; install it with `sudo apt-get install -y wrk` "
            "(Debian/Ubuntu) or `brew install wrk`, then run the bench again"
        )
    return wrk


def run_wrk(wrk: str, url: str, seconds: int, lua: Path | None) -> WrkRun:
    command = [wrk, "-t2", "-c16", f"-d{seconds}s", "--latency", "--timeout", "2s"]
    command += ["-s", str(lua)] if lua is not None else []
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if rps is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(non_2xx.group(1)) if non_2xx else 0
    bad += sum(int(n) for n in errors.groups()) if errors else 0
    return WrkRun(float(rps.group(1)), float(p99.group(1)) * scale, bad)


def bench_single_row(
    plan: Plan, results: Results, service: Server, bare: Server, workdir: Path
) -> None:
    print("1. single-row predict vs bare GET (wrk -t2 -c16)", flush=True)
    wrk = require_wrk()
    lua = workdir / "predict.lua"
    lua.write_text(PREDICT_LUA)
    targets = {
        "predict": (service, f"{service.base_url}/v1/models/xor-net/predict", lua),
        "bare": (bare, f"{bare.base_url}/ping", None),
    }
    for _, url, script in targets.values():
        run_wrk(wrk, url, 1, script)  # warm-up: caches, allocator, branch predictors
    runs: dict[str, list[WrkRun]] = {name: [] for name in targets}
    cpu_us: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(plan.wrk_rounds):
        for name, (server, url, script) in targets.items():
            cpu_before = server.cpu_seconds()
            run = run_wrk(wrk, url, plan.wrk_seconds, script)
            cpu = server.cpu_seconds() - cpu_before
            if run.bad:
                raise RuntimeError(f"{name}: {run.bad} failed requests under wrk")
            runs[name].append(run)
            cpu_us[name].append(cpu / (run.requests_per_second * plan.wrk_seconds) * 1e6)
            print(f"    {name}: {run.requests_per_second:,.0f} req/s, p99 {run.p99_ms:.2f} ms")

    def median(name: str, pick: Callable[[WrkRun], float]) -> float:
        return statistics.median(pick(run) for run in runs[name])

    predict_rps = median("predict", lambda run: run.requests_per_second)
    bare_rps = median("bare", lambda run: run.requests_per_second)
    predict_p99 = median("predict", lambda run: run.p99_ms)
    bare_p99 = median("bare", lambda run: run.p99_ms)
    rounds = f"(bare GET, median of {plan.wrk_rounds})"
    results.add(
        Row(
            "1. 1-row predict, req/s, c=16",
            predict_rps,
            bare_rps,
            "req/s",
            ">= 0.80 x bare",
            predict_rps >= 0.8 * bare_rps,
            rounds,
        )
    )
    results.add(
        Row(
            "1. 1-row predict, p99 latency",
            predict_p99,
            bare_p99,
            "ms",
            "<= 10 ms",
            predict_p99 <= 10.0,
            "(bare GET)",
        )
    )
    results.add(
        Row(
            "1. server CPU per request",
            statistics.median(cpu_us["predict"]),
            statistics.median(cpu_us["bare"]),
            "us",
            "-",
            None,
            "(bare GET)",
        )
    )


# --------------------------------------------------------------------------- 2. batch


def timed(function: Callable[[], object], repeats: int) -> float:
    """Median seconds of `function()`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_batch(
    plan: Plan,
    results: Results,
    service: Server,
    client: httpx2.Client,
    models: dict[str, dict[str, Any]],
) -> None:
    print("2. 10,000-row batch predict", flush=True)
    n_rows = 10_000
    rows = np.random.default_rng(1).uniform(-1.5, 2.5, (n_rows, 2)).round(6).tolist()
    payload = {"inputs": rows}
    body = json.dumps(payload).encode()
    encode_stdlib = timed(lambda: json.dumps(payload).encode(), 5)
    encode_orjson = timed(lambda: orjson.dumps(payload), 5)
    x_moons, t_moons = generate(MOONS["kind"], MOONS["n_samples"], MOONS["noise"], MOONS["seed"])
    headers = {"content-type": "application/json"}
    for name, job in models.items():
        url = f"/v1/models/{job['model_name']}/predict"
        first = client.post(url, content=body, headers=headers).raise_for_status().json()
        classifier = job["network"]["output_activation"] == "sigmoid"
        if len(first["outputs"]) != n_rows or ("labels" in first) != classifier:
            raise RuntimeError(f"{name}: unexpected prediction body {list(first)}")

        # The same model, trained here from the same spec and data (bit-identical weights):
        # the server's work without HTTP, FastAPI and pydantic.
        spec = RunSpec.from_dict({"network": job["network"], "training": job["training"]})
        trainer = Trainer(spec, x_moons, t_moons)
        for _ in trainer.run():
            pass
        model = trainer.model()
        if not np.allclose(model.predict(np.asarray(rows)), np.asarray(first["outputs"])):
            raise RuntimeError(f"{name}: the service's outputs differ from the core's")

        def floor(model: Any = model) -> bytes:
            outputs = model.predict(np.asarray(orjson.loads(body)["inputs"]))
            out = {"outputs": outputs}
            if model.is_classifier:
                out |= {"probabilities": outputs, "labels": model.labels(outputs)}
            return orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)

        # On one BLAS thread, as the API process predicts (service/api/server.py): more
        # threads here would measure another server, and on a loaded machine spin.
        with threadpool_limits(1):
            floor_seconds = timed(floor, max(5, plan.batch_requests))
            array = np.asarray(orjson.loads(body)["inputs"])
            parse = timed(lambda: np.asarray(orjson.loads(body)["inputs"]), 5)
            forward = timed(partial(model.predict, array), 5)
            weights = model.parameters.weights[1]  # the 64 x 64 layer, the largest product
            product = timed(partial(np.matmul, np.ones((n_rows, weights.shape[1])), weights.T), 5)
        round_trips = []
        cpu_before = service.cpu_seconds()
        for _ in range(plan.batch_requests):
            start = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            round_trips.append(time.perf_counter() - start)
            response.raise_for_status()
        server_cpu = (service.cpu_seconds() - cpu_before) / plan.batch_requests
        content = response.content
        decode = timed(lambda: json.loads(content), 5)  # noqa: B023 (called at once)
        round_trip = statistics.median(round_trips)
        results.add(
            Row(
                f"2. 10k-row batch, {name}",
                n_rows / round_trip,
                n_rows / floor_seconds,
                "rows/s",
                ">= 1,000,000 rows/s",
                n_rows / round_trip >= 1_000_000,
                "(in-process orjson+predict)",
            )
        )
        results.note(
            f"{name}: round trip {round_trip * 1e3:.1f} ms median of {plan.batch_requests} "
            f"(server CPU {server_cpu * 1e3:.1f} ms/request, in-process floor "
            f"{floor_seconds * 1e3:.1f} ms); client JSON decode of the "
            f"{len(content) / 1e3:.0f} kB response {decode * 1e3:.1f} ms (not in rows/s); "
            f"the floor's parts: orjson.loads + np.asarray {parse * 1e3:.1f} ms, "
            f"Model.predict {forward * 1e3:.1f} ms (of which the 10k x 64 x 64 product alone "
            f"{product * 1e3:.1f} ms)"
        )
    results.note(
        f"client JSON encode of the {len(body) / 1e3:.0f} kB request body (not in rows/s, "
        f"the body is encoded once): json.dumps {encode_stdlib * 1e3:.1f} ms, "
        f"orjson.dumps {encode_orjson * 1e3:.1f} ms"
    )


# --------------------------------------------------------------------------- 3. overhead


def bench_overhead(plan: Plan, results: Results, client: httpx2.Client, dataset_id: str) -> None:
    print("3. a job through the service vs the core alone", flush=True)
    job = overhead_job(plan.overhead_epochs)
    core, run_times, walls, pickups = [], [], [], []
    for _ in range(plan.overhead_rounds):
        core.append(core_seconds(job, MOONS))
        start = time.perf_counter()
        row = wait_for(client, submit(client, dataset_id, job))
        walls.append(time.perf_counter() - start)
        run_times.append(seconds_between(row, "started_at", "finished_at"))
        pickups.append(seconds_between(row, "created_at", "started_at"))
        print(f"    core {core[-1]:.3f} s, job run {run_times[-1]:.3f} s, wall {walls[-1]:.3f} s")
    core_s = statistics.median(core)
    run_s, wall_s = statistics.median(run_times), statistics.median(walls)
    label = f"(core alone, {plan.overhead_epochs} epochs)"
    results.add(
        Row(
            "3. job started..finished",
            run_s,
            core_s,
            "s",
            "<= 1.10 x core",
            run_s <= 1.10 * core_s,
            label,
        )
    )
    results.add(
        Row(
            "3. job POST..seen succeeded",
            wall_s,
            core_s,
            "s",
            "<= 1.10 x core",
            wall_s <= 1.10 * core_s,
            label,
        )
    )
    results.note(f"job pickup (created_at -> started_at) median {statistics.median(pickups):.3f} s")


# --------------------------------------------------------------------------- 4. XOR latency


def bench_xor_latency(
    plan: Plan,
    results: Results,
    client: httpx2.Client,
    dataset_id: str,
    label: str,
    job: dict[str, Any] = NOTEBOOK_JOB,
) -> None:
    print(f"4. notebook XOR job, submit to succeeded ({label})", flush=True)
    core = [core_seconds(NOTEBOOK_JOB, {"kind": "xor", "n_samples": 4, "seed": 0})]
    walls, pickups, runs, tails = [], [], [], []
    for _ in range(plan.xor_runs):
        start = time.perf_counter()
        row = wait_for(client, submit(client, dataset_id, job))
        walls.append(time.perf_counter() - start)
        pickups.append(seconds_between(row, "created_at", "started_at"))
        runs.append(seconds_between(row, "started_at", "finished_at"))
        tails.append(walls[-1] - pickups[-1] - runs[-1])
        core.append(core_seconds(NOTEBOOK_JOB, {"kind": "xor", "n_samples": 4, "seed": 0}))
    core_ms = statistics.median(core) * 1e3
    wall_ms, max_ms = statistics.median(walls) * 1e3, max(walls) * 1e3
    results.add(
        Row(
            f"4. XOR job submit..succeeded, median ({label})",
            wall_ms,
            core_ms,
            "ms",
            "<= 60 ms",
            wall_ms <= 60,
            "(core alone)",
        )
    )
    results.add(
        Row(
            f"4. XOR job submit..succeeded, max ({label})",
            max_ms,
            None,
            "ms",
            "<= 300 ms",
            max_ms <= 300,
        )
    )
    ms = [f"{value * 1e3:.0f}" for value in pickups]
    results.note(
        f"XOR ({label}), medians of {plan.xor_runs}: pickup created->started "
        f"{statistics.median(pickups) * 1e3:.0f} ms (each: {', '.join(ms)}), run "
        f"started->finished {statistics.median(runs) * 1e3:.0f} ms, the rest (POST, "
        f"clock skew, 10 ms polling) {statistics.median(tails) * 1e3:.0f} ms"
    )


# --------------------------------------------------------------------------- 5. training load

# Case (c) of bench/core_bench.py: 784-256-128-10 relu, softmax + cross-entropy, batch 128.
LARGE_JOB: dict[str, Any] = {
    "network": {
        "layers": [784, 256, 128, 10],
        "hidden_activation": "relu",
        "output_activation": "softmax",
    },
    "training": {
        "loss": "categorical_crossentropy",
        "learning_rate": 0.01,
        "epochs": 100_000,
        "batch_size": 128,
        "seed": 0,
    },
}
LARGE_ROWS = 1_024


def create_large_dataset(client: httpx2.Client) -> str:
    """1,024 random standard-normal rows of 784 features with 10 random classes (case (c)'s
    shape with fewer rows: the body stays under the default 10 MB limit)."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((LARGE_ROWS, 784)).round(3)
    labels = rng.integers(0, 10, LARGE_ROWS)
    body = {"name": "random-784", "inputs": inputs.tolist(), "labels": labels.tolist()}
    response = client.post("/v1/datasets", content=orjson.dumps(body), headers=JSON_HEADERS)
    response.raise_for_status()
    dataset_id: str = response.json()["id"]
    return dataset_id


def worker_pids(server: Server) -> list[int]:
    """The worker processes `backprop serve` logged having started (JSON log lines)."""
    for line in server.log.read_text().splitlines():
        with suppress(ValueError):
            record = json.loads(line)
            if record.get("message") == "serve.workers_started":
                return list(record["pids"])
    raise RuntimeError(f"no serve.workers_started line in {server.log}")


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (field 3 onwards)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds_of(pid: int) -> float:
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def job_status(client: httpx2.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
    return job


def wait_until(
    client: httpx2.Client, job_id: str, done: Callable[[dict[str, Any]], bool], what: str
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if done(job_status(client, job_id)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not {what} in 120 s")


def running(job: dict[str, Any]) -> bool:
    """Running and past its first epoch: the worker is training, not starting."""
    if job["status"] not in ("queued", "running"):
        raise RuntimeError(f"job {job['id']} {job['status']}: {job['error']}")
    return job["status"] == "running" and bool(job["epoch"])


def bench_training_load(plan: Plan, results: Results, processes: Processes, workdir: Path) -> None:
    print("5. predict p99 while two workers train 784-256-128-10 (wrk -t2 -c16)", flush=True)
    wrk = require_wrk()
    lua = workdir / "predict.lua"
    lua.write_text(PREDICT_LUA)
    server, client = start_service(processes, workdir, "training", workers="2")
    url = f"{server.base_url}/v1/models/xor-net/predict"
    idle: list[WrkRun] = []
    loaded: list[WrkRun] = []
    worker_cores: list[float] = []
    with client:
        xor = create_dataset(client, "xor", {"kind": "xor", "n_samples": 4})
        wait_for(client, submit(client, xor, XOR_TANH_JOB))
        large = create_large_dataset(client)
        workers = worker_pids(server)
        run_wrk(wrk, url, 1, lua)  # warm-up

        def measure(into: list[WrkRun]) -> float:
            """One wrk run, kept in `into`; the cores the workers used meanwhile."""
            before = sum(cpu_seconds_of(pid) for pid in workers)
            run = run_wrk(wrk, url, plan.wrk_seconds, lua)
            if run.bad:
                raise RuntimeError(f"{run.bad} failed requests under wrk")
            into.append(run)
            return (sum(cpu_seconds_of(pid) for pid in workers) - before) / plan.wrk_seconds

        # Idle, then both workers training, then idle again, `load_rounds` times: ratios
        # from one interleaved run, the machine's drift on both sides.
        for _ in range(plan.load_rounds):
            measure(idle)
            jobs = [submit(client, large, LARGE_JOB) for _ in workers]
            for job_id in jobs:
                wait_until(client, job_id, running, "start training")
            worker_cores.append(measure(loaded))
            for job_id in jobs:
                client.post(f"/v1/jobs/{job_id}/cancel").raise_for_status()
            for job_id in jobs:
                wait_until(client, job_id, lambda job: job["status"] == "cancelled", "stop")
            measure(idle)
            print(
                f"    idle p99 {idle[-2].p99_ms:.2f} then {idle[-1].p99_ms:.2f} ms; training "
                f"p99 {loaded[-1].p99_ms:.2f} ms, {loaded[-1].requests_per_second:,.0f} req/s, "
                f"workers on {worker_cores[-1]:.2f} cores"
            )
        nices = [int(proc_stat(pid)[16]) for pid in workers]
        api_nice = int(proc_stat(server.process.pid)[16])
    idle_p99 = statistics.median(run.p99_ms for run in idle)
    loaded_p99 = statistics.median(run.p99_ms for run in loaded)
    results.add(
        Row(
            "5. 1-row predict p99 while 2 workers train (c)",
            loaded_p99,
            idle_p99,
            "ms",
            "<= 3.0 x idle",
            loaded_p99 <= 3 * idle_p99,
            "(idle, 2 workers)",
        )
    )
    idle_rps = statistics.median(run.requests_per_second for run in idle)
    loaded_rps = statistics.median(run.requests_per_second for run in loaded)
    results.note(
        f"training load: predict {loaded_rps:,.0f} req/s while training vs {idle_rps:,.0f} "
        f"idle; the workers used {statistics.median(worker_cores):.2f} cores meanwhile, at "
        f"nice {nices} (the API at {api_nice})"
    )


# --------------------------------------------------------------------------- main


@contextmanager
def workspace() -> Iterator[tuple[Path, Processes]]:
    processes = Processes()
    with tempfile.TemporaryDirectory(prefix="service-bench-") as name:
        try:
            yield Path(name), processes
        finally:
            processes.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        choices=range(1, 6),
        help="run this case only (repeatable: --only 1 --only 5)",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    cases = set(args.only or range(1, 6))
    require_wrk()
    results = Results()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with workspace() as (workdir, processes):
        service, client = start_service(processes, workdir, "service")
        (workdir / "bare_app.py").write_text(BARE_APP)
        command = [sys.executable, str(workdir / "bare_app.py")]
        bare = processes.start("bare", command, dict(os.environ), workdir / "bare.log", "/ping")
        with client:
            xor = create_dataset(client, "xor", {"kind": "xor", "n_samples": 4})
            moons = create_target_dataset(client, "moons", MOONS)
            wait_for(client, submit(client, xor, XOR_TANH_JOB))
            batch_models = {
                "sigmoid+bce": batch_job("sigmoid"),
                "identity+mse": batch_job("identity"),
            }
            for job in batch_models.values():
                wait_for(client, submit(client, moons, job))

            if 1 in cases:
                bench_single_row(plan, results, service, bare, workdir)
            if 2 in cases:
                bench_batch(plan, results, service, client, batch_models)
            if 3 in cases:
                bench_overhead(plan, results, client, moons)
            if 4 in cases:
                bench_xor_latency(plan, results, client, xor, "defaults")
        if 4 in cases and not args.quick:
            # The same, with idle workers polling every 10 ms instead of 50 ms (a new job
            # wakes them at once either way: this shows what polling still adds).
            _, fast_client = start_service(
                processes, workdir, "fast-poll", poll_interval_seconds="0.01"
            )
            with fast_client:
                xor = create_dataset(fast_client, "xor", {"kind": "xor", "n_samples": 4})
                bench_xor_latency(plan, results, fast_client, xor, "poll 10 ms")
                # ... and a snapshot only at the end instead of every 10 epochs.
                job = {**NOTEBOOK_JOB, "checkpoint_every": 500}
                label = "poll 10 ms, checkpoint_every 500"
                bench_xor_latency(plan, results, fast_client, xor, label, job)
        if 5 in cases:
            bench_training_load(plan, results, processes, workdir)
    print(f"\nservice bench ({'quick' if args.quick else 'full'}), {os.cpu_count()} CPUs, ", end="")
    print(
        f"{time.monotonic() - started:.0f} s, 1-min load average {load_before:.2f} at the ", end=""
    )
    print(f"start, {os.getloadavg()[0]:.2f} at the end (other processes share the CPUs)\n")
    print(table(results))
    print()
    for note in results.notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
