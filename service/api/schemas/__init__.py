"""Request and response bodies: `XCreate` in, `XRead` out, `Page[X]` for lists; one module
per resource.

Choices (activations, losses, ...) come from the core's tables and the specs' defaults and
bounds from the core's spec (`service.core.spec`), so a change there shows here and on the
OpenAPI page.
"""

from service.api.schemas.common import (
    ID_PATTERN,
    MAX_STORED_INT,
    NAME_PATTERN,
    TEXT_PATTERN,
    DType,
    GeneratorKind,
    HiddenActivation,
    Initializer,
    Input,
    Integer,
    Loss,
    Name,
    OneOf,
    OptimizerName,
    Output,
    OutputActivation,
    Page,
    Row,
    Rows,
    ScheduleName,
    UpdateRule,
)
from service.api.schemas.datasets import (
    DatasetCreate,
    DatasetFromGenerator,
    DatasetFromRows,
    DatasetName,
    DatasetRead,
    GeneratorSpec,
    SampleRead,
)
from service.api.schemas.evaluation import (
    ConfusionMatrix,
    EvaluateRequest,
    EvaluateResponse,
    JobEvaluateRequest,
)
from service.api.schemas.grids import (
    GridRequest,
    GridResponse,
    JobGridRequest,
)
from service.api.schemas.jobs import (
    HistoryPoint,
    JobCreate,
    JobRead,
    JobRetry,
    SnapshotRead,
    SnapshotSummary,
)
from service.api.schemas.metadata import (
    Description,
    MetadataPatch,
    Tags,
)
from service.api.schemas.models import (
    AliasSet,
    ModelRead,
    ModelVersionRead,
)
from service.api.schemas.predictions import (
    ClassName,
    JobPredictRequest,
    ModelRef,
    PredictRequest,
    PredictResponse,
)
from service.api.schemas.problems import (
    ErrorItem,
    Health,
    Problem,
    Readiness,
)
from service.api.schemas.specs import (
    EXAMPLE_NETWORK,
    EXAMPLE_TRAINING,
    LayerParameters,
    LayerParametersRead,
    NetworkSpecIn,
    ParametersIn,
    TrainingSpecIn,
)
from service.api.schemas.trace import (
    BackwardValues,
    ForwardValues,
    TraceRequest,
    TraceResponse,
    UpdatedParameters,
)

__all__ = [
    "EXAMPLE_NETWORK",
    "EXAMPLE_TRAINING",
    "ID_PATTERN",
    "MAX_STORED_INT",
    "NAME_PATTERN",
    "TEXT_PATTERN",
    "AliasSet",
    "BackwardValues",
    "ClassName",
    "ConfusionMatrix",
    "DType",
    "DatasetCreate",
    "DatasetFromGenerator",
    "DatasetFromRows",
    "DatasetName",
    "DatasetRead",
    "Description",
    "ErrorItem",
    "EvaluateRequest",
    "EvaluateResponse",
    "ForwardValues",
    "GeneratorKind",
    "GeneratorSpec",
    "GridRequest",
    "GridResponse",
    "Health",
    "HiddenActivation",
    "HistoryPoint",
    "Initializer",
    "Input",
    "Integer",
    "JobCreate",
    "JobEvaluateRequest",
    "JobGridRequest",
    "JobPredictRequest",
    "JobRead",
    "JobRetry",
    "LayerParameters",
    "LayerParametersRead",
    "Loss",
    "MetadataPatch",
    "ModelRead",
    "ModelRef",
    "ModelVersionRead",
    "Name",
    "NetworkSpecIn",
    "OneOf",
    "OptimizerName",
    "Output",
    "OutputActivation",
    "Page",
    "ParametersIn",
    "PredictRequest",
    "PredictResponse",
    "Problem",
    "Readiness",
    "Row",
    "Rows",
    "SampleRead",
    "ScheduleName",
    "SnapshotRead",
    "SnapshotSummary",
    "Tags",
    "TraceRequest",
    "TraceResponse",
    "TrainingSpecIn",
    "UpdateRule",
    "UpdatedParameters",
]
