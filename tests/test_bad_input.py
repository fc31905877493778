"""Bad input, case by case, against a real server on every backend.

Each refusal must be the documented HTTP status (never a 5xx), exactly the KiriminAja
envelope (five keys, in order) with `status` false, the documented `code` and `text`, a null
`result`, and no trace in the database: row counts of every table (the merchant's and
everybody's), the merchant's order sequence numbers (any state change bumps one) and its
callback URL are compared before and after.

Requests go out over a raw socket so that nothing between the test and the server rewrites
them: `../` stays in the path, header values stay as written, bodies are sent byte for byte.

Placeholders, filled in per test: `{key}` is the merchant's API key, `{real}` the id of an
order the merchant owns (created before the snapshot), so that a server which normalised a
path or trimmed an id would find, cancel or re-drive that order and fail the test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support import TABLES, Api, Backend, Server, create_merchant, create_order, package, pickup

MITRA = "/api/mitra/v4/instant"
PICKUP = f"{MITRA}/pickup/request"
PRICING = f"{MITRA}/pricing"
TRACKING = f"{MITRA}/tracking/"
VOID = f"{MITRA}/pickup/void/"
FIND = f"{MITRA}/pickup/find-new-driver"
PAYMENT = "/api/mitra/v2/get_payment"
CALLBACK = "/api/mitra/set_callback"

ENVELOPE = ["status", "text", "code", "method", "result"]
BEARER = "Bearer {key}"
NOT_FOUND = "data not found"
INVALID_ORDER = "order id yang dipilih tidak valid."
NOT_JSON = "request body is not valid JSON"
NOT_OBJECT = "The request body must be a JSON object."
TOO_FAR = "cannot process the request, distance more than 40km"
TOO_LARGE = "request body too large (limit 1 MiB)"
UNAUTHENTICATED = "Unauthenticated."
NOT_HTTP = "The url must be an http or https URL."
BAD_URL = "The url format is invalid."
MiB = 1024 * 1024

Text = str | re.Pattern[str]


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: bytes | None = None
    status: int = 200
    code: int = 422
    text: Text = ""
    auth: str | None = BEARER
    chunked: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes


# -- plumbing ---------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def item(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = package()["item"]
    return {**base, **over}


def chunks(body: bytes, size: int = 64 * 1024) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def send(base_url: str, case: Case, fill: dict[str, str]) -> Reply:
    """One HTTP/1.1 request written by hand: the path and headers arrive exactly as given."""
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    head = [f"{case.method} {subst(case.path, fill)} HTTP/1.1", f"Host: {url.netloc}", "Connection: close"]
    if case.auth is not None:
        head.append(f"Authorization: {subst(case.auth, fill)}")
    payload = b""
    if case.body is not None:
        body = subst(case.body.decode("latin-1"), fill).encode("latin-1")
        head.append("Content-Type: application/json")
        if case.chunked:
            head.append("Transfer-Encoding: chunked")
            payload = chunks(body)
        else:
            head.append(f"Content-Length: {len(body)}")
            payload = body
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        # A body refused by its Content-Length is answered (413) and the connection closed before
        # the rest arrives, as any client sending one may see; the answer is still read below.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
        resp = http.client.HTTPResponse(sock, method=case.method)
        resp.begin()
        return Reply(resp.status, resp.getheader("content-type") or "", resp.read())


def subst(text: str, fill: dict[str, str]) -> str:
    for name, value in fill.items():
        text = text.replace("{" + name + "}", value)
    return text


def prepare(api: Api, case: Case) -> dict[str, str]:
    fill = {"key": api.key}
    mentions = (case.path, case.auth or "", case.body.decode("latin-1") if case.body else "")
    if any("{real}" in part for part in mentions):
        fill["real"] = create_order(api)["order_id"]
    return fill


# Which rows belong to a merchant: the same scopes as `Backend.counts`.
SCOPES = {
    "merchants": "id = $1",
    "api_keys": "merchant_id = $1",
    "payments": "merchant_id = $1",
    "orders": "merchant_id = $1",
    "order_events": "order_pk IN (SELECT id FROM orders WHERE merchant_id = $1)",
    "deliveries": "merchant_id = $1",
}
SNAPSHOT = "SELECT " + ", ".join(
    [f"(SELECT count(*) FROM {table}) AS all_{table}" for table in TABLES]
    + [f"(SELECT count(*) FROM {table} WHERE {SCOPES[table]}) AS own_{table}" for table in TABLES]
    + [
        "(SELECT coalesce(sum(seq), 0) FROM orders WHERE merchant_id = $1) AS own_order_seqs",
        "(SELECT callback_url FROM merchants WHERE id = $1) AS callback_url",
    ]
)


def snapshot(backend: Backend, merchant_id: int) -> dict[str, Any]:
    """Everything a refused request must leave alone, in one query: every table's row count
    (everybody's and the merchant's), the sum of the merchant's order sequence numbers (any
    state change bumps one) and its callback URL."""
    return backend.query(SNAPSHOT, merchant_id)[0]


def envelope(reply: Reply) -> dict[str, Any]:
    assert reply.status < 500, reply
    assert reply.content_type.startswith("application/json"), reply
    body: dict[str, Any] = json.loads(reply.body)
    assert list(body) == ENVELOPE, body
    return body


def assert_refused(reply: Reply, case: Case, fill: dict[str, str]) -> None:
    body = envelope(reply)
    assert (reply.status, body["status"], body["code"]) == (case.status, False, case.code), body
    assert body["method"] is None and body["result"] is None, body
    if isinstance(case.text, str):
        assert body["text"] == subst(case.text, fill), body
    else:
        assert case.text.fullmatch(body["text"]), body


# -- case builders ----------------------------------------------------------------------------


def post(id: str, path: str, payload: Any, text: Text, code: int = 422, status: int = 200) -> Case:
    body = payload if isinstance(payload, bytes) else dumps(payload)
    return Case(id, "POST", path, body, status=status, code=code, text=text)


def bad_pickup(id: str, text: Text, code: int = 422, **over: Any) -> Case:
    return post(f"pickup/{id}", PICKUP, pickup(**over), text, code)


def bad_package(id: str, text: Text, code: int = 422, **over: Any) -> Case:
    return bad_pickup(id, text, code, packages=[package(**over)])


def bad_item(id: str, text: str, **over: Any) -> Case:
    return bad_package(id, text, item=item(**over))


def not_json(id: str, path: str, raw: bytes) -> Case:
    return post(f"not-json/{id}", path, raw, NOT_JSON, code=400, status=400)


def trip(**over: Any) -> dict[str, Any]:
    base = {
        "origin": {"lat": -7.8032616, "long": 110.350244, "address": "Wirobrajan"},
        "destination": {"lat": -7.7349434, "long": 110.405355, "address": "Minomartani"},
    }
    return {**base, **over}


def bad_pricing(id: str, text: str, payload: dict[str, Any]) -> Case:
    return post(f"pricing/{id}", PRICING, payload, text)


def field(name: str, rule: str) -> str:
    return f"The packages.0.{name} {rule}"


def required(name: str) -> str:
    return f"The {name} field is required."


# fmt: off
# The tables below are laid out by hand, one case per line where it fits.

VALID = dumps(pickup())
JAKARTA = {"destination_lat": -6.2088, "destination_long": 106.8456}

# -- malformed and non-object JSON ------------------------------------------------------------

MALFORMED = [
    not_json("truncated", PICKUP, VALID[: len(VALID) // 2]),
    not_json("trailing-garbage", PICKUP, VALID + b" trailing"),
    not_json("trailing-garbage-after-empty-object", PICKUP, b"{} x"),
    not_json("second-document", PICKUP, VALID + VALID),
    not_json("nan", PICKUP, VALID.replace(b"34000", b"NaN")),
    not_json("infinity", PICKUP, VALID.replace(b"34000", b"Infinity")),
    not_json("single-quotes", PICKUP, VALID.replace(b'"', b"'")),
    not_json("trailing-comma", PICKUP, VALID[:-1] + b",}"),
    not_json("binary-bytes", PICKUP, b"\xff\xfe\x00\x01\x80garbage"),
    not_json("utf8-bom", PICKUP, b"\xef\xbb\xbf" + VALID),
    not_json("lone-surrogate", PICKUP, VALID.replace(b'"Arfian"', b'"\\ud800"')),
    not_json("raw-control-char-in-string", PICKUP, VALID.replace(b"Arfian", b"Arf\x01ian")),
    not_json("pricing-truncated", PRICING, b'{"origin": {"lat": '),
    not_json("find-new-driver-open-brace", FIND, b"{"),
    not_json("get-payment-bare-word", PAYMENT, b"payment_id=PID-1"),
    not_json("set-callback-unquoted-key", CALLBACK, b"{url: 1}"),
]

NON_OBJECT = [
    *(post(f"non-object/{id}", PICKUP, raw, NOT_OBJECT)
      for id, raw in [("array", b"[]"), ("array-of-body", b"[" + VALID + b"]"), ("string", b'"gosend"'),
                      ("number", b"42"), ("null", b"null"), ("true", b"true")]),
    post("non-object/pricing-array", PRICING, b"[1, 2]", NOT_OBJECT),
    post("non-object/empty-body", PICKUP, b"", required("service")),
]

# -- pickup: types, nulls, missing fields -----------------------------------------------------

TYPES = [
    bad_pickup("service-number", "The service field must be a string.", service=5),
    bad_pickup("service-type-array", "The service_type field must be a string.", service_type=["instant"]),
    bad_pickup("packages-object", "The packages field must be an array.", packages={"0": package()}),
    bad_pickup("packages-string", "The packages field must be an array.", packages="[]"),
    bad_pickup("package-number", "The packages.0 field must be an object.", packages=[5]),
    bad_package("lat-string", field("origin_lat", "field must be a number."), origin_lat="-7.80"),
    bad_package("long-bool", field("destination_long", "field must be a number."), destination_long=True),
    bad_package("lat-array", field("destination_lat", "field must be a number."), destination_lat=[-7.7]),
    bad_package("price-string", field("shipping_price", "field must be a number."), shipping_price="34000"),
    bad_package("name-number", field("origin_name", "field must be a string."), origin_name=12),
    bad_package("phone-number", field("destination_phone", "field must be a string."),
                destination_phone=81280045616),
    bad_package("item-array", field("item", "field must be an object."), item=[]),
    bad_item("item-price-object", field("item.price", "field must be a number."), price={}),
    bad_item("item-weight-string", field("item.weight", "field must be a number."), weight="1000"),
    bad_item("item-name-bool", field("item.name", "field must be a string."), name=False),
    bad_package("order-id-number", field("order_id", "field must be a string."), order_id=12345),
]

NULLS = [
    bad_pickup("service-null", required("service"), service=None),
    post("pickup/packages-null", PICKUP, {**pickup(), "packages": None}, required("packages")),
    bad_pickup("package-null", required("packages.0"), packages=[None]),
    bad_package("lat-null", required("packages.0.origin_lat"), origin_lat=None),
    bad_package("item-null", required("packages.0.item"), item=None),
    bad_item("item-name-null", required("packages.0.item.name"), name=None),
    bad_item("item-price-null", required("packages.0.item.price"), price=None),
]

MISSING = [
    *(post(f"pickup/missing-{key}", PICKUP, without(pickup(), key), required(key))
      for key in ("service", "service_type", "packages", "order_prefix")),
    post("pickup/missing-packages.0.destination_lat", PICKUP,
         pickup(packages=[without(package(), "destination_lat")]),
         "The packages.0.destination_lat field is required."),
    post("pickup/missing-packages.1.origin_phone", PICKUP,
         pickup(packages=[package(), without(package(), "origin_phone")]),
         required("packages.1.origin_phone")),
    post("pickup/missing-item", PICKUP, pickup(packages=[without(package(), "item")]),
         required("packages.0.item")),
    *(bad_package(f"missing-item.{key}", required(f"packages.0.item.{key}"), item=without(item(), key))
      for key in ("name", "price", "weight")),
]

# -- pickup: values ---------------------------------------------------------------------------

RANGES = [
    bad_package("lat-90.0001", field("destination_lat", "field must be between -90 and 90."),
                destination_lat=90.0001),
    bad_package("lat-minus-91", field("origin_lat", "field must be between -90 and 90."), origin_lat=-91),
    bad_package("long-181", field("destination_long", "field must be between -180 and 180."),
                destination_long=181),
    bad_package("long-minus-180.5", field("origin_long", "field must be between -180 and 180."),
                origin_long=-180.5),
    bad_package("lat-1e308", field("origin_lat", "field must be between -90 and 90."), origin_lat=1e308),
]

PHONES = [
    *(bad_package(f"phone-{id}", field("origin_phone", "format is invalid."), origin_phone=phone)
      for id, phone in [("too-short", "08123"), ("too-long", "0812800456161234"),
                        ("landline", "0274-512345"), ("foreign", "+1 555 0100"),
                        ("letters", "0812abcd5616"), ("double-plus", "++6281280045616"),
                        ("no-leading-8", "6221280045616")]),
    bad_package("phone-empty", required("packages.0.destination_phone"), destination_phone=""),
    bad_package("phone-blank", required("packages.0.destination_phone"), destination_phone="   "),
]

EMPTIES = [
    bad_package("origin-name-empty", required("packages.0.origin_name"), origin_name=""),
    bad_package("destination-address-blank", required("packages.0.destination_address"),
                destination_address=" \t "),
    bad_item("item-name-empty", required("packages.0.item.name"), name=""),
    bad_pickup("service-empty", "The selected service is invalid.", service=""),
    bad_pickup("service-type-empty", "The selected service_type is invalid.", service_type=""),
    bad_pickup("order-prefix-empty", required("order_prefix"), order_prefix=""),
    bad_package("origin-name-256-chars", field("origin_name", "may not be greater than 255 characters."),
                origin_name="x" * 256),
    bad_package("address-1001-chars",
                field("destination_address", "may not be greater than 1000 characters."),
                destination_address="x" * 1001),
    bad_package("nul-in-name", field("origin_name", "format is invalid."), origin_name="Arf\u0000ian"),
]

LIMITS = [
    post("pickup/0-packages", PICKUP, {**pickup(), "packages": []}, required("packages")),
    bad_pickup("101-packages", "The packages field must not have more than 100 items.",
               packages=[package() for _ in range(101)]),
    Case("pickup/2-MiB-body", "POST", PICKUP, b'{"x": "' + b"a" * (2 * MiB) + b'"}', 413, 413, TOO_LARGE),
    Case("pickup/2-MiB-body-chunked", "POST", PICKUP, b" " * (2 * MiB) + VALID, 413, 413, TOO_LARGE,
         chunked=True),
    Case("set-callback/1-MiB-plus-1-byte", "POST", CALLBACK, b" " * MiB + b"{}", 413, 413, TOO_LARGE),
]

CHOICES = [
    bad_pickup("service-unknown", "The selected service is invalid.", service="jne"),
    bad_pickup("service-type-unknown", "The selected service_type is invalid.", service_type="express"),
    bad_pickup("vehicle-unknown", "The selected vehicle is invalid.", vehicle="truck"),
    bad_pickup("vehicle-null", required("vehicle"), vehicle=None),
    bad_pickup("order-prefix-slash", "The order_prefix format is invalid.", order_prefix="TST/1"),
    bad_pickup("order-prefix-41-chars", "The order_prefix format is invalid.", order_prefix="P" * 41),
]

MONEY = [
    bad_package("shipping-price-not-the-quote",
                field("shipping_price", "does not match the current price (34000)."),
                shipping_price=34500),
    post("pickup/second-package-price-not-the-quote", PICKUP,
         pickup(packages=[package(), package(shipping_price=1)]),
         "The packages.1.shipping_price does not match the current price (34000)."),
    bad_package("shipping-price-fraction", field("shipping_price", "field must be an integer."),
                shipping_price=34000.5),
    bad_package("shipping-price-negative", field("shipping_price", "field must be at least 0."),
                shipping_price=-34000),
    bad_item("item-price-fraction", field("item.price", "field must be an integer."), price=20000.5),
    bad_item("item-price-negative", field("item.price", "field must be at least 0."), price=-1),
    bad_item("item-price-huge", field("item.price", "field may not be greater than 1000000000000."),
             price=10**13),
]

WEIGHTS = [
    bad_item("weight-0", field("item.weight", "field must be greater than 0."), weight=0),
    bad_item("weight-negative", field("item.weight", "field must be greater than 0."), weight=-5),
    bad_item("weight-40001-g", field("item.weight", "field may not be greater than 40 kg."), weight=40001),
    bad_package("weight-kg-0", field("item.weight_kg", "field must be greater than 0."),
                item=without(item(weight_kg=0), "weight")),
    bad_package("weight-kg-40.5", field("item.weight_kg", "field may not be greater than 40 kg."),
                item=without(item(weight_kg=40.5), "weight")),
]

ORDER_IDS = [
    *(bad_package(f"order-id-{id}", field("order_id", "format is invalid."), order_id=oid)
      for id, oid in [("slash", "A/B"), ("space", "A B"), ("unicode", "PESANAN-\u00fc"),
                      ("dotdot-slash", "../etc"), ("65-chars", "A" * 65), ("empty", "")]),
    bad_pickup("order-id-duplicated-in-request", "The packages.1.order_id field has a duplicate value.",
               packages=[package(order_id="DUP-1"), package(order_id="DUP-1")]),
    bad_pickup("order-id-of-an-existing-order", "order_id {real} already exists", code=2,
               packages=[package(order_id="FRESH-1"), package(order_id="{real}")]),
]

DISTANCE = [
    bad_package("over-40-km", TOO_FAR, code=2, **JAKARTA),
    bad_pickup("second-package-over-40-km", TOO_FAR, code=2, packages=[package(), package(**JAKARTA)]),
]

PRICING_CASES = [
    bad_pricing("origin-missing", required("origin"), without(trip(), "origin")),
    bad_pricing("destination-lat-missing", required("destination.lat"),
                trip(destination={"long": 110.4})),
    bad_pricing("origin-string", "The origin field must be an object.", trip(origin="-7.8,110.3")),
    bad_pricing("service-number", "The service field must be a string or an array.", trip(service=5)),
    bad_pricing("service-unknown-in-list", "The selected service is invalid.",
                trip(service=["gosend", "jne"])),
    bad_pricing("vehicle-unknown", "The selected vehicle is invalid.", trip(vehicle="truck")),
    bad_pricing("timezone-unknown", "The selected timezone is invalid.", trip(timezone="Mars/Olympus")),
    bad_pricing("timezone-path", "The selected timezone is invalid.", trip(timezone="../../etc/passwd")),
    bad_pricing("weight-0", "The weight field must be between 1 and 40000.", trip(weight=0)),
    bad_pricing("weight-40001", "The weight field must be between 1 and 40000.", trip(weight=40001)),
    bad_pricing("weight-bool", "The weight field must be a number.", trip(weight=True)),
    bad_pricing("item-price-fraction", "The item_price field must be an integer.", trip(item_price=1.5)),
    bad_pricing("origin-lat-91", "The origin.lat field must be between -90 and 90.",
                trip(origin={"lat": 91, "long": 110.3})),
]

# -- order ids in paths and bodies ------------------------------------------------------------

PATH_IDS = [
    ("unicode", "%E2%98%83"),
    ("unicode-then-real", "{real}%C3%BC"),
    ("dotdot-to-real", "x/../{real}"),
    ("dotdot-encoded-to-real", "x%2F..%2F{real}"),
    ("dotdot-etc-passwd", "..%2F..%2F..%2Fetc%2Fpasswd"),
    ("space-after-real", "{real}%20"),
    ("space-inside", "TST%201"),
    ("10000-chars", "A" * 10_000),
    ("65-chars", "A" * 65),
    ("empty", ""),
    ("percent-garbage", "%ff%fe%00%C0%AF"),
    ("nul-after-real", "{real}%00"),
    ("slash-after-real", "{real}/"),
    ("double-slash-before-real", "/{real}"),
]

BODY_IDS = [
    ("unknown", "TST-1"),
    ("unicode", "\u2603"),
    ("dotdot-to-real", "x/../{real}"),
    ("dotdot-encoded", "..%2F{real}"),
    ("space-before-real", " {real}"),
    ("newline-after-real", "{real}\n"),
    ("10000-chars", "A" * 10_000),
    ("empty", ""),
    ("percent-garbage", "%ff%fe%00"),
]

ORDER_REFS = [
    *(Case(f"tracking/{id}", "GET", TRACKING + oid, code=2, text=NOT_FOUND) for id, oid in PATH_IDS),
    *(Case(f"void/{id}", "DELETE", VOID + oid, code=2, text=NOT_FOUND) for id, oid in PATH_IDS),
    *(post(f"find-new-driver/{id}", FIND, {"order_id": oid}, INVALID_ORDER, code=2) for id, oid in BODY_IDS),
    post("find-new-driver/null", FIND, {"order_id": None}, required("order_id")),
    post("find-new-driver/number", FIND, {"order_id": 1}, "The order_id field must be a string."),
    post("find-new-driver/missing", FIND, {"orderId": "TST-1"}, required("order_id")),
]

PAYMENTS = [
    post("get-payment/unknown", PAYMENT, {"payment_id": "PID-1"}, NOT_FOUND, code=2),
    post("get-payment/empty", PAYMENT, {"payment_id": ""}, NOT_FOUND, code=2),
    post("get-payment/10000-chars", PAYMENT, {"payment_id": "P" * 10_000}, NOT_FOUND, code=2),
    post("get-payment/dotdot", PAYMENT, {"payment_id": "../PID-1"}, NOT_FOUND, code=2),
    post("get-payment/missing", PAYMENT, {"id": "PID-1"}, required("payment_id")),
    post("get-payment/number", PAYMENT, {"payment_id": 1}, "The payment_id field must be a string."),
    post("get-payment/nul", PAYMENT, {"payment_id": "PID-\u0000"}, "The payment_id format is invalid."),
]


def refused_callback(id: str, url: str, text: Text) -> Case:
    return post(f"set-callback/{id}", CALLBACK, {"url": url}, text, code=2)


def private(address: str) -> str:
    return f"The url resolves to a non-public address ({address}); refused."


LONG_LABEL = "a" * 64 + ".example.com"
LOOPBACK = re.compile(re.escape(private("@")).replace("@", r"(127\.0\.0\.1|::1)"))
CALLBACKS = [
    *(refused_callback(id, url, NOT_HTTP)
      for id, url in [("not-a-url", "not a url"), ("ftp", "ftp://example.com/hook"),
                      ("no-host", "http://"), ("empty-host", "http:///hook"), ("empty", ""),
                      ("javascript", "javascript:alert(1)"), ("file", "file:///etc/passwd")]),
    refused_callback("loopback", "http://127.0.0.1/", private("127.0.0.1")),
    refused_callback("private-10", "http://10.0.0.1/", private("10.0.0.1")),
    refused_callback("metadata", "http://169.254.169.254/latest/meta-data", private("169.254.169.254")),
    refused_callback("ipv6-loopback", "http://[::1]/", private("::1")),
    refused_callback("ipv4-mapped-loopback", "http://[::ffff:127.0.0.1]/", private("::ffff:7f00:1")),
    refused_callback("unspecified", "http://0.0.0.0/", private("0.0.0.0")),  # noqa: S104
    refused_callback("localhost", "http://localhost/", LOOPBACK),
    refused_callback("does-not-resolve", "http://nonexistent.invalid/",
                     "The url host nonexistent.invalid does not resolve."),
    refused_callback("label-over-63-chars", f"http://{LONG_LABEL}/",
                     f"The url host {LONG_LABEL} does not resolve."),
    refused_callback("empty-labels", "http://.../", "The url host ... does not resolve."),
    refused_callback("credentials", "http://user:pw@example.com/", "The url must not carry credentials."),
    refused_callback("port-out-of-range", "http://example.com:99999/", BAD_URL),
    refused_callback("unclosed-bracket", "http://[::1/", BAD_URL),
    refused_callback("space-in-host", "http://exa mple.com/", BAD_URL),
    refused_callback("2049-chars", "http://example.com/" + "a" * 2030,
                     "The url may not be greater than 2048 characters."),
    post("set-callback/nul", CALLBACK, {"url": "http://example.com/\u0000"}, BAD_URL),
    post("set-callback/missing", CALLBACK, {"uri": "http://example.com/"}, required("url")),
    post("set-callback/object", CALLBACK, {"url": {"href": "http://example.com/"}},
         "The url field must be a string."),
]

# -- transport: auth, methods, routes ---------------------------------------------------------

AUTH = [
    *(Case(f"auth/{id}", "POST", PICKUP, VALID, 401, 401, UNAUTHENTICATED, auth=header)
      for id, header in [("missing", None), ("basic-with-key", "Basic {key}"),
                         ("basic-user-pass", "Basic dXNlcjpwYXNz"), ("bearer-only", "Bearer"),
                         ("bearer-empty", "Bearer "), ("bearer-10k-chars", "Bearer " + "a" * 10_000),
                         ("key-without-scheme", "{key}"), ("token-scheme", "Token {key}"),
                         ("key-with-suffix", "Bearer {key}x"), ("unknown-key", "Bearer " + "0" * 64),
                         ("empty-header", "")]),
    Case("auth/tracking-unknown-key", "GET", TRACKING + "{real}", None, 401, 401, UNAUTHENTICATED,
         auth="Bearer " + "f" * 64),
    Case("auth/void-missing", "DELETE", VOID + "{real}", None, 401, 401, UNAUTHENTICATED, auth=None),
]

WRONG_METHODS = [
    ("tracking", TRACKING + "{real}", ["POST", "PUT", "DELETE", "PATCH"]),
    ("pricing", PRICING, ["GET", "PUT"]),
    ("pickup", PICKUP, ["GET", "PUT", "DELETE"]),
    ("find-new-driver", FIND, ["GET", "PATCH"]),
    ("void", VOID + "{real}", ["GET", "POST", "PUT"]),
    ("get-payment", PAYMENT, ["GET", "PUT"]),
    ("set-callback", CALLBACK, ["GET", "DELETE"]),
]

METHODS = [
    Case(f"405/{method}-{route}", method, path, None if method in ("GET", "DELETE") else b"{}",
         405, 405, "method not allowed")
    for route, path, methods in WRONG_METHODS
    for method in methods
]

ROUTES = [
    Case(f"404/{id}", method, path, body, 404, 404, "route not found")
    for id, method, path, body in [
        ("unknown-endpoint", "POST", f"{MITRA}/pickup/cancel", b"{}"),
        ("old-api-version", "GET", "/api/mitra/v3/instant/tracking/{real}", None),
        ("upper-case", "GET", "/API/MITRA/V4/INSTANT/TRACKING/{real}", None),
        ("extra-segment", "POST", f"{PICKUP}/extra", b"{}"),
        ("double-leading-slash", "GET", "//api/mitra/v4/instant/tracking/{real}", None),
        ("root", "GET", "/", None),
        ("trailing-slash-pickup", "POST", f"{PICKUP}/", VALID),
        ("trailing-slash-set-callback", "POST", f"{CALLBACK}/", b'{"url": "http://127.0.0.1/"}'),
        ("tracking-without-id", "GET", TRACKING.rstrip("/"), None),
    ]
]

REFUSED = [
    *MALFORMED, *NON_OBJECT, *TYPES, *NULLS, *MISSING, *RANGES, *PHONES, *EMPTIES, *LIMITS,
    *CHOICES, *MONEY, *WEIGHTS, *ORDER_IDS, *DISTANCE, *PRICING_CASES, *ORDER_REFS, *PAYMENTS,
    *CALLBACKS, *AUTH, *METHODS, *ROUTES,
]


# fmt: on


@pytest.fixture(scope="module")
def merchant(server: Server) -> Api:
    """One merchant for every refusal (per backend): refusals write nothing, so they cannot
    disturb each other, and a fresh merchant per case would cost more than the case."""
    return create_merchant(server.base_url)


def test_snapshot_counts_what_backend_counts_counts(merchant: Api, backend: Backend) -> None:
    create_order(merchant)
    snap = snapshot(backend, merchant.merchant_id)
    assert {t: snap[f"all_{t}"] for t in TABLES} == backend.counts()
    assert {t: snap[f"own_{t}"] for t in TABLES} == backend.counts(merchant.merchant_id)
    assert snap["own_orders"] >= 1 and snap["own_order_seqs"] >= snap["own_orders"]


def test_raw_client_reaches_the_real_order(merchant: Api) -> None:
    """Control for the path cases: the same raw client, with the plain id, finds the order,
    so a `data not found` for `x/../{real}` really is the server refusing that path."""
    case = Case("control", "GET", TRACKING + "{real}")
    fill = prepare(merchant, case)
    body = envelope(send(merchant.base_url, case, fill))
    assert (body["status"], body["result"]["order_id"]) == (True, fill["real"])


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in REFUSED]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_refused_without_a_trace(case: Case, merchant: Api, backend: Backend) -> None:
    fill = prepare(merchant, case)
    before = snapshot(backend, merchant.merchant_id)
    reply = send(merchant.base_url, case, fill)
    assert_refused(reply, case, fill)
    assert snapshot(backend, merchant.merchant_id) == before


# -- what must NOT be refused -----------------------------------------------------------------


def ok(id: str, grams: list[int], body: dict[str, Any] | bytes) -> tuple[str, bytes, list[int]]:
    return id, body if isinstance(body, bytes) else dumps(body), grams


def weighed(**item_fields: Any) -> dict[str, Any]:
    """A pickup whose item carries exactly these weight fields (and no default `weight`)."""
    return pickup(packages=[package(item={**without(item(), "weight"), **item_fields})])


PADDED = VALID + b" " * (MiB - len(VALID))
ACCEPTED = [
    ok("extra-top-level-fields", [1000], pickup(insurance=True, callback={"url": 1}, note=None)),
    ok("extra-package-fields", [1000, 1000], pickup(packages=[package(cod=0, notes=["x"])] * 2)),
    ok("extra-item-field-type-id", [1000], weighed(weight=1000, type_id=3)),
    ok("extra-field-holding-nul", [1000], pickup(junk="\u0000")),
    ok("weight-grams", [2500], weighed(weight=2500)),
    ok("weight-kg-php-sdk", [1500], weighed(weight_kg=1.5, type_id=1)),
    ok("weight-kg-40", [40000], weighed(weight_kg=40)),
    ok("weight-40000-g", [40000], weighed(weight=40000)),
    ok("weight-and-weight-kg-grams-win", [1200], weighed(weight=1200, weight_kg=3)),
    ok("weight-under-a-gram-is-1-g", [1], weighed(weight=0.4)),
    ok("phone-plus-62", [1000], pickup(packages=[package(origin_phone="+6281280045616")])),
    ok("phone-62-with-dashes", [1000], pickup(packages=[package(destination_phone="62-812-8004-5616")])),
    ok("body-exactly-1-MiB", [1000], PADDED),
]


@pytest.mark.parametrize(("body", "grams"), [(b, g) for _, b, g in ACCEPTED], ids=[i for i, _, _ in ACCEPTED])
def test_accepted(body: bytes, grams: list[int], api: Api, backend: Backend) -> None:
    assert len(body) <= MiB
    before = snapshot(backend, api.merchant_id)
    reply = send(api.base_url, Case("ok", "POST", PICKUP, body), {"key": api.key})
    env = envelope(reply)
    assert (reply.status, env["status"], env["code"], env["text"]) == (200, True, 0, "success"), env
    assert len(env["result"]["packages"]) == len(grams)
    rows = backend.query("SELECT item_weight FROM orders WHERE merchant_id = $1 ORDER BY id", api.merchant_id)
    assert [r["item_weight"] for r in rows] == grams
    after = snapshot(backend, api.merchant_id)
    grew = {key: after[key] - before[key] for key in after if key != "callback_url"}
    assert (grew["own_orders"], grew["own_payments"]) == (len(grams), 1)
    for table in TABLES:  # what was written belongs to this merchant only
        assert grew[f"all_{table}"] == grew[f"own_{table}"], table
