"""Distances and routes on the earth's surface."""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

import polyline

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, long1: float, lat2: float, long2: float) -> float:
    p1, p2 = radians(lat1), radians(lat2)
    dp, dl = p2 - p1, radians(long2 - long1)
    a = sin(dp / 2) ** 2 + cos(p1) * cos(p2) * sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(sqrt(a))


def straight_route(lat1: float, long1: float, lat2: float, long2: float) -> str:
    """The route until a courier reports a real one: origin to destination, precision 5."""
    encoded: str = polyline.encode([(lat1, long1), (lat2, long2)], 5)
    return encoded
