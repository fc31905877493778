"""Tariffs and quotes, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from lacak.errors import ConfigError, DistanceTooFar
from lacak.pricing.geo import haversine_km, straight_route
from lacak.pricing.quote import quote, round_up
from lacak.pricing.tariff import SERVICE_TYPES, SERVICES, VEHICLES, load_tariff

YOGYA_A = (-7.8032616, 110.350244)
YOGYA_B = (-7.7349434, 110.405355)
JAKARTA = (-6.2088, 106.8456)


def test_seed_trip_costs_what_the_seed_says() -> None:
    # The seed's tracking sample: shipping 34000 + admin 1000 = 35000 for this very trip.
    q = quote(load_tariff(None), "gosend", "instant", "motor", YOGYA_A, YOGYA_B)
    assert q is not None
    assert (q.shipping_cost, q.admin_fee, q.total_price) == (34000, 1000, 35000)
    assert 9.5 < q.distance_km < 10


def test_every_default_combination_is_priced_and_rounded_to_500() -> None:
    tariff = load_tariff(None)
    for service in SERVICES:
        for service_type in SERVICE_TYPES:
            for vehicle in VEHICLES:
                q = quote(tariff, service, service_type, vehicle, YOGYA_A, YOGYA_B)
                assert q is not None, (service, service_type, vehicle)
                assert q.shipping_cost % 500 == 0
                assert q.total_price == q.shipping_cost + q.admin_fee


def test_car_costs_more_than_motorbike() -> None:
    tariff = load_tariff(None)
    motor = quote(tariff, "borzo", "instant", "motor", YOGYA_A, YOGYA_B)
    car = quote(tariff, "borzo", "instant", "mobil", YOGYA_A, YOGYA_B)
    assert motor is not None and car is not None
    assert car.shipping_cost > motor.shipping_cost


def test_minimum_fare_applies_to_tiny_trips() -> None:
    q = quote(load_tariff(None), "gosend", "instant", "motor", YOGYA_A, YOGYA_A)
    assert q is not None and q.shipping_cost == 12000


def test_over_40_km_is_refused() -> None:
    with pytest.raises(DistanceTooFar):
        quote(load_tariff(None), "gosend", "instant", "motor", YOGYA_A, JAKARTA)


def test_rounding() -> None:
    assert [round_up(x) for x in (1, 500, 500.01, 33800)] == [500, 500, 1000, 34000]


def test_haversine_known_distance() -> None:
    # Jakarta (Monas) to Bandung (Gedung Sate) is about 116 km as the crow flies.
    assert 110 < haversine_km(-6.1754, 106.8272, -6.9025, 107.6188) < 120


def test_route_is_an_encoded_polyline_of_both_ends() -> None:
    import polyline

    points = polyline.decode(straight_route(*YOGYA_A, *YOGYA_B), 5)
    assert points == [
        (round(YOGYA_A[0], 5), round(YOGYA_A[1], 5)),
        (round(YOGYA_B[0], 5), round(YOGYA_B[1], 5)),
    ]


def test_toml_override_changes_one_rate_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "tariff.toml"
    path.write_text(
        "max_distance_km = 60\n"
        "[rates.gosend.instant.motor]\nbase_fare = 1000\nper_km = 1000\nminimum = 0\nadmin_fee = 0\n"
    )
    tariff = load_tariff(path)
    q = quote(tariff, "gosend", "instant", "motor", YOGYA_A, YOGYA_B)
    assert q is not None and q.shipping_cost == round_up(1000 + 1000 * q.distance_km)
    assert q.admin_fee == 0
    default = quote(tariff, "grab_express", "instant", "motor", YOGYA_A, YOGYA_B)
    assert default is not None and default.admin_fee == 1000
    assert tariff.max_distance_km == 60


@pytest.mark.parametrize(
    "text",
    [
        "rates = 'nope'",
        "[rates.gosend.instant.motor]\nbase_fare = 'x'",
        "not toml ===",
        "[rates.gosend.instant.motor]\nsurprise = 1",
    ],
)
def test_bad_tariff_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "tariff.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_tariff(path)
