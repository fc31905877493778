"""Tariffs: what a trip costs per service, service type and vehicle.

The defaults are realistic for Indonesian cities; an operator overrides any part of them
with a TOML file (`LACAK_TARIFF_FILE`), for example:

    max_distance_km = 40

    [rates.gosend.instant.motor]
    base_fare = 9500
    per_km = 2500
    minimum = 12000
    admin_fee = 1000
    estimation = "1-2 hours"

    [[insurances.gosend]]
    type = "silver"
    rate = 0.0025
    minimum = 500
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec

from lacak.errors import ConfigError

SERVICES = ("gosend", "grab_express", "borzo")
SERVICE_TYPES = ("instant", "sameday")
VEHICLES = ("motor", "mobil")


class Rate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base_fare: int
    per_km: int
    minimum: int
    admin_fee: int
    estimation: str | None = None


class Insurance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: str
    rate: float
    minimum: int = 0


class Tariff(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # rates[service][service_type][vehicle]
    rates: dict[str, dict[str, dict[str, Rate]]]
    insurances: dict[str, list[Insurance]] = {}
    max_distance_km: float = 40.0

    def rate(self, service: str, service_type: str, vehicle: str) -> Rate | None:
        return self.rates.get(service, {}).get(service_type, {}).get(vehicle)


def _rates(
    instant_motor: tuple[int, int, int],
    instant_car: tuple[int, int, int],
    sameday_motor: tuple[int, int, int],
    sameday_car: tuple[int, int, int],
) -> dict[str, dict[str, dict[str, Any]]]:
    def rate(t: tuple[int, int, int], estimation: str) -> dict[str, Any]:
        base, per_km, minimum = t
        return {
            "base_fare": base,
            "per_km": per_km,
            "minimum": minimum,
            "admin_fee": 1000,
            "estimation": estimation,
        }

    return {
        "instant": {
            "motor": rate(instant_motor, "1-2 hours"),
            "mobil": rate(instant_car, "1-2 hours"),
        },
        "sameday": {
            "motor": rate(sameday_motor, "6-8 hours"),
            "mobil": rate(sameday_car, "6-8 hours"),
        },
    }


_TIERS = [
    {"type": "silver", "rate": 0.0025, "minimum": 500},
    {"type": "gold", "rate": 0.005, "minimum": 1000},
]

DEFAULTS: dict[str, Any] = {
    "max_distance_km": 40.0,
    "rates": {
        "gosend": _rates(
            (9500, 2500, 12000), (25000, 4500, 35000), (8000, 1500, 15000), (20000, 3000, 40000)
        ),
        "grab_express": _rates(
            (10000, 2450, 12000), (26000, 4600, 36000), (8000, 1400, 14000), (20000, 3000, 38000)
        ),
        "borzo": _rates((9000, 2300, 11000), (24000, 4300, 33000), (7500, 1300, 13000), (19000, 2900, 36000)),
    },
    "insurances": {service: _TIERS for service in SERVICES},
}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_tariff(path: Path | None) -> Tariff:
    raw = DEFAULTS
    if path is not None:
        try:
            raw = _merge(DEFAULTS, tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read tariff file {path}: {exc}") from exc
    try:
        return msgspec.convert(raw, Tariff)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid tariff: {exc}") from exc
