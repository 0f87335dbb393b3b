"""Live progress of a job as server-sent events, resumable with `Last-Event-ID`."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.api.deps import read_sessions
from service.api.params import JobId
from service.api.problems import problem_responses
from service.api.schemas import MAX_STORED_INT, HistoryPoint, JobRead
from service.db import jobs as queries
from service.db.models import JobRow

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

POLL_SECONDS = 0.25
PAGE_ROWS = 1000
# Comment lines this often keep proxies from closing a stream that is waiting for a job.
PING_SECONDS = 15
PROGRESS_FIELDS = ("id", "status", "epoch", "epochs_total", "progress", "loss")

EVENTS_DESCRIPTION = """
A `text/event-stream` that follows the job for as long as it runs, then ends:

- `epoch`: one per finished epoch, in order; `id` is the epoch number and `data` its
  history point (`epoch`, `loss`, `val_loss`, `rmse`, `accuracy`, `val_accuracy`,
  `learning_rate`), as in `GET /v1/jobs/{id}/history`.
- `progress`: whenever the job's status or epoch changes, and once at the start;
  `data` holds `id`, `status`, `epoch`, `epochs_total`, `progress` and `loss`. No `id`.
  Once the job has ended, its last `progress` follows its last `epoch`, right before
  `state`.
- `state`: last, once the job has `succeeded`, `failed` or been `cancelled` and every
  epoch has been sent; `data` is the job as `GET /v1/jobs/{id}` returns it.

Only `epoch` events carry an `id`, so a client that reconnects with the `Last-Event-ID`
header (browsers' `EventSource` does so by itself) or the `last_event_id` query parameter
gets every epoch after that one and misses nothing. Without either it starts at epoch 1.
A run resumed from a checkpoint after a worker died writes the same epochs again; they
are not sent twice. Comment lines (`: ping`) keep idle connections open.
"""

EVENTS_EXAMPLE = (
    'event: progress\ndata: {"id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f", "status": "running", '
    '"epoch": 1, "epochs_total": 500, "progress": 0.002, "loss": 0.2512}\n\n'
    'id: 1\nevent: epoch\ndata: {"epoch": 1, "loss": 0.2512, "val_loss": null, '
    '"rmse": 0.7088, "accuracy": null, "val_accuracy": null, "learning_rate": 0.05}\n\n'
    'event: state\ndata: {"id": "4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f", "status": "succeeded", '
    '"epoch": 500, ...}\n\n'
)

# One event of the stream (OpenAPI 3.1 has a text/event-stream `schema` describe each).
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["progress", "epoch", "state"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "`epoch` events only"},
    },
}


@dataclass(frozen=True)
class Poll:
    """What one look at the database found: the job, then its epochs after the last sent."""

    job: dict[str, Any] | None
    rows: list[dict[str, Any]]

    @property
    def terminal(self) -> bool:
        return self.job is not None and self.job["status"] in {s.value for s in queries.TERMINAL}


def _poll(sessions: sessionmaker[Session], job_id: str, after: int) -> Poll:
    """The job's state first, then up to PAGE_ROWS history rows past `after`: a job that
    was already finished when read has all its epochs among the rows that follow."""
    with sessions() as session:
        job = session.get(JobRow, job_id)
        if job is None:
            return Poll(None, [])
        state = JobRead.model_validate(job).model_dump(mode="json")
        rows = queries.history_after(session, job_id, after, PAGE_ROWS)
        points = [HistoryPoint.model_validate(row).model_dump(mode="json") for row in rows]
        return Poll(state, points)


def _event(kind: str, data: dict[str, Any], event_id: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(
        data=orjson.dumps(data).decode(),
        event=kind,
        id=None if event_id is None else str(event_id),
    )


async def _events(
    request: Request, sessions: sessionmaker[Session], job_id: str, after: int
) -> AsyncIterator[ServerSentEvent]:
    last_progress: dict[str, Any] | None = None
    while not await request.is_disconnected():
        # A short session per look, in the thread pool: never one held across an await.
        poll = await run_in_threadpool(_poll, sessions, job_id, after)
        if poll.job is None:
            return  # deleted while followed
        progress = {name: poll.job[name] for name in PROGRESS_FIELDS}
        # A finished job's progress waits for its last epochs (see below).
        if not poll.terminal and progress != last_progress:
            yield _event("progress", progress)
            last_progress = progress
        for row in poll.rows:
            yield _event("epoch", row, row["epoch"])
            # Only forward: a run resumed from a checkpoint rewrites epochs already sent
            # with the same values, and those are not sent again.
            after = row["epoch"]
        if len(poll.rows) == PAGE_ROWS:
            continue  # more may follow, and the final events go only after the last epoch
        if poll.terminal:
            # The final state comes last, always: every epoch, its last progress, the job.
            yield _event("progress", progress)
            yield _event("state", poll.job)
            return
        await anyio.sleep(POLL_SECONDS)


@router.get(
    "/{job_id:id}/events",
    operation_id="follow_job_events",
    responses={
        200: {
            "description": "The job's events, until it ends.",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA, "example": EVENTS_EXAMPLE}},
        },
        **problem_responses(404),
    },
    response_class=EventSourceResponse,
    summary="Follow a job live (server-sent events)",
    description=EVENTS_DESCRIPTION,
)
async def job_events(
    job_id: JobId,
    request: Request,
    last_event_id_header: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            ge=0,
            le=MAX_STORED_INT,
            description="The last epoch received; sent by `EventSource` when it reconnects.",
        ),
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_STORED_INT,
            description="Start after this epoch; the `Last-Event-ID` header wins.",
        ),
    ] = None,
) -> EventSourceResponse:
    sessions = read_sessions(request)

    def check_exists() -> None:
        with sessions() as session:
            queries.get_job(session, job_id)

    await run_in_threadpool(check_exists)
    after = last_event_id_header if last_event_id_header is not None else last_event_id
    return EventSourceResponse(_events(request, sessions, job_id, after or 0), ping=PING_SECONDS)
