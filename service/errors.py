"""Domain errors: raised by queries and jobs, turned into problem+json by the API."""

from typing import ClassVar, TypedDict


class FieldError(TypedDict):
    """One validation problem: where it is (`loc`) and what is wrong (`msg`)."""

    loc: list[str | int]
    msg: str


class DomainError(Exception):
    """Base of every error a client can cause; carries its HTTP status (`service.api.problems`
    titles it)."""

    status: ClassVar[int] = 400

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class NotFound(DomainError):
    """The addressed resource does not exist."""

    status = 404


class Conflict(DomainError):
    """The action does not fit the resource's current state."""

    status = 409


class TooLarge(DomainError):
    """The request body is larger than the service accepts."""

    status = 413


class Invalid(DomainError):
    """The request is well-formed JSON but its content is wrong."""

    status = 422


class Busy(DomainError):
    """The service is at a limit of concurrent work; the request may succeed later."""

    status = 429


class NotAvailable(DomainError):
    """The service was installed without what this request needs (an optional extra)."""

    status = 501
