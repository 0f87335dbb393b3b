"""Liveness and readiness probes."""

from typing import Any

from fastapi import APIRouter, Request

from service.api.responses import JSONResponse
from service.api.schemas import Health, Readiness
from service.db.migrate import head_revision, reachable_revision

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Any:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Database unreachable or not migrated"}},
    summary="The database is reachable and at the newest migration",
)
def ready(request: Request) -> Any:
    head = head_revision()
    try:
        revision = reachable_revision(request.app.state.engine)
        reachable = True
    except Exception:
        revision, reachable = None, False
    is_ready = reachable and revision == head
    body = {
        "status": "ready" if is_ready else "unavailable",
        "database": reachable,
        "schema_revision": revision,
        "head_revision": head,
    }
    return JSONResponse(body, status_code=200 if is_ready else 503)
