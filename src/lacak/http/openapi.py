"""The OpenAPI 3.1 document of every HTTP endpoint, built as plain dicts.

Enumerations and limits are imported from the code that enforces them, so the document
cannot drift from the rules; `tests/test_openapi.py` keeps the paths in step with the
routes, the request schemas in step with the msgspec structs, and checks real responses
against the result schemas.
"""

from __future__ import annotations

from typing import Any, get_args

from lacak import __version__
from lacak.couriers.borzo import inbound as borzo
from lacak.couriers.gosend import inbound as gosend
from lacak.couriers.grab_express import inbound as grab_express
from lacak.couriers.inbound import UNKNOWN_ORDER, UNKNOWN_STATUS
from lacak.drivers import service as drivers
from lacak.drivers.models import REPORTABLE
from lacak.http import avatars
from lacak.http.body import MAX_BODY
from lacak.http.driver import PREFIX as DRIVER_API
from lacak.http.mitra import PREFIX
from lacak.http.webhooks import ADMIN as ADMIN_WEBHOOKS
from lacak.http.webhooks import ADMIN_MERCHANT, DEFAULT_LIMIT
from lacak.http.webhooks import PREFIX as WEBHOOKS
from lacak.merchants.models import PaymentMode
from lacak.orders import validation
from lacak.orders.lifecycle import KA_STATUS
from lacak.orders.models import PAID, UNPAID, Outcome, Source, State
from lacak.pricing.tariff import SERVICE_TYPES, SERVICES, VEHICLES
from lacak.settings import CourierSettings
from lacak.webhooks.dialects import Dialect
from lacak.webhooks.models import Status, Trigger
from lacak.webhooks.schedule import Verdict
from lacak.webhooks.service import MAX_PAGE
from lacak.webhooks.transport import BODY_LIMIT, ErrorClass

Schema = dict[str, Any]

JSON = "application/json"
SVG = "image/svg+xml"
MITRA, ADMIN, DRIVER, COURIERS, OPS = "mitra", "admin", "driver", "couriers", "ops"
SECURITY = {MITRA: "merchantKey", ADMIN: "adminToken", DRIVER: "driverToken"}
# Each courier authenticates its callbacks its own way (see `_security_schemes`).
CALLBACK_AUTH = {
    gosend.PROVIDER: "gosendToken",
    grab_express.PROVIDER: "grabToken",
    borzo.PROVIDER: "borzoSignature",
}
WIRE_TIME_EXAMPLE = "2024-01-19T04:01:37.000000Z"
AWB = "The courier AWB; empty string until one is assigned."

DESCRIPTION = """\
lacak is a self-hostable server that speaks KiriminAja's Mitra v4 *instant* merchant API, so
an existing integration (or any official KiriminAja SDK) works against it by changing only
the base URL.

**Envelope.** Every `/api/*` answer is the KiriminAja envelope
`{"status", "text", "code", "method", "result"}`, in that key order.

**HTTP 200 for every business outcome.** The official SDKs throw the body away on a non-2xx
status, so a business failure is still HTTP 200 with `status: false` and `code` 2 (not found,
invalid order id, distance too long, wrong state) or 422 (validation; `text` names the first
bad field, e.g. `The packages.0.destination_lat field is required.`). Only transport problems
get another status, still with the envelope: 400 (body is not JSON), 401 (bad credentials),
404 (no such route), 405, 413 (body over 1 MiB), 500 and 503.

**Wire spellings differ per endpoint on purpose** (they are KiriminAja's own):
`live_tracking_url` vs `live_track_url`, `photo` vs `image`, `poly_line` vs `polyline`, and
coordinates as `lat`/`long`, `lat_long` or `latitude`/`longitude`. Each schema below gives the
exact spelling its endpoint emits. Result timestamps are ISO 8601 UTC with microseconds and
`Z`. Money is integer rupiah. Unknown request fields are ignored.

**Beyond KiriminAja.** `/api/driver/v1/*` is the driver app's API for the operator's own
fleet (driver tokens; orders are named by their numeric `id`, and business outcomes follow the
same HTTP 200 rule). `/couriers/{courier}/callback` receive GoSend, GrabExpress and Borzo status
callbacks, each authenticated the courier's own way and answered with the same envelope (a
malformed body is HTTP 400 there). `/avatars/{seed}.svg` draws the simulator's driver photos.

**Webhook operations.** `/api/mitra/v4/webhooks/*` lets a merchant see its webhook endpoint and
every delivery with its attempt log, resend one, recover the failed ones, re-enable a disabled
endpoint, rotate the signing secret and pick the dialect; the operator has the same under
`/api/admin/merchants/{merchant}/webhooks/*`, and across merchants under `/api/admin/webhooks/*`.
"""

# -- schema helpers -------------------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _scalar(kind: str | list[str], description: str = "", *, nullable: bool = False, **extra: Any) -> Schema:
    """`{"type": kind}`, or `{"type": [kind, "null"]}` when nullable (the 3.1 spelling); `kind`
    may be a list of types (`["number", "string"]`)."""
    kinds = [kind] if isinstance(kind, str) else kind
    schema: Schema = {"type": [*kinds, "null"] if nullable else kind, **extra}
    if description:
        schema["description"] = description
    return schema


def _str(description: str = "", *, nullable: bool = False, **extra: Any) -> Schema:
    return _scalar("string", description, nullable=nullable, **extra)


def _int(description: str = "", *, nullable: bool = False, **extra: Any) -> Schema:
    return _scalar("integer", description, nullable=nullable, **extra)


def _num(description: str = "", *, nullable: bool = False, **extra: Any) -> Schema:
    return _scalar("number", description, nullable=nullable, **extra)


def _bool(description: str = "", **extra: Any) -> Schema:
    return _scalar("boolean", description, **extra)


def _time(description: str = "", *, nullable: bool = False) -> Schema:
    return _str(description, nullable=nullable, format="date-time", examples=[WIRE_TIME_EXAMPLE])


def _money(description: str, *, nullable: bool = False) -> Schema:
    return _int(f"{description} (integer rupiah)", nullable=nullable, minimum=0)


def _enum(values: list[Any], description: str = "", kind: str = "string", **extra: Any) -> Schema:
    return _scalar(kind, description, enum=values, **extra)


def _array(items: Schema, description: str = "", **extra: Any) -> Schema:
    return _scalar("array", description, items=items, **extra)


def _or_null(name: str, description: str = "", **extra: Any) -> Schema:
    """A component, or null."""
    schema: Schema = {"oneOf": [_ref(name), {"type": "null"}], **extra}
    if description:
        schema["description"] = description
    return schema


