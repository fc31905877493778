"""Distances and routes on the earth's surface."""

from __future__ import annotations

import random
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


def city_route_points(lat1: float, long1: float, lat2: float, long2: float) -> list[tuple[float, float]]:
    """A plausible street route from one point to another, the same every time for the same ends.

    City streets rarely run straight at the destination: the route is a staircase of alternating
    north-south and east-west stretches (a street grid), each corner nudged a little off the
    grid, which makes it about 1.4 times the straight line, like a real road network. The jitter is
    seeded from the coordinates, so an order's route never changes between calls or processes.
    """
    start, end = (lat1, long1), (lat2, long2)
    km = haversine_km(lat1, long1, lat2, long2)
    if km < 0.05:  # same block: nothing to turn around
        return [start, end]
    rng = random.Random(f"route:{lat1:.5f},{long1:.5f}:{lat2:.5f},{long2:.5f}")
    stretches = max(2, min(8, round(km / 1.5) + 1))
    cuts = sorted(rng.uniform(0.08, 0.92) for _ in range(stretches - 1))
    ends, delta = (lat1, long1), (lat2 - lat1, long2 - long1)
    wobble = 0.04 * max(abs(delta[0]), abs(delta[1]))  # corners sit ~4% off the ideal grid
    axis = rng.randrange(2)  # 0: the first stretch runs north-south, 1: east-west
    here = [lat1, long1]
    points = [start]
    for cut in cuts:
        for _ in range(2):  # one stretch along each axis per cut: a corner, then the next street
            here[axis] = ends[axis] + cut * delta[axis] + rng.uniform(-wobble, wobble)
            here[1 - axis] += rng.uniform(-wobble, wobble) / 4  # streets are never quite straight
            points.append((here[0], here[1]))
            axis = 1 - axis
    here[axis] = end[axis]  # the last street up to the destination's cross street
    points += [(here[0], here[1]), end]
    return points


def city_route(lat1: float, long1: float, lat2: float, long2: float) -> str:
    """`city_route_points`, encoded as a precision-5 polyline (the pickup response's `poly_line`)."""
    encoded: str = polyline.encode(city_route_points(lat1, long1, lat2, long2), 5)
    return encoded
