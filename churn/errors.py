"""The one JSON error format every route answers with (README, Errors)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A client mistake, answered as a JSON error with ``status``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        problems: list | None = None,
        headers: list[tuple[str, str]] | None = None,
    ):
        super().__init__(message)
        self.status, self.error, self.message, self.problems = status, error, message, problems
        self.headers = headers or []  # extra response headers, e.g. a 401's WWW-Authenticate

    def payload(self) -> dict[str, Any]:
        return error_payload(self.error, self.message, self.problems)


def error_payload(error: str, message: str, problems: list | None = None) -> dict[str, Any]:
    """``{"error": ..., "message": ...}`` plus ``problems`` (field, message, index) when known."""
    body: dict[str, Any] = {"error": error, "message": message}
    if problems is not None:
        body["problems"] = problems
    return body


INTERNAL_ERROR = error_payload("internal_error", "unexpected server error")
