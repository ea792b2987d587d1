"""Errors the API answers with: an HTTP status, a stable slug and details.

Every error leaves as JSON `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers: dict[str, str] = {}

    def with_code(self, code: str) -> AppError:
        """The same error under a more precise slug."""
        self.code = code
        return self


class NotFound(AppError):
    status = 404
    code = "not_found"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Conflict(AppError):
    status = 409
    code = "conflict"


class DuplicateContact(Conflict):
    code = "duplicate_contact"


class InvalidInput(AppError):
    """Domain validation of one field, answered like pydantic's 422."""

    status = 422
    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}", details={"fields": [{"field": field, "message": message}]}
        )


class TooManyRequests(AppError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


class Unavailable(AppError):
    status = 503
    code = "unavailable"
