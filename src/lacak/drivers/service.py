"""Driver use-cases: accounts, the open-order board, accepting, reporting, positions.

Orders are named by their numeric internal id (`id` in every driver API answer): merchants'
`order_id`s are unique per merchant only, so two merchants may both have `ORD-1`. A driver
only ever sees and touches orders booked with the `fleet` provider.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from math import cos, radians

from lacak.drivers import store, tokens
from lacak.drivers.models import HELD, REPORTABLE, DriverAccount, Located, LocationRequest, PointIn
from lacak.errors import AuthError, DomainError, InvalidOrder, NotFound, ValidationError
from lacak.metrics import Metrics
from lacak.orders import lifecycle, validation
from lacak.orders.models import Driver, Order, Outcome, Source, State, Update
from lacak.positions import store as positions
from lacak.positions.store import Point
from lacak.pricing.geo import haversine_km
from lacak.storage.db import Database
from lacak.storage.store import Store

Clock = Callable[[], datetime]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_POINTS = 500
MAX_NAME = 100
MAX_PLATE = 20
MAX_URL = 1000
# Phones' clocks drift; a point further ahead than this would pin the live position.
FUTURE_SLACK = timedelta(minutes=5)
EPOCH_MS_FLOOR = 10**12  # 2001-09-09: anything smaller is seconds sent as milliseconds
TAKEN = "order already taken"


def order_pk(ref: str) -> int:
    """The path's order id: digits only, else no such order (never a 404 route or a 500)."""
    if not ref.isascii() or not ref.isdigit() or len(ref) > 18:
        raise NotFound()
    return int(ref)


def tracking_code(pk: int, driver_id: int) -> str:
    return f"FLT-{pk}-{driver_id}"


class Drivers:
    def __init__(self, db: Database, orders: Store, metrics: Metrics, clock: Clock) -> None:
        self.db = db
        self.orders = orders
        self.metrics = metrics
        self.clock = clock

    # -- accounts ---------------------------------------------------------------------------

    async def create(
        self, name: str, phone: str, plate: str | None = None, photo: str | None = None
    ) -> tuple[DriverAccount, str]:
        """A new driver and its token, which exists in clear only in this return value."""
        name = validation.text(name, "name", limit=MAX_NAME)
        phone = validation.phone(phone, "phone")
        plate = validation.text(plate or "", "plate", required=False, limit=MAX_PLATE) or None
        photo = validation.text(photo or "", "photo", required=False, limit=MAX_URL) or None
        if photo is not None and not photo.startswith(("https://", "http://")):
            raise ValidationError("The photo format is invalid.", "photo")
        token = tokens.new_token()
        async with self.db.transaction() as tx:
            driver = await store.create(tx, name, phone, plate, photo, tokens.token_hash(token), self.clock())
        return driver, token

    async def listing(self) -> list[tuple[DriverAccount, int]]:
        return await store.listing(self.db)

    async def revoke(self, driver_id: int) -> DriverAccount:
        """Stop the driver's token at once (no cache holds it). Its orders stay assigned."""
        async with self.db.transaction() as tx:
            driver = await store.revoke(tx, driver_id, self.clock())
        if driver is None:
            raise NotFound(f"no driver {driver_id}")
        return driver

    async def authenticate(self, authorization: str | None) -> DriverAccount:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > tokens.MAX_LENGTH:
            raise AuthError("Unauthenticated.")
        digest = tokens.token_hash(token)
        found = await store.by_token(self.db, digest)
        if found is None or not tokens.same_hash(found[1], digest):
            raise AuthError("Unauthenticated.")
        return found[0]

    # -- orders -----------------------------------------------------------------------------

    async def available(
        self, driver: DriverAccount, lat: float | None, long: float | None, limit: int | None
    ) -> list[tuple[Order, float]]:
        """Open fleet orders, nearest pickup first, with the distance to it in km."""
        here = _here(driver, lat, long)
        size = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= size <= MAX_LIMIT:
            raise ValidationError(f"The limit field must be between 1 and {MAX_LIMIT}.", "limit")
        squeeze = cos(radians(here[0])) ** 2
        found = await store.open_orders(self.db, here[0], here[1], squeeze, size)
        return [(o, haversine_km(here[0], here[1], o.origin.lat, o.origin.long)) for o in found]

    async def carried(self, driver: DriverAccount) -> list[Order]:
        return await store.carried_orders(self.db, driver.id)

    async def accept(self, driver: DriverAccount, ref: str) -> Order:
        """First driver wins: the assignment row and the state change commit together."""
        pk, now = order_pk(ref), self.clock()
        update = Update(
            state=State.DRIVER_ASSIGNED,
            source=Source.DRIVER,
            occurred_at=now,
            driver=Driver(driver.name, driver.phone, driver.photo),
            tracking_code=tracking_code(pk, driver.id),
        )
        async with self.db.transaction() as tx:
            # The row lock orders concurrent accepts: the second sees the first one's state.
            state = await store.lock_fleet_order(tx, pk)
            if state is None:
                raise NotFound()
            holder = await store.assignee(tx, pk)
            if state != State.FINDING_DRIVER:
                if holder is None:
                    raise NotFound()  # cancelled, or never open to drivers
                if holder != driver.id:
                    raise DomainError(TAKEN)
                decision = None  # a retried accept of the driver's own order
            else:
                await store.release(tx, pk)  # the driver before a find-new-driver, if any
                if not await store.assign(tx, pk, driver.id, now):
                    raise DomainError(TAKEN)
                await store.set_plate(tx, pk, driver.plate)
                decision = await self.orders.transition_in(tx, "id = $1", (pk,), update, now)
                if decision.outcome != Outcome.APPLIED:
                    raise DomainError(TAKEN)  # unreachable under the lock; never half-assign
        if decision is None:
            return await self._order(pk)
        self._changed(State.DRIVER_ASSIGNED, decision)
        return decision.order

    async def report(self, driver: DriverAccount, ref: str, status: str, note: str | None) -> Order:
        """The assigned driver moves its order on; anyone else learns nothing about it."""
        pk, now = order_pk(ref), self.clock()
        target = _reportable(status)
        note = validation.text(note or "", "note", required=False) or None
        update = Update(
            state=target,
            source=Source.DRIVER,
            occurred_at=now,
            note=note,
            reason=note if target == State.FAILED else None,
        )

        def guard(order: Order) -> None:
            if lifecycle.judge(order, target) in (Outcome.STALE, Outcome.REFUSED):
                raise InvalidOrder(f"order {pk} is {order.state}: it cannot move to {target}")

        async with self.db.transaction() as tx:
            # Lock first, then read the assignment, so a concurrent re-assignment cannot slip in.
            state = await store.lock_fleet_order(tx, pk)
            if state not in HELD or await store.assignee(tx, pk) != driver.id:
                raise NotFound()
            decision = await self.orders.transition_in(tx, "id = $1", (pk,), update, now, guard)
        self._changed(target, decision)
        return decision.order

    async def locate(self, driver: DriverAccount, req: LocationRequest) -> Located:
        """One batch, one transaction: the driver's live position and its orders' trails."""
        points = _points(req.points, self.clock())
        newest = points[-1]
        async with self.db.transaction() as tx:
            await store.move(tx, driver.id, newest.lat, newest.long, newest.at)
            pks = await store.carried_pks(tx, driver.id)
            for pk in pks:
                await positions.add(tx, pk, points, Source.DRIVER.value)
                await positions.prune(tx, pk)
        self.metrics.driver_positions.labels(Source.DRIVER.value).inc(len(points))
        return Located(len(points), newest.lat, newest.long, newest.at, pks)

    async def _order(self, pk: int) -> Order:
        order = await self.orders.order_by_pk(pk)
        if order is None:
            raise NotFound()
        return order

    def _changed(self, target: State, decision: lifecycle.Decision) -> None:
        self.metrics.state_changes.labels(target.value, decision.outcome.value).inc()
        self.orders._notify()  # wake this process's task runner and webhook sender now


