"""Request limits: the body size, enforced on the stream rather than trusted from
Content-Length, the size of a network a request may make the service build, and the
work and answer size of a prediction."""

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import domain_problem, request_path
from service.config import Settings
from service.core import NetworkSpec
from service.errors import Invalid, TooLarge


def check_parameter_count(settings: Settings, network: NetworkSpec) -> None:
    """Refuse a network above `max_parameters` before any of its arrays is allocated."""
    parameters = network.n_parameters
    if parameters > settings.max_parameters:
        raise Invalid(
            f"network has {parameters} parameters; the limit is {settings.max_parameters} "
            "(BACKPROP_MAX_PARAMETERS)",
            [{"loc": ["body", "network", "layers"], "msg": "model too large"}],
        )


def check_prediction_size(
    settings: Settings, network: NetworkSpec, n_rows: int, field: str = "inputs"
) -> None:
    """Refuse predictions whose work (rows x parameters) or answer (rows x outputs) is
    above the limits: a body of small rows can ask a wide model for gigabytes of outputs.
    `field` names where the rows came from (an evaluation's `dataset_id`)."""
    work = n_rows * network.n_parameters
    if work > settings.max_predict_row_parameters:
        rows = settings.max_predict_row_parameters // network.n_parameters
        raise Invalid(
            f"{n_rows} rows x {network.n_parameters} parameters = {work} exceed the limit "
            f"of {settings.max_predict_row_parameters} (BACKPROP_MAX_PREDICT_ROW_PARAMETERS)",
            [{"loc": ["body", field], "msg": f"at most {rows} rows for this model"}],
        )
    outputs = n_rows * network.n_outputs
    if outputs > settings.max_predict_outputs:
        rows = settings.max_predict_outputs // network.n_outputs
        raise Invalid(
            f"{n_rows} rows x {network.n_outputs} outputs = {outputs} exceed the limit "
            f"of {settings.max_predict_outputs} (BACKPROP_MAX_PREDICT_OUTPUTS)",
            [{"loc": ["body", field], "msg": f"at most {rows} rows for this model"}],
        )


# Routes whose bodies are files, limited by `max_upload_bytes` instead of `max_body_bytes`:
# a CSV dataset, a model file.
UPLOAD_PATHS = re.compile(r"/v1/datasets/csv|/v1/models/[^/]+/versions")


class BodySizeLimit:
    """Refuses bodies above `max_bytes` (`max_upload_bytes` on the upload routes) with 413
    without reading them whole, and closes the connection after any answer sent before
    the body was read to its end (a 413 on the stream, a 404, a 401): otherwise the
    server would drain the rest of the body, however long, to reuse the connection."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_bytes if max_upload_bytes is None else max_upload_bytes

    def _limit(self, scope: Scope) -> tuple[int, str]:
        """The byte limit for this request's route, and the setting that sets it."""
        if UPLOAD_PATHS.fullmatch(scope["path"]):
            return self.max_upload_bytes, "BACKPROP_MAX_UPLOAD_BYTES"
        return self.max_bytes, "BACKPROP_MAX_BODY_BYTES"

    def _too_large(self, scope: Scope) -> TooLarge:
        limit, setting = self._limit(scope)
        return TooLarge(f"request body is larger than the limit of {limit} bytes ({setting})")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, _ = self._limit(scope)
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > max_bytes:
                    await self._refuse(scope, receive, send)
                    return
                has_body = value.strip(b"0") != b""
            elif name == b"transfer-encoding":
                has_body = True
        received = 0
        body_pending = has_body
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, body_pending, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    refused = True
                    raise self._too_large(scope)
                body_pending = message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            if refused:
                # The app's answer to the interrupted read is replaced: FastAPI turns any
                # error but its own HTTPException into a 400 while it reads a body.
                if message["type"] == "http.response.start":
                    await self._refuse(scope, receive, send)
                return
            if message["type"] == "http.response.start" and body_pending:
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, counting_receive, guarded_send if has_body else send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = self._too_large(scope)
        # Sent from outside the exception handlers: the problem they write for the error.
        response = domain_problem(error, request_path(scope))
        # Tell the client we will not read the rest of its body.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
