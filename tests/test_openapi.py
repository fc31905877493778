"""The OpenAPI document: in step with the routes and the request structs, valid OpenAPI 3.1,
and true to what a real server answers (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import msgspec
import msgspec.inspect as mi
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.routing import Route

from lacak.couriers.borzo import inbound as borzo
from lacak.couriers.gosend import inbound as gosend
from lacak.couriers.grab_express import inbound as grab
from lacak.drivers import models as drivers
from lacak.http import admin, webhooks
from lacak.http.app import create_app
from lacak.http.openapi import document
from lacak.orders import requests
from lacak.settings import Settings
from tests.support import (
    Api,
    Backend,
    Server,
    admin_client,
    create_merchant,
    create_order,
    lacak,
    package,
    pickup,
)

JSON = "application/json"
MITRA = "/api/mitra/v4/instant"
TRACKING = "/api/mitra/v4/instant/tracking/{order_id}"
PICKUP = "/api/mitra/v4/instant/pickup/request"

# Each request body schema and the msgspec struct that decodes it.
REQUEST_STRUCTS: dict[str, type[msgspec.Struct]] = {
    "Location": requests.Location,
    "PricingRequest": requests.PricingRequest,
    "Item": requests.Item,
    "Package": requests.Package,
    "PickupRequest": requests.PickupRequest,
    "OrderRef": requests.OrderRef,
    "PaymentRef": requests.PaymentRef,
    "CallbackRequest": requests.CallbackRequest,
    "NewMerchant": admin.NewMerchant,
    "Advance": admin.Advance,
    "MerchantRef": admin.MerchantRef,
    "StatusRequest": drivers.StatusRequest,
    "LocationRequest": drivers.LocationRequest,
    "LocationPoint": drivers.PointIn,
    "GoSendBookingEvent": gosend.BookingEvent,
    "GrabTrackingEvent": grab.TrackingEvent,
    "GrabDriver": grab.GrabDriver,
    "BorzoCallback": borzo.Callback,
    "BorzoSubject": borzo.Subject,
    "BorzoCourier": borzo.Courier,
    "WebhookRecover": webhooks.RecoverRequest,
    "AdminWebhookRecover": webhooks.AdminRecoverRequest,
    "WebhookDialectRequest": webhooks.DialectRequest,
}
# The component of each struct (a nested struct is a `$ref` to it).
COMPONENTS = {struct: name for name, struct in REQUEST_STRUCTS.items()}

# Which operation decodes which body (the others read none).
BODIES = {
    "quotePricing": "PricingRequest",
    "requestPickup": "PickupRequest",
    "findNewDriver": "OrderRef",
    "getPayment": "PaymentRef",
    "setCallback": "CallbackRequest",
    "createMerchant": "NewMerchant",
    "advanceOrder": "Advance",
    "markPaymentPaid": "MerchantRef",
    "reportStatus": "StatusRequest",
    "reportLocation": "LocationRequest",
    "gosendCallback": "GoSendBookingEvent",
    "grabExpressCallback": "GrabTrackingEvent",
    "borzoCallback": "BorzoCallback",
    "recoverWebhookDeliveries": "WebhookRecover",
    "adminRecoverWebhookDeliveries": "WebhookRecover",
    "adminRecoverAllWebhookDeliveries": "AdminWebhookRecover",
    "setWebhookDialect": "WebhookDialectRequest",
    "adminSetWebhookDialect": "WebhookDialectRequest",
}

AREAS = {
    "/api/mitra/": ("mitra", "merchantKey"),
    "/api/admin/": ("admin", "adminToken"),
    "/api/driver/": ("driver", "driverToken"),
}
# Each courier's callback authentication: the header its security scheme names.
CALLBACK_AUTH = {
    "gosend": ("gosendToken", "Authorization"),
    "grab_express": ("grabToken", "Authorization"),
    "borzo": ("borzoSignature", "X-DV-Signature"),
}
DRIVER = "/api/driver/v1"

KINDS: dict[type[mi.Type], str] = {
    mi.IntType: "integer",
    mi.FloatType: "number",
    mi.StrType: "string",
    mi.DateTimeType: "string",
    mi.BoolType: "boolean",
    mi.NoneType: "null",
    mi.ListType: "array",
    mi.StructType: "object",
}


# -- walking the document -------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def resolve(doc: dict[str, Any], node: Any) -> Any:
    """Follow `$ref`s (local JSON pointers) until a node without one."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def openapi_path(starlette_path: str) -> str:
    """`/x/{order_id:path}` → `/x/{order_id}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", starlette_path)


# -- validating real answers ----------------------------------------------------------------


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    draft = jsonschema.Draft202012Validator
    root = {**schema, "components": doc["components"]}  # so `#/components/...` resolves
    return draft(root, format_checker=draft.FORMAT_CHECKER)


def matches(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    return bool(validator(doc, schema).is_valid(value))


def properties(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The properties an object schema declares, in order, through `allOf` narrowing."""
    schema = resolve(doc, schema)
    props: dict[str, Any] = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        props.update(properties(doc, part))
    return props


