"""Quotes: the price of one trip under a tariff."""

from __future__ import annotations

import math

import msgspec

from lacak.errors import DistanceTooFar
from lacak.pricing.geo import haversine_km
from lacak.pricing.tariff import Insurance, Rate, Tariff

ROUND_TO = 500


class Quote(msgspec.Struct, frozen=True):
    service: str
    service_type: str
    vehicle: str
    distance_km: float
    shipping_cost: int
    admin_fee: int
    total_price: int
    estimation: str | None


def round_up(amount: float, step: int = ROUND_TO) -> int:
    return int(math.ceil(amount / step) * step)


def price(rate: Rate, distance_km: float) -> int:
    return round_up(max(rate.minimum, rate.base_fare + rate.per_km * distance_km))


def insurance_value(tier: Insurance, item_price: int) -> int:
    return max(tier.minimum, math.ceil(item_price * tier.rate))


def quote(
    tariff: Tariff,
    service: str,
    service_type: str,
    vehicle: str,
    origin: tuple[float, float],
    destination: tuple[float, float],
) -> Quote | None:
    """The quote, or None when the tariff has no such service/type/vehicle.

    Raises DistanceTooFar beyond the tariff's maximum distance.
    """
    rate = tariff.rate(service, service_type, vehicle)
    if rate is None:
        return None
    km = haversine_km(*origin, *destination)
    if km > tariff.max_distance_km:
        raise DistanceTooFar()
    shipping = price(rate, km)
    return Quote(
        service=service,
        service_type=service_type,
        vehicle=vehicle,
        distance_km=km,
        shipping_cost=shipping,
        admin_fee=rate.admin_fee,
        total_price=shipping + rate.admin_fee,
        estimation=rate.estimation,
    )
