"""Prometheus metrics of the API process, the jobs and the workers."""

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client.exposition import choose_encoder

router = APIRouter(tags=["operations"])

EXPOSITION = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    operation_id="get_metrics",
    response_class=PlainTextResponse,
    summary="Metrics in the Prometheus text format",
    responses={
        200: {
            "description": "HTTP requests and latency of this process; jobs by status, "
            "queue depth, epochs trained and worker heartbeats, read from the database",
            "content": {"text/plain": EXPOSITION, "application/openmetrics-text": EXPOSITION},
        }
    },
)
def metrics(request: Request) -> Response:
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(request.app.state.metrics_registry), media_type=content_type)
