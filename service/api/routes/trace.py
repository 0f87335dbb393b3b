"""One backprop step with every intermediate value: the teaching endpoint."""

from typing import Any

from fastapi import APIRouter

from service.api.deps import SettingsDep
from service.api.limits import check_parameter_count
from service.api.problems import problem_responses
from service.api.schemas import TraceRequest, TraceResponse
from service.core import NetworkSpec, Parameters, trace_step

router = APIRouter(prefix="/v1", tags=["teaching"])


@router.post(
    "/trace",
    operation_id="trace_step",
    response_model=TraceResponse,
    responses=problem_responses(400, 413, 422),
    summary="Trace one backprop step",
    description="Runs one plain-SGD step of `network` from explicit `parameters` on one "
    "sample and returns the aggregates, activations, output error, deltas, gradients and "
    "updated parameters. The example is the notebook's first step.",
)
def trace(body: TraceRequest, settings: SettingsDep) -> Any:
    network = NetworkSpec.from_dict(body.network.model_dump())
    # Before the parameters are read: they are built as zeros of the network's full size.
    check_parameter_count(settings, network)
    parameters = Parameters.from_layers(network.layers, body.parameters.model_dump())
    return trace_step(
        network,
        parameters,
        body.input,
        body.target,
        loss=body.loss,
        learning_rate=body.learning_rate,
        update_rule=body.update_rule,
    )
