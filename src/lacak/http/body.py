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
    "str": "a string",
    "bool": "a boolean",
    "array": "an array",
    "object": "an object",
}
_NUL_ESCAPE = b"\\u0000"


def _path(raw: str) -> str:
    """`$.packages[0].item` → `packages.0.item`."""
    return re.sub(r"\[(\d+)\]", r".\1", raw.removeprefix("$")).lstrip(".")


def _kind(expected: str) -> str:
    """msgspec's `str | array | null` → `a string or an array` (null is "required", not a kind)."""
    names = [n for n in expected.split(" | ") if n != "null"]
    if set(names) == {"int", "float"}:
        return "a number"
    return " or ".join(_KINDS.get(n, f"a valid {n}") for n in names)


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
        return ValidationError(f"The {where} field must be {_kind(m.group(1))}.", where)
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
        value = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        # msgspec stops at the first type error, possibly before reaching a syntax error
        # further on (`{} garbage`): malformed JSON is a 400 whatever its shape.
        _syntax_check(raw)
        raise translate(exc) from None
    except msgspec.DecodeError:
        raise _not_json() from None
    if _NUL_ESCAPE in raw:  # cheap pre-filter; PostgreSQL text cannot hold NUL
        field = _nul_field(value, "")
        if field is not None:
            raise ValidationError(f"The {field} format is invalid.", field)
    return value


def _not_json() -> HTTPProblem:
    return HTTPProblem(400, "request body is not valid JSON")


def _syntax_check(raw: bytes) -> None:
    try:
        msgspec.json.decode(raw)
    except msgspec.ValidationError:
        return  # well-formed, only out of msgspec's range (`1e400`)
    except msgspec.DecodeError:
        raise _not_json() from None


def _nul_field(value: object, path: str) -> str | None:
    """The first decoded field (not unknown, ignored ones) whose string holds a NUL."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, msgspec.Struct):
        named = ((name, getattr(value, name)) for name in value.__struct_fields__)
    elif isinstance(value, list | tuple):
        named = ((str(i), item) for i, item in enumerate(value))
    else:
        return None
    for name, item in named:
        found = _nul_field(item, f"{path}.{name}" if path else name)
        if found is not None:
            return found
    return None
