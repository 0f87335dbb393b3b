"""Benchmark an MNIST-sized CSV upload against the service's targets.

Run from the repository root:

    .venv/bin/python bench/upload_bench.py [--rows 60000] [--code DIR]

Generates (never downloads) a CSV shaped like MNIST's training set: a header row, a
`label` column of digits 0-9 and 784 integer pixels 0-255, 60,000 rows, about 168 MB.
Starts the real service (`backprop serve`, one worker) with the upload limit raised,
trains a tiny model, and measures 1-row predict latency alone; then uploads the file
(with curl, as a user would) while a second client keeps sending 1-row predicts, sampling
the API process's RSS.
Predicts go one after another on one connection (closed loop, as wrk measures), or at
a fixed `--rate`, each timed from when it was due (open loop).
Prints upload time and MB/s, the API's peak RSS during the upload and RSS after it, and
predict p99 before vs during, against the targets:
>= 40 MB/s, peak RSS growth <= 2x the float64 array, RSS after < 300 MB, p99 <= 50 ms.

`--readers` instead times CSV readers alone on the same file, each in a fresh process
with a thread that wakes every millisecond (its longest waits show how long the reader
holds the GIL): service.tabular (Arrow), pandas' C engine (if installed), numpy.loadtxt.

`--code DIR` runs the service from another checkout (for the baseline, `main`), with this
interpreter; a checkout without `label_column` gets the file with `targets` instead (the
same parse work: one column split off). Every process started is stopped at the end.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
N_PIXELS = 784
MB = 1_000_000
# The targets of issue 9, "Data at scale".
TARGET_MB_PER_S = 40.0
TARGET_PEAK_FACTOR = 2.0
TARGET_RSS_AFTER_MB = 300.0
TARGET_P99_MS = 50.0

TINY_JOB = {
    "network": {
        "layers": [2, 4, 1],
        "hidden_activation": "tanh",
        "output_activation": "sigmoid",
        "init": "xavier_uniform",
    },
    "training": {"loss": "binary_crossentropy", "epochs": 20, "learning_rate": 0.1},
}


def write_mnist_like(path: Path, rows: int) -> None:
    """Uniform random integers, as the issue's 168 MB file (3.57 bytes a value)."""
    rng = np.random.default_rng(0)
    text = [str(value) for value in range(256)]
    with path.open("w") as out:
        out.write("label," + ",".join(f"pixel{i}" for i in range(N_PIXELS)) + "\n")
        for start in range(0, rows, 1000):
            block = rng.integers(0, 256, (min(1000, rows - start), N_PIXELS + 1))
            block[:, 0] %= 10
            out.write(
                "".join(",".join(map(text.__getitem__, row)) + "\n" for row in block.tolist())
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident set (or, with VmHWM, its peak so far) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {field} for {pid}")


@contextmanager
def service(code: Path, workdir: Path, upload_limit: int) -> Iterator[tuple[int, str]]:
    """`backprop serve` from `code`, one worker: its pid and base URL."""
    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "BACKPROP_WORKERS": "1",
        "BACKPROP_LOG_LEVEL": "WARNING",
        "BACKPROP_MAX_UPLOAD_BYTES": str(upload_limit),
        # A checkout without the upload's own limit reads the body limit for every route.
        "BACKPROP_MAX_BODY_BYTES": str(upload_limit),
    }
    command = [sys.executable, "-m", "service.cli"]
    subprocess.run([*command, "db", "upgrade"], env=env, cwd=code, check=True, timeout=120)
    port = free_port()
    with (workdir / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            env=env,
            cwd=code,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "serve.log").read_text())
            with suppress(httpx2.TransportError):
                if httpx2.get(base_url + "/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield process.pid, base_url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            print("the service did not stop in 30 s; killing it", file=sys.stderr)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its worker too
        process.wait()


def train_tiny_model(client: httpx2.Client) -> str:
    dataset = client.post(
        "/v1/datasets", json={"name": "xor", "generator": {"kind": "xor", "n_samples": 4}}
    )
    dataset.raise_for_status()
    job = client.post(
        "/v1/jobs", json={**TINY_JOB, "dataset_id": dataset.json()["id"], "model_name": "tiny"}
    )
    job.raise_for_status()
    deadline = time.monotonic() + 60
    while (state := client.get(f"/v1/jobs/{job.json()['id']}").json())["status"] != "succeeded":
        if state["status"] in ("failed", "cancelled") or time.monotonic() > deadline:
            raise RuntimeError(f"the tiny model's job ended {state}")
        time.sleep(0.05)
    return "tiny"


class Predictor(threading.Thread):
    """Sends 1-row predicts and keeps each one's latency. With `rate` 0 (the default),
    one after another as fast as answered, as wrk does (closed loop: a stalled server is
    sent fewer requests, so a stall counts as one slow sample); with a `rate`, at that
    fixed rate, each timed from when it was due, so a stall or a server slower than the
    rate counts as all the late answers it causes (open loop)."""

    def __init__(self, base_url: str, model: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.client = httpx2.Client(base_url=base_url, timeout=30)
        self.path = f"/v1/models/{model}/predict"
        self.interval = 1 / rate if rate else 0.0
        self.latencies: list[float] = []
        self.recording = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        due = time.perf_counter()
        while not self.stopping.is_set():
            if self.interval:
                due += self.interval
                if (ahead := due - time.perf_counter()) > 0:
                    time.sleep(ahead)
            else:
                due = time.perf_counter()
            self.client.post(self.path, json={"inputs": [[1, 0]]}).raise_for_status()
            if self.recording.is_set():
                self.latencies.append(time.perf_counter() - due)

    def record(self, seconds: float | None = None) -> list[float]:
        """Latencies while recording: for `seconds`, or until `recording` is cleared."""
        self.latencies = []
        self.recording.set()
        if seconds is not None:
            time.sleep(seconds)
            self.recording.clear()
        return self.latencies


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopping = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.01)


def p99_ms(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99)) * 1000


