"""The OpenAPI 3.1 document of every HTTP endpoint, built as plain dicts.

Enumerations and limits are imported from the code that enforces them, so the document
cannot drift from the rules; `tests/test_openapi.py` keeps the paths in step with the
routes, the request schemas in step with the msgspec structs, and checks real responses
against the result schemas.
"""

from __future__ import annotations

from typing import Any

from lacak import __version__
from lacak.http.body import MAX_BODY
from lacak.http.mitra import PREFIX
from lacak.merchants.models import PaymentMode
from lacak.orders import validation
from lacak.orders.lifecycle import KA_STATUS
from lacak.orders.models import PAID, UNPAID, Outcome, Source, State
from lacak.pricing.tariff import SERVICE_TYPES, SERVICES, VEHICLES

Schema = dict[str, Any]

JSON = "application/json"
MITRA, ADMIN, OPS = "mitra", "admin", "ops"
SECURITY = {MITRA: "merchantKey", ADMIN: "adminToken"}
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
"""

# -- schema helpers -------------------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _scalar(kind: str, description: str = "", *, nullable: bool = False, **extra: Any) -> Schema:
    """`{"type": kind}`, or `{"type": [kind, "null"]}` when nullable (the 3.1 spelling)."""
    schema: Schema = {"type": [kind, "null"] if nullable else kind, **extra}
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
    return {"TrackingPlace": place, "TrackingResult": result}


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
            "from_state": {"oneOf": [_ref("LifecycleState"), {"type": "null"}]},
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
            "Missing, unknown or revoked credentials (admin: also when LACAK_ADMIN_TOKEN is unset).",
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
) -> Schema:
    op: Schema = {"operationId": operation_id, "summary": summary, "description": description, "tags": [tag]}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    op["responses"] = responses
    op["security"] = [{SECURITY[tag]: []}] if tag in SECURITY else []
    return op


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
        "with `status: false` and `code` 2 (not found, invalid order, wrong state, "
        "distance too long) or 422 (validation; `text` names the first bad field).",
        "content": {JSON: {"schema": {"oneOf": [success, _ref("BusinessFailure")]}}},
    }
    if headers:
        ok["headers"] = headers
    responses: dict[str, Schema] = {"200": ok, **(extra or {})}
    errors = {**ERRORS, **BODY_ERRORS} if body is not None else ERRORS
    for status, name in sorted(errors.items()):
        responses[status] = {"$ref": f"#/components/responses/{name}"}
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
                "unless the operator allows private targets.",
                {"type": "null"},
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


def _plain(description: str, media: str, schema: Schema) -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


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
            {"name": OPS, "description": "Health, readiness, metrics and this document; no auth."},
        ],
        "paths": {**_mitra_paths(), **_admin_paths(), **_ops_paths()},
        "components": {
            "securitySchemes": {
                "merchantKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The merchant's API key: `Authorization: Bearer <key>`.",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator token set as `LACAK_ADMIN_TOKEN`.",
                },
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }
