"""Providers by name, built on first use from configuration."""

from __future__ import annotations

import importlib
from typing import Protocol

from lacak.couriers.base import Provider
from lacak.couriers.deps import CourierDeps
from lacak.errors import ConfigError
from lacak.jobs.runner import Handler

# provider name → module exposing `build(deps) -> Provider` (and optionally `handlers(deps)`)
MODULES = {
    "simulator": "lacak.couriers.simulator",
    "fleet": "lacak.couriers.fleet",
    "gosend": "lacak.couriers.gosend",
    "grab_express": "lacak.couriers.grab_express",
    "borzo": "lacak.couriers.borzo",
}


class ProviderModule(Protocol):
    def build(self, deps: CourierDeps) -> Provider: ...


class Providers:
    def __init__(self, deps: CourierDeps) -> None:
        self.deps = deps
        self._built: dict[str, Provider] = {}

    def get(self, name: str) -> Provider:
        provider = self._built.get(name)
        if provider is None:
            if name not in MODULES:
                raise ConfigError(f"unknown courier provider {name!r}")
            module: ProviderModule = importlib.import_module(MODULES[name])
            provider = module.build(self.deps)
            self._built[name] = provider
        return provider

    def extra_handlers(self) -> list[Handler]:
        """Task handlers that providers bring (the simulator's steps), for the providers in use.

        The simulator's are always loaded: orders booked with it before a configuration change
        still have steps to run.
        """
        out: list[Handler] = []
        in_use = {"simulator", *self.deps.settings.couriers.providers.values()}
        for name in sorted(in_use):
            module = importlib.import_module(MODULES[name])
            make = getattr(module, "handlers", None)
            if make is not None:
                out.extend(make(self.deps, self))
        return out

    async def close(self) -> None:
        for provider in self._built.values():
            close = getattr(provider, "close", None)
            if close is not None:
                await close()