def upload(base_url: str, path: Path, by_label: bool) -> tuple[float, dict[str, Any]]:
    """The upload as a user sends it, with curl: a Python client building a 168 MB multipart
    body took a core of the two from the server (7 s against curl's 4 s, same server)."""
    curl = shutil.which("curl")
    if curl is None:
        sys.exit("curl is needed to send the upload (apt-get install -y curl)")
    form = ["-F", "name=mnist", "-F", "label_column=label" if by_label else "targets=1"]
    command = [curl, "-sS", "-w", "\n%{http_code}", *form, "-F", f"file=@{path};type=text/csv"]
    start = time.perf_counter()
    sent = subprocess.run(
        [*command, f"{base_url}/v1/datasets/csv"], capture_output=True, text=True, timeout=600
    )
    seconds = time.perf_counter() - start
    body, _, status = sent.stdout.rpartition("\n")
    if sent.returncode != 0 or status != "201":
        raise RuntimeError(f"upload answered {status}: {body[:500]} {sent.stderr[:500]}")
    answer: dict[str, Any] = json.loads(body)
    return seconds, answer


# Each reader, run as `python -c SNIPPET PATH`, leaves the float64 inputs in `inputs`.
READERS = {
    "service.tabular (pyarrow, 4 MB blocks)": """
from pathlib import Path
from service.tabular import read_csv
inputs = read_csv(Path(path), label_column="label").inputs
""",
    "pandas C engine, 5,000-row chunks": """
import numpy as np, pandas as pd
chunks = pd.read_csv(path, engine="c", dtype=np.float64, chunksize=5000)
inputs = np.concatenate([chunk.to_numpy()[:, 1:] for chunk in chunks])
""",
    "numpy.loadtxt (C parser)": """
import numpy as np
inputs = np.loadtxt(path, delimiter=",", skiprows=1)[:, 1:]
""",
}
READER_HARNESS = """
import json, sys, threading, time
import numpy as np
def rss(field):
    status = open("/proc/self/status").read()
    return int(status.split(field + ":")[1].split()[0]) / 1000
path, waits, stop = sys.argv[1], [], threading.Event()
def tick():
    last = time.perf_counter()
    while not stop.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        waits.append(now - last)
        last = now
base = rss("VmRSS")
thread = threading.Thread(target=tick)
thread.start()
start = time.perf_counter()
exec(sys.argv[2])
seconds = time.perf_counter() - start
stop.set()
thread.join()
waits_ms = np.array(waits) * 1000
print(json.dumps({"seconds": seconds, "growth_mb": rss("VmHWM") - base,
                  "shape": list(inputs.shape), "tick_p99_ms": float(np.percentile(waits_ms, 99)),
                  "tick_max_ms": float(waits_ms.max())}))
"""


