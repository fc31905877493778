"""Entry point for ASGI servers: `uvicorn --factory lacak.http.asgi:app` (or granian)."""

from __future__ import annotations

from starlette.applications import Starlette

from lacak import logs
from lacak.http.app import create_app
from lacak.settings import Settings


def app() -> Starlette:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    return create_app(settings)
