"""Following a job live over server-sent events, against `backprop serve` as a real process."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import orjson

from tests.e2e.test_newcomer import server
from tests.helpers import Server

__all__ = ["server"]  # the fixture, imported so that pytest finds it here

EPOCHS = 2000


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any]
    id: str | None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events of a `text/event-stream`, parsed by the rules of the SSE specification."""
    kind, data, event_id = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                yield Event(kind, orjson.loads("\n".join(data)), event_id)
            kind, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue  # a comment: the keep-alive ping
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


def submit_xor_job(client: httpx2.Client) -> str:
    """A 2-8-1 tanh network on 64 noisy XOR samples for EPOCHS epochs: about two seconds,
    long enough to stream while it runs."""
    dataset = client.post(
        "/v1/datasets",
        json={"name": "xor", "generator": {"kind": "xor", "n_samples": 64, "noise": 0.1}},
    )
    assert dataset.status_code == 201, dataset.text
    job = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset.json()["id"],
            "network": {"layers": [2, 8, 1], "hidden_activation": "tanh", "init": "xavier_uniform"},
            # The NumPy engine: the compiled one ends the job before the stream opens.
            "training": {
                "learning_rate": 0.05,
                "epochs": EPOCHS,
                "batch_size": 1,
                "seed": 0,
                "engine": "numpy",
            },
            "checkpoint_every": 100,
        },
    )
    assert job.status_code == 202, job.text
    job_id: str = job.json()["id"]
    return job_id


def stream(
    client: httpx2.Client, job_id: str, headers: dict[str, str] | None = None, **params: Any
) -> list[Event]:
    """Every event of the job's stream, which must end by itself."""
    with client.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers=headers, params=params
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_events(response.iter_lines()))


def epochs_of(events: Iterable[Event]) -> list[int]:
    return [event.data["epoch"] for event in events if event.kind == "epoch"]


def assert_well_formed(events: list[Event]) -> None:
    """Epoch events carry their epoch as id; the others carry none; the final state comes
    last: the one progress with a final status, then `state`."""
    for event in events:
        assert event.kind in ("epoch", "progress", "state"), event
        assert event.id == (str(event.data["epoch"]) if event.kind == "epoch" else None), event
    assert [event.kind for event in events].count("state") == 1
    assert events[-1].kind == "state"
    final = [
        index
        for index, event in enumerate(events)
        if event.kind == "progress" and event.data["status"] in ("succeeded", "failed", "cancelled")
    ]
    assert final == [len(events) - 2], [event.kind for event in events if event.kind != "epoch"]


def test_clients_get_every_epoch_once_in_order_whether_they_stay_or_reconnect(
    server: Server,
) -> None:
    # One job followed by two clients, so that the real server starts once per database.
    with httpx2.Client(base_url=server.base_url, timeout=30) as client:
        job_id = submit_xor_job(client)
        url = f"/v1/jobs/{job_id}/events"
        with client.stream("GET", url) as staying, client.stream("GET", url) as leaving:
            first = []
            for event in parse_events(leaving.iter_lines()):
                first.append(event)
                if event.kind == "epoch" and event.data["epoch"] == 50:
                    break
            leaving.close()
            assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running", (
                "the job ended before the reconnection"
            )
            rest = stream(client, job_id, headers={"Last-Event-ID": "50"})
            whole = list(parse_events(staying.iter_lines()))
        history = client.get(f"/v1/jobs/{job_id}/history", params={"limit": EPOCHS}).json()
        job = client.get(f"/v1/jobs/{job_id}").json()

    assert job["status"] == "succeeded", job
    for events in (whole, rest):
        assert_well_formed(events)
        assert events[-1].data == job
    assert epochs_of(whole) == list(range(1, EPOCHS + 1))
    assert [event.data for event in whole if event.kind == "epoch"] == history["items"]
    assert [event.id for event in first if event.kind == "epoch"] == [str(n) for n in range(1, 51)]
    assert epochs_of(rest) == list(range(51, EPOCHS + 1))

    progress = [event.data for event in whole if event.kind == "progress"]
    assert progress[0]["status"] in ("queued", "running"), "the job ended before streaming"
    assert [p["epoch"] for p in progress] == sorted(p["epoch"] for p in progress)
    assert progress[-1] == {
        "id": job_id,
        "status": "succeeded",
        "epoch": EPOCHS,
        "epochs_total": EPOCHS,
        "progress": 1.0,
        "loss": job["loss"],
    }
