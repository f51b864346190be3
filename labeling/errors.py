"""The one domain error type. The API maps it to a clean 4xx in one place
(`labeling.api.exceptions`); web views show its message."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    status_code = 400

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class ConflictError(ApplicationError):
    """The request was valid but the state moved on (e.g. the item was taken by someone else)."""

    status_code = 409


class NotPermitted(ApplicationError):
    """The user lacks the project role this operation needs."""

    status_code = 403


class ServiceUnavailable(ApplicationError):
    """A service the request needs (the task queue) cannot be reached; nothing was started."""

    status_code = 503


class NotFoundError(ApplicationError):
    """The object does not exist, or the caller may not know that it does (same message)."""

    status_code = 404
