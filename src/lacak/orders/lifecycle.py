"""The unified order lifecycle: ranks, allowed moves, and what each move sets.

Pure functions only. `decide` looks at an order and an update and says what happens; the
store runs it inside the transaction that persists the result.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from lacak.orders.models import Driver, HistoryEvent, Order, Outcome, State, Update

S = State

RANK: dict[State, int] = {
    S.CREATED: 10,
    S.FINDING_DRIVER: 20,
    S.NO_DRIVER: 25,
    S.DRIVER_ASSIGNED: 30,
    S.AT_PICKUP: 40,
    S.PICKED_UP: 50,
    S.IN_TRANSIT: 60,
    S.ON_HOLD: 65,
    S.RETURNING: 70,
    S.DELIVERED: 100,
    S.RETURNED: 100,
    S.CANCELLED: 100,
    S.FAILED: 100,
}

# KiriminAja's numeric package status for each unified state.
KA_STATUS: dict[State, int] = {
    S.CREATED: 100,
    S.FINDING_DRIVER: 105,
    S.NO_DRIVER: 105,
    S.DRIVER_ASSIGNED: 105,
    S.AT_PICKUP: 105,
    S.PICKED_UP: 106,
    S.IN_TRANSIT: 106,
    S.ON_HOLD: 500,
    S.RETURNING: 301,
    S.DELIVERED: 200,
    S.RETURNED: 400,
    S.CANCELLED: 300,
    S.FAILED: 500,
}

TERMINAL = frozenset({S.DELIVERED, S.RETURNED, S.CANCELLED, S.FAILED})

# The only moves to a lower rank: reopening a failed allocation, and a driver change.
BACKWARD = frozenset(
    {
        (S.NO_DRIVER, S.FINDING_DRIVER),
        (S.DRIVER_ASSIGNED, S.FINDING_DRIVER),
        (S.AT_PICKUP, S.FINDING_DRIVER),
    }
)

# "Any non-terminal state after finding_driver" may go on hold.
HOLDABLE = frozenset({S.DRIVER_ASSIGNED, S.AT_PICKUP, S.PICKED_UP, S.IN_TRANSIT, S.RETURNING})

# Merchant void: up to and including at_pickup.
VOIDABLE = frozenset({S.CREATED, S.FINDING_DRIVER, S.NO_DRIVER, S.DRIVER_ASSIGNED, S.AT_PICKUP})

# find-new-driver: no driver, or looking for / assigned to one but not yet picked up.
REDRIVABLE = frozenset({S.NO_DRIVER, S.FINDING_DRIVER, S.DRIVER_ASSIGNED, S.AT_PICKUP})

DEFAULT_REASON: dict[State, str] = {
    S.NO_DRIVER: "driver not found",
    S.CANCELLED: "cancelled",
    S.FAILED: "delivery failed",
}


class Decision(msgspec.Struct, frozen=True):
    outcome: Outcome
    order: Order  # the order after the update (unchanged unless applied)
    event: HistoryEvent | None  # the history row to append (None for a duplicate)


def judge(order: Order, target: State) -> Outcome:
    """Whether moving `order` to `target` is applied, stale, refused or a duplicate."""
    current = order.state
    if current in TERMINAL:
        return Outcome.DUPLICATE if target == current else Outcome.REFUSED
    if target == current:
        return Outcome.DUPLICATE
    if target == S.ON_HOLD:
        if current in HOLDABLE:
            return Outcome.APPLIED
        return Outcome.STALE if RANK[target] < RANK[current] else Outcome.REFUSED
    if current == S.ON_HOLD:
        floor = RANK[order.hold_from] if order.hold_from else RANK[S.ON_HOLD]
        return Outcome.APPLIED if RANK[target] >= floor else Outcome.STALE
    if (current, target) in BACKWARD or RANK[target] > RANK[current]:
        return Outcome.APPLIED
    return Outcome.STALE


def _is_driver_change(order: Order, update: Update) -> bool:
    return (
        order.state == S.DRIVER_ASSIGNED
        and update.state == S.DRIVER_ASSIGNED
        and update.driver is not None
        and update.driver != order.driver
    )


def decide(order: Order, update: Update, *, seen: bool, now: datetime) -> Decision:
    """Apply `update` to `order` by the lifecycle rules.

    `seen` says the update's dedupe key is already in the order's history (the same courier
    event delivered twice): it is then a duplicate and changes nothing.
    """
    if seen:
        return Decision(Outcome.DUPLICATE, order, None)
    outcome = Outcome.APPLIED if _is_driver_change(order, update) else judge(order, update.state)
    if outcome == Outcome.DUPLICATE:
        return Decision(outcome, order, None)
    new = apply(order, update) if outcome == Outcome.APPLIED else order
    return Decision(outcome, new, _event(order, new, update, outcome, now))


def apply(order: Order, update: Update) -> Order:
    """The order after an allowed move: new state, next seq, and the fields the state sets."""
    target, at = update.state, update.occurred_at
    changes: dict[str, object] = {
        "state": target,
        "seq": order.seq + 1,
        "updated_at": at,
        "hold_from": order.state if target == S.ON_HOLD else None,
    }
    if order.state == S.NO_DRIVER and target not in (S.CANCELLED, S.FAILED):
        # A driver turned up after all: "driver not found" no longer describes the order.
        changes["cancel_description"] = None
    if update.tracking_code:
        changes["tracking_code"] = update.tracking_code
    if update.live_tracking_url:
        changes["live_tracking_url"] = update.live_tracking_url
    if target == S.DRIVER_ASSIGNED:
        changes["allocated_at"] = at
        if update.driver is not None:
            changes["driver"] = update.driver
    elif target == S.FINDING_DRIVER:
        changes["cancel_description"] = None
        if order.state in (S.DRIVER_ASSIGNED, S.AT_PICKUP):
            changes["driver"] = Driver()
            changes["allocated_at"] = None
    elif target in (S.DELIVERED, S.RETURNED):
        changes["finished_at"] = at
    elif target == S.CANCELLED:
        changes["canceled_at"] = at
        changes["cancel_description"] = update.reason or DEFAULT_REASON[target]
    elif target in (S.NO_DRIVER, S.FAILED):
        changes["cancel_description"] = update.reason or DEFAULT_REASON[target]
    return msgspec.structs.replace(order, **changes)


def _event(before: Order, after: Order, update: Update, outcome: Outcome, now: datetime) -> HistoryEvent:
    return HistoryEvent(
        order_pk=before.pk,
        seq=after.seq,
        state=update.state,
        from_state=before.state,
        outcome=outcome,
        source=update.source,
        native_code=update.native_code,
        native_text=update.native_text,
        dedupe_key=update.dedupe_key,
        lat=update.lat,
        long=update.long,
        note=update.note or update.reason,
        occurred_at=update.occurred_at,
        recorded_at=now,
    )