def compare_readers(path: Path, rows: int) -> None:
    size = path.stat().st_size / MB
    array_mb = rows * N_PIXELS * 8 / MB
    print(f"file: {size:.1f} MB; float64 inputs {array_mb:.0f} MB")
    print("| reader | time | MB/s | peak RSS growth | GIL: 1 ms ticker p99 / max |")
    print("|---|---|---|---|---|")
    for name, snippet in READERS.items():
        done = subprocess.run(
            [sys.executable, "-c", READER_HARNESS, str(path), snippet],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(f"| {name} | not run: {done.stderr.strip().splitlines()[-1]} | | | |")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {name} | {result['seconds']:.2f} s | {size / result['seconds']:.0f} | "
            f"{result['growth_mb']:.0f} MB ({result['growth_mb'] / array_mb:.2f}x) | "
            f"{result['tick_p99_ms']:.1f} / {result['tick_max_ms']:.0f} ms |"
        )


def supports_label_column(code: Path) -> bool:
    return "label_column" in (code / "service" / "api" / "routes" / "datasets.py").read_text()


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to serve from")
    parser.add_argument("--readers", action="store_true", help="compare CSV readers alone")
    parser.add_argument(
        "--rate", type=float, default=0, help="1-row predicts per second (0: closed loop)"
    )
    args = parser.parse_args()
    code = args.code.resolve()
    by_label = supports_label_column(code)
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "mnist.csv"
        write_mnist_like(csv_path, args.rows)
        if args.readers:
            compare_readers(csv_path, args.rows)
            return
        size = csv_path.stat().st_size
        array_mb = args.rows * N_PIXELS * 8 / MB
        with service(code, workdir, 2 * size) as (pid, base_url):
            model = train_tiny_model(httpx2.Client(base_url=base_url, timeout=30))
            predictor = Predictor(base_url, model, args.rate)
            predictor.start()
            time.sleep(1)  # warm: the model loaded and cached
            before = list(predictor.record(seconds=5))
            rss_before = rss_mb(pid)
            sampler = RssSampler(pid)
            sampler.start()
            during = predictor.record()
            seconds, dataset = upload(base_url, csv_path, by_label)
            predictor.recording.clear()
            sampler.stopping.set()
            sampler.join()
            peak = max(sampler.peak, rss_mb(pid, "VmHWM"))
            time.sleep(2)
            rss_after = rss_mb(pid)
            predictor.stopping.set()
            predictor.join()
    mb_per_s = size / MB / seconds
    growth = peak - rss_before
    print(f"code: {code} ({'label_column' if by_label else 'targets=1'})")
    print(
        f"file: {args.rows} rows x {N_PIXELS + 1} columns, {size / MB:.1f} MB; "
        f"float64 inputs {array_mb:.0f} MB; stored {dataset['n_samples']} x "
        f"{dataset['n_features']}"
    )
    rows = [
        ("upload time", f"{seconds:.2f} s", f"<= {size / MB / TARGET_MB_PER_S:.1f} s"),
        ("throughput", f"{mb_per_s:.1f} MB/s", f">= {TARGET_MB_PER_S:.0f} MB/s"),
        ("API RSS before", f"{rss_before:.0f} MB", ""),
        (
            "API peak RSS during (growth)",
            f"{peak:.0f} MB (+{growth:.0f} MB = {growth / array_mb:.2f}x array)",
            f"growth <= {TARGET_PEAK_FACTOR:.0f}x array",
        ),
        ("API RSS after", f"{rss_after:.0f} MB", f"< {TARGET_RSS_AFTER_MB:.0f} MB"),
        (
            "1-row predict p99 before",
            f"{p99_ms(before):.1f} ms ({len(before) / 5:.0f} req/s)",
            "",
        ),
        (
            "1-row predict p99 during",
            f"{p99_ms(during):.1f} ms ({len(during) / seconds:.0f} req/s, "
            f"max {max(during) * 1000:.0f} ms, median {statistics.median(during) * 1000:.1f} ms)",
            f"<= {TARGET_P99_MS:.0f} ms",
        ),
    ]
    checks = [
        seconds <= size / MB / TARGET_MB_PER_S,
        mb_per_s >= TARGET_MB_PER_S,
        True,
        growth <= TARGET_PEAK_FACTOR * array_mb,
        rss_after < TARGET_RSS_AFTER_MB,
        True,
        p99_ms(during) <= TARGET_P99_MS,
    ]
    print(f"| {'measure':<30} | {'result':<62} | {'target':<22} |  |")
    print(f"|{'-' * 32}|{'-' * 64}|{'-' * 24}|--|")
    for (name, value, target), ok in zip(rows, checks, strict=True):
        mark = verdict(ok) if target else ""
        print(f"| {name:<30} | {value:<62} | {target:<22} | {mark} |")


if __name__ == "__main__":
    main()
