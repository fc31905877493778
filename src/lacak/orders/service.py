"""Order use-cases: what the merchant API and the operator can do to orders.

Domain rules come from `lifecycle` and `validation`; the store does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from lacak.errors import DistanceTooFar, DomainError, InvalidOrder, NotFound, UniqueViolation, ValidationError
from lacak.live.links import Links
from lacak.merchants.models import Merchant
from lacak.metrics import Metrics
from lacak.orders import lifecycle, validation
from lacak.orders.models import (
    PAID,
    UNPAID,
    Driver,
    HistoryEvent,
    Order,
    Payment,
    Place,
    Source,
    State,
    Update,
)
from lacak.orders.requests import Package, PickupRequest, PricingRequest
from lacak.pricing.geo import city_route
from lacak.pricing.quote import Quote, insurance_value, quote
from lacak.pricing.tariff import SERVICES, Tariff
from lacak.storage.store import Store, TrackingView

Clock = Callable[[], datetime]


class ServiceQuotes(msgspec.Struct, frozen=True):
    service: str
    quotes: list[Quote]
    insurances: list[tuple[str, int]]


class Orders:
    def __init__(self, store: Store, tariff: Tariff, clock: Clock, metrics: Metrics, links: Links) -> None:
        self.store = store
        self.tariff = tariff
        self.clock = clock
        self.metrics = metrics
        self.links = links

    # -- reads ----------------------------------------------------------------------------

    async def track(self, merchant: Merchant, order_id: str) -> Order:
        if not validation.valid_order_id(order_id):
            raise NotFound()
        order = await self.store.get_order(merchant.id, order_id)
        if order is None:
            raise NotFound()
        return order

    async def tracking_view(self, merchant: Merchant, order_id: str) -> TrackingView:
        """The stored tracking JSON of the order; its `json` is None if it must be rendered."""
        if not validation.valid_order_id(order_id):
            raise NotFound()
        view = await self.store.tracking_view(merchant.id, order_id)
        if view is None:
            raise NotFound()
        return view

    async def history(self, merchant: Merchant, order_id: str) -> tuple[Order, list[HistoryEvent]]:
        order = await self.track(merchant, order_id)
        return order, await self.store.history(order.pk)

    async def payment(self, merchant: Merchant, payment_id: str) -> tuple[Payment, list[Order]]:
        if not payment_id or len(payment_id) > 64:
            raise NotFound()
        return await self.store.get_payment(merchant.id, payment_id)

    # -- pricing --------------------------------------------------------------------------

    def price(self, req: PricingRequest) -> list[ServiceQuotes]:
        validation.check_pricing(req)
        validation.vehicle_name(req.vehicle)
        validation.timezone_name(req.timezone)
        raw = [req.service] if isinstance(req.service, str) else req.service
        wanted = [validation.service_name(s) for s in raw] if raw else list(SERVICES)
        item_price = int(req.item_price)
        out: list[ServiceQuotes] = []
        for service in dict.fromkeys(wanted):
            quotes = []
            for service_type in self.tariff.rates.get(service, {}):
                try:
                    q = quote(
                        self.tariff,
                        service,
                        service_type,
                        req.vehicle,
                        (req.origin.lat, req.origin.long),
                        (req.destination.lat, req.destination.long),
                    )
                except DistanceTooFar:
                    q = None  # too far for this service: left out of the list
                if q is not None:
                    quotes.append(q)
            if quotes:
                tiers = self.tariff.insurances.get(service, [])
                out.append(
                    ServiceQuotes(service, quotes, [(t.type, insurance_value(t, item_price)) for t in tiers])
                )
        return out

    # -- writes ---------------------------------------------------------------------------

    async def create(self, merchant: Merchant, req: PickupRequest) -> tuple[Payment, list[Order]]:
        validation.check_pickup(req)
        service = validation.service_name(req.service)
        if self.tariff.rate(service, req.service_type, req.vehicle) is None:
            raise ValidationError("The selected service_type is invalid.", "service_type")
        now = self.clock()
        drafts = [self._draft(merchant, req, service, pkg, i, now) for i, pkg in enumerate(req.packages)]
        amount = sum(d.total_price for d in drafts)
        paid = not merchant.prepaid
        payment = Payment(
            pk=0,
            merchant_id=merchant.id,
            payment_id=f"PID-{int(now.timestamp())}",
            amount=amount,
            status_code=PAID if paid else UNPAID,
            pay_time=now if paid else None,
            created_at=now,
        )
        # Concurrent creations may race for the same generated id; the unique index catches
        # it and a fresh attempt picks the next free number.
        for attempt in range(3):
            try:
                saved, orders = await self.store.create_orders(
                    merchant, req.order_prefix, drafts, payment, now
                )
            except UniqueViolation:
                if attempt == 2:
                    raise
                continue
            self.metrics.orders_created.inc(len(orders))
            return saved, orders
        raise AssertionError("unreachable")

    def _draft(
        self, merchant: Merchant, req: PickupRequest, service: str, pkg: Package, i: int, now: datetime
    ) -> Order:
        q = quote(
            self.tariff,
            service,
            req.service_type,
            req.vehicle,
            (pkg.origin_lat, pkg.origin_long),
            (pkg.destination_lat, pkg.destination_long),
        )
        assert q is not None  # the rate's existence was checked by the caller
        if int(pkg.shipping_price) != q.shipping_cost:
            field = f"packages.{i}.shipping_price"
            raise ValidationError(f"The {field} does not match the current price ({q.shipping_cost}).", field)
        # lacak's own page is the order's live link until a courier gives one of its own.
        token, url = self.links.new()
        return Order(
            pk=0,
            merchant_id=merchant.id,
            order_id=pkg.order_id or "",
            payment_pk=0,
            service=service,
            service_type=req.service_type,
            vehicle=req.vehicle,
            state=State.CREATED,
            seq=1,
            origin=_place(pkg, "origin"),
            destination=_place(pkg, "destination"),
            item_name=pkg.item.name.strip(),
            item_description=pkg.item.description.strip(),
            item_price=int(pkg.item.price),
            item_weight=validation.weight_grams(pkg.item, f"packages.{i}.item"),
            shipping_cost=q.shipping_cost,
            insurance=None,
            admin_fee=q.admin_fee,
            total_price=q.total_price,
            poly_line=city_route(pkg.origin_lat, pkg.origin_long, pkg.destination_lat, pkg.destination_long),
            created_at=now,
            updated_at=now,
            live_tracking_url=url,
            live_token=token,
        )

    async def void(self, merchant: Merchant, order_id: str) -> tuple[Payment, Order]:
        def guard(order: Order) -> None:
            if order.state not in lifecycle.VOIDABLE:
                raise InvalidOrder()

        decision = await self._move(
            merchant.id, order_id, State.CANCELLED, guard, reason="Cancelled by merchant"
        )
        return await self.store.payment_for(decision.order), decision.order

    async def find_new_driver(self, merchant: Merchant, order_id: str) -> Order:
        def guard(order: Order) -> None:
            if order.state not in lifecycle.REDRIVABLE:
                raise InvalidOrder()

        if not validation.valid_order_id(order_id):
            raise InvalidOrder()
        try:
            decision = await self._move(
                merchant.id, order_id, State.FINDING_DRIVER, guard, note="find-new-driver"
            )
        except NotFound:
            raise InvalidOrder() from None
        return decision.order

    async def _move(
        self,
        merchant_id: int,
        order_id: str,
        state: State,
        guard: Callable[[Order], None],
        *,
        reason: str | None = None,
        note: str | None = None,
    ) -> lifecycle.Decision:
        if not validation.valid_order_id(order_id):
            raise NotFound()
        update = Update(state=state, source=Source.API, occurred_at=self.clock(), reason=reason, note=note)
        decision = await self.store.transition(merchant_id, order_id, update, update.occurred_at, guard)
        self.metrics.state_changes.labels(state.value, decision.outcome.value).inc()
        return decision

    # -- operator -------------------------------------------------------------------------

    async def advance(
        self,
        merchant_id: int,
        order_id: str,
        state: State,
        *,
        driver: Driver | None = None,
        tracking_code: str | None = None,
        reason: str | None = None,
        note: str | None = None,
    ) -> lifecycle.Decision:
        now = self.clock()
        update = Update(
            state=state,
            source=Source.OPERATOR,
            occurred_at=now,
            driver=driver,
            tracking_code=tracking_code,
            reason=reason,
            note=note,
        )
        decision = await self.store.transition(merchant_id, order_id, update, now)
        self.metrics.state_changes.labels(state.value, decision.outcome.value).inc()
        return decision

    async def locate(self, order_id: str, merchant_id: int | None = None) -> Order:
        """An order by id for the operator, who may have to name the merchant."""
        found = [
            o
            for o in await self.store.find_orders(order_id)
            if merchant_id is None or o.merchant_id == merchant_id
        ]
        if not found:
            raise NotFound()
        if len(found) > 1:
            raise DomainError(f"order id {order_id} is used by several merchants; name the merchant")
        return found[0]

    async def mark_paid(self, merchant_id: int, payment_id: str) -> Payment:
        return await self.store.mark_payment_paid(merchant_id, payment_id, self.clock())


def _place(pkg: Package, side: str) -> Place:
    return Place(
        name=getattr(pkg, f"{side}_name").strip(),
        phone=validation.phone(getattr(pkg, f"{side}_phone"), side),
        address=getattr(pkg, f"{side}_address").strip(),
        address_note=getattr(pkg, f"{side}_address_note").strip(),
        lat=float(getattr(pkg, f"{side}_lat")),
        long=float(getattr(pkg, f"{side}_long")),
    )
