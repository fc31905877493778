"""The KiriminAja envelope, and the one place where errors become HTTP responses.

Business outcomes are HTTP 200 whatever they say (every official SDK throws the body away
on a non-2xx), so only transport-level problems get another status.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.responses import Response

from lacak import errors

log = logging.getLogger("lacak.http")
_encode = msgspec.json.Encoder().encode

JSON = "application/json"


class HTTPProblem(Exception):
    """A transport-level failure with its own status (bad JSON, body too large, …)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def body(status: bool, text: str, code: int | None, method: str | None, result: Any) -> bytes:
    return _encode({"status": status, "text": text, "code": code, "method": method, "result": result})


def ok(
    result: Any,
    *,
    text: str = "success",
    code: int | None = 0,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(body(True, text, code, method, result), 200, headers, JSON)


def fail(text: str, code: int, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body(False, text, code, None, None), status, headers, JSON)


def error_response(exc: BaseException) -> Response:
    match exc:
        case errors.ValidationError():
            return fail(exc.message, 422)
        case errors.DomainError():
            return fail(exc.message, 2)
        case errors.AuthError():
            return fail(exc.message, 401, status=401, headers={"WWW-Authenticate": "Bearer"})
        case HTTPProblem():
            return fail(exc.text, exc.status, status=exc.status)
        case errors.DatabaseUnavailable():
            log.error("database unavailable", exc_info=exc)
            return fail("service unavailable, try again", 503, status=503, headers={"Retry-After": "5"})
        case _:
            log.error("unhandled error", exc_info=exc)
            return fail("internal server error", 500, status=500)
