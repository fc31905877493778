"""Made-up drivers and courier tracking codes: pure functions of a seeded random generator."""

from __future__ import annotations

import random
import string

import msgspec

from lacak.pricing.geo import haversine_km

FIRST_NAMES = (
    "Agus",
    "Bambang",
    "Budi",
    "Dedi",
    "Dewi",
    "Eko",
    "Fajar",
    "Hendra",
    "Indra",
    "Joko",
    "Kurniawan",
    "Lestari",
    "Maya",
    "Nur",
    "Putri",
    "Rahmat",
    "Rina",
    "Rizky",
    "Sari",
    "Slamet",
    "Sri",
    "Teguh",
    "Wahyu",
    "Wulan",
    "Yudi",
    "Yusuf",
    "Ayu",
    "Bayu",
    "Dimas",
    "Gilang",
    "Hadi",
    "Ilham",
)
FAMILY_NAMES = (
    "Santoso",
    "Wijaya",
    "Saputra",
    "Hidayat",
    "Nugroho",
    "Pratama",
    "Setiawan",
    "Gunawan",
    "Siregar",
    "Nasution",
    "Lubis",
    "Purnomo",
    "Susanto",
    "Rahayu",
    "Kusuma",
    "Wibowo",
    "Hakim",
    "Firmansyah",
    "Ramadhan",
    "Permana",
    "Sitompul",
    "Harahap",
    "Utomo",
    "Hartono",
)
# Mobile prefixes of the big operators (Telkomsel, Indosat, XL, Tri, Smartfren).
PHONE_PREFIXES = (
    "0811",
    "0812",
    "0813",
    "0821",
    "0822",
    "0852",
    "0853",
    "0814",
    "0815",
    "0816",
    "0855",
    "0856",
    "0857",
    "0858",
    "0817",
    "0818",
    "0819",
    "0859",
    "0877",
    "0878",
    "0895",
    "0896",
    "0897",
    "0898",
    "0881",
    "0882",
    "0887",
    "0888",
)
# Plate region codes of the cities instant couriers serve: the driver's plate is from the
# region nearest the pickup, as a local motorbike's would be.
PLATE_REGIONS = (
    ("B", -6.2088, 106.8456),
    ("D", -6.9175, 107.6191),
    ("F", -6.5971, 106.8060),
    ("AB", -7.7956, 110.3695),
    ("AD", -7.5755, 110.8243),
    ("H", -6.9667, 110.4167),
    ("L", -7.2575, 112.7521),
    ("N", -7.9666, 112.6326),
    ("DK", -8.6705, 115.2126),
    ("BK", 3.5952, 98.6722),
    ("BG", -2.9761, 104.7754),
    ("DD", -5.1477, 119.4327),
    ("KT", -1.2379, 116.8529),
    ("BE", -5.3971, 105.2668),
)
PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O or Q: they read as digits
_ID_CHARS = string.digits + string.ascii_uppercase


class SimDriver(msgspec.Struct, frozen=True):
    name: str
    phone: str
    plate: str
    avatar: str  # the seed of /avatars/{seed}.svg


def make_driver(rng: random.Random, lat: float, long: float) -> SimDriver:
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(FAMILY_NAMES)}"
    phone = rng.choice(PHONE_PREFIXES) + "".join(rng.choice(string.digits) for _ in range(rng.choice((7, 8))))
    region = min(PLATE_REGIONS, key=lambda r: haversine_km(lat, long, r[1], r[2]))[0]
    suffix = "".join(rng.choice(PLATE_LETTERS) for _ in range(rng.randint(1, 3)))
    plate = f"{region} {rng.randint(1, 9999)} {suffix}"
    return SimDriver(name=name, phone=phone, plate=plate, avatar=f"{rng.getrandbits(64):016x}")


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10 ** (n - 1), 10**n))


# Each courier's own AWB format (see the courier API research): GoSend's orderNo, Grab's
# deliveryID, Borzo's numeric order_id.
TRACKING_FORMATS = {
    "gosend": lambda rng: f"GK-11-{_digits(rng, 7)}",
    "grab_express": lambda rng: "IN-2-" + "".join(rng.choice(_ID_CHARS) for _ in range(16)),
    "borzo": lambda rng: _digits(rng, 9),
}


def tracking_code(seed: int, order_pk: int, service: str) -> str:
    """The order's AWB, in its service's format; stable across new drivers (same booking)."""
    rng = random.Random(f"{seed}:{order_pk}:awb")
    make = TRACKING_FORMATS.get(service)
    return make(rng) if make is not None else f"SIM-{_digits(rng, 10)}"
