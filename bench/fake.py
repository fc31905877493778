"""Realistic rows for the benchmark: merchants, API keys, payments and orders.

Orders are a pure function of their index (plus one seeded RNG for the parts nothing else
depends on), so a 1,000,000-order table streams out in one pass without being held in memory,
and payments, which must be written first for the foreign key, are computed without the orders.

Values look like production data: trips inside Yogyakarta and Jakarta priced by lacak's own
default tariff, Indonesian names and phone numbers, a realistic spread of states (mostly
delivered) with the timestamps, drivers, tracking codes and cancel reasons each state implies.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lacak.crypto import SecretBox
from lacak.merchants import keys
from lacak.orders.views import tracking_json
from lacak.pricing.geo import straight_route
from lacak.pricing.quote import quote
from lacak.pricing.tariff import load_tariff
from lacak.storage.rows import MERCHANT_COLUMNS, ORDER_COLUMNS, PAYMENT_COLUMNS, order_from_row

Row = tuple[Any, ...]
Stamp = Callable[[datetime], Any]  # how a timestamp goes into the database (text or datetime)

ORDERS_PER_PAYMENT = 10
BASE = datetime(2025, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=180)  # orders are spread over half a year, oldest first
_TEMPLATES = 4096
_UNPAID_EVERY = 37  # one payment in 37 is an unpaid prepaid one: its orders stay `created`


def _cols(spec: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in spec.split(","))


PAYMENT_COLS = _cols(PAYMENT_COLUMNS)
MERCHANT_COLS = _cols(MERCHANT_COLUMNS)
KEY_COLS = ("id", "merchant_id", "key_hash", "key_enc", "created_at", "revoked_at")
LACAK_ORDER_COLS = _cols(ORDER_COLUMNS)  # what lacak selects, in its order

_PLACE = ("name", "phone", "address", "address_note", "lat", "long")
# The columns `order_rows` fills, in the order it fills them. Any other column of `orders`
# keeps its default; a NOT NULL one without a default makes the insert fail, loudly.
ORDER_COLS = (
    "id", "merchant_id", "order_id", "payment_pk", "service", "service_type", "vehicle",
    "state", "hold_from", "seq",
    *(f"{side}_{f}" for side in ("origin", "destination") for f in _PLACE),
    "item_name", "item_description", "item_price", "item_weight", "shipping_cost", "insurance",
    "admin_fee", "total_price", "tracking_code", "driver_name", "driver_phone", "driver_photo",
    "cancel_description", "live_tracking_url", "poly_line", "created_at", "allocated_at",
    "finished_at", "canceled_at", "updated_at",
)  # fmt: skip
# Newer columns, filled (after ORDER_COLS) only when the migrated table has them.
OPTIONAL_ORDER_COLS = ("driver_plate", "tracking_json")

_FIRST = ("Budi", "Siti", "Agus", "Dewi", "Rizky", "Putri", "Andi", "Nur", "Fajar", "Ayu",
          "Eko", "Rina", "Hendra", "Wulan", "Dimas", "Sri", "Yusuf", "Indah", "Bayu", "Lestari",
          "Arfian", "Okka", "Joko", "Maya", "Teguh", "Ratna", "Galih", "Intan")  # fmt: skip
_LAST = ("Santoso", "Wijaya", "Pratama", "Saputra", "Hidayat", "Kusuma", "Nugroho", "Rahayu",
         "Setiawan", "Lestari", "Permana", "Utami", "Siregar", "Hasibuan", "Wibowo", "Susanti")  # fmt: skip
_SHOPS = ("Toko", "Warung", "Kedai", "Dapur", "Butik", "Apotek", "Rumah", "Galeri")
_SHOP_NAMES = ("Sinar Jaya", "Berkah", "Makmur", "Sederhana", "Bu Tini", "Mas Bro", "Kita",
               "Sejahtera", "Rejeki", "Nusantara", "Manis", "Laris")  # fmt: skip
_NOTES = ("", "Pagar hijau", "Dekat masjid", "Rumah cat biru, sebelah warung", "Titip satpam",
          "Depan minimarket", "Lantai 2", "Gang sebelah apotek", "Tidak Ada")  # fmt: skip
_ITEMS = (  # name, description, min price, max price, min grams, max grams
    ("Nasi Goreng Spesial", "2 porsi, pedas", 25_000, 60_000, 500, 1500),
    ("Kemeja Batik", "Ukuran L, motif parang", 120_000, 350_000, 300, 600),
    ("Kue Bolu", "Bolu pandan 1 loyang", 45_000, 90_000, 800, 1500),
    ("Obat", "Resep dokter, jangan dibanting", 30_000, 250_000, 100, 400),
    ("Dokumen", "Amplop coklat", 0, 0, 100, 300),
    ("Sepatu", "Sneakers ukuran 42", 250_000, 900_000, 800, 1500),
    ("Kopi Susu Gula Aren", "4 cup, es dipisah", 60_000, 100_000, 1000, 2000),
    ("Handphone", "Segel, bawa hati-hati", 1_500_000, 5_000_000, 400, 800),
    ("Buku", "3 buku pelajaran", 90_000, 300_000, 900, 2500),
    ("Bunga", "Buket mawar merah", 150_000, 500_000, 500, 1500),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class City:
    name: str
    lat: float
    long: float
    areas: tuple[str, ...]
    streets: tuple[str, ...]


_CITIES = (
    City("Kota Yogyakarta", -7.7956, 110.3695,
         ("Wirobrajan", "Gondokusuman", "Mergangsan", "Umbulharjo", "Kotagede", "Jetis",
          "Minomartani, Ngaglik, Sleman", "Kasihan, Bantul", "Godean, Sleman", "Depok, Sleman"),
         ("Jl. Malioboro", "Jl. Kaliurang", "Jl. Parangtritis", "Jl. Magelang", "Jl. Solo",
          "Jl. Godean", "Jl. Wates", "Jl. Gejayan", "Jl. Monjali", "Jl. Imogiri Timur")),
    City("Jakarta", -6.2088, 106.8456,
         ("Menteng, Jakarta Pusat", "Tebet, Jakarta Selatan", "Kebayoran Baru, Jakarta Selatan",
          "Cempaka Putih, Jakarta Pusat", "Kelapa Gading, Jakarta Utara", "Grogol, Jakarta Barat",
          "Duren Sawit, Jakarta Timur", "Pancoran, Jakarta Selatan"),
         ("Jl. Sudirman", "Jl. Thamrin", "Jl. Gatot Subroto", "Jl. Rasuna Said", "Jl. Casablanca",
          "Jl. Fatmawati", "Jl. Panglima Polim", "Jl. Kemang Raya", "Jl. Pramuka")),
)  # fmt: skip
_SERVICES = (("gosend", 5), ("grab_express", 3), ("borzo", 2))
_TRACKING = {  # tracking code and live-tracking URL as each courier spells them
    "gosend": ("GK-11-{n:07d}", "https://gsnd.co/t/{code}"),
    "grab_express": ("IN-{n:010d}", "https://express.grab.com/track/{code}"),
    "borzo": ("{n:09d}", "https://borzo.id/track/{code}"),
}


@dataclass(frozen=True, slots=True)
class Fate:
    """Where an order ended up, and what that state implies (minutes after creation)."""

    state: str
    seq: int
    weight: int
    driver: bool = False
    hold_from: str | None = None
    reason: str | None = None
    allocated: int | None = None
    finished: int | None = None
    canceled: int | None = None
    updated: int = 0


_FATES = (
    Fate("delivered", 7, 68, driver=True, allocated=4, finished=55, updated=55),
    Fate("cancelled", 3, 5, reason="Cancelled by merchant", canceled=6, updated=6),
    Fate("cancelled", 4, 3, driver=True, reason="Pembeli membatalkan pesanan", allocated=3,
         canceled=12, updated=12),
    Fate("in_transit", 6, 4, driver=True, allocated=4, updated=30),
    Fate("picked_up", 5, 3, driver=True, allocated=4, updated=22),
    Fate("at_pickup", 4, 2, driver=True, allocated=4, updated=15),
    Fate("driver_assigned", 3, 3, driver=True, allocated=4, updated=4),
    Fate("finding_driver", 2, 3, updated=0),
    Fate("no_driver", 3, 2, reason="driver not found", updated=20),
    Fate("on_hold", 7, 1, driver=True, hold_from="in_transit", allocated=4, updated=45),
    Fate("returning", 7, 1, driver=True, allocated=4, updated=70),
    Fate("returned", 8, 2, driver=True, allocated=4, finished=120, updated=120),
    Fate("failed", 7, 1, driver=True, reason="delivery failed", allocated=4, updated=60),
)  # fmt: skip
_CREATED = Fate("created", 1, 0)


@dataclass(frozen=True, slots=True)
class Merchant:
    id: int
    name: str
    prefix: str
    key: str


_TARIFF = load_tariff(None)
# Template layout: service, service_type, vehicle, origin (6), destination (6), item_name,
# item_description, item_price, item_weight, shipping_cost, insurance, admin_fee, total_price,
# poly_line; `t[3:23]` is exactly the run of order columns from origin_name to total_price.
_T_TOTAL = 22
_T_POLY = 23


def _phone(rng: random.Random) -> str:
    return f"08{rng.choice('1235789')}{rng.randrange(10**8, 10**9)}"


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _place(rng: random.Random, city: City, lat: float, long: float, shop: str | None) -> Row:
    address = f"{rng.choice(city.streets)} No. {rng.randrange(1, 250)}, {rng.choice(city.areas)}"
    return (shop or _person(rng), _phone(rng), address, rng.choice(_NOTES),
            round(lat, 7), round(long, 7))  # fmt: skip


def _trip(rng: random.Random) -> Row:
    """One template: service, type, vehicle, both places, item, price, route (no state)."""
    city = rng.choice(_CITIES)
    service = rng.choices([s for s, _ in _SERVICES], [w for _, w in _SERVICES])[0]
    service_type = "instant" if rng.random() < 0.8 else "sameday"
    vehicle = "motor" if rng.random() < 0.9 else "mobil"
    olat, olong = city.lat + rng.uniform(-0.05, 0.05), city.long + rng.uniform(-0.05, 0.05)
    dlat, dlong = olat + rng.uniform(-0.07, 0.07), olong + rng.uniform(-0.07, 0.07)
    q = quote(_TARIFF, service, service_type, vehicle, (olat, olong), (dlat, dlong))
    assert q is not None
    name, description, lo, hi, glo, ghi = rng.choice(_ITEMS)
    price = rng.randrange(lo, hi + 1, 500) if hi else 0
    insurance = max(500, price * 25 // 10_000) if price and rng.random() < 0.3 else None
    shop = f"{rng.choice(_SHOPS)} {rng.choice(_SHOP_NAMES)}"
    return (
        service, service_type, vehicle,
        *_place(rng, city, olat, olong, shop), *_place(rng, city, dlat, dlong, None),
        name, description, price, rng.randrange(glo, ghi + 1, 50), q.shipping_cost, insurance,
        q.admin_fee, q.total_price + (insurance or 0),
        straight_route(olat, olong, dlat, dlong),
    )  # fmt: skip


def trips(seed: int) -> list[Row]:
    rng = random.Random(seed)
    return [_trip(rng) for _ in range(_TEMPLATES)]


def _fate_pool(seed: int) -> list[Fate]:
    """1000 fates in proportion to their weights, shuffled: one `randrange` per order."""
    total = sum(f.weight for f in _FATES)
    pool = [f for f in _FATES for _ in range(round(1000 * f.weight / total))]
    random.Random(seed).shuffle(pool)
    return pool


def _plate(rng: random.Random) -> str:
    region = rng.choice(("AB", "B", "AB", "B", "AD", "D"))
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.randrange(1, 4)))
    return f"{region} {rng.randrange(1000, 9999)} {letters}"


def _drivers(seed: int) -> list[tuple[str, str, str | None, str]]:
    rng = random.Random(seed)
    return [
        (_person(rng), _phone(rng),
         f"https://cdn.example.id/driver/{rng.randrange(10**6, 10**7)}.jpg" if rng.random() < 0.6 else None,
         _plate(rng))
        for _ in range(500)
    ]  # fmt: skip


def wire_text(dt: datetime) -> str:
    """SQLite's stored form of a timestamp (lacak.timeutil.WIRE_FORMAT), fast."""
    return dt.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00": always UTC here