def _here(driver: DriverAccount, lat: float | None, long: float | None) -> tuple[float, float]:
    """The point to measure from: the one asked about, else the driver's last known position."""
    if lat is None and long is None:
        if driver.lat is None or driver.long is None:
            raise ValidationError("The lat field is required.", "lat")
        return driver.lat, driver.long
    if lat is None:
        raise ValidationError("The lat field is required when long is present.", "lat")
    if long is None:
        raise ValidationError("The long field is required when lat is present.", "long")
    return validation.coordinate(lat, "lat", 90), validation.coordinate(long, "long", 180)


def _reportable(status: str) -> State:
    state = State._value2member_map_.get(status)
    if state not in REPORTABLE:
        raise ValidationError("The selected status is invalid.", "status")
    assert isinstance(state, State)
    return state


def _points(raw: list[PointIn], now: datetime) -> list[Point]:
    """Checked points, oldest first (the trail is read back in insertion order)."""
    if not raw:
        raise ValidationError("The points field is required.", "points")
    if len(raw) > MAX_POINTS:
        raise ValidationError(f"The points field must not have more than {MAX_POINTS} items.", "points")
    out = []
    for i, p in enumerate(raw):
        base = f"points.{i}"
        if p.accuracy is not None and p.accuracy < 0:
            raise ValidationError(f"The {base}.accuracy field must be at least 0.", f"{base}.accuracy")
        out.append(
            Point(
                validation.coordinate(p.lat, f"{base}.lat", 90),
                validation.coordinate(p.long, f"{base}.long", 180),
                _instant(p.at, f"{base}.at", now),
                None if p.accuracy is None else float(p.accuracy),
            )
        )
    return sorted(out, key=lambda p: p.at)


def _instant(at: datetime | int, field: str, now: datetime) -> datetime:
    if isinstance(at, int):
        if at < EPOCH_MS_FLOOR:
            raise ValidationError(f"The {field} field must be epoch milliseconds or an ISO 8601 time.", field)
        try:
            at = datetime.fromtimestamp(at / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValidationError(f"The {field} field must be a valid date.", field) from None
    elif at.tzinfo is None:
        raise ValidationError(f"The {field} field must include a timezone offset.", field)
    if at > now + FUTURE_SLACK:
        raise ValidationError(f"The {field} field must be a date before or equal to now.", field)
    return at.astimezone(UTC)
