"""Job events, with the job's rows written by the test as a worker would: a finished job,
paging past a thousand epochs, and a run resumed from a checkpoint in mid-stream."""

import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.config import Settings
from service.db import HistoryRow, JobRow, JobStatus, make_engine, make_session_factory
from tests.e2e.test_events import Event, assert_well_formed, epochs_of, parse_events
from tests.helpers import XOR_DATASET, free_port


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on a thread of this process: a real socket, so the test
    can write to the database while it reads the stream."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def submit(client: TestClient | httpx2.Client, epochs: int) -> str:
    dataset = client.post("/v1/datasets", json=XOR_DATASET).json()["id"]
    job = client.post(
        "/v1/jobs",
        json={
            "dataset_id": dataset,
            "network": {"layers": [2, 2, 1]},
            "training": {"epochs": epochs},
        },
    )
    assert job.status_code == 202, job.text
    job_id: str = job.json()["id"]
    return job_id


def write_epochs(
    sessions: sessionmaker[Session], job_id: str, epochs: range, status: JobStatus
) -> None:
    """History rows for `epochs` (values a function of the epoch, as deterministic training
    gives) and the job's progress, in one transaction as the worker commits them."""
    with sessions.begin() as session:
        session.add_all(
            HistoryRow(job_id=job_id, epoch=epoch, loss=1 / epoch, rmse=2 / epoch)
            for epoch in epochs
        )
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(status=status, epoch=epochs[-1], loss=1 / epochs[-1])
        )


def rewind_to(sessions: sessionmaker[Session], job_id: str, checkpoint: int) -> None:
    """What a worker resuming from the checkpoint at `checkpoint` does first."""
    with sessions.begin() as session:
        session.execute(
            delete(HistoryRow).where(HistoryRow.job_id == job_id, HistoryRow.epoch > checkpoint)
        )
        session.execute(update(JobRow).where(JobRow.id == job_id).values(epoch=checkpoint))


def read_until(events: Iterator[Event], done: Any) -> list[Event]:
    """Events up to and including the first for which `done(event)` holds."""
    read = []
    for event in events:
        read.append(event)
        if done(event):
            return read
    pytest.fail(f"the stream ended before the awaited event; last: {read[-1:]}")


def test_events_of_an_unknown_job_are_404_problem_json(client: TestClient) -> None:
    unknown = "0123456789abcdef0123456789abcdef"
    response = client.get(f"/v1/jobs/{unknown}/events")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"job {unknown} does not exist"


def test_a_last_event_id_that_is_not_an_epoch_is_422_naming_the_header(
    client: TestClient,
) -> None:
    response = client.get(
        "/v1/jobs/0123456789abcdef0123456789abcdef/events", headers={"Last-Event-ID": "soon"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["header", "Last-Event-ID"]


def test_finished_job_streams_every_epoch_across_pages_then_its_state(
    client: TestClient, sessions: sessionmaker[Session]
) -> None:
    job_id = submit(client, epochs=1500)
    write_epochs(sessions, job_id, range(1, 1501), JobStatus.SUCCEEDED)
    job = client.get(f"/v1/jobs/{job_id}").json()

    def stream(**options: Any) -> list[Event]:
        with client.stream("GET", f"/v1/jobs/{job_id}/events", **options) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return list(parse_events(response.iter_lines()))

    whole = stream()
    by_query = stream(params={"last_event_id": 1490})
    header_wins = stream(params={"last_event_id": 5}, headers={"Last-Event-ID": "1499"})
    nothing_left = stream(headers={"Last-Event-ID": "1500"})

    for events in (whole, by_query, header_wins, nothing_left):
        assert_well_formed(events)
        assert [event.kind for event in events if event.kind != "epoch"] == ["progress", "state"]
        assert events[-2].data["status"] == "succeeded"
        assert events[-1].data == job
    assert epochs_of(whole) == list(range(1, 1501))
    assert whole[0].data == client.get(f"/v1/jobs/{job_id}/history").json()["items"][0]
    assert epochs_of(by_query) == list(range(1491, 1501))
    assert epochs_of(header_wins) == [1500]
    assert [event.kind for event in nothing_left] == ["progress", "state"]


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_finished_jobs_stream_sends_every_epoch_then_its_final_progress_then_its_state(
    client: TestClient, sessions: sessionmaker[Session], status: JobStatus
) -> None:
    # More epochs than one look at the database reads, so they take several.
    job_id = submit(client, epochs=2500)
    write_epochs(sessions, job_id, range(1, 2501), status)

    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        events = list(parse_events(response.iter_lines()))

    final = [
        index
        for index, event in enumerate(events)
        if event.kind == "progress" and event.data["status"] == status
    ]
    assert final, [event.kind for event in events if event.kind != "epoch"]
    assert epochs_of(events[: final[0]]) == list(range(1, 2501))
    assert [event.kind for event in events[final[0] :]] == ["progress", "state"]
    assert events[-1].data["status"] == status


def test_a_run_resumed_from_a_checkpoint_mid_stream_sends_each_epoch_once(
    live_url: str, sessions: sessionmaker[Session]
) -> None:
    with httpx2.Client(base_url=live_url, timeout=30) as client:
        job_id = submit(client, epochs=400)
        write_epochs(sessions, job_id, range(1, 301), JobStatus.RUNNING)
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            events = parse_events(response.iter_lines())
            read = read_until(events, lambda event: event.id == "300")

            # The worker died; another resumes from the checkpoint at epoch 200.
            rewind_to(sessions, job_id, 200)
            read += read_until(
                events, lambda event: event.kind == "progress" and event.data["epoch"] == 200
            )
            write_epochs(sessions, job_id, range(201, 351), JobStatus.RUNNING)
            read += read_until(events, lambda event: event.id == "350")
            write_epochs(sessions, job_id, range(351, 401), JobStatus.SUCCEEDED)
            read += list(events)

    assert_well_formed(read)
    assert epochs_of(read) == list(range(1, 401))
    progress = [event.data["epoch"] for event in read if event.kind == "progress"]
    assert progress[0] == 300 and 200 in progress and progress[-1] == 400, progress
    assert read[-1].data["status"] == "succeeded"
