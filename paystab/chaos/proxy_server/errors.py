"""Errors of the Toxiproxy-compatible control API, with Toxiproxy's messages and codes.

Toxiproxy answers every failed request with ``{"error": <message>, "status": <code>}`` and
the same HTTP status; clients (the Go, Ruby and Python ones) match on the status code, and
people grep for the messages. The factories below keep both identical to Toxiproxy v2.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the control API refuses: ``message`` and the HTTP ``status`` to answer."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def body(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


def bad_request_body(detail: str) -> ApiError:
    return ApiError(f"bad request body: {detail}", 400)


def missing_field(field: str) -> ApiError:
    return ApiError(f"missing required field: {field}", 400)


def proxy_not_found() -> ApiError:
    return ApiError("proxy not found", 404)


def proxy_already_exists() -> ApiError:
    return ApiError("proxy already exists", 409)


def invalid_stream() -> ApiError:
    return ApiError("stream was invalid, can be either upstream or downstream", 400)


def invalid_toxic_type() -> ApiError:
    return ApiError("invalid toxic type", 400)


def toxic_already_exists() -> ApiError:
    return ApiError("toxic already exists", 409)


def toxic_not_found() -> ApiError:
    return ApiError("toxic not found", 404)


def listen_failed(address: str, reason: str) -> ApiError:
    # Toxiproxy passes the bind error through as an untyped error, which it answers with 500.
    return ApiError(f"listen tcp {address}: {reason}", 500)
