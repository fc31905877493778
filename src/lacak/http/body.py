"""Reading request bodies: a size limit, JSON parsing, and msgspec's errors in Laravel words."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from starlette.requests import Request

from lacak.errors import ValidationError
from lacak.http.envelope import HTTPProblem

MAX_BODY = 1024 * 1024
T = TypeVar("T")

_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_AT = re.compile(r" - at `([^`]+)`$")
_KINDS = {
    "int": "an integer",
    "float": "a number",
    "int | float": "a number",
    "str": "a string",
    "array": "an array",
    "object": "an object",
    "array | str | null": "an array",
    "int | float | null": "a number",
    "str | null": "a string",
}


def _path(raw: str) -> str:
    """`$.packages[0].item` → `packages.0.item`."""
    return re.sub(r"\[(\d+)\]", r".\1", raw.removeprefix("$")).lstrip(".")


def translate(exc: msgspec.ValidationError) -> ValidationError:
    message = str(exc)
    at = _AT.search(message)
    where = _path(at.group(1)) if at else ""
    if m := _MISSING.search(message):
        field = f"{where}.{m.group(1)}" if where else m.group(1)
        return ValidationError(f"The {field} field is required.", field)
    if not where:
        return ValidationError("The request body must be a JSON object.", None)
    if m := _EXPECTED.search(message):
        if m.group(2) == "null":
            return ValidationError(f"The {where} field is required.", where)
        kind = _KINDS.get(m.group(1), m.group(1).split(" ")[0])
        return ValidationError(f"The {where} field must be {kind}.", where)
    return ValidationError(f"The {where} field is invalid.", where)


async def read(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPProblem(413, "request body too large (limit 1 MiB)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, "request body too large (limit 1 MiB)")
        chunks.append(chunk)
    return b"".join(chunks)


async def decode(request: Request, kind: type[T]) -> T:
    raw = await read(request)
    if not raw.strip():
        raw = b"{}"
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise translate(exc) from None
    except msgspec.DecodeError:
        raise HTTPProblem(400, "request body is not valid JSON") from None
