"""Errors a chat model raises; each has a ``kind`` that accounting counts failures by."""

from __future__ import annotations


class ModelError(Exception):
    kind: str = "error"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class ModelRequestRejected(ModelError):
    """The server refused the request itself (400/401/403/404): retrying cannot help."""

    kind = "rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ModelUnavailable(ModelError):
    """Transient failures (429, 5xx, timeouts, resets, broken bodies) outlasted every retry."""

    kind = "unavailable"


class ModelOutputError(ModelError):
    """The reply arrived but cannot be used (bad JSON, schema mismatch, invalid tool call), even after repair."""

    kind = "invalid_output"
