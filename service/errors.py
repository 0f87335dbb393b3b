"""Domain errors: raised by queries and jobs, turned into problem+json by the API."""

from typing import Any, ClassVar, TypedDict


class FieldError(TypedDict):
    """One validation problem: where it is (`loc`) and what is wrong (`msg`)."""

    loc: list[str | int]
    msg: str


class DomainError(Exception):
    """Base of every error a client can cause; carries its HTTP status and title."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors

    def to_problem(self) -> dict[str, Any]:
        """Return the body of an `application/problem+json` response (without `type`)."""
        problem: dict[str, Any] = {
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors is not None:
            problem["errors"] = self.errors
        return problem


class NotFound(DomainError):
    """The addressed resource does not exist."""

    status = 404
    title = "Not found"


class Conflict(DomainError):
    """The action does not fit the resource's current state."""

    status = 409
    title = "Conflict"


class TooLarge(DomainError):
    """The request body is larger than the service accepts."""

    status = 413
    title = "Payload too large"


class Invalid(DomainError):
    """The request is well-formed JSON but its content is wrong."""

    status = 422
    title = "Invalid request"


class Busy(DomainError):
    """The service is at a limit of concurrent work; the request may succeed later."""

    status = 429
    title = "Too many requests"
