"""The API's spec schemas tell the same story as the core's spec, which declares every
field's default and bounds once: the JSON Schema clients read shows them, and the API and
`RunSpec.from_dict` (the CLI, the worker) accept and refuse the same values at each bound."""

import json
import math
from dataclasses import MISSING, Field
from typing import Any

import jsonschema_rs
import pytest
from pydantic import BaseModel, ValidationError

from service.api.app import create_app
from service.api.schemas import NetworkSpecIn, TrainingSpecIn
from service.api.schemas.specs import PreprocessingSpecIn
from service.core import RunSpec, SpecError
from service.core.spec import Bounds, NetworkSpec, PreprocessingSpec, TrainingSpec, spec_fields

# core spec, API model, key in a job's body
SPECS: list[tuple[type, type[BaseModel], str]] = [
    (NetworkSpec, NetworkSpecIn, "network"),
    (TrainingSpec, TrainingSpecIn, "training"),
    (PreprocessingSpec, PreprocessingSpecIn, "preprocessing"),
]
FIELDS = [
    pytest.param(spec, model, part, declared, id=f"{part}.{name}")
    for spec, model, part in SPECS
    for name, declared in spec_fields(spec).items()
]
JSON_SCHEMA_BOUNDS = {
    "gt": "exclusiveMinimum",
    "ge": "minimum",
    "lt": "exclusiveMaximum",
    "le": "maximum",
}
NETWORK = {"layers": [2, 3, 1]}


def components() -> dict[str, Any]:
    schemas: dict[str, Any] = create_app().openapi()["components"]["schemas"]
    return schemas


COMPONENTS = components()


def property_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON Schema of the field's values: of the non-null option of a nullable field."""
    prop: dict[str, Any] = COMPONENTS[model.__name__]["properties"][name]
    options = [option for option in prop.get("anyOf", [prop]) if option != {"type": "null"}]
    assert len(options) == 1, prop
    return {**prop, **options[0]}


def value_bounds(declared: Field[Any], schema: dict[str, Any]) -> tuple[Bounds, dict[str, Any]]:
    """The core's bounds of one value (a list's item) and the JSON Schema that holds them."""
    return declared.metadata["bounds"], schema.get("items", schema)


def test_the_api_has_the_cores_fields_and_no_others() -> None:
    for spec, model, _ in SPECS:
        assert set(COMPONENTS[model.__name__]["properties"]) == set(spec_fields(spec))


@pytest.mark.parametrize(("spec", "model", "part", "declared"), FIELDS)
def test_the_json_schema_shows_the_cores_default_choices_and_bounds(
    spec: type, model: type[BaseModel], part: str, declared: Field[Any]
) -> None:
    component = COMPONENTS[model.__name__]
    schema = property_schema(model, declared.name)

    if declared.default is MISSING:
        assert declared.name in component["required"]
        assert "default" not in schema
    else:
        assert declared.name not in component.get("required", [])
        # FastAPI leaves `"default": null` out of the OpenAPI document.
        assert schema.get("default") == declared.default
    if "choices" in declared.metadata:
        assert schema["enum"] == list(declared.metadata["choices"])
    bounds, value_schema = value_bounds(declared, schema)
    shown = {
        key: value_schema[word] for key, word in JSON_SCHEMA_BOUNDS.items() if word in value_schema
    }
    assert shown == bounds.as_dict()
    assert not {"ge", "gt", "le", "lt"} & set(value_schema), "bounds JSON Schema does not know"
    length: Bounds | None = declared.metadata.get("length")
    if length is not None:
        assert (schema["minItems"], schema["maxItems"]) == (length.ge, length.le)


def edge_values(bounds: Bounds, integer: bool) -> list[tuple[Any, bool]]:
    """(value, valid) at each bound and the nearest values either side of it."""

    def step(value: float, up: bool) -> Any:
        if integer:
            return int(value) + (1 if up else -1)
        return math.nextafter(value, math.inf if up else -math.inf)

    cases: list[tuple[Any, bool]] = []
    for name, bound in bounds.as_dict().items():
        at = int(bound) if integer else float(bound)
        lower_is_in = name in ("lt", "le")
        cases += [
            (at, name in ("ge", "le")),
            (step(bound, up=False), lower_is_in),
            (step(bound, up=True), not lower_is_in),
        ]
    return cases


def body_with(part: str, name: str, value: Any) -> dict[str, Any]:
    """A job's spec with one field set; for `layers`, a hidden width or the list's length."""
    if part == "network":
        return {"network": {**NETWORK, name: value}}
    return {"network": NETWORK, part: {name: value}}


def api_accepts(spec_body: dict[str, Any]) -> bool:
    try:
        for _, model, part in SPECS:
            model.model_validate_json(json.dumps(spec_body.get(part, {})))
    except ValidationError:
        return False
    return True


def schema_accepts(spec_body: dict[str, Any]) -> bool:
    return all(
        jsonschema_rs.validator_for(COMPONENTS[model.__name__]).is_valid(spec_body.get(part, {}))
        for _, model, part in SPECS
    )


def core_accepts(spec_body: dict[str, Any]) -> bool:
    try:
        RunSpec.from_dict(json.loads(json.dumps(spec_body)))
    except SpecError:
        return False
    return True


def cases_of(declared: Field[Any]) -> list[tuple[Any, bool]]:
    """(body value, valid) for a field: a value outside its choices, at and beyond every
    bound, and null. (Each choice alone need not be valid: softmax needs two outputs.)"""
    nullable = declared.type == int | None
    integer = declared.type in (int, int | None, tuple[int, ...])
    cases: list[tuple[Any, bool]] = [(None, nullable)]
    bounds: Bounds = declared.metadata["bounds"]
    if declared.name == "layers":
        cases = [([2, width, 1], valid) for width, valid in edge_values(bounds, integer)]
        length: Bounds = declared.metadata["length"]
        cases += [([2] * int(n), valid) for n, valid in edge_values(length, True)]
    else:
        cases += edge_values(bounds, integer)
    choices = declared.metadata.get("choices")
    if choices is not None:
        cases.append(("not-a-choice", False))
    return cases


@pytest.mark.parametrize(("spec", "model", "part", "declared"), FIELDS)
def test_the_api_and_the_core_agree_at_every_bound(
    spec: type, model: type[BaseModel], part: str, declared: Field[Any]
) -> None:
    answers = []
    for value, valid in cases_of(declared):
        spec_body = body_with(part, declared.name, value)
        answers.append(
            (
                value,
                valid,
                schema_accepts(spec_body),
                api_accepts(spec_body),
                core_accepts(spec_body),
            )
        )

    assert [a for a in answers if not a[1] == a[2] == a[3] == a[4]] == [], (
        "(value, expected, JSON Schema, API, core)"
    )
