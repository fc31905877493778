"""The unified lifecycle as pure functions (lifecycle.md), no database.

Expectations are written out from the spec by hand (ranks, the outcome matrix) rather than
derived from `lacak.orders.lifecycle`, so a wrong constant or rule there shows up here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from lacak.orders import lifecycle
from lacak.orders.lifecycle import decide, judge
from lacak.orders.models import Driver, Order, Outcome, Place, Source, State, Update

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
AT = T0 + timedelta(minutes=7)
NOW = T0 + timedelta(minutes=8)
PLACE = Place("Arfian", "081280045616", "Wirobrajan", "", -7.8032616, 110.350244)
OLD_DRIVER = Driver("Budi", "081200000001", None)
NEW_DRIVER = Driver("Sari", "081200000002", "https://example.com/sari.jpg")

# The spec's state table, typed in by hand: rank and KiriminAja numeric status.
SPEC_RANK = {
    "created": 10,
    "finding_driver": 20,
    "no_driver": 25,
    "driver_assigned": 30,
    "at_pickup": 40,
    "picked_up": 50,
    "in_transit": 60,
    "on_hold": 65,
    "returning": 70,
    "delivered": 100,
    "returned": 100,
    "cancelled": 100,
    "failed": 100,
}
SPEC_KA = {
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

# Outcome of moving an order from the row state to the column state (on_hold rows are below,
# since they depend on where the hold came from). A applied, S stale, R refused, D duplicate.
COLUMNS = tuple(SPEC_RANK)  # created … failed, in the table's order
MATRIX = {
    #                  cr fd nd da ap pu it oh rt de rd ca fa
    "created": "D  A  A  A  A  A  A  R  A  A  A  A  A",
    "finding_driver": "S  D  A  A  A  A  A  R  A  A  A  A  A",
    "no_driver": "S  A  D  A  A  A  A  R  A  A  A  A  A",
    "driver_assigned": "S  A  S  D  A  A  A  A  A  A  A  A  A",
    "at_pickup": "S  A  S  S  D  A  A  A  A  A  A  A  A",
    "picked_up": "S  S  S  S  S  D  A  A  A  A  A  A  A",
    "in_transit": "S  S  S  S  S  S  D  A  A  A  A  A  A",
    "returning": "S  S  S  S  S  S  S  A  D  A  A  A  A",
    "delivered": "R  R  R  R  R  R  R  R  R  D  R  R  R",
    "returned": "R  R  R  R  R  R  R  R  R  R  D  R  R",
    "cancelled": "R  R  R  R  R  R  R  R  R  R  R  D  R",
    "failed": "R  R  R  R  R  R  R  R  R  R  R  R  D",
}
LETTER = {"A": Outcome.APPLIED, "S": Outcome.STALE, "R": Outcome.REFUSED, "D": Outcome.DUPLICATE}
HOLD_ENTRIES = ("driver_assigned", "at_pickup", "picked_up", "in_transit", "returning")


def _matrix_cases() -> list[tuple[str, str | None, str, Outcome]]:
    cases: list[tuple[str, str | None, str, Outcome]] = []
    for current, row in MATRIX.items():
        letters = row.split()
        assert len(letters) == len(COLUMNS)
        cases += [(current, None, t, LETTER[x]) for t, x in zip(COLUMNS, letters, strict=True)]
    return cases


def _hold_exit(held_from: str, target: str) -> Outcome:
    """Leaving on_hold: back to where it came from or any later state; on_hold again is a repeat."""
    if target == "on_hold":
        return Outcome.DUPLICATE
    return Outcome.APPLIED if SPEC_RANK[target] >= SPEC_RANK[held_from] else Outcome.STALE


CASES = _matrix_cases() + [
    ("on_hold", held, target, _hold_exit(held, target)) for held in HOLD_ENTRIES for target in COLUMNS
]


def make_order(state: State | str, **over: Any) -> Order:
    fields: dict[str, Any] = dict(
        pk=7,
        merchant_id=3,
        order_id="TST-1",
        payment_pk=5,
        service="gosend",
        service_type="instant",
        vehicle="motor",
        state=State(state),
        seq=4,
        origin=PLACE,
        destination=PLACE,
        item_name="Barang",
        item_description="",
        item_price=20000,
        item_weight=1000,
        shipping_cost=34000,
        admin_fee=0,
        total_price=34000,
        created_at=T0,
        updated_at=T0,
    )
    fields.update(over)
    return Order(**fields)


def update(state: State | str, **over: Any) -> Update:
    return Update(state=State(state), source=over.pop("source", Source.COURIER), occurred_at=AT, **over)


def realistic(state: str, held_from: str | None = None) -> Order:
    """An order in `state` with the fields earlier states would have set."""
    over: dict[str, Any] = {"hold_from": State(held_from) if held_from else None}
    if SPEC_RANK[state] >= SPEC_RANK["driver_assigned"] and state not in ("cancelled", "failed"):
        over.update(driver=OLD_DRIVER, allocated_at=T0, tracking_code="GK-1")
    if state == "no_driver":
        over["cancel_description"] = "driver not found"
    return make_order(state, **over)


def test_the_cases_cover_every_pair() -> None:
    pairs = {(c, h, t) for c, h, t, _ in CASES}
    assert {c for c, _, _ in pairs} == {s.value for s in State}
    assert len(pairs) == 12 * 13 + len(HOLD_ENTRIES) * 13 == len(CASES)


@pytest.mark.parametrize(("current", "held_from", "target", "expected"), CASES)
def test_every_move(current: str, held_from: str | None, target: str, expected: Outcome) -> None:
    before = realistic(current, held_from)
    assert judge(before, State(target)) == expected
    d = decide(before, update(target, native_code="X1", dedupe_key="ev-1"), seen=False, now=NOW)
    assert d.outcome == expected
    if expected == Outcome.DUPLICATE:
        assert d.event is None and d.order == before
        return
    assert d.event is not None
    assert (d.event.state, d.event.from_state, d.event.outcome) == (target, current, expected)
    assert (d.event.order_pk, d.event.native_code, d.event.dedupe_key) == (7, "X1", "ev-1")
    assert (d.event.occurred_at, d.event.recorded_at) == (AT, NOW)
    if expected == Outcome.APPLIED:
        assert (d.order.state, d.order.seq, d.event.seq) == (target, 5, 5)
        assert d.order.updated_at == AT
        assert d.order.hold_from == (State(current) if target == "on_hold" else None)
    else:
        assert d.order == before  # stale and refused change nothing
        assert d.event.seq == 4


def test_constants_match_the_spec() -> None:
    assert {s.value: r for s, r in lifecycle.RANK.items()} == SPEC_RANK
    assert {s.value: k for s, k in lifecycle.KA_STATUS.items()} == SPEC_KA
    assert {s.value for s in lifecycle.TERMINAL} == {"delivered", "returned", "cancelled", "failed"}
    assert {(a.value, b.value) for a, b in lifecycle.BACKWARD} == {
        ("no_driver", "finding_driver"),
        ("driver_assigned", "finding_driver"),
        ("at_pickup", "finding_driver"),
    }
    assert {s.value for s in lifecycle.HOLDABLE} == set(HOLD_ENTRIES)
    voidable = {"created", "finding_driver", "no_driver", "driver_assigned", "at_pickup"}
    assert {s.value for s in lifecycle.VOIDABLE} == voidable
    assert {s.value for s in lifecycle.REDRIVABLE} == voidable - {"created"}


# -- what each state sets -----------------------------------------------------------------------

SETS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (from, to, update extras, expected fields of the order after)
    (
        "finding_driver",
        "driver_assigned",
        {"driver": NEW_DRIVER, "tracking_code": "GK-9"},
        {"allocated_at": AT, "driver": NEW_DRIVER, "tracking_code": "GK-9", "finished_at": None},
    ),
    ("in_transit", "delivered", {}, {"finished_at": AT, "canceled_at": None, "driver": OLD_DRIVER}),
    ("returning", "returned", {}, {"finished_at": AT, "canceled_at": None}),
    (
        "at_pickup",
        "cancelled",
        {"reason": "merchant changed mind"},
        {"canceled_at": AT, "cancel_description": "merchant changed mind", "finished_at": None},
    ),
    (
        "finding_driver",
        "no_driver",
        {"reason": "no driver nearby"},
        {"cancel_description": "no driver nearby", "canceled_at": None, "finished_at": None},
    ),
    (
        "picked_up",
        "failed",
        {"reason": "parcel lost"},
        {"cancel_description": "parcel lost", "canceled_at": None, "finished_at": None},
    ),
    ("driver_assigned", "finding_driver", {}, {"driver": Driver(), "allocated_at": None}),
    ("at_pickup", "finding_driver", {}, {"driver": Driver(), "allocated_at": None}),
    ("no_driver", "finding_driver", {}, {"cancel_description": None}),
    # a driver found after all (courier reallocation): the "not found" reason goes too
    (
        "no_driver",
        "driver_assigned",
        {"driver": NEW_DRIVER},
        {"cancel_description": None, "driver": NEW_DRIVER},
    ),
    ("driver_assigned", "at_pickup", {}, {"driver": OLD_DRIVER, "allocated_at": T0, "tracking_code": "GK-1"}),
    ("picked_up", "on_hold", {}, {"hold_from": State.PICKED_UP, "driver": OLD_DRIVER}),
    (
        "in_transit",
        "returning",
        {"live_tracking_url": "https://t.example/1"},
        {"live_tracking_url": "https://t.example/1", "finished_at": None},
    ),
]


@pytest.mark.parametrize(
    ("current", "target", "extras", "expected"), SETS, ids=[f"{c}->{t}" for c, t, _, _ in SETS]
)
def test_what_a_state_sets(
    current: str, target: str, extras: dict[str, Any], expected: dict[str, Any]
) -> None:
    d = decide(realistic(current), update(target, **extras), seen=False, now=NOW)
    assert d.outcome == Outcome.APPLIED
    assert {k: getattr(d.order, k) for k in expected} == expected


@pytest.mark.parametrize("target", ["cancelled", "no_driver", "failed"])
def test_cancel_description_has_a_default_reason(target: str) -> None:
    d = decide(realistic("finding_driver"), update(target), seen=False, now=NOW)
    assert d.outcome == Outcome.APPLIED
    assert d.order.cancel_description


def test_leaving_hold_clears_hold_from() -> None:
    held = realistic("on_hold", held_from="in_transit")
    d = decide(held, update("delivered"), seen=False, now=NOW)
    assert (d.outcome, d.order.hold_from, d.order.finished_at) == (Outcome.APPLIED, None, AT)


def test_reassigned_driver_gets_a_fresh_allocated_at() -> None:
    back = decide(realistic("at_pickup"), update("finding_driver"), seen=False, now=NOW).order
    assert (back.driver, back.allocated_at) == (Driver(), None)
    later = AT + timedelta(minutes=3)
    again = decide(
        back,
        Update(state=State.DRIVER_ASSIGNED, source=Source.COURIER, occurred_at=later, driver=NEW_DRIVER),
        seen=False,
        now=NOW,
    ).order
    assert (again.driver, again.allocated_at, again.seq) == (NEW_DRIVER, later, back.seq + 1)


# -- same state: duplicates and the driver-change exception -------------------------------------

DRIVER_UPDATES = [
    ("driver_assigned", NEW_DRIVER, Outcome.APPLIED),
    ("driver_assigned", OLD_DRIVER, Outcome.DUPLICATE),
    ("driver_assigned", None, Outcome.DUPLICATE),
    ("at_pickup", NEW_DRIVER, Outcome.STALE),  # driver_assigned is below at_pickup
    ("picked_up", NEW_DRIVER, Outcome.STALE),
]


@pytest.mark.parametrize(("current", "driver", "expected"), DRIVER_UPDATES)
def test_driver_change(current: str, driver: Driver | None, expected: Outcome) -> None:
    before = realistic(current)
    d = decide(before, update("driver_assigned", driver=driver), seen=False, now=NOW)
    assert d.outcome == expected
    changed = expected == Outcome.APPLIED
    assert d.order.driver == (NEW_DRIVER if changed else OLD_DRIVER)
    assert d.order.seq == before.seq + changed
    assert d.order.allocated_at == (AT if changed else T0)
    assert (d.event is None) == (expected == Outcome.DUPLICATE)


@pytest.mark.parametrize("target", ["driver_assigned", "delivered", "created", "on_hold"])
@pytest.mark.parametrize("current", ["finding_driver", "in_transit", "delivered"])
def test_seen_event_is_a_duplicate_with_no_event(current: str, target: str) -> None:
    before = realistic(current)
    d = decide(before, update(target, dedupe_key="ev-1", driver=NEW_DRIVER), seen=True, now=NOW)
    assert (d.outcome, d.event, d.order) == (Outcome.DUPLICATE, None, before)


def test_event_carries_the_update_details() -> None:
    u = update(
        "picked_up",
        source=Source.DRIVER,
        native_code="picked",
        native_text="Picked up",
        lat=-7.8,
        long=110.36,
        note="at gate",
    )
    d = decide(realistic("at_pickup"), u, seen=False, now=NOW)
    assert d.event is not None
    got = msgspec.structs.asdict(d.event)
    want = {
        "source": Source.DRIVER,
        "native_code": "picked",
        "native_text": "Picked up",
        "lat": -7.8,
        "long": 110.36,
        "note": "at gate",
        "seq": 5,
    }
    assert {k: got[k] for k in want} == want


def test_reason_becomes_the_event_note() -> None:
    d = decide(realistic("finding_driver"), update("no_driver", reason="expired"), seen=False, now=NOW)
    assert d.event is not None and d.event.note == "expired"


def test_long_walk_counts_seq_only_for_applied_moves() -> None:
    order = realistic("finding_driver")
    walk = [
        "driver_assigned",
        "at_pickup",
        "at_pickup",
        "driver_assigned",
        "picked_up",
        "on_hold",
        "at_pickup",
        "in_transit",
        "delivered",
        "cancelled",
        "delivered",
    ]
    outcomes = []
    for target in walk:
        d = decide(order, update(target, driver=OLD_DRIVER), seen=False, now=NOW)
        outcomes.append(d.outcome.value[0].upper())
        order = d.order
    assert "".join(outcomes) == "AADSAASAARD"
    assert (order.state, order.seq, order.finished_at) == (State.DELIVERED, 4 + 6, AT)