def assert_key_order(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """Every object has exactly the documented keys, in the documented order."""
    schema = resolve(doc, schema)
    if "oneOf" in schema:
        branch = next(b for b in schema["oneOf"] if matches(doc, b, value))
        assert_key_order(doc, branch, value, where)
        return
    props = properties(doc, schema)
    if isinstance(value, dict) and props:
        assert list(value) == [k for k in props if k in value], f"key order at {where}"
        for key, item in value.items():
            assert_key_order(doc, props[key], item, f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            assert_key_order(doc, schema["items"], item, f"{where}[{i}]")


def check_against(doc: dict[str, Any], spec: dict[str, Any], response: httpx.Response) -> Any:
    """Validate a real response against a documented response object; returns the body."""
    spec = resolve(doc, spec)
    content = spec.get("content")
    if content is None:
        assert response.content == b""
        return None
    media = response.headers["content-type"].split(";")[0].strip()
    assert media in content, f"{media} not documented for {response.request.url}"
    body = response.json() if media == JSON else response.text
    schema = content[media]["schema"]
    errors = [e.message for e in validator(doc, schema).iter_errors(body)]
    assert not errors, (errors, body)
    assert_key_order(doc, schema, body)
    business_failure = response.status_code == 200 and isinstance(body, dict) and body.get("status") is False
    if not business_failure:  # e.g. the ETag only comes with a found order
        for header in spec.get("headers", {}):
            assert header.lower() in response.headers, header
    return body


def check(doc: dict[str, Any], path: str, method: str, response: httpx.Response) -> Any:
    op = doc["paths"][path][method]
    status = str(response.status_code)
    assert status in op["responses"], f"{method.upper()} {path} answered undocumented {status}"
    return check_against(doc, op["responses"][status], response)


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def area(path: str) -> tuple[str, list[dict[str, list[str]]]]:
    """The tag and the security requirement a path should have."""
    for prefix, (tag, scheme) in AREAS.items():
        if path.startswith(prefix):
            return tag, [{scheme: []}]
    if courier := re.fullmatch(r"/couriers/(\w+)/callback", path):
        return "couriers", [{CALLBACK_AUTH[courier[1]][0]: []}]
    return "ops", []


# -- the document on its own ----------------------------------------------------------------


def test_paths_match_routes(doc: dict[str, Any], tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert all(isinstance(r, Route) for r in app.routes)
    routed = {
        (openapi_path(r.path), method.lower())
        for r in app.routes
        if isinstance(r, Route)
        for method in r.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, method, _ in operations(doc)}
    assert documented == routed


def test_path_parameters_match_templates(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)
        assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")


def test_every_ref_resolves_and_every_component_is_used(doc: dict[str, Any]) -> None:
    used = refs(doc)
    for ref in used:
        assert resolve(doc, {"$ref": ref}) is not None
    for kind in ("schemas", "responses"):
        unused = {f"#/components/{kind}/{name}" for name in doc["components"][kind]} - set(used)
        assert not unused


def test_operations_are_complete(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    for path, method, op in operations(doc):
        where = f"{method.upper()} {path}"
        assert op["summary"] and op["description"], where
        tag, security = area(path)
        assert op["tags"] == [tag] and op["security"] == security, where
        assert "200" in op["responses"], where
        for response in op["responses"].values():
            assert resolve(doc, response)["description"], where
        body = op.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema")
        name = BODIES.get(op["operationId"])
        assert body == (None if name is None else ref(name)), where
        if path.startswith(("/api/", "/couriers/")):
            assert {"401", "405", "500"} <= set(op["responses"]), where
            if name is not None:
                assert {"400", "413"} <= set(op["responses"]), where


def test_security_schemes_and_info(doc: dict[str, Any]) -> None:
    from lacak import __version__

    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "lacak" and doc["info"]["version"] == __version__
    assert "servers" not in doc
    schemes = doc["components"]["securitySchemes"]
    assert schemes["merchantKey"] == schemes["merchantKey"] | {"type": "http", "scheme": "bearer"}
    assert schemes["adminToken"] == schemes["adminToken"] | {"type": "http", "scheme": "bearer"}
    assert schemes["driverToken"] == schemes["driverToken"] | {"type": "http", "scheme": "bearer"}
    for scheme, header in CALLBACK_AUTH.values():
        assert schemes[scheme] == schemes[scheme] | {"type": "apiKey", "in": "header", "name": header}
    ops = doc["paths"]["/openapi.json"]["get"]
    assert ops["security"] == []


def test_document_is_plain_json(doc: dict[str, Any]) -> None:
    assert json.loads(json.dumps(doc)) == doc


def test_valid_openapi_31(doc: dict[str, Any]) -> None:
    OpenAPIV31SpecValidator(doc).validate()


def struct_kinds(t: mi.Type) -> set[str]:
    members = t.types if isinstance(t, mi.UnionType) else (t,)
    return {KINDS[type(m)] for m in members}


def schema_kinds(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = resolve(doc, schema)
    if "oneOf" in schema:
        return {k for branch in schema["oneOf"] for k in schema_kinds(doc, branch)}
    kind = schema["type"]
    return {kind} if isinstance(kind, str) else set(kind)


def numbers(kinds: set[str]) -> set[str]:
    """int | float is JSON Schema's `number`."""
    return kinds - {"integer"} if "number" in kinds else kinds


@pytest.mark.parametrize("name", list(REQUEST_STRUCTS))
def test_request_schema_matches_struct(doc: dict[str, Any], name: str) -> None:
    struct = REQUEST_STRUCTS[name]
    schema = doc["components"]["schemas"][name]
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    assert set(schema["properties"]) == set(fields)
    assert set(schema["required"]) == {n for n, f in fields.items() if f.required}
    for field_name, field in fields.items():
        prop = schema["properties"][field_name]
        info = mi.type_info(field.type)
        assert numbers(schema_kinds(doc, prop)) == numbers(struct_kinds(info)), field_name
        nested = info.types if isinstance(info, mi.UnionType) else (info,)
        for member in nested:  # nested structs are their own components (`oneOf` with null if optional)
            if isinstance(member, mi.StructType):
                assert ref(COMPONENTS[member.cls]) in [prop, *prop.get("oneOf", [])], field_name
            if isinstance(member, mi.ListType) and isinstance(member.item_type, mi.StructType):
                assert prop["items"] == ref(COMPONENTS[member.item_type.cls]), field_name
        if not field.required:
            default = field.default if field.default_factory is msgspec.NODEFAULT else field.default_factory()
            assert resolve(doc, prop).get("default", ...) == default, field_name


def test_request_schemas_accept_the_wire_samples(doc: dict[str, Any]) -> None:
    from tests.support import FIXTURES

    for sample in ("pickup_request_sdk.json", "pickup_request_docs_2024.json"):
        body = json.loads((FIXTURES / sample).read_text())
        assert matches(doc, ref("PickupRequest"), body), sample
    not_found = json.loads((FIXTURES / "tracking_not_found.json").read_text())
    tracked = doc["paths"][TRACKING]["get"]["responses"]["200"]["content"][JSON]["schema"]
    assert matches(doc, tracked, not_found)


# -- through a real server ------------------------------------------------------------------


def test_served_document_and_page(doc: dict[str, Any], server: Server) -> None:
    r = httpx.get(f"{server.base_url}/openapi.json")
    assert r.status_code == 200
    assert r.json() == doc
    page = httpx.get(f"{server.base_url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for path, _, op in operations(doc):
        assert html.escape(path) in page.text, path
        assert op["operationId"] in page.text


def test_tracking_answer_matches_schema(doc: dict[str, Any], api: Api) -> None:
    order_id = create_order(api)["order_id"]
    r = api.track(order_id)
    body = check(doc, TRACKING, "get", r)
    assert body["status"] is True
    tracking = ref("TrackingResult")
    assert matches(doc, tracking, body["result"])
    assert list(body["result"]) == list(resolve(doc, tracking)["properties"])
    unchanged = api.http.get(f"{MITRA}/tracking/{order_id}", headers={"If-None-Match": r.headers["etag"]})
    assert unchanged.status_code == 304
    check(doc, TRACKING, "get", unchanged)
    assert check(doc, TRACKING, "get", api.track("NOPE-1"))["code"] == 2
    assert check(doc, TRACKING, "get", api.track("bad id/../x"))["code"] == 2


def test_merchant_answers_match_schemas(doc: dict[str, Any], api: Api, server: Server) -> None:
    trip = {"origin": {"lat": -7.8032616, "long": 110.350244},
            "destination": {"lat": -7.7349434, "long": 110.405355}}  # fmt: skip
    pricing = f"{MITRA}/pricing"
    assert check(doc, pricing, "post", api.post(pricing, {**trip, "service": ["grab"]}))["result"]
    assert check(doc, pricing, "post", api.post(pricing, {**trip, "vehicle": "bike"}))["code"] == 422

    created = check(doc, PICKUP, "post", api.post(PICKUP, pickup()))["result"]
    order_id = created["packages"][0]["order_id"]
    assert check(doc, PICKUP, "post", api.post(PICKUP, pickup(packages=[{}])))["code"] == 422

    payment = "/api/mitra/v2/get_payment"
    paid = check(doc, payment, "post", api.post(payment, {"payment_id": created["payment"]["payment_id"]}))
    assert paid["result"]["packages"][0]["order_id"] == order_id
    assert check(doc, payment, "post", api.post(payment, {"payment_id": "PID-0"}))["code"] == 2

    redrive = f"{MITRA}/pickup/find-new-driver"
    assert check(doc, redrive, "post", api.post(redrive, {"order_id": order_id}))["status"] is True
    void = f"{MITRA}/pickup/void/{{order_id}}"
    assert check(doc, void, "delete", api.http.delete(f"{MITRA}/pickup/void/{order_id}"))["status"] is True
    assert check(doc, void, "delete", api.http.delete(f"{MITRA}/pickup/void/{order_id}"))["code"] == 2
    assert check(doc, redrive, "post", api.post(redrive, {"order_id": order_id}))["code"] == 2

    callback = "/api/mitra/set_callback"
    assert check(doc, callback, "post", api.post(callback, {"url": "http://127.0.0.1/hook"}))["code"] == 2

    # transport failures: still the envelope, with their own status
    check(doc, TRACKING, "get", httpx.get(f"{server.base_url}{MITRA}/tracking/X"))  # 401
    bad = api.post(pricing, content=b"{not json", headers={"Content-Type": JSON})
    assert bad.status_code == 400 and check(doc, pricing, "post", bad)["code"] == 400
    huge = api.post(pricing, content=b" " * (1024 * 1024 + 1), headers={"Content-Type": JSON})
    assert huge.status_code == 413 and check(doc, pricing, "post", huge)["code"] == 413
    wrong_method = api.http.get(pricing)
    assert wrong_method.status_code == 405 and check(doc, pricing, "post", wrong_method)["code"] == 405
    missing = api.http.get("/api/mitra/v4/instant/no-such-route")
    assert missing.status_code == 404
    check_against(doc, {"$ref": "#/components/responses/NotFound"}, missing)


def test_admin_answers_match_schemas(doc: dict[str, Any], api: Api, server: Server) -> None:
    order_id = create_order(api)["order_id"]
    merchant = str(api.merchant_id)
    with admin_client(server.base_url) as a:
        check(doc, "/api/admin/merchants", "get", a.get("/api/admin/merchants"))
        new = check(doc, "/api/admin/merchants", "post",
                    a.post("/api/admin/merchants", json={"name": f"m-{uuid.uuid4().hex[:12]}"}))  # fmt: skip
        ref = str(new["result"]["merchant_id"])
        for action in ("rotate", "revoke"):
            path = f"/api/admin/merchants/{{merchant}}/keys/{action}"
            assert check(doc, path, "post", a.post(f"/api/admin/merchants/{ref}/keys/{action}"))["status"]

        orders = "/api/admin/orders/{order_id}"
        one = a.get(f"/api/admin/orders/{order_id}", params={"merchant": merchant})
        found = check(doc, orders, "get", one)
        assert found["result"]["history"]
        assert check(doc, orders, "get", a.get("/api/admin/orders/NOPE-1"))["code"] == 2

        advance = "/api/admin/orders/{order_id}/advance"
        moved = a.post(f"/api/admin/orders/{order_id}/advance",
                       json={"state": "driver_assigned", "merchant": merchant, "driver_name": "Budi",
                             "driver_phone": "081234567890", "tracking_code": "GK-1"})  # fmt: skip
        assert check(doc, advance, "post", moved)["result"]["outcome"] == "applied"
        refused = a.post(f"/api/admin/orders/{order_id}/advance", json={"state": "teleported"})
        assert check(doc, advance, "post", refused)["code"] == 422

        prepaid = create_merchant(server.base_url, prepaid=True)
        created = prepaid.post(PICKUP, pickup()).json()["result"]
        paid = "/api/admin/payments/{payment_id}/paid"
        pid = created["payment"]["payment_id"]
        marked = a.post(f"/api/admin/payments/{pid}/paid", json={"merchant": str(prepaid.merchant_id)})
        assert check(doc, paid, "post", marked)["result"]["status_code"] == 0

    unauthorized = httpx.get(f"{server.base_url}/api/admin/merchants")
    assert unauthorized.status_code == 401
    check(doc, "/api/admin/merchants", "get", unauthorized)


def test_ops_answers_match_schemas(doc: dict[str, Any], server: Server) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        r = httpx.get(f"{server.base_url}{path}")
        assert r.status_code == 200, path
        check(doc, path, "get", r)


# -- the driver API, the courier callbacks and the avatars ----------------------------------


@pytest.fixture(scope="module")
def driver(backend: Backend, server: Server) -> Iterator[httpx.Client]:
    """A driver of the shared server's fleet, made the operator's way (`lacak driver create`)."""
    made = lacak(backend.env(), "driver", "create", f"Openapi {backend.name}", "--phone", "081234567890",
                 "--json")  # fmt: skip
    token = json.loads(made.stdout)["token"]
    with httpx.Client(base_url=f"{server.base_url}{DRIVER}", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:  # fmt: skip
        yield client


def test_driver_answers_match_schemas(
    doc: dict[str, Any], api: Api, driver: httpx.Client, server: Server
) -> None:
    def call(method: str, template: str, url: str, **kw: Any) -> Any:
        """A driver API call, its answer checked against the operation at `template`."""
        return check(doc, f"{DRIVER}{template}", method, driver.request(method, url, **kw))

    # An open order far from every other test's (tests/test_drivers.py shifts by -20 to -26 degrees).
    pkg = package(origin_long=110.350244 - 30, destination_long=110.405355 - 30)
    order_id = create_order(api, packages=[pkg])["order_id"]
    here = {"lat": pkg["origin_lat"], "long": pkg["origin_long"]}

    board = call("get", "/orders/available", "/orders/available", params={**here, "limit": 5})
    pk = next(o["id"] for o in board["result"]["orders"] if o["order_id"] == order_id)
    assert call("get", "/orders/available", "/orders/available", params={"lat": "north"})["code"] == 422

    accept = "/orders/{order_id}/accept"
    assert call("post", accept, f"/orders/{pk}/accept")["result"]["state"] == "driver_assigned"
    assert call("post", accept, "/orders/x1/accept")["code"] == 2
    assert pk in [o["id"] for o in call("get", "/orders", "/orders")["result"]["orders"]]

    now = datetime.now(UTC)
    points = [
        {**here, "at": now.isoformat(), "accuracy": 4.5},
        {**here, "at": int(now.timestamp() * 1000) - 1000},
    ]
    assert matches(doc, ref("LocationRequest"), {"points": points})
    located = call("post", "/location", "/location", json={"points": points})["result"]
    assert located["points"] == 2 and pk in located["orders"]
    assert call("post", "/location", "/location", json={"points": []})["code"] == 422
    bad = call("post", "/location", "/location", content=b"{not json", headers={"Content-Type": JSON})
    assert bad["code"] == 400

    status = "/orders/{order_id}/status"
    for state in ("picked_up", "delivered"):
        move = {"status": state, "note": f"{state} by the openapi test"}
        assert matches(doc, ref("StatusRequest"), move)
        assert call("post", status, f"/orders/{pk}/status", json=move)["result"]["state"] == state
    assert call("post", status, f"/orders/{pk}/status", json={"status": "at_pickup"})["code"] == 2
    assert call("post", status, f"/orders/{pk}/status", json={"status": "cancelled"})["code"] == 422

    unauthenticated = httpx.get(f"{server.base_url}{DRIVER}/orders")
    assert unauthenticated.status_code == 401
    check(doc, f"{DRIVER}/orders", "get", unauthenticated)


GOSEND_TOKEN, GRAB_TOKEN, BORZO_SECRET = "openapi-gosend-token", "openapi-grab-token", "openapi-borzo-secret"


@pytest.fixture(scope="module")
def couriers(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server holding every courier's callback secret (the shared one holds none)."""
    env = backend.env(
        LACAK_RUN_TASKS="0",
        **{f"LACAK_PROVIDER_{s}": "fleet" for s in ("GOSEND", "GRAB_EXPRESS", "BORZO")},
        LACAK_GOSEND_CALLBACK_TOKEN=GOSEND_TOKEN,
        LACAK_GRAB_CALLBACK_TOKEN=GRAB_TOKEN,
        LACAK_BORZO_CALLBACK_SECRET=BORZO_SECRET,
    )
    srv = Server(env, tmp_path_factory.mktemp("openapi-couriers") / "server.log").start()
    yield srv
    srv.stop()


FORGED = {"Authorization": "forged", "X-DV-Signature": "00"}


def credentials(provider: str, raw: bytes) -> dict[str, str]:
    if provider == "borzo":
        return {"X-DV-Signature": hmac.new(BORZO_SECRET.encode(), raw, hashlib.sha256).hexdigest()}
    return {"Authorization": GOSEND_TOKEN if provider == "gosend" else GRAB_TOKEN}


def test_courier_callbacks_match_schemas(doc: dict[str, Any], couriers: Server) -> None:
    tag, at = uuid.uuid4().hex[:12], datetime.now(UTC)
    seconds = int(at.timestamp())
    grab_driver = {"name": "Budi", "licensePlate": "AB 1 XY", "currentLat": -7.8, "currentLng": 110.3}
    borzo_order = {"order_id": int(tag[:8], 16), "status": "courier_assigned", "courier": {"name": "Budi"}}
    payloads = {  # bookings nobody made: stored as `unknown_order`
        "gosend": {"booking_id": f"GK-{tag}", "status": "allocated", "event_date": seconds * 1000},
        "grab_express": {"deliveryID": f"IN-{tag}", "status": "IN_DELIVERY", "timestamp": seconds,
                         "driver": grab_driver},
        "borzo": {"event_datetime": at.isoformat(), "event_type": "order_changed", "order": borzo_order},
    }  # fmt: skip
    for provider, payload in payloads.items():
        path = f"/couriers/{provider}/callback"
        schema = doc["paths"][path]["post"]["requestBody"]["content"][JSON]["schema"]
        assert matches(doc, schema, payload), provider
        raw = json.dumps(payload).encode()
        stored = httpx.post(f"{couriers.base_url}{path}", content=raw, headers=credentials(provider, raw))
        assert check(doc, path, "post", stored)["result"] == {"received": 1, "outcomes": ["unknown_order"]}
        malformed = httpx.post(
            f"{couriers.base_url}{path}", content=b"[]", headers=credentials(provider, b"[]")
        )
        assert malformed.status_code == 400 and check(doc, path, "post", malformed)["code"] == 400
        forged = httpx.post(f"{couriers.base_url}{path}", content=raw, headers=FORGED)
        assert forged.status_code == 401 and check(doc, path, "post", forged)["code"] == 401


def test_courier_callbacks_without_secrets_match_schemas(doc: dict[str, Any], server: Server) -> None:
    for provider in CALLBACK_AUTH:
        path = f"/couriers/{provider}/callback"
        refused = httpx.post(f"{server.base_url}{path}", json={})
        assert refused.status_code == 401 and check(doc, path, "post", refused)["code"] == 401
    path = "/couriers/borzo/callback"
    huge = httpx.post(f"{server.base_url}{path}", content=b" " * (1024 * 1024 + 1))
    assert huge.status_code == 413 and check(doc, path, "post", huge)["code"] == 413
    wrong_method = httpx.get(f"{server.base_url}{path}")
    assert wrong_method.status_code == 405 and check(doc, path, "post", wrong_method)["code"] == 405


def test_avatar_answers_match_schemas(doc: dict[str, Any], server: Server) -> None:
    path = "/avatars/{seed}.svg"
    drawn = httpx.get(f"{server.base_url}/avatars/budi_1.svg")
    assert drawn.status_code == 200 and check(doc, path, "get", drawn).startswith("<svg")
    for seed in ("a" * 65, "no.dots"):
        unknown = httpx.get(f"{server.base_url}/avatars/{seed}.svg")
        assert unknown.status_code == 404 and check(doc, path, "get", unknown)["text"] == "avatar not found"