def as_datetime(dt: datetime) -> datetime:
    return dt


@dataclass(frozen=True)
class Plan:
    """How many orders over how many merchants; everything else follows from the seed."""

    orders: int
    merchants: int = 100
    seed: int = 20_251_203

    @property
    def _block(self) -> int:
        return self.merchants * ORDERS_PER_PAYMENT

    @property
    def step(self) -> timedelta:
        return SPAN / max(self.orders, 1)

    def merchant_of(self, i: int) -> int:
        return i % self.merchants + 1

    def payment_of(self, i: int) -> int:
        """0-based payment index: ten orders of one merchant, a block of 10 x merchants apart."""
        return (i // self._block) * self.merchants + i % self.merchants

    def payment_count(self) -> int:
        full, rest = divmod(self.orders, self._block)
        return full * self.merchants + min(rest, self.merchants)

    def created(self, i: int) -> datetime:
        # Strictly increasing (jitter below half a step), so `{prefix}-{epoch ms}` is unique.
        step = self.step
        return BASE + step * i + step * ((i * 2_654_435_761 % 1000) / 2000)

    def template_of(self, i: int) -> int:
        return (i * 2_654_435_761 >> 8) % _TEMPLATES

    def unpaid(self, payment: int) -> bool:
        return payment % _UNPAID_EVERY == 5


def merchants(plan: Plan) -> list[Merchant]:
    rng = random.Random(plan.seed)
    out = []
    for m in range(1, plan.merchants + 1):
        kind, name = rng.choice(_SHOPS), rng.choice(_SHOP_NAMES)
        prefix = f"{kind[0]}{''.join(w[0] for w in name.split())}{m:03d}".upper()
        out.append(Merchant(m, f"{kind} {name} {m:03d}", prefix, keys.new_key()))
    return out


def merchant_rows(plan: Plan, ms: list[Merchant], stamp: Stamp) -> list[Row]:
    rows = []
    for m in ms:
        mode = "prepaid" if m.id % 10 == 0 else "on_create"
        callback = f"https://{m.prefix.lower()}.example.id/webhooks/kiriminaja" if m.id % 3 else None
        rows.append((m.id, m.name, mode, callback, "kiriminaja-2024", stamp(BASE - timedelta(days=30))))
    return rows


def key_rows(ms: list[Merchant], box: SecretBox, stamp: Stamp) -> list[Row]:
    """Each merchant's live key (hash + sealed copy); every 10th also has an old revoked one."""
    rows: list[Row] = []
    created = BASE - timedelta(days=30)
    for m in ms:
        if m.id % 10 == 1:
            old = keys.new_key()
            rows.append((len(rows) + 1, m.id, keys.key_hash(old), box.seal(old, context=b"api-key"),
                         stamp(created), stamp(created + timedelta(days=7))))  # fmt: skip
        rows.append((len(rows) + 1, m.id, keys.key_hash(m.key), box.seal(m.key, context=b"api-key"),
                     stamp(created + timedelta(days=7)), None))  # fmt: skip
    return rows


def payment_rows(plan: Plan, templates: list[Row], stamp: Stamp) -> Iterator[Row]:
    """One payment per ten orders of a merchant; its amount is an estimate (ten times the first)."""
    block = plan.merchants * ORDERS_PER_PAYMENT
    for p in range(plan.payment_count()):
        first = (p // plan.merchants) * block + p % plan.merchants
        members = min(ORDERS_PER_PAYMENT, (plan.orders - 1 - first) // plan.merchants + 1)
        at = plan.created(first)
        amount = templates[plan.template_of(first)][_T_TOTAL] * members
        if plan.unpaid(p):
            qr = f"00020101021226670016COM.NOBUBANK.WWW01189360050300000{p:08d}5204581253033605802ID"
            yield (p + 1, plan.merchant_of(first), f"XID-{8_000_000_000 + p}", amount, 9, qr, None,
                   stamp(at))  # fmt: skip
        else:
            yield (p + 1, plan.merchant_of(first), f"XID-{8_000_000_000 + p}", amount, 0, None,
                   stamp(at), stamp(at))  # fmt: skip


_MINUTE = timedelta(minutes=1)


def _later(stamp: Stamp, created: datetime, minutes: int | None) -> Any:
    return None if minutes is None else stamp(created + _MINUTE * minutes)


def order_rows(
    plan: Plan, ms: list[Merchant], templates: list[Row], stamp: Stamp, optional: tuple[str, ...] = ()
) -> Iterator[Row]:
    """Rows for ORDER_COLS, then for each of `optional` (a subset of OPTIONAL_ORDER_COLS)."""
    plates = "driver_plate" in optional
    views_json = "tracking_json" in optional
    rng = random.Random(plan.seed + 1)
    fates, drivers = _fate_pool(plan.seed), _drivers(plan.seed)
    minute = _MINUTE
    for i in range(plan.orders):
        m = ms[i % plan.merchants]
        payment = plan.payment_of(i)
        fate = _CREATED if plan.unpaid(payment) else fates[rng.randrange(len(fates))]
        t = templates[plan.template_of(i)]
        created = plan.created(i)
        code = url = None
        name = phone = photo = plate = None
        if fate.driver:
            name, phone, photo, plate = drivers[rng.randrange(len(drivers))]
            code_fmt, url_fmt = _TRACKING[t[0]]
            code = code_fmt.format(n=3_000_000 + i)
            url = url_fmt.format(code=code) if fate.state not in ("delivered", "returned") else None

        row = (
            i + 1, m.id, f"{m.prefix}-{int(created.timestamp() * 1000)}", payment + 1,
            t[0], t[1], t[2], fate.state, fate.hold_from, fate.seq, *t[3:23],
            code or "", name, phone, photo, fate.reason, url, t[_T_POLY],
            stamp(created), _later(stamp, created, fate.allocated),
            _later(stamp, created, fate.finished), _later(stamp, created, fate.canceled),
            stamp(created + minute * fate.updated),
        )  # fmt: skip
        extra: tuple[Any, ...] = (plate,) if plates else ()
        if views_json:  # what lacak stores with each order since schema 0004
            # Seeded orders have no live-page token (ORDER_COLS ends before `live_token`).
            extra += (tracking_json(order_from_row((*row, None))),)
        yield (*row, *extra)
