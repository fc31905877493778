"""Webhook bodies in both dialects, checked against the spec fixtures (webhooks.md).

Status strings, methods and numeric codes are typed in from the spec by hand rather than read
from `lacak.webhooks.dialects` or `lacak.orders.lifecycle`, so a wrong constant shows up here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from lacak.orders.models import Driver, Order, Payment, Place, State
from lacak.webhooks.dialects import DEFAULT, Dialect, render
from tests.support import FIXTURES

D24 = Dialect.KIRIMINAJA_2024
D25 = Dialect.KIRIMINAJA_2025
CREATED = datetime(2025, 8, 5, 6, 59, 31, tzinfo=UTC)
EVENT = datetime(2025, 8, 5, 7, 0, 5, 123456, tzinfo=UTC)
FINISHED = datetime(2025, 8, 5, 7, 30, tzinfo=UTC)
CANCELED = datetime(2025, 8, 5, 7, 10, tzinfo=UTC)
EVENT_ID = "msg_2fQZbq0YkVb4m7d1"
WIRE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
ORIGIN = Place("Arfian", "081280045616", "Wirobrajan", "pagar hijau", -7.8032616, 110.350244)
DESTINATION = Place("Sari", "081280045617", "Minomartani", "", -7.7349434, 110.405355)
DRIVER = Driver("Tono", "081200000001", "https://example.com/tono.jpg")
# The driver's photo is `image` on the wire.
DRIVER_JSON = {"name": "Tono", "phone": "081200000001", "image": "https://example.com/tono.jpg"}
PAYMENT = Payment(
    pk=5,
    merchant_id=3,
    payment_id="PID-1754377171",
    amount=30500,
    status_code=0,
    qr_content="000201010212",
    pay_time=datetime(2025, 8, 5, 6, 59, 40, tzinfo=UTC),
    created_at=CREATED,
)

# webhooks.md: KiriminAja's 2024 strings; states it has no string for keep their unified name.
STATUS_2024 = {
    "created": "created",
    "finding_driver": "finding_driver",
    "no_driver": "no_driver",
    "driver_assigned": "driver_assigned",
    "at_pickup": "at_pickup",
    "picked_up": "picked_up",
    "in_transit": "sent",
    "on_hold": "on_hold",
    "returning": "return",
    "delivered": "delivered",
    "returned": "returned",
    "cancelled": "cancel",
    "failed": "failed",
}
# webhooks.md: the 2025 method per event; "updated_packages" for changes KiriminAja never sends.
METHOD_2025 = {
    "created": "updated_packages",
    "finding_driver": "updated_packages",
    "no_driver": "updated_packages",
    "driver_assigned": "processed_packages",
    "at_pickup": "processed_packages",
    "picked_up": "shipped_packages",
    "in_transit": "shipped_packages",
    "on_hold": "updated_packages",
    "returning": "updated_packages",
    "delivered": "finished_packages",
    "returned": "returned_packages",
    "cancelled": "canceled_packages",
    "failed": "updated_packages",
}
# lifecycle.md: KiriminAja numeric package status.
KA_CODE = {
    "created": 100,
    "finding_driver": 105,
    "no_driver": 105,
    "driver_assigned": 105,
    "at_pickup": 105,
    "picked_up": 106,
    "in_transit": 106,
    "on_hold": 500,
    "returning": 301,
    "delivered": 200,
    "returned": 400,
    "cancelled": 300,
    "failed": 500,
}
ALL_STATES = [s.value for s in State]


def make_order(state: State | str, **over: Any) -> Order:
    """An order with every optional field filled, so no value hides behind a null."""
    fields: dict[str, Any] = dict(
        pk=7,
        merchant_id=3,
        order_id="BDI-1754377171060",
        payment_pk=5,
        service="gosend",
        service_type="instant",
        vehicle="motor",
        state=State(state),
        seq=9,
        origin=ORIGIN,
        destination=DESTINATION,
        item_name="Barang",
        item_description="Kue",
        item_price=20000,
        item_weight=2000,
        shipping_cost=34000,
        insurance=1500,
        admin_fee=0,
        total_price=35500,
        tracking_code="GK-11-3289048",
        driver=DRIVER,
        cancel_description="pembeli menolak",
        live_tracking_url="https://gjk.io/abcd",
        poly_line="_p~iF~ps|U_ulLnnqC_mqNvxq`@",
        created_at=CREATED,
        allocated_at=CREATED + timedelta(minutes=1),
        finished_at=FINISHED,
        canceled_at=CANCELED,
        updated_at=EVENT,
    )
    fields.update(over)
    return Order(**fields)


def body(
    dialect: Dialect,
    order: Order,
    *,
    payment: Payment | None = PAYMENT,
    live_url: str | None = None,
    event_time: datetime = EVENT,
) -> Any:
    raw = render(dialect, order, event_id=EVENT_ID, event_time=event_time, payment=payment, live_url=live_url)
    assert isinstance(raw, bytes)
    return json.loads(raw)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


FIX_2024 = fixture("webhook_update_instant_packages_2024.json")
FIX_2025 = fixture("webhook_shipped_packages_2025.json")


def per_order(dialect: Dialect, decoded: Any) -> dict[str, Any]:
    """The object `seq` and `event_id` are added to."""
    data: dict[str, Any] = decoded["data"] if dialect is D24 else decoded["data"][0]
    return data


def assert_shape(got: Any, want: Any, path: str = "$") -> None:
    """Same keys in the same order at every level; same JSON type wherever both are non-null."""
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        assert list(got) == list(want), path
        for key, value in want.items():
            assert_shape(got[key], value, f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list), path
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_shape(g, w, f"{path}[{i}]")
    elif want is not None and got is not None:
        assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"


def with_ids(want: Any, dialect: Dialect, seq: int) -> Any:
    """The fixture plus `seq` and `event_id` at the end of the per-order object."""
    want = json.loads(json.dumps(want))
    per_order(dialect, want).update(seq=seq, event_id=EVENT_ID)
    return want


def pairs(raw: bytes | str) -> Any:
    """JSON with objects as lists of pairs, so equality also compares key order."""
    return json.loads(raw, object_pairs_hook=list)


def test_dialect_names_and_default() -> None:
    assert [d.value for d in Dialect] == ["kiriminaja-2024", "kiriminaja-2025"]
    assert DEFAULT is D24


def test_tables_cover_every_state() -> None:
    assert set(STATUS_2024) == set(METHOD_2025) == set(KA_CODE) == set(ALL_STATES)


@pytest.mark.parametrize("state", ALL_STATES)
@pytest.mark.parametrize("dialect", list(Dialect))
def test_keys_order_and_types_match_the_fixture(dialect: Dialect, state: str) -> None:
    want = with_ids(FIX_2024 if dialect is D24 else FIX_2025, dialect, 9)
    got = body(dialect, make_order(state))
    assert_shape(got, want)
    assert list(per_order(dialect, got))[-2:] == ["seq", "event_id"]
    assert per_order(dialect, got)["seq"] == 9
    assert per_order(dialect, got)["event_id"] == EVENT_ID


@pytest.mark.parametrize("state", ALL_STATES)
def test_2024_method_and_status_per_state(state: str) -> None:
    got = body(D24, make_order(state))
    assert got["method"] == "update_instant_packages"
    assert got["data"]["status"] == STATUS_2024[state]


@pytest.mark.parametrize("state", ALL_STATES)
def test_2025_method_and_numeric_status_per_state(state: str) -> None:
    got = body(D25, make_order(state))
    assert got["method"] == METHOD_2025[state]
    assert got["packages"][0]["status"] == KA_CODE[state]


def test_2024_fixture_order_renders_exactly_the_fixture() -> None:
    order = make_order(
        "cancelled",
        order_id="NBL2-1704870212382",
        tracking_code="GK-11-3114100",
        driver=Driver("string", "string", "string"),
        shipping_cost=34000,
        live_tracking_url="http://gjk.io/abcd",
        item_weight=2000,
        insurance=None,
        poly_line="string of polyline",
        canceled_at=datetime(2024, 1, 10, 8, 18, 5, tzinfo=UTC),
        cancel_description=None,
        seq=3,
    )
    raw = render(
        D24,
        order,
        event_id=EVENT_ID,
        event_time=datetime(2024, 1, 10, 8, 21, 28, 301662, tzinfo=UTC),
        payment=PAYMENT,
    )
    assert pairs(raw) == pairs(json.dumps(with_ids(FIX_2024, D24, 3)))


def test_2025_fixture_order_renders_exactly_the_fixture() -> None:
    place = Place("Arfian", "081280045616", "Wirobrajan", "", -7.8032616, 110.350244)
    order = make_order(
        "picked_up",
        order_id="BDI-1754377171060",
        tracking_code="GK-11-3289048",
        created_at=datetime(2025, 8, 5, 6, 59, 31, tzinfo=UTC),
        live_tracking_url="https://example.invalid/t/abc",
        poly_line="_p~iF~ps|U_ulLnnqC_mqNvxq`@",
        origin=place,
        destination=Place("Arfian", "081280045616", "Minomartani", "", -7.7349434, 110.405355),
        driver=Driver(),
        finished_at=None,
        canceled_at=None,
        cancel_description=None,
        seq=4,
    )
    payment = Payment(
        pk=5, merchant_id=3, payment_id="PID-1754377171", amount=30500, status_code=0, created_at=CREATED
    )
    raw = render(
        D25,
        order,
        event_id=EVENT_ID,
        event_time=datetime(2025, 8, 5, 7, 0, 5, tzinfo=UTC),
        payment=payment,
    )
    assert pairs(raw) == pairs(json.dumps(with_ids(FIX_2025, D25, 4)))


def test_2024_values_come_from_the_order() -> None:
    data = body(D24, make_order("delivered"))["data"]
    assert data["order_id"] == "BDI-1754377171060"
    assert data["awb"] == "GK-11-3289048"
    assert data["driver"] == DRIVER_JSON
    assert data["shipping_price"] == 34000
    assert data["live_track_url"] == "https://gjk.io/abcd"
    assert data["detail"] == {"weight": 2000, "width": None, "height": None, "length": None}
    assert data["service"] == "gosend"
    assert data["service_name"] == "instant"
    assert data["poly_line"] == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    assert data["event_date"] == "2025-08-05T07:00:05.123456Z"
    service_name = body(D24, make_order("delivered", service_type="sameday"))["data"]["service_name"]
    assert service_name == "sameday"


def test_2024_unassigned_awb_and_empty_polyline_are_null() -> None:
    data = body(D24, make_order("finding_driver", tracking_code="", poly_line="", driver=Driver()))["data"]
    assert data["awb"] is None
    assert data["poly_line"] is None
    assert data["driver"] == {"name": None, "phone": None, "image": None}


def test_2024_insurance_is_the_premium_and_the_covered_value() -> None:
    insured = body(D24, make_order("delivered", insurance=1500, item_price=20000))["data"]
    assert (insured["insurance"], insured["insurance_amount"]) == (1500, 20000)
    plain = body(D24, make_order("delivered", insurance=None))["data"]
    assert (plain["insurance"], plain["insurance_amount"]) == (None, None)


# Per state, which 2024 fields are set: (cancel_date, cancel_reason, rejected_date, rejection_note).
SET_2024 = {
    "cancelled": (True, True, False, False),
    "no_driver": (False, True, False, False),
    "failed": (False, True, False, False),
    "returning": (False, False, True, True),
    "returned": (False, False, True, True),
}


@pytest.mark.parametrize("state", ALL_STATES)
def test_2024_cancel_and_rejection_fields_per_state(state: str) -> None:
    data = body(D24, make_order(state))["data"]
    cancel_date, cancel_reason, rejected_date, rejection_note = SET_2024.get(state, (False,) * 4)
    assert data["cancel_date"] == ("2025-08-05T07:10:00.000000Z" if cancel_date else None)
    assert data["cancel_reason"] == ("pembeli menolak" if cancel_reason else None)
    assert data["rejected_date"] == ("2025-08-05T07:00:05.123456Z" if rejected_date else None)
    assert data["rejection_note"] == ("pembeli menolak" if rejection_note else None)
    assert data["event_date"] == "2025-08-05T07:00:05.123456Z"


# Per state, the 2025 per-order times: which of shipped_at, finished_at, returned_at,
# rejected_at are set (to the event time, or the order's finished_at).
E, F = "2025-08-05T07:00:05.123456Z", "2025-08-05T07:30:00.000000Z"
TIMES_2025 = {
    "picked_up": (E, None, None, None),
    "in_transit": (E, None, None, None),
    "delivered": (None, F, None, None),
    "returning": (None, None, None, E),
    "returned": (None, None, F, E),
}
REASON_2025 = {"cancelled", "no_driver", "failed", "returning", "returned"}


@pytest.mark.parametrize("state", ALL_STATES)
def test_2025_times_and_reason_per_state(state: str) -> None:
    data = body(D25, make_order(state))["data"][0]
    got = (data["shipped_at"], data["finished_at"], data["returned_at"], data["rejected_at"])
    assert got == TIMES_2025.get(state, (None,) * 4)
    assert data["date"] == "2025-08-05T06:59:31.000000Z"
    assert data["reason"] == ("pembeli menolak" if state in REASON_2025 else None)


def test_2025_returned_without_finished_at_uses_the_event_time() -> None:
    data = body(D25, make_order("returned", finished_at=None))["data"][0]
    assert data["returned_at"] == "2025-08-05T07:00:05.123456Z"


def test_2025_values_come_from_the_order_and_payment() -> None:
    got = body(D25, make_order("driver_assigned"))
    assert got["data"][0]["order_id"] == "BDI-1754377171060"
    assert got["data"][0]["awb"] == "GK-11-3289048"
    assert got["payment"] == {
        "payment_id": "PID-1754377171",
        "amount": 30500,
        "status_code": 0,
        "qr_content": "000201010212",
        "pay_time": "2025-08-05T06:59:40.000000Z",
    }
    package = got["packages"][0]
    assert package["awb"] == "GK-11-3289048"
    assert package["order_id"] == "BDI-1754377171060"
    assert (package["service"], package["service_type"]) == ("gosend", "instant")
    assert package["live_tracking_url"] == "https://gjk.io/abcd"
    assert package["poly_line"] == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    assert package["origin"] == {
        "name": "Arfian",
        "address": "Wirobrajan",
        "phone": "081280045616",
        "latitude": -7.8032616,
        "longitude": 110.350244,
    }
    assert package["destination"] == {
        "name": "Sari",
        "address": "Minomartani",
        "phone": "081280045617",
        "latitude": -7.7349434,
        "longitude": 110.405355,
    }
    assert package["driver"] == DRIVER_JSON


def test_2025_unpaid_payment_keeps_its_numeric_code() -> None:
    unpaid = Payment(pk=5, merchant_id=3, payment_id="PID-1", amount=30500, status_code=9, created_at=CREATED)
    assert body(D25, make_order("created"), payment=unpaid)["payment"]["status_code"] == 9
    assert body(D25, make_order("created"), payment=unpaid)["payment"]["pay_time"] is None


@pytest.mark.parametrize("dialect", list(Dialect))
def test_missing_payment_is_null(dialect: Dialect) -> None:
    got = body(dialect, make_order("delivered"), payment=None)
    if dialect is D25:
        assert got["payment"] is None
        assert list(got) == ["method", "data", "payment", "packages"]
    else:
        assert "payment" not in got  # the 2024 dialect has no payment at all
        assert got == body(dialect, make_order("delivered"), payment=PAYMENT)


def _live_link(dialect: Dialect, order: Order, live_url: str | None) -> Any:
    got = body(dialect, order, live_url=live_url)
    return got["data"]["live_track_url"] if dialect is D24 else got["packages"][0]["live_tracking_url"]


@pytest.mark.parametrize("dialect", list(Dialect))
def test_live_link_falls_back_to_lacaks_page(dialect: Dialect) -> None:
    page = "https://lacak.example/t/abc"
    courier = make_order("driver_assigned", live_tracking_url="https://gjk.io/abcd")
    bare = make_order("driver_assigned", live_tracking_url=None)
    assert _live_link(dialect, courier, page) == "https://gjk.io/abcd"  # the courier's link wins
    assert _live_link(dialect, bare, page) == page
    assert _live_link(dialect, bare, None) is None
    assert _live_link(dialect, make_order("driver_assigned", live_tracking_url=""), page) == page


def _timestamps(dialect: Dialect, got: Any) -> list[Any]:
    if dialect is D24:
        d = got["data"]
        return [d[k] for k in ("event_date", "cancel_date", "rejected_date")]
    d = got["data"][0]
    keys = ("date", "shipped_at", "finished_at", "returned_at", "rejected_at")
    return [d[k] for k in keys] + [got["payment"]["pay_time"]]


@pytest.mark.parametrize("state", ALL_STATES)
@pytest.mark.parametrize("dialect", list(Dialect))
def test_timestamps_are_in_the_wire_format(dialect: Dialect, state: str) -> None:
    # Whole seconds still carry six fraction digits; a non-UTC time is converted to UTC.
    wib = timezone(timedelta(hours=7))
    order = make_order(state, created_at=datetime(2025, 8, 5, 13, 59, 31, tzinfo=wib))
    got = body(dialect, order, event_time=datetime(2025, 8, 5, 14, 0, 5, tzinfo=wib))
    stamps = [s for s in _timestamps(dialect, got) if s is not None]
    assert stamps  # every state carries at least one time
    for stamp in stamps:
        assert WIRE.fullmatch(stamp), stamp
    if dialect is D24:
        assert got["data"]["event_date"] == "2025-08-05T07:00:05.000000Z"
    else:
        assert got["data"][0]["date"] == "2025-08-05T06:59:31.000000Z"
