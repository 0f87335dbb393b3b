"""JSON responses serialized by orjson, which also writes NumPy arrays directly."""

from typing import Any

import orjson
from fastapi.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"
