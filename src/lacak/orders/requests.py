"""What merchants send: the shapes of the instant API's request bodies.

Types are checked by msgspec while decoding; the rules msgspec cannot express (phone
formats, ranges, lengths, the tariff) are checked by `lacak.orders.validation`.
Unknown fields are ignored, as the KiriminAja contract requires.
"""

from __future__ import annotations

import msgspec

Number = int | float


class Location(msgspec.Struct, frozen=True):
    lat: Number
    long: Number
    address: str = ""


class PricingRequest(msgspec.Struct, frozen=True):
    origin: Location
    destination: Location
    service: list[str] | str | None = None
    item_price: Number = 0
    weight: Number = 1000
    vehicle: str = "motor"
    timezone: str = "WIB"


class Item(msgspec.Struct, frozen=True):
    name: str
    price: Number
    description: str = ""
    weight: Number | None = None  # grams (current docs and SDKs)
    weight_kg: Number | None = None  # kilograms (older docs, PHP SDK)


class Package(msgspec.Struct, frozen=True):
    origin_name: str
    origin_phone: str
    origin_lat: Number
    origin_long: Number
    origin_address: str
    destination_name: str
    destination_phone: str
    destination_lat: Number
    destination_long: Number
    destination_address: str
    shipping_price: Number
    item: Item
    origin_address_note: str = ""
    destination_address_note: str = ""
    order_id: str | None = None


class PickupRequest(msgspec.Struct, frozen=True):
    service: str
    service_type: str
    packages: list[Package]
    vehicle: str = "motor"
    order_prefix: str = ""


class OrderRef(msgspec.Struct, frozen=True):
    order_id: str


class PaymentRef(msgspec.Struct, frozen=True):
    payment_id: str


class CallbackRequest(msgspec.Struct, frozen=True):
    url: str
