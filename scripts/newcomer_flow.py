"""A newcomer's first session against a running service: dataset, job, poll, predict
(and the job counted in /metrics).

Standard library only, so it runs against any deployment from any Python 3.11:
    python scripts/newcomer_flow.py http://127.0.0.1:8000 [--api-key KEY]
Exits non-zero, saying which step failed, unless the trained model reproduces XOR.
"""

import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any

XOR_JOB = {
    "model_name": "xor-newcomer",
    "network": {"layers": [2, 8, 1], "hidden_activation": "tanh", "init": "xavier_uniform"},
    "training": {"learning_rate": 0.05, "epochs": 500, "batch_size": 1, "seed": 0},
    "checkpoint_every": 50,
}


class FlowFailed(Exception):
    pass


class Client:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=self.headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        content = raw.decode()
        try:
            return status, json.loads(content)
        except json.JSONDecodeError:
            return status, content

    def expect(self, status: int, method: str, path: str, body: object = None) -> Any:
        got, content = self.call(method, path, body)
        if got != status:
            raise FlowFailed(f"{method} {path}: expected {status}, got {got}: {content}")
        return content


def wait_until_ready(client: Client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, last = client.call("GET", "/ready")
            if status == 200:
                return
        except OSError as error:  # not listening yet
            last = error
        time.sleep(1)
    raise FlowFailed(f"/ready did not answer 200 within {timeout:.0f} s (last: {last})")


def run(client: Client, job_timeout: float) -> str:
    dataset = client.expect(
        201,
        "POST",
        "/v1/datasets",
        {"name": "xor", "generator": {"kind": "xor", "n_samples": 4}},
    )
    rows = client.expect(200, "GET", f"/v1/datasets/{dataset['id']}/rows")["items"]
    job = client.expect(202, "POST", "/v1/jobs", {"dataset_id": dataset["id"], **XOR_JOB})
    if job["status"] != "queued":
        raise FlowFailed(f"a new job should be queued: {job}")

    deadline = time.monotonic() + job_timeout
    while job["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise FlowFailed(f"job {job['id']} still {job['status']} after {job_timeout:.0f} s")
        time.sleep(0.5)
        job = client.expect(200, "GET", f"/v1/jobs/{job['id']}")
    if job["status"] != "succeeded":
        raise FlowFailed(f"job {job['id']} ended {job['status']}: {job}")

    prediction = client.expect(
        200,
        "POST",
        f"/v1/models/{XOR_JOB['model_name']}/predict",
        {"inputs": [row["inputs"] for row in rows]},
    )
    # Generated XOR is labelled (classes 0 and 1): the model answers in those labels.
    expected = [row["label"] for row in rows]
    if prediction.get("labels") != expected:
        raise FlowFailed(f"predicted labels {prediction.get('labels')} are not {expected}")
    metrics = client.expect(200, "GET", "/metrics")
    succeeded = re.search(r'^backprop_jobs\{status="succeeded"\} (\S+)$', metrics, re.MULTILINE)
    if not succeeded or float(succeeded.group(1)) < 1:
        raise FlowFailed("/metrics does not count the succeeded job in backprop_jobs")
    return (
        f"job {job['id']} succeeded in {job['epoch']} epochs (loss {job['loss']:.3g}); "
        f"model {prediction['model']} reproduces XOR"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", help="sent as Authorization: Bearer KEY")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument("--job-timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args()
    client = Client(args.base_url, args.api_key)
    try:
        wait_until_ready(client, args.ready_timeout)
        print(f"newcomer flow ok: {run(client, args.job_timeout)}")
    except FlowFailed as error:
        sys.exit(f"newcomer flow FAILED: {error}")


if __name__ == "__main__":
    main()
