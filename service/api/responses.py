"""JSON responses serialized by orjson, which also writes NumPy arrays directly."""

from typing import Any

import orjson
from fastapi import responses


# A JSONResponse subclass: FastAPI documents a route's `response_model` only for those
# (for other response classes the OpenAPI schema says the body is a string).
class JSONResponse(responses.JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"
