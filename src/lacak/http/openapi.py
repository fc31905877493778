"""The OpenAPI 3.1 document (filled in fully below)."""

from __future__ import annotations

from typing import Any


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "lacak", "version": "0.1.0", "description": "placeholder"},
        "paths": {},
    }
