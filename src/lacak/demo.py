"""Demo data: a merchant, a few orders at different stages, and copy-paste examples."""

from __future__ import annotations

import textwrap

from lacak.errors import NotFound
from lacak.orders.requests import Item, Package, PickupRequest
from lacak.pricing.quote import quote
from lacak.wiring import Services

DEMO = "demo"

_TRIPS = [
    # (origin, destination) around Yogyakarta, from KiriminAja's own examples
    (
        (-7.8032616, 110.350244, "Wirobrajan, Kota Yogyakarta"),
        (-7.7349434, 110.405355, "Minomartani, Ngaglik, Sleman"),
    ),
    ((-7.854584, 110.331154, "Kasihan, Bantul"), (-7.776192, 110.325053, "Godean, Sleman")),
    ((-7.782889, 110.367083, "Malioboro, Yogyakarta"), (-7.747452, 110.355406, "Jombor, Sleman")),
]


def _package(s: Services, i: int) -> Package:
    (olat, olong, oaddr), (dlat, dlong, daddr) = _TRIPS[i]
    q = quote(s.orders.tariff, "gosend", "instant", "motor", (olat, olong), (dlat, dlong))
    assert q is not None
    return Package(
        origin_name="Toko Demo",
        origin_phone="081280045616",
        origin_lat=olat,
        origin_long=olong,
        origin_address=oaddr,
        destination_name=f"Pelanggan {i + 1}",
        destination_phone="081234567890",
        destination_lat=dlat,
        destination_long=dlong,
        destination_address=daddr,
        shipping_price=q.shipping_cost,
        item=Item(name=f"Barang {i + 1}", price=20000, weight=1000),
    )


async def _key(s: Services) -> str:
    try:
        merchant = await s.merchants.get(DEMO)
    except NotFound:
        return (await s.merchants.create(DEMO))[1]
    key = await s.merchants.api_key(merchant)
    return key if key is not None else (await s.merchants.rotate_key(DEMO))[1]


async def seed(s: Services, base_url: str) -> str:
    key = await _key(s)
    merchant = await s.merchants.get(DEMO)
    req = PickupRequest(
        service="gosend",
        service_type="instant",
        order_prefix="DEMO",
        packages=[_package(s, i) for i in range(len(_TRIPS))],
    )
    _, orders = await s.orders.create(merchant, req)
    return _examples(base_url, key, orders[0].order_id, orders[0].live_tracking_url) + _webhooks(
        base_url, key, s.settings.webhook_allow_private
    )


def _webhooks(base: str, key: str, allow_private: bool) -> str:
    if allow_private:
        note = (
            "Private webhook targets are ALLOWED for this demo (LACAK_WEBHOOK_ALLOW_PRIVATE=1), so a\n"
            "receiver on this machine works. Never set it in production: it lets callbacks reach\n"
            "your internal network."
        )
    else:
        note = (
            "Callback URLs on this machine (127.0.0.1, 10.x, ...) are refused: run the server with\n"
            "LACAK_WEBHOOK_ALLOW_PRIVATE=1 (as `make run` does) to try webhooks locally."
        )
    return (
        "\n"
        + note
        + textwrap.dedent(f"""

        Receive webhooks (each order change, signed; the first call returns the signing secret):
          curl -s -X POST {base}/api/mitra/set_callback \\
            -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
            -d '{{"url":"http://127.0.0.1:9000/webhook"}}'
          lacak webhooks receive --port 9000 --secret whsec_...   # prints each verified delivery
        """)
    )


def _examples(base: str, key: str, order_id: str, live_url: str | None) -> str:
    return textwrap.dedent(f"""\
        Demo merchant ready.  API key: {key}
        Its new orders are carried by the built-in courier simulator: once `lacak serve` runs,
        watch them find a driver, get picked up and delivered (LACAK_SIM_SPEED sets the pace).

        Watch it as the customer does (the order's live link, open it in a browser):
          {live_url}

        Track an order, and read its full history:
          curl -s {base}/api/mitra/v4/instant/tracking/{order_id} \\
            -H 'Authorization: Bearer {key}'
          curl -s {base}/api/mitra/v4/instant/tracking/{order_id}/history \\
            -H 'Authorization: Bearer {key}'

        Price a trip:
          curl -s -X POST {base}/api/mitra/v4/instant/pricing \\
            -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
            -d '{{"service":["gosend"],"item_price":20000,"weight":1000,"vehicle":"motor",
                 "origin":{{"lat":-7.8032616,"long":110.350244,"address":"Wirobrajan"}},
                 "destination":{{"lat":-7.7349434,"long":110.405355,"address":"Minomartani"}}}}'

        Its history (operator):
          lacak order show {order_id}

        With the official Python SDK (pip install kiriminaja):
          from kiriminaja import KiriminAja
          client = KiriminAja(base_url="{base}", api_key="{key}")
          print(client.order.instant.track("{order_id}"))
        """)
