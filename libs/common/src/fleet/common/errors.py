"""The platform's exception hierarchy and its RFC 9457 problem+json rendering.

Use cases raise these; the app factory turns each into a problem document with the right status.
Nothing else reaches the client: unknown exceptions become a bare 500 with no stack trace.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://fleet.dev/problems/"


class FleetError(Exception):
    """Base of every error a client may see. `status` and `title` shape the problem document."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class BadRequestError(FleetError):
    status = 400
    title = "Bad Request"
    slug = "bad-request"


class UnauthorizedError(FleetError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class ForbiddenError(FleetError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFoundError(FleetError):
    status = 404
    title = "Not Found"
    slug = "not-found"


class ConflictError(FleetError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class PayloadTooLargeError(FleetError):
    status = 413
    title = "Payload Too Large"
    slug = "payload-too-large"


class InvalidInputError(FleetError):
    """A request that is well-formed but violates a rule; `field` names the culprit."""

    status = 422
    title = "Unprocessable Content"
    slug = "validation"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        loc = ["body", field] if field else ["body"]
        super().__init__(detail, errors=[{"loc": loc, "msg": detail}])


class ServiceUnavailableError(FleetError):
    status = 503
    title = "Service Unavailable"
    slug = "unavailable"


class OverloadedError(ServiceUnavailableError):
    """Work refused because the service is past its capacity; `retry_after_s` says when to retry
    (sent as the `Retry-After` header too)."""

    slug = "overloaded"

    def __init__(self, detail: str, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build an RFC 9457 problem document."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return body
