"""Field rules for merchant requests. Messages follow the Laravel style KiriminAja uses:
`The packages.0.destination_lat field is required.`"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lacak.errors import ValidationError
from lacak.orders.requests import Item, Package, PickupRequest, PricingRequest
from lacak.pricing.tariff import SERVICES, VEHICLES

ORDER_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
PREFIX = re.compile(r"[A-Za-z0-9_.\-]{1,40}")
PHONE = re.compile(r"(?:\+62|62|0)8[0-9]{7,12}")
ALIASES = {"grab": "grab_express"}
TIMEZONES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}
MAX_PACKAGES = 100
MAX_WEIGHT_GRAMS = 40_000
MAX_TEXT = 255
MAX_ADDRESS = 1000


def valid_order_id(order_id: str) -> bool:
    return ORDER_ID.fullmatch(order_id) is not None


def service_name(raw: str, field: str = "service") -> str:
    name = ALIASES.get(raw, raw)
    if name not in SERVICES:
        raise ValidationError(f"The selected {field} is invalid.", field)
    return name


def vehicle_name(raw: str) -> str:
    if raw not in VEHICLES:
        raise ValidationError("The selected vehicle is invalid.", "vehicle")
    return raw


def timezone_name(raw: str) -> str:
    name = TIMEZONES.get(raw.upper(), raw)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("The selected timezone is invalid.", "timezone") from None
    return name


def text(value: str, field: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = value.strip()
    if required and not value:
        raise ValidationError(f"The {field} field is required.", field)
    if len(value) > limit:
        raise ValidationError(f"The {field} may not be greater than {limit} characters.", field)
    return value


def phone(value: str, field: str) -> str:
    value = text(value, field).replace(" ", "").replace("-", "")
    if not PHONE.fullmatch(value):
        raise ValidationError(f"The {field} format is invalid.", field)
    return value


def coordinate(value: float, field: str, bound: int) -> float:
    if not -bound <= value <= bound:
        raise ValidationError(f"The {field} field must be between -{bound} and {bound}.", field)
    return float(value)


def money(value: float, field: str) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValidationError(f"The {field} field must be an integer.", field)
    if value < 0:
        raise ValidationError(f"The {field} field must be at least 0.", field)
    if value > 10**12:
        raise ValidationError(f"The {field} field may not be greater than 1000000000000.", field)
    return int(value)


def weight_grams(item: Item, field: str) -> int:
    if item.weight is not None:
        grams, name = float(item.weight), f"{field}.weight"
    elif item.weight_kg is not None:
        grams, name = float(item.weight_kg) * 1000, f"{field}.weight_kg"
    else:
        raise ValidationError(f"The {field}.weight field is required.", f"{field}.weight")
    if grams <= 0:
        raise ValidationError(f"The {name} field must be greater than 0.", name)
    if grams > MAX_WEIGHT_GRAMS:
        raise ValidationError(f"The {name} field may not be greater than 40 kg.", name)
    return max(1, round(grams))  # a positive weight never rounds down to 0 g


def check_pricing(req: PricingRequest) -> None:
    for side in ("origin", "destination"):
        loc = getattr(req, side)
        coordinate(loc.lat, f"{side}.lat", 90)
        coordinate(loc.long, f"{side}.long", 180)
    money(req.item_price, "item_price")
    if not 0 < req.weight <= MAX_WEIGHT_GRAMS:
        raise ValidationError("The weight field must be between 1 and 40000.", "weight")


def check_package(pkg: Package, i: int) -> None:
    base = f"packages.{i}"
    for side in ("origin", "destination"):
        text(getattr(pkg, f"{side}_name"), f"{base}.{side}_name")
        phone(getattr(pkg, f"{side}_phone"), f"{base}.{side}_phone")
        coordinate(getattr(pkg, f"{side}_lat"), f"{base}.{side}_lat", 90)
        coordinate(getattr(pkg, f"{side}_long"), f"{base}.{side}_long", 180)
        text(getattr(pkg, f"{side}_address"), f"{base}.{side}_address", limit=MAX_ADDRESS)
        text(
            getattr(pkg, f"{side}_address_note"),
            f"{base}.{side}_address_note",
            required=False,
            limit=MAX_ADDRESS,
        )
    money(pkg.shipping_price, f"{base}.shipping_price")
    text(pkg.item.name, f"{base}.item.name")
    text(pkg.item.description, f"{base}.item.description", required=False, limit=MAX_ADDRESS)
    money(pkg.item.price, f"{base}.item.price")
    weight_grams(pkg.item, f"{base}.item")
    if pkg.order_id is not None and not valid_order_id(pkg.order_id):
        raise ValidationError(f"The {base}.order_id format is invalid.", f"{base}.order_id")


def check_pickup(req: PickupRequest) -> None:
    service_name(req.service)
    vehicle_name(req.vehicle)
    if not req.packages:
        raise ValidationError("The packages field is required.", "packages")
    if len(req.packages) > MAX_PACKAGES:
        raise ValidationError(f"The packages field must not have more than {MAX_PACKAGES} items.", "packages")
    needs_prefix = any(p.order_id is None for p in req.packages)
    if needs_prefix and not req.order_prefix:
        raise ValidationError("The order_prefix field is required.", "order_prefix")
    if req.order_prefix and not PREFIX.fullmatch(req.order_prefix):
        raise ValidationError("The order_prefix format is invalid.", "order_prefix")
    seen: set[str] = set()
    for i, pkg in enumerate(req.packages):
        check_package(pkg, i)
        if pkg.order_id is not None:
            if pkg.order_id in seen:
                field = f"packages.{i}.order_id"
                raise ValidationError(f"The {field} field has a duplicate value.", field)
            seen.add(pkg.order_id)
