"""The items of a dataset's rows as `GET /v1/datasets/{dataset_id}/rows` pages them."""

from pydantic import ConfigDict

from service.api.schemas import Output


class SampleRead(Output):
    """One row of a dataset: its position, its inputs and its targets."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"index": 0, "inputs": [1, 1], "targets": [1]}]}
    )

    index: int
    inputs: list[float]
    targets: list[float]