def _obj(props: dict[str, Schema], description: str = "", *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with these properties, in this order; all required except `optional`."""
    schema: Schema = {"type": "object"}
    if description:
        schema["description"] = description
    schema["properties"] = props
    schema["required"] = [name for name in props if name not in optional]
    return schema


def _place(coords: dict[str, Schema], *, note: bool = False) -> Schema:
    """A party (origin / destination); the coordinates are spelled per endpoint."""
    props = {"name": _str(), "address": _str()}
    if note:
        props["address_note"] = _str()
    return _obj({**props, "phone": _str(), **coords})


def _coordinate(axis: str, description: str = "") -> Schema:
    bound = 90 if axis == "lat" else 180
    text = description or ("latitude" if axis == "lat" else "longitude")
    return _num(text, minimum=-bound, maximum=bound)


# -- enumerations ---------------------------------------------------------------------------


def _enum_schemas() -> dict[str, Schema]:
    accepted = [*SERVICES, *validation.ALIASES]
    aliases = ", ".join(f"`{alias}` for `{name}`" for alias, name in validation.ALIASES.items())
    return {
        "ServiceName": _enum(accepted, f"A courier service; accepted aliases: {aliases}."),
        "Service": _enum(list(SERVICES), "The courier service (aliases already resolved)."),
        "Vehicle": _enum(list(VEHICLES), "Vehicle class.", default="motor"),
        "LifecycleState": _enum([s.value for s in State], "The unified lifecycle state."),
        "KaStatus": _enum(
            sorted(set(KA_STATUS.values())),
            "KiriminAja's numeric package status: 100 created, 105 finding/assigned driver, "
            "106 picked up / in transit, 200 delivered, 300 cancelled, 301 returning, "
            "400 returned, 500 on hold or failed.",
            kind="integer",
        ),
    }


# -- the envelope ---------------------------------------------------------------------------


def _envelope_schemas() -> dict[str, Schema]:
    envelope = _obj(
        {
            "status": _bool("true on success, false on any failure."),
            "text": _str("`success`, or what went wrong."),
            "code": _int(
                "0 success, 2 business failure, 422 validation, else the HTTP status.", nullable=True
            ),
            "method": _str("null except `mitra_pricing` and `set_callback`.", nullable=True),
            "result": {"description": "The endpoint's result, or null."},
        },
        "KiriminAja's envelope; every `/api/*` answer has it, keys in this order.",
    )
    return {
        "Envelope": envelope,
        "BusinessFailure": _failure(
            _enum([2, 422], "2 business failure, 422 validation failure.", kind="integer"),
            "A refused request, sent with HTTP 200 (SDKs discard non-2xx bodies).",
        ),
        "Failure": _failure(_int("The HTTP status."), "A transport-level failure (non-2xx)."),
    }


def _failure(code: Schema, description: str) -> Schema:
    narrowed = {
        "status": {"const": False},
        "code": code,
        "method": {"type": "null"},
        "result": {"type": "null"},
    }
    return {"description": description, "allOf": [_ref("Envelope"), {"properties": narrowed}]}


def _success(result: Schema, *, code: int | None, method: str | None, text: Schema) -> Schema:
    narrowed = {
        "status": {"const": True},
        "text": text,
        "code": {"const": code},
        "method": {"const": method},
        "result": result,
    }
    return {"allOf": [_ref("Envelope"), {"properties": narrowed}]}


# -- merchant results -----------------------------------------------------------------------


def _tracking_schemas() -> dict[str, Schema]:
    place = _place({"lat": _num(), "long": _num()}, note=True)
    date = _obj(
        {
            "created_at": _time(),
            "finished_at": _time("Set on delivered / returned.", nullable=True),
            "allocated_at": _time("Set when a driver is assigned.", nullable=True),
            "canceled_at": _time("Set on cancel.", nullable=True),
        }
    )
    cost = _obj(
        {
            "shipping_cost": _money("Shipping cost"),
            "insurance": _money("Insurance", nullable=True),
            "admin_fee": _money("Admin fee"),
            "total_price": _money("Total"),
        }
    )
    item = _obj(
        {"price": _money("Item price"), "description": _str("The item NAME (as KiriminAja sends it).")}
    )
    result = _obj(
        {
            "driver": _driver("photo"),
            "origin": _ref("TrackingPlace"),
            "destination": _ref("TrackingPlace"),
            "date": date,
            "cost": cost,
            "item": item,
            "order_id": _str(),
            "service": _ref("Service"),
            "service_type": _str(examples=list(SERVICE_TYPES)),
            "tracking_code": _str(AWB),
            "cancel_description": _str("Why it was cancelled / found no driver / failed.", nullable=True),
            "live_tracking_url": _str(nullable=True),
            "status": _ref("KaStatus"),
            "status_name": _ref("LifecycleState"),
        },
        "One order as `GET .../tracking/{order_id}` shows it. `status` and `status_name` are lacak's "
        "additions after KiriminAja's documented keys.",
    )
    return {"TrackingPlace": place, "TrackingResult": result, **_history_schemas()}


def _history_schemas() -> dict[str, Schema]:
    point = _obj({"lat": _num(), "long": _num()}, "Where the source said the driver was.")
    event = _obj(
        {
            "seq": _int("The order's version after this event (unchanged by a refused one)."),
            "state": _ref("LifecycleState"),
            "status": _ref("KaStatus"),
            "from_state": _or_null("LifecycleState"),
            "outcome": _enum([o.value for o in Outcome], "applied, or recorded without a change."),
            "source": _enum([x.value for x in Source], "Who reported it."),
            "courier_code": _str("The courier's own status code.", nullable=True),
            "courier_text": _str("The courier's own status text.", nullable=True),
            "position": {"oneOf": [point, {"type": "null"}]},
            "note": _str(nullable=True),
            "occurred_at": _time("When it happened, by the source's clock."),
            "recorded_at": _time("When lacak recorded it."),
        }
    )
    result = _obj(
        {
            "order_id": _str(),
            "status": _ref("KaStatus"),
            "status_name": _ref("LifecycleState"),
            "history": _array(event, "Every recorded event, oldest first."),
        },
        "lacak's extension: the order's append-only history.",
    )
    return {"TrackingHistoryResult": result, "LiveSnapshot": _live_snapshot()}


def _live_snapshot() -> Schema:
    at = _str("ISO 8601 in the order's zone, with its offset.")
    where = {"lat": _num(), "long": _num()}
    driver = _obj(
        {
            "name": _str(),
            "phone": _str("Masked: `0812****616`.", nullable=True),
            "plate": _str(nullable=True),
            "photo": _str(nullable=True),
        }
    )
    return _obj(
        {
            "order_id": _str(),
            "service": _ref("Service"),
            "tracking_code": _str(AWB),
            "seq": _int("The order's version; the event stream's `id`."),
            "state": _ref("LifecycleState"),
            "status_code": _ref("KaStatus"),
            "terminal": _bool(),
            "tone": _enum(["active", "warning", "done", "failed"]),
            "progress": _obj({"value": _int(), "max": _int()}),
            "note": _str("Why it stopped or was cancelled, when it did.", nullable=True),
            "zone": _enum(["WIB", "WITA", "WIT"], "The order's time zone (from the pickup)."),
            "timeline": _array(_obj({"state": _ref("LifecycleState"), "at": at}), "Newest first."),
            "driver": {"oneOf": [driver, {"type": "null"}]},
            "origin": _obj({"name": _str(), **where}),
            "destination": _obj({"name": _str(), "address": _str(), **where}),
            "route": _array(_array(_num(), minItems=2, maxItems=2), "The route, `[lat, long]` points."),
            "position": {"oneOf": [_obj({**where, "at": at}), {"type": "null"}]},
            "expires_at": _str("When the link stops working (after a terminal state).", nullable=True),
        },
        "The order as its customer sees it on the live page; no phone number but the driver's "
        "masked one, no pickup address.",
    )


def _driver(photo_key: str) -> Schema:
    """The driver object; the photo is `photo` on tracking and `image` everywhere else."""
    return _obj(
        {"name": _str(nullable=True), "phone": _str(nullable=True), photo_key: _str(nullable=True)},
        "The driver; every field is null until one is assigned.",
    )


def _pricing_schemas() -> dict[str, Schema]:
    price = _obj(
        {
            "admin_fee": _money("Admin fee"),
            "shipping_costs": _money("Shipping cost (plural here only)"),
            "total_price": _money("Total"),
        }
    )
    cost = _obj(
        {
            "service_type": _str(examples=list(SERVICE_TYPES)),
            "estimation": _str(examples=["1-2 hours"], nullable=True),
            "price": price,
        }
    )
    insurance = _obj({"value": _money("Premium"), "type": _str(examples=["silver", "gold"])})
    service = _obj({"name": _ref("Service"), "costs": _array(cost), "insurances": _array(insurance)})
    result = _array(
        _ref("ServicePrice"),
        "One entry per requested service; a service over the distance limit is left out.",
    )
    return {"ServicePrice": service, "PricingResult": result}


def _payment(status_code: Schema) -> dict[str, Schema]:
    return {
        "payment_id": _str(examples=["PID-1705636897"]),
        "amount": _money("Sum of the orders' total prices"),
        "status_code": status_code,
        "qr_content": _str(nullable=True),
        "pay_time": _time(nullable=True),
    }


def _status_code() -> Schema:
    return _enum([PAID, UNPAID], f"{PAID} paid, {UNPAID} unpaid.", kind="integer")


def _package(live_key: str, line_key: str, place: str, *, driver: bool) -> Schema:
    props: dict[str, Schema] = {
        "awb": _str(AWB),
        "order_id": _str(),
        "service": _ref("Service"),
        "service_type": _str(examples=list(SERVICE_TYPES)),
        "status": _ref("KaStatus"),
        live_key: _str(nullable=True),
        line_key: _str("Encoded polyline (precision 5) of the route."),
        "origin": _ref(place),
        "destination": _ref(place),
    }
    if driver:
        props["driver"] = _driver("image")
    return _obj(props)


def _order_results() -> dict[str, Schema]:
    label = _enum(["paid", "unpaid"], "Payment state as a label (pickup request only).")
    lat_long = _place({"lat_long": _str("`lat,long`", examples=["-7.8032616,110.350244"])})
    latitude = _place({"latitude": _num(), "longitude": _num()})
    return {
        "LatLongPlace": lat_long,
        "LatitudePlace": latitude,
        "PickupPackage": _package("live_track_url", "poly_line", "LatLongPlace", driver=True),
        "PickupResult": _obj({"payment": _obj(_payment(label)), "packages": _array(_ref("PickupPackage"))}),
        "VoidPackage": _package("live_track_url", "polyline", "LatitudePlace", driver=False),
        "VoidResult": _obj({"payment": _ref("Payment"), "packages": _array(_ref("VoidPackage"))}),
        "Payment": _obj(_payment(_status_code())),
        "PaymentPackage": _package("live_tracking_url", "poly_line", "LatitudePlace", driver=True),
        "PaymentResult": _obj({**_payment(_status_code()), "packages": _array(_ref("PaymentPackage"))}),
        "FindNewDriverResult": _obj({"awb": _str(), "order_id": _str()}),
    }


# -- merchant requests ----------------------------------------------------------------------


def _side(side: str) -> dict[str, Schema]:
    return {
        f"{side}_name": _str(maxLength=validation.MAX_TEXT),
        f"{side}_phone": _str(
            "Indonesian mobile: `08…`, `628…` or `+628…` (spaces and dashes ignored).",
            examples=["081280045616"],
        ),
        f"{side}_lat": _coordinate("lat"),
        f"{side}_long": _coordinate("long"),
        f"{side}_address": _str(maxLength=validation.MAX_ADDRESS),
        f"{side}_address_note": _str(maxLength=validation.MAX_ADDRESS, default=""),
    }


def _order_requests() -> dict[str, Schema]:
    order_id = validation.ORDER_ID.pattern
    location = _obj(
        {"lat": _coordinate("lat"), "long": _coordinate("long"), "address": _str(default="")},
        optional=("address",),
    )
    service_list = {
        "oneOf": [_array(_ref("ServiceName")), _ref("ServiceName"), {"type": "null"}],
        "description": "Services to quote (a list, or one name); null, absent or [] means all.",
        "default": None,
    }
    pricing = _obj(
        {
            "origin": _ref("Location"),
            "destination": _ref("Location"),
            "service": service_list,
            "item_price": _num(
                "Item value in rupiah (an integer), for the insurance quotes.", minimum=0, default=0
            ),
            "weight": _num("Grams.", exclusiveMinimum=0, maximum=validation.MAX_WEIGHT_GRAMS, default=1000),
            "vehicle": _ref("Vehicle"),
            "timezone": _str(
                f"{', '.join(validation.TIMEZONES)} or an IANA zone name.",
                default="WIB",
                examples=[*validation.TIMEZONES, "Asia/Jakarta"],
            ),
        },
        optional=("service", "item_price", "weight", "vehicle", "timezone"),
    )
    item = _obj(
        {
            "name": _str(maxLength=validation.MAX_TEXT),
            "price": _num("Item value in rupiah (an integer).", minimum=0),
            "description": _str(maxLength=validation.MAX_ADDRESS, default=""),
            "weight": _num(
                "Grams (current docs and SDKs); one of `weight` / `weight_kg` is required.",
                nullable=True,
                default=None,
                exclusiveMinimum=0,
                maximum=validation.MAX_WEIGHT_GRAMS,
            ),
            "weight_kg": _num(
                "Kilograms (older docs, PHP SDK); used when `weight` is absent.",
                nullable=True,
                default=None,
                exclusiveMinimum=0,
                maximum=validation.MAX_WEIGHT_GRAMS / 1000,
            ),
        },
        optional=("description", "weight", "weight_kg"),
    )
    package = _obj(
        {
            **_side("origin"),
            **_side("destination"),
            "shipping_price": _num(
                "Must equal the current quote for the service, type and vehicle.", minimum=0
            ),
            "item": _ref("Item"),
            "order_id": _str(
                "Own order id (older docs); otherwise `{order_prefix}-{epoch ms}`.",
                nullable=True,
                pattern=f"^{order_id}$",
                default=None,
            ),
        },
        optional=("origin_address_note", "destination_address_note", "order_id"),
    )
    pickup = _obj(
        {
            "service": _ref("ServiceName"),
            "service_type": _str("A service type of the tariff.", examples=list(SERVICE_TYPES)),
            "packages": _array(
                _ref("Package"), "All or nothing.", minItems=1, maxItems=validation.MAX_PACKAGES
            ),
            "vehicle": _ref("Vehicle"),
            "order_prefix": _str(
                "Prefix of generated order ids; required unless every package has its own `order_id`.",
                pattern=f"^(?:{validation.PREFIX.pattern})?$",
                default="",
            ),
        },
        optional=("vehicle", "order_prefix"),
    )
    return {
        "Location": location,
        "PricingRequest": pricing,
        "Item": item,
        "Package": package,
        "PickupRequest": pickup,
        "OrderRef": _obj({"order_id": _str(examples=["NBL2-1705636897084"])}),
        "PaymentRef": _obj({"payment_id": _str(examples=["PID-1705636897"])}),
        "CallbackRequest": _obj({"url": _str("A public http(s) URL.", format="uri")}),
    }


# -- admin ----------------------------------------------------------------------------------


def _merchant(last: dict[str, Schema], description: str) -> Schema:
    props = {
        "merchant_id": _int(),
        "name": _str(),
        "payment_mode": _enum(
            [m.value for m in PaymentMode],
            "`prepaid` orders wait as `created` until an operator marks the payment paid.",
        ),
        "callback_url": _str(format="uri", nullable=True),
        "webhook_dialect": _str(examples=["kiriminaja-2024", "kiriminaja-2025"]),
    }
    return _obj({**props, **last}, description)


def _admin_schemas() -> dict[str, Schema]:
    api_key = _str("The merchant's API key (64 lowercase hex); shown only here.")
    outcome = _enum(
        [o.value for o in Outcome],
        "`stale` and `refused` are recorded without effect; a `duplicate` is ignored.",
    )
    history = _obj(
        {
            "order_pk": _int(),
            "seq": _int(),
            "state": _ref("LifecycleState"),
            "from_state": _or_null("LifecycleState"),
            "outcome": outcome,
            "source": _enum([src.value for src in Source]),
            "native_code": _str(nullable=True),
            "native_text": _str(nullable=True),
            "dedupe_key": _str(nullable=True),
            "lat": _num(nullable=True),
            "long": _num(nullable=True),
            "note": _str(nullable=True),
            "occurred_at": _str(format="date-time"),
            "recorded_at": _str(format="date-time"),
        }
    )
    seq = _int("The order's version (bumped by every applied change).")
    advance = {
        "merchant": "Merchant id or name; needed when several merchants use the order id.",
        "driver_name": "Sets the driver (with `driver_assigned`).",
        "driver_phone": "The driver's phone.",
        "driver_photo": "The driver's photo URL.",
        "tracking_code": "Sets the courier AWB.",
        "reason": "Cancel / failure reason (`cancel_description`).",
        "note": "Free text kept in the history.",
    }
    nullable = {name: _str(text, nullable=True, default=None) for name, text in advance.items()}
    return {
        "Merchant": _merchant({"active_keys": _int(minimum=0)}, "A merchant and its active key count."),
        "NewMerchantResult": _merchant({"api_key": api_key}, "The new merchant and its key."),
        "KeyRotation": _obj({"merchant_id": _int(), "api_key": api_key}),
        "KeyRevocation": _obj({"merchant_id": _int(), "revoked": _int("Keys revoked.", minimum=0)}),
        "HistoryEvent": history,
        "AdminOrder": _obj(
            {
                "merchant_id": _int(),
                "seq": seq,
                "tracking": _ref("TrackingResult"),
                "history": _array(_ref("HistoryEvent")),
            }
        ),
        "AdvanceResult": _obj({"outcome": outcome, "seq": seq, "tracking": _ref("TrackingResult")}),
        "MarkPaidResult": _obj({"payment_id": _str(), "status_code": _status_code()}),
        "NewMerchant": _obj(
            {"name": _str(minLength=1, maxLength=100), "prepaid": _bool(default=False)}, optional=("prepaid",)
        ),
        "Advance": _obj({"state": _ref("LifecycleState"), **nullable}, optional=tuple(nullable)),
        "MerchantRef": _obj({"merchant": _str("Merchant id or name.")}),
    }


# -- driver API -----------------------------------------------------------------------------


def _driver_place(*, contacts: bool) -> Schema:
    """A party as a driver sees it: the phone only once the order is the driver's."""
    props = {"name": _str(), "address": _str(), "address_note": _str(), "lat": _num(), "long": _num()}
    if contacts:
        props["phone"] = _str()
    return _obj(props)


def _driver_order(place: str, extra: dict[str, Schema], description: str) -> Schema:
    item = _obj({"name": _str(), "description": _str(), "weight": _int("Grams.", minimum=0)})
    return _obj(
        {
            "id": _int("The order's numeric id: the `{order_id}` of the accept and status paths."),
            "order_id": _str("The merchant's order id (unique per merchant only)."),
            "state": _ref("LifecycleState"),
            "service": _ref("Service"),
            "vehicle": _ref("Vehicle"),
            "tracking_code": _str("`FLT-{id}-{driver id}` once accepted; empty string before."),
            "pickup": _ref(place),
            "dropoff": _ref(place),
            "item": item,
            "shipping_cost": _money("Shipping cost"),
            "poly_line": _str("Encoded polyline (precision 5) of the route."),
            "created_at": _time(),
            "allocated_at": _time("Set when a driver accepts.", nullable=True),
            "finished_at": _time("Set on delivered / returned.", nullable=True),
            **extra,
        },
        description,
    )


def _driver_schemas() -> dict[str, Schema]:
    reportable = [state.value for state in State if state in REPORTABLE]
    distance = _num("Great-circle km from the point measured from to the pickup (3 decimals).", minimum=0)
    position = _obj({"lat": _num(), "long": _num(), "at": _time("The newest point's time.")})
    at = {
        "description": "ISO 8601 with an offset, or epoch milliseconds; at most "
        f"{int(drivers.FUTURE_SLACK.total_seconds() // 60)} minutes ahead of the server's clock.",
        "oneOf": [_str(format="date-time"), _int(minimum=drivers.EPOCH_MS_FLOOR)],
    }
    return {
        "BoardPlace": _driver_place(contacts=False),
        "DriverPlace": _driver_place(contacts=True),
        "BoardOrder": _driver_order(
            "BoardPlace", {"distance_km": distance}, "An open order: no phones until it is accepted."
        ),
        "DriverOrder": _driver_order(
            "DriverPlace", {}, "An order as its driver sees it (never the merchant)."
        ),
        "BoardResult": _obj({"orders": _array(_ref("BoardOrder"), "Nearest pickup first.")}),
        "CarriedResult": _obj({"orders": _array(_ref("DriverOrder"), "By id.")}),
        "LocationResult": _obj(
            {
                "points": _int("Points stored.", minimum=1),
                "position": position,
                "orders": _array(_int(), "The ids of the carried orders whose trails got the points."),
            }
        ),
        "StatusRequest": _obj(
            {
                "status": _enum(reportable, "The state to move to; cancel and hold are not the driver's."),
                "note": _str(
                    "Kept in the history; with `failed`, also the failure reason.",
                    nullable=True,
                    default=None,
                    maxLength=validation.MAX_TEXT,
                ),
            },
            optional=("note",),
        ),
        "LocationRequest": _obj(
            {
                "points": _array(
                    _ref("LocationPoint"),
                    f"1 to {drivers.MAX_POINTS} points, in any order; absent or empty is refused (422).",
                    maxItems=drivers.MAX_POINTS,
                    default=[],
                )
            },
            optional=("points",),
        ),
        "LocationPoint": _obj(
            {
                "lat": _coordinate("lat"),
                "long": _coordinate("long"),
                "at": at,
                "accuracy": _num("Metres.", nullable=True, default=None, minimum=0),
            },
            optional=("accuracy",),
        ),
    }


# -- courier callbacks ----------------------------------------------------------------------


def _sent(kind: str | list[str] = "string", description: str = "", **extra: Any) -> Schema:
    """An optional field of a courier's payload; absent and null mean not sent."""
    return _scalar(kind, description, nullable=True, default=None, **extra)


def _payload(props: dict[str, Schema], description: str, *, required: tuple[str, ...] = ()) -> Schema:
    """A courier's message: the fields lacak reads (others are ignored); `""` means not sent."""
    return _obj(props, description, optional=tuple(name for name in props if name not in required))


def _statuses(states: dict[str, State], description: str, *, sent: bool = False) -> Schema:
    """The courier's native status: the known ones as examples (the rest are recorded only)."""
    text = f"{description} Another status is stored as `{UNKNOWN_STATUS}`."
    return _sent(description=text, examples=list(states)) if sent else _str(text, examples=list(states))


def _gosend_schemas() -> dict[str, Schema]:
    event = _payload(
        {
            "status": _statuses(
                gosend.STATES, "The booking status; `booking_status` when absent.", sent=True
            ),
            "booking_status": _sent(description="Read when `status` is absent."),
            "booking_id": _sent(
                description="The booking's AWB; `entity_id` when absent.", examples=["GK-11-1"]
            ),
            "entity_id": _sent(description="The same AWB as `booking_id`."),
            "event_id": _sent(description="Identifies retries; without it AWB, status and time do."),
            "event_date": _sent("number", "Epoch milliseconds; absent: the time it was received."),
            "type": _sent(description="The event's name (e.g. `DRIVER_NOT_FOUND`), kept as native text."),
            "driver_name": _sent(),
            "driver_phone": _sent(),
            "driver_photo_url": _sent(),
            "live_tracking_url": _sent(),
            "cancellation_reason": _sent(description="Becomes the order's `cancel_description`."),
        },
        "A GoSend `booking_event` webhook, one event per POST. Needs a non-empty `booking_id` (or "
        "`entity_id`) and `status` (or `booking_status`), else 400.",
    )
    return {"GoSendBookingEvent": event}


def _grab_schemas() -> dict[str, Schema]:
    grab_driver = _payload(
        {
            "name": _sent(),
            "phone": _sent(),
            "licensePlate": _sent(description="Kept with the driver when one is assigned."),
            "photoURL": _sent(),
            "currentLat": _sent("number", "0 with `currentLng` 0: no position yet."),
            "currentLng": _sent("number"),
        },
        "The GrabExpress driver.",
    )
    event = _payload(
        {
            "deliveryID": _str("The delivery id the booking returned."),
            "status": _statuses(
                grab_express.STATES,
                "Case-insensitive; `FAILED` means `no_driver` before pickup and `failed` after it.",
            ),
            "merchantOrderID": _sent(),
            "timestamp": _sent(
                ["number", "string"], "Unix seconds (a number or digits) or ISO 8601 (no offset: UTC)."
            ),
            "trackURL": _sent(),
            "failedReason": _sent(description="`code|text`; the text becomes the failure reason."),
            "driver": _or_null("GrabDriver", default=None),
        },
        "A GrabExpress tracking webhook, one event per POST.",
        required=("deliveryID", "status"),
    )
    return {"GrabTrackingEvent": event, "GrabDriver": grab_driver}


def _borzo_schemas() -> dict[str, Schema]:
    either = ["integer", "string"]
    courier = _payload(
        {
            "name": _sent(description="`name`, `middlename` and `surname` join into the driver's name."),
            "middlename": _sent(),
            "surname": _sent(),
            "phone": _sent(),
            "photo_url": _sent(),
            "latitude": _sent(["number", "string"], "0 with `longitude` 0: no position yet."),
            "longitude": _sent(["number", "string"]),
        },
        "The Borzo courier.",
    )
    subject = _payload(
        {
            "status": _statuses(borzo.STATES, "The order or delivery status."),
            "order_id": _sent(either, "Borzo's order id, the booking's external id; required in `order`."),
            "delivery_id": _sent(either, "Used when a `delivery` has no `order_id`."),
            "client_order_id": _sent(),
            "status_description": _sent(description="Kept as native text."),
            "courier": _or_null("BorzoCourier", default=None),
        },
        "The `order` or `delivery` object of a Borzo callback.",
        required=("status",),
    )
    callback = _payload(
        {
            "event_datetime": _str("ISO 8601 (no offset: UTC).", examples=["2024-01-19T11:01:37+07:00"]),
            "event_type": _sent(examples=["order_changed", "delivery_changed"]),
            "order": _or_null("BorzoSubject", "Read when there is no `delivery`.", default=None),
            "delivery": _or_null("BorzoSubject", "Read in preference to `order`.", default=None),
        },
        "A Borzo callback; needs an `order` or a `delivery` object, else 400.",
        required=("event_datetime",),
    )
    return {"BorzoCallback": callback, "BorzoSubject": subject, "BorzoCourier": courier}


def _callback_schemas() -> dict[str, Schema]:
    outcome = _enum(
        [*(o.value for o in Outcome), UNKNOWN_ORDER, UNKNOWN_STATUS],
        f"What became of the event. `{UNKNOWN_ORDER}` (no booking with that id) and `{UNKNOWN_STATUS}` "
        "are recorded for the operator without effect.",
    )
    receipt = _obj(
        {"received": _int("Events stored (one per callback).", minimum=0), "outcomes": _array(outcome)}
    )
    return {"CallbackReceipt": receipt, **_gosend_schemas(), **_grab_schemas(), **_borzo_schemas()}


def _webhook_schemas() -> dict[str, Schema]:
    delivery = {
        "event_id": _str(
            "The `webhook-id` header of every attempt; stable across retries.",
            examples=["msg_2b0c8e0f6d1a4e7c9f3b5a1d2c4e6f80"],
        ),
        "merchant_id": _int(),
        "order_id": _str(),
        "seq": _int("The order's version this event carries (receivers order by it)."),
        "state": _ref("LifecycleState"),
        "status": _ref("DeliveryStatus"),
        "attempts": _int("Attempts made so far.", minimum=0),
        "next_attempt_at": _time("When the next attempt is due; null unless `pending`.", nullable=True),
        "created_at": _time("When the state change happened."),
        "delivered_at": _time("When a 2xx answer came.", nullable=True),
        "last_status": _int("The HTTP status of the last attempt, if it got one.", nullable=True),
        "last_error": _str("What went wrong last, if anything.", nullable=True),
    }
    attempt = _obj(
        {
            "attempt": _int("1 for the first.", minimum=1),
            "trigger": _enum([t.value for t in Trigger], "`manual` after a resend, recover or re-enable."),
            "started_at": _time(),
            "duration_ms": _num(minimum=0),
            "status_code": _int("The receiver's HTTP status; null when no answer came.", nullable=True),
            "error_class": _scalar(
                "string", "Why it failed; null on success.", nullable=True, enum=[*get_args(ErrorClass), None]
            ),
            "error": _str(nullable=True),
            "response_body": _str(f"The first {BODY_LIMIT // 1024} KiB of the answer.", nullable=True),
            "outcome": _enum([v.value for v in Verdict], "What the attempt decided."),
        }
    )
    endpoint = _obj(
        {
            "merchant_id": _int(),
            "url": _str("The callback URL (`set_callback`); null: none yet.", format="uri", nullable=True),
            "dialect": _ref("WebhookDialect"),
            "has_secret": _bool("Whether a signing secret exists (made with the first callback URL)."),
            "rotating_until": _time(
                "After a rotation: the previous secret also signs until then.", nullable=True
            ),
            "failing_since": _time("Start of the current run of failures.", nullable=True),
            "held_until": _time(
                "Unreachable (no HTTP answer several times in a row): new events are scheduled"
                " after then; a probe goes first.",
                nullable=True,
            ),
            "disabled_at": _time(
                "Set when the endpoint was disabled; its new events wait as `paused`.", nullable=True
            ),
            "disabled_reason": _str(nullable=True),
        },
        "A merchant's webhook endpoint.",
    )
    since = _str(
        "ISO 8601 with a timezone (`Z` or an offset).", format="date-time", examples=["2024-01-19T00:00:00Z"]
    )
    secret = _str("The Standard Webhooks signing secret.", pattern="^whsec_")
    return {
        "DeliveryStatus": _enum(
            [st.value for st in Status],
            "`pending` waits for its next attempt; `failed` spent its retries (recover sends it again); "
            "`paused` waits for its disabled endpoint to be re-enabled; `no_endpoint`: the merchant had "
            "no callback URL at the change.",
        ),
        "WebhookDialect": _enum([d.value for d in Dialect], "The body format of the merchant's webhooks."),
        "WebhookEndpoint": endpoint,
        "Delivery": _obj(delivery, "One state change's webhook."),
        "DeliveryAttempt": attempt,
        "DeliveryDetail": _obj(
            {**delivery, "attempts": _array(_ref("DeliveryAttempt"), "Every attempt, oldest first.")},
            "A delivery with its attempt log (here `attempts` is the log, not a count).",
        ),
        "DeliveryPage": _obj(
            {
                "deliveries": _array(_ref("Delivery"), "Newest first."),
                "next_cursor": _str("Send as `cursor` for the next page; null on the last.", nullable=True),
            }
        ),
        "RecoverResult": _obj({"requeued": _int("Failed deliveries queued again.", minimum=0)}),
        "EnableResult": _obj({"resumed": _int("Paused deliveries queued again.", minimum=0)}),
        "SecretRotation": _obj(
            {
                "webhook_secret": secret,
                "previous_valid_until": _time("The previous secret keeps signing (as well) until then."),
            }
        ),
        "WebhookSecret": _obj({"webhook_secret": secret}),
        "WebhookRecover": _obj({"since": since}),
        "AdminWebhookRecover": _obj(
            {
                "since": since,
                "merchant": _str("Merchant id or name; absent: every merchant.", nullable=True, default=None),
            },
            optional=("merchant",),
        ),
        "WebhookDialectRequest": _obj({"dialect": _ref("WebhookDialect")}),
    }


def _ops_schemas() -> dict[str, Schema]:
    return {
        "Health": _obj({"status": {"const": "ok"}}),
        "Readiness": _obj(
            {"status": _enum(["ok", "unavailable"]), "database": _enum(["reachable", "unreachable"])}
        ),
    }


def _schemas() -> dict[str, Schema]:
    return {
        **_envelope_schemas(),
        **_enum_schemas(),
        **_tracking_schemas(),
        **_pricing_schemas(),
        **_order_results(),
        **_order_requests(),
        **_admin_schemas(),
        **_driver_schemas(),
        **_callback_schemas(),
        **_webhook_schemas(),
        **_ops_schemas(),
    }


# -- responses and parameters ---------------------------------------------------------------


def _header(description: str) -> Schema:
    return {"description": description, "schema": _str()}


def _transport(description: str, headers: dict[str, str] | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": _ref("Failure")}}}
    if headers:
        response["headers"] = {name: _header(text) for name, text in headers.items()}
    return response


def _responses() -> dict[str, Schema]:
    return {
        "BadRequest": _transport("The body is not valid JSON."),
        "Unauthorized": _transport(
            "Missing, unknown or revoked credentials (admin: also when LACAK_ADMIN_TOKEN is unset; "
            "courier callbacks: also when the courier's secret is unset).",
            {"WWW-Authenticate": "`Bearer`"},
        ),
        "NotFound": _transport("No route matches the URL (unknown path, trailing slash, missing id)."),
        "MethodNotAllowed": _transport(
            "The path exists, not with this method.", {"Allow": "Allowed methods."}
        ),
        "PayloadTooLarge": _transport(f"The body is larger than {MAX_BODY // (1024 * 1024)} MiB."),
        "ServerError": _transport("An unexpected server fault."),
        "ServiceUnavailable": _transport(
            "The database is unreachable; try again.", {"Retry-After": "Seconds to wait."}
        ),
    }


def _param(name: str, where: str, description: str, schema: Schema, *, required: bool) -> Schema:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


def _path(name: str, description: str, **extra: Any) -> Schema:
    return _param(name, "path", description, _str(**extra), required=True)


def _order_id_param() -> Schema:
    return _path(
        "order_id",
        "The order id, sent unencoded. At most 64 characters of `[A-Za-z0-9_.-]`; any other "
        "value is answered as not found, never with an error status.",
        examples=["NBL2-1705636897084"],
    )


# -- operations -----------------------------------------------------------------------------

ERRORS = {
    "401": "Unauthorized",
    "404": "NotFound",
    "405": "MethodNotAllowed",
    "500": "ServerError",
    "503": "ServiceUnavailable",
}
BODY_ERRORS = {"400": "BadRequest", "413": "PayloadTooLarge"}


def _operation(
    tag: str,
    operation_id: str,
    summary: str,
    description: str,
    responses: dict[str, Schema],
    *,
    params: list[Schema] | None = None,
    body: str | None = None,
    security: str | None = None,
) -> Schema:
    """An operation; its security scheme is its tag's unless `security` names another."""
    op: Schema = {"operationId": operation_id, "summary": summary, "description": description, "tags": [tag]}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    op["responses"] = responses
    scheme = security or SECURITY.get(tag)
    op["security"] = [{scheme: []}] if scheme else []
    return op


def _error_refs(errors: dict[str, str]) -> dict[str, Schema]:
    return {status: {"$ref": f"#/components/responses/{name}"} for status, name in sorted(errors.items())}


def _api(
    tag: str,
    operation_id: str,
    summary: str,
    description: str,
    result: Schema,
    *,
    params: list[Schema] | None = None,
    body: str | None = None,
    code: int | None = 0,
    method: str | None = None,
    text: Schema | None = None,
    headers: dict[str, Schema] | None = None,
    extra: dict[str, Schema] | None = None,
) -> Schema:
    """An `/api/*` operation: HTTP 200 for success and business failure, envelopes elsewhere."""
    success = _success(result, code=code, method=method, text=text or {"const": "success"})
    ok: Schema = {
        "description": "The business outcome, success or failure: a failure is still HTTP 200, "
        "with `status: false` and `code` 2 (a business rule refused it: not found, wrong state, "
        "…, see the operation) or 422 (validation; `text` names the first bad field).",
        "content": {JSON: {"schema": {"oneOf": [success, _ref("BusinessFailure")]}}},
    }
    if headers:
        ok["headers"] = headers
    errors = {**ERRORS, **BODY_ERRORS} if body is not None else ERRORS
    responses: dict[str, Schema] = {"200": ok, **(extra or {}), **_error_refs(errors)}
    return _operation(tag, operation_id, summary, description, responses, params=params, body=body)


def _mitra_paths() -> dict[str, dict[str, Schema]]:
    etag = {
        "ETag": _header("The order's version, on success; send it back as `If-None-Match`."),
        "Cache-Control": _header("`private, no-cache`"),
    }
    not_modified = {
        "description": "The order has not changed since the `If-None-Match` ETag.",
        "headers": etag,
    }
    if_none_match = _param(
        "If-None-Match", "header", "An ETag from an earlier answer.", _str(), required=False
    )
    return {
        f"{PREFIX}/tracking/{{order_id}}": {
            "get": _api(
                MITRA,
                "trackOrder",
                "Track an instant order",
                "The order's parties, dates, costs, driver and lifecycle status. An unknown id and "
                "another merchant's id both answer `data not found` (code 2, HTTP 200).",
                _ref("TrackingResult"),
                params=[_order_id_param(), if_none_match],
                headers=etag,
                extra={"304": not_modified},
            )
        },
        f"{PREFIX}/tracking/{{order_id}}/history": {
            "get": _api(
                MITRA,
                "trackOrderHistory",
                "An order's full history",
                "lacak's extension: every recorded event (state, KiriminAja code, time, source, the "
                "courier's raw code, position), including stale and refused ones, oldest first. An "
                "unknown id and another merchant's id both answer `data not found`.",
                _ref("TrackingHistoryResult"),
                params=[_order_id_param()],
            )
        },
        f"{PREFIX}/pricing": {
            "post": _api(
                MITRA,
                "quotePricing",
                "Quote instant services for a trip",
                "Price per service, service type and vehicle (base fare plus per-km, rounded up to "
                "Rp500, plus admin fee) and insurance premiums. `code` is null on success, as "
                "KiriminAja documents.",
                _ref("PricingResult"),
                body="PricingRequest",
                code=None,
                method="mitra_pricing",
            )
        },
        f"{PREFIX}/pickup/request": {
            "post": _api(
                MITRA,
                "requestPickup",
                "Create instant orders",
                f"1 to {validation.MAX_PACKAGES} packages, all or nothing. Each package is validated "
                "(phones, coordinates, distance at most 40 km, `shipping_price` equal to the current quote); "
                "a duplicate `order_id` for the merchant refuses the whole request.",
                _ref("PickupResult"),
                body="PickupRequest",
            )
        },
        f"{PREFIX}/pickup/find-new-driver": {
            "post": _api(
                MITRA,
                "findNewDriver",
                "Ask the courier for another driver",
                "Allowed while the order has no driver, or is looking for or assigned to one but not "
                "yet picked up; otherwise `order id yang dipilih tidak valid.` (code 2).",
                _ref("FindNewDriverResult"),
                body="OrderRef",
            )
        },
        f"{PREFIX}/pickup/void/{{order_id}}": {
            "delete": _api(
                MITRA,
                "voidOrder",
                "Cancel an order not yet picked up",
                "Cancels the order. Already picked up, finished or cancelled: code 2, nothing changes.",
                _ref("VoidResult"),
                params=[_order_id_param()],
            )
        },
        "/api/mitra/v2/get_payment": {
            "post": _api(
                MITRA,
                "getPayment",
                "A payment and its packages",
                "`text` is `get_payment` on success.",
                _ref("PaymentResult"),
                body="PaymentRef",
                text={"const": "get_payment"},
            )
        },
        "/api/mitra/set_callback": {
            "post": _api(
                MITRA,
                "setCallback",
                "Set the merchant's webhook URL",
                "One callback URL per API key. A URL that is not http(s), does not resolve, or "
                "resolves to a private, loopback, link-local or reserved address is refused (code 2) "
                "unless the operator allows private targets. The first call also returns the "
                "merchant's Standard Webhooks signing secret, once; later calls return null.",
                _or_null("WebhookSecret", "The whsec_ secret, on the first call only."),
                body="CallbackRequest",
                method="set_callback",
                text={"type": "string", "pattern": "^Callback di set ke "},
            )
        },
    }


def _admin_paths() -> dict[str, dict[str, Schema]]:
    merchant = _path("merchant", "Merchant id (digits) or name.")
    order_id = _path("order_id", "The merchant's order id.")
    by_merchant = _param(
        "merchant",
        "query",
        "Merchant id or name; needed when several merchants use the order id.",
        _str(),
        required=False,
    )
    return {
        "/api/admin/merchants": {
            "get": _api(
                ADMIN, "listMerchants", "List merchants", "Every merchant, by id.", _array(_ref("Merchant"))
            ),
            "post": _api(
                ADMIN,
                "createMerchant",
                "Create a merchant",
                "Creates the merchant and its API key; the key is shown only in this answer.",
                _ref("NewMerchantResult"),
                body="NewMerchant",
            ),
        },
        "/api/admin/merchants/{merchant}/keys/rotate": {
            "post": _api(
                ADMIN,
                "rotateMerchantKey",
                "Replace the merchant's API key",
                "Issues a new key; the old ones stop working.",
                _ref("KeyRotation"),
                params=[merchant],
            )
        },
        "/api/admin/merchants/{merchant}/keys/revoke": {
            "post": _api(
                ADMIN,
                "revokeMerchantKeys",
                "Revoke every key of the merchant",
                "The merchant can no longer authenticate until a key is rotated in.",
                _ref("KeyRevocation"),
                params=[merchant],
            )
        },
        "/api/admin/orders/{order_id}": {
            "get": _api(
                ADMIN,
                "getOrder",
                "One order with its full history",
                "The tracking view of the order plus every history event, oldest first.",
                _ref("AdminOrder"),
                params=[order_id, by_merchant],
            )
        },
        "/api/admin/orders/{order_id}/advance": {
            "post": _api(
                ADMIN,
                "advanceOrder",
                "Move an order through the lifecycle by hand",
                "Applies the lifecycle rules as an operator update; `outcome` says whether it was "
                "applied, stale, refused or a duplicate.",
                _ref("AdvanceResult"),
                params=[order_id],
                body="Advance",
            )
        },
        "/api/admin/payments/{payment_id}/paid": {
            "post": _api(
                ADMIN,
                "markPaymentPaid",
                "Mark a prepaid payment as paid",
                "Its `created` orders go on to `finding_driver`.",
                _ref("MarkPaidResult"),
                params=[_path("payment_id", "The payment id.")],
                body="MerchantRef",
            )
        },
    }


def _listing_params() -> list[Schema]:
    def query(name: str, description: str, schema: Schema) -> Schema:
        return _param(name, "query", description, schema, required=False)

    limit = _int("Page size.", minimum=1, maximum=MAX_PAGE, default=DEFAULT_LIMIT)
    return [
        query("status", "Only deliveries with this status.", _ref("DeliveryStatus")),
        query("order_id", "Only this order's deliveries.", _str()),
        query("since", "Created at or after (ISO 8601 with a timezone).", _str(format="date-time")),
        query("until", "Created before (ISO 8601 with a timezone).", _str(format="date-time")),
        query("cursor", "`next_cursor` of the previous page.", _str(pattern="^[0-9]{1,18}$")),
        query("limit", "Page size.", limit),
    ]


def _webhook_operations() -> list[tuple[str, str, str, str, str, Schema, str | None, bool]]:
    """(method, path suffix, operation id, summary, description, result, body, by event id)."""
    bad = "A bad filter, cursor or limit answers 422 naming it, and nothing else happens."
    unknown = "An unknown event id, and another merchant's, answer `data not found` (code 2)."
    return [
        ("get", "", "getWebhookEndpoint", "The webhook endpoint",
         "The callback URL, dialect, secret rotation and health (failing since, disabled and why).",
         _ref("WebhookEndpoint"), None, False),
        ("get", "/deliveries", "listWebhookDeliveries", "List webhook deliveries",
         f"Newest first, {DEFAULT_LIMIT} a page (at most {MAX_PAGE}); follow `next_cursor` until null. "
         f"Filters combine. {bad}", _ref("DeliveryPage"), None, False),
        ("get", "/deliveries/{event_id}", "getWebhookDelivery", "One delivery and its attempts",
         f"Every attempt: trigger, time, duration, HTTP status, error class and the first "
         f"{BODY_LIMIT // 1024} KiB of the answer. {unknown}", _ref("DeliveryDetail"), None, True),
        ("post", "/deliveries/{event_id}/resend", "resendWebhookDelivery", "Send a delivery again now",
         "Whatever its status (even delivered): it becomes `pending`, due now, as a manual attempt. "
         + unknown,
         _ref("Delivery"), None, True),
        ("post", "/recover", "recoverWebhookDeliveries", "Send failed deliveries again",
         "Every `failed` delivery created since `since` becomes `pending`, due now. A bad `since` "
         "answers 422 and nothing is queued.", _ref("RecoverResult"), "WebhookRecover", False),
        ("post", "/enable", "enableWebhookEndpoint", "Re-enable the endpoint",
         "Clears the disabled state and the failure run; `paused` deliveries go now.",
         _ref("EnableResult"), None, False),
        ("post", "/secret/rotate", "rotateWebhookSecret", "Rotate the signing secret",
         "A new `whsec_` secret, shown only here; until `previous_valid_until` every webhook carries "
         "both signatures, so receivers can switch without losing one.", _ref("SecretRotation"), None, False),
        ("post", "/dialect", "setWebhookDialect", "Choose the webhook body format",
         "Applies to every attempt from now on, retries included. Another value answers 422.",
         _ref("WebhookEndpoint"), "WebhookDialectRequest", False),
    ]  # fmt: skip


def _webhook_paths() -> dict[str, dict[str, Schema]]:
    event_id = _path("event_id", "The delivery's event id (`msg_…`).", examples=["msg_2b0c8e0f6d1a4e7c"])
    merchant = _path("merchant", "Merchant id (digits) or name.")
    by_merchant = _param(
        "merchant", "query", "Merchant id or name; absent: every merchant.", _str(), required=False
    )
    paths: dict[str, dict[str, Schema]] = {}
    for method, suffix, mine, summary, description, result, body, by_event in _webhook_operations():
        params = [event_id] if by_event else []
        if suffix == "/deliveries":
            params = _listing_params()
        paths.setdefault(f"{WEBHOOKS}{suffix}", {})[method] = _api(
            MITRA, mine, summary, description, result, params=params or None, body=body
        )
        paths.setdefault(f"{ADMIN_MERCHANT}{suffix}", {})[method] = _api(
            ADMIN,
            f"admin{mine[0].upper()}{mine[1:]}",
            f"{summary} (operator)",
            f"{description} For the merchant named in the path; an unknown one answers code 2.",
            result,
            params=[merchant, *params],
            body=body,
        )
    paths[f"{ADMIN_MERCHANT}/secret"] = {
        "get": _api(
            ADMIN,
            "adminGetWebhookSecret",
            "The current signing secret",
            "The merchant's current `whsec_` secret, made now if it has none (operators only: merchants "
            "see it once, from set_callback or a rotation).",
            _ref("WebhookSecret"),
            params=[merchant],
        )
    }
    paths[f"{ADMIN_WEBHOOKS}/deliveries"] = {
        "get": _api(
            ADMIN,
            "adminListAllWebhookDeliveries",
            "List every merchant's deliveries",
            "As the merchant listing, across merchants (or one, with `merchant`). An unknown merchant "
            "answers code 2.",
            _ref("DeliveryPage"),
            params=[by_merchant, *_listing_params()],
        )
    }
    paths[f"{ADMIN_WEBHOOKS}/deliveries/{{event_id}}"] = {
        "get": _api(
            ADMIN,
            "adminGetAnyWebhookDelivery",
            "Any delivery and its attempts",
            "A delivery of any merchant, by its globally unique event id, with every attempt.",
            _ref("DeliveryDetail"),
            params=[event_id],
        )
    }
    paths[f"{ADMIN_WEBHOOKS}/deliveries/{{event_id}}/resend"] = {
        "post": _api(
            ADMIN,
            "adminResendAnyWebhookDelivery",
            "Send any delivery again now",
            "As the merchant's resend, for any merchant's event id.",
            _ref("Delivery"),
            params=[event_id],
        )
    }
    paths[f"{ADMIN_WEBHOOKS}/recover"] = {
        "post": _api(
            ADMIN,
            "adminRecoverAllWebhookDeliveries",
            "Send failed deliveries again, any merchant",
            "Every `failed` delivery created since `since`, of every merchant or of `merchant`.",
            _ref("RecoverResult"),
            body="AdminWebhookRecover",
        )
    }
    return paths


def _driver_paths() -> dict[str, dict[str, Schema]]:
    order_id = _path(
        "order_id",
        "The order's numeric `id` from a driver answer (not the merchant's order id). Anything "
        "but digits answers `data not found` (code 2, HTTP 200).",
        examples=["42"],
    )
    point = {
        name: _param(
            name,
            "query",
            f"The {text} to measure from; send both or neither.",
            _coordinate(name),
            required=False,
        )
        for name, text in (("lat", "latitude"), ("long", "longitude"))
    }
    limit = _int("How many orders.", minimum=1, maximum=drivers.MAX_LIMIT, default=drivers.DEFAULT_LIMIT)
    return {
        f"{DRIVER_API}/orders/available": {
            "get": _api(
                DRIVER,
                "availableOrders",
                "Open fleet orders, nearest pickup first",
                "Orders booked with the `fleet` provider that are `finding_driver`, nearest pickup first, "
                "measured from `lat`/`long` or, without both, from the driver's last reported position "
                "(none yet: 422 `The lat field is required.`). The parties' phones and the merchant "
                "are left out.",
                _ref("BoardResult"),
                params=[
                    point["lat"],
                    point["long"],
                    _param("limit", "query", "Page size.", limit, required=False),
                ],
            )
        },
        f"{DRIVER_API}/orders": {
            "get": _api(
                DRIVER,
                "carriedOrders",
                "The orders this driver carries",
                "Every order the driver accepted and has not finished (assigned to returning, or on hold), "
                "with the parties' phones.",
                _ref("CarriedResult"),
            )
        },
        f"{DRIVER_API}/orders/{{order_id}}/accept": {
            "post": _api(
                DRIVER,
                "acceptOrder",
                "Take an open order",
                "First driver wins: the order becomes `driver_assigned` with this driver and tracking code "
                f"`FLT-{{id}}-{{driver id}}`. Another driver's order answers `{drivers.TAKEN}` (code 2); an "
                "unknown, cancelled or non-fleet order `data not found` (code 2). Accepting one's own "
                "order again answers it unchanged. No body is read.",
                _ref("DriverOrder"),
                params=[order_id],
            )
        },
        f"{DRIVER_API}/orders/{{order_id}}/status": {
            "post": _api(
                DRIVER,
                "reportStatus",
                "Move the driver's own order on",
                "Applies `status` by the lifecycle rules. A stale or refused move answers code 2 "
                "(`order {id} is {state}: it cannot move to {status}`), a repeat the order unchanged; "
                "an order that is not this driver's answers `data not found` (code 2).",
                _ref("DriverOrder"),
                params=[order_id],
                body="StatusRequest",
            )
        },
        f"{DRIVER_API}/location": {
            "post": _api(
                DRIVER,
                "reportLocation",
                "Report a batch of positions",
                "The newest point becomes the driver's live position (an older batch never moves it "
                "back); every point joins the trail of each order the driver carries. One bad point "
                "refuses the batch (422, `text` names it, e.g. `The points.0.at field ...`).",
                _ref("LocationResult"),
                body="LocationRequest",
            )
        },
    }


def _callback(provider: str, operation_id: str, summary: str, description: str, body: str) -> Schema:
    """A courier's status callback: its own authentication, one stored event per call."""
    stored = _success(_ref("CallbackReceipt"), code=0, method=None, text={"const": "ok"})
    responses = {
        "200": _plain(
            "Authenticated and stored (and applied, when order and status are known).", JSON, stored
        ),
        "400": _transport(
            "Authenticated, but the body is not this courier's JSON (not JSON, or a field it needs is "
            "missing, mistyped or not a valid time); nothing is stored."
        ),
        **_error_refs({**ERRORS, "413": "PayloadTooLarge"}),
    }
    text = (
        f"{description} Authenticity is checked before anything else and a refused call stores "
        "nothing. An authenticated event is answered 200 once it is stored, even for an unknown "
        "order or status, so the courier stops retrying."
    )
    return _operation(
        COURIERS,
        operation_id,
        summary,
        text,
        dict(sorted(responses.items())),
        body=body,
        security=CALLBACK_AUTH[provider],
    )


def _courier_paths() -> dict[str, dict[str, Schema]]:
    rows = [
        (
            gosend.PROVIDER,
            "gosendCallback",
            "GoSend booking_event webhook",
            "A GoSend booking's status.",
            "GoSendBookingEvent",
        ),
        (
            grab_express.PROVIDER,
            "grabExpressCallback",
            "GrabExpress tracking webhook",
            "A GrabExpress delivery's status, driver and position.",
            "GrabTrackingEvent",
        ),
        (
            borzo.PROVIDER,
            "borzoCallback",
            "Borzo order / delivery callback",
            "A Borzo order's or delivery's status, courier and position.",
            "BorzoCallback",
        ),
    ]
    return {f"/couriers/{provider}/callback": {"post": _callback(provider, *row)} for provider, *row in rows}


def _plain(description: str, media: str, schema: Schema) -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def _avatar_path() -> dict[str, dict[str, Schema]]:
    seed = _path(
        "seed",
        "Any name; the same seed always draws the same face.",
        pattern=f"^{avatars._SEED.pattern}$",
        examples=["budi"],
    )
    picture = {
        **_plain("The portrait.", SVG, _str()),
        "headers": {"Cache-Control": _header(f"`{avatars.CACHE}`")},
    }
    unknown = _transport("The seed is not 1 to 64 of `A-Z a-z 0-9 _ -` (envelope `avatar not found`).")
    op = _operation(
        OPS,
        "avatar",
        "A made-up driver's photo",
        "A small SVG portrait drawn from the seed; the simulator's drivers use it as their photo.",
        {"200": picture, "404": unknown},
        params=[seed],
    )
    return {"/avatars/{seed}.svg": {"get": op}}


def _live_paths() -> dict[str, dict[str, Schema]]:
    token = _path("token", "The order's live-link token (from `live_tracking_url`).", examples=["k3J…"])
    html = "text/html"
    private = {
        "Cache-Control": _header("`no-store`"),
        "Referrer-Policy": _header("`no-referrer`"),
        "Content-Security-Policy": _header("Only the page's own script, styles and origin."),
    }
    page = {**_plain("The page, in the visitor's language.", html, _str()), "headers": private}
    gone = "The order finished more than `LACAK_LIVE_TTL_HOURS` ago: the link has expired."
    limited = "Too many requests from this address (`Retry-After` says when to come back)."
    snapshot = {**_plain("The order as the page shows it.", JSON, _ref("LiveSnapshot")), "headers": private}
    problem = _plain("Why not.", JSON, _obj({"error": _str()}))
    stream = _plain(
        "`retry:`, then `event: state` (`id:` = seq, data = the snapshot) on connect and on every "
        "change, `event: position` at most every 2 s, `event: gone` when the link expires, and "
        "`: ping` heartbeats. Send `Last-Event-ID` to skip a state already shown.",
        "text/event-stream",
        _str(),
    )
    static = _path("path", "A file of the page (script, styles, icons, the bundled Leaflet).")
    ops = {
        "/t/{token}": _operation(
            OPS, "livePage", "The live-tracking page",
            "For the merchant's customer: status, progress, timeline, driver, and a map that "
            "moves. `?lang=id|en` overrides `Accept-Language`.",
            {"200": page, "404": _plain("No such link.", html, _str()),
             "410": _plain(gone, html, _str()), "429": _plain(limited, html, _str())},
            params=[token, _param("lang", "query", "`id` or `en`.", _str(), required=False)],
        ),
        "/t/{token}/state": _operation(
            OPS, "liveState", "The live page's data",
            "The page's snapshot, for clients that cannot hold an event stream (polling).",
            {"200": snapshot, "404": problem, "410": problem, "429": problem, "503": problem},
            params=[token],
        ),
        "/t/{token}/events": _operation(
            OPS, "liveEvents", "The live page's event stream",
            "Server-Sent Events for one order. Errors are JSON, not streams, so a browser stops "
            "retrying them.",
            {"200": stream, "404": problem, "410": problem, "429": problem, "503": problem},
            params=[token, _param("Last-Event-ID", "header", "The last `id:` seen.", _str(), required=False)],
        ),
        "/static/live/{path}": _operation(
            OPS, "liveStatic", "The live page's files",
            "Script, styles and images of the page; nothing from any CDN.",
            {"200": {"description": "The file."}, "404": _plain("No such file.", "text/plain", _str())},
            params=[static],
        ),
    }  # fmt: skip
    return {path: {"get": op} for path, op in ops.items()}


def _ops_paths() -> dict[str, dict[str, Schema]]:
    ready = _plain("Ready: the database answers.", JSON, _ref("Readiness"))
    unready = _plain("Not ready: the database does not answer.", JSON, _ref("Readiness"))
    rows: list[tuple[str, str, str, str, dict[str, Schema]]] = [
        (
            "/healthz",
            "healthz",
            "Liveness",
            "Always ok while the process serves HTTP.",
            {"200": _plain("Alive.", JSON, _ref("Health"))},
        ),
        ("/readyz", "readyz", "Readiness", "Whether the database answers.", {"200": ready, "503": unready}),
        (
            "/metrics",
            "metrics",
            "Prometheus metrics",
            "The Prometheus text exposition format.",
            {"200": _plain("Metrics.", "text/plain", _str())},
        ),
        (
            "/openapi.json",
            "openapi",
            "This document",
            "The OpenAPI 3.1 document of every endpoint.",
            {"200": _plain("The document.", JSON, {"type": "object"})},
        ),
        (
            "/docs",
            "docs",
            "API reference page",
            "A self-contained HTML page listing every operation.",
            {"200": _plain("The page.", "text/html", _str())},
        ),
    ]
    return {
        path: {"get": _operation(OPS, op_id, summary, description, responses)}
        for path, op_id, summary, description, responses in rows
    }


# -- the document ---------------------------------------------------------------------------


def _security_schemes() -> dict[str, Schema]:
    bearer = {
        "merchantKey": "The merchant's API key: `Authorization: Bearer <key>`.",
        "adminToken": "The operator token set as `LACAK_ADMIN_TOKEN`.",
        "driverToken": "A driver's token (`drv_…`) from `lacak driver create`; it stops at once on "
        "`lacak driver revoke`. Merchant keys are refused here, driver tokens everywhere else.",
    }
    header = {
        "gosendToken": (
            CourierSettings().gosend_callback_header,
            "`LACAK_GOSEND_CALLBACK_TOKEN`: the whole value of the header named by "
            "`LACAK_GOSEND_CALLBACK_HEADER` (default `Authorization`) must equal it.",
        ),
        "grabToken": (
            "Authorization",
            "`LACAK_GRAB_CALLBACK_TOKEN`: the whole `Authorization` value must equal it.",
        ),
        "borzoSignature": (
            "X-DV-Signature",
            "Not a static key: the hex HMAC-SHA256 of the raw request body keyed with "
            "`LACAK_BORZO_CALLBACK_SECRET` (case and surrounding spaces ignored).",
        ),
    }
    unset = " Unset on the server: every such callback is refused (401)."
    return {
        **{name: {"type": "http", "scheme": "bearer", "description": text} for name, text in bearer.items()},
        **{
            name: {"type": "apiKey", "in": "header", "name": where, "description": text + unset}
            for name, (where, text) in header.items()
        },
    }


def document() -> dict[str, Any]:
    """The complete OpenAPI 3.1.0 document (a fresh dict on every call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lacak",
            "version": __version__,
            "summary": "Self-hostable instant-delivery tracking, KiriminAja Mitra v4 instant compatible.",
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": MITRA, "description": "KiriminAja Mitra instant API (merchant API key)."},
            {"name": ADMIN, "description": "Operator API (`LACAK_ADMIN_TOKEN`)."},
            {"name": DRIVER, "description": "The operator's own fleet: the driver app's API (driver token)."},
            {"name": COURIERS, "description": "Status callbacks from GoSend, GrabExpress and Borzo."},
            {
                "name": OPS,
                "description": "Health, readiness, metrics, this document, driver avatars and the "
                "customer's live page (its token is the permission); no API key.",
            },
        ],
        "paths": {
            **_mitra_paths(),
            **_admin_paths(),
            **_webhook_paths(),
            **_driver_paths(),
            **_courier_paths(),
            **_ops_paths(),
            **_avatar_path(),
            **_live_paths(),
        },
        "components": {
            "securitySchemes": _security_schemes(),
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }
