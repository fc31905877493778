"""The `lacak` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import msgspec

from lacak import logs
from lacak.drivers.service import Drivers
from lacak.errors import LacakError
from lacak.orders.models import Driver, State
from lacak.settings import Settings
from lacak.storage import migrate as migrations
from lacak.timeutil import utcnow, wire
from lacak.wiring import Services, services

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except LacakError as exc:
        raise click.ClickException(exc.message) from None


def _prepare(settings: Settings) -> None:
    """The embedded default migrates itself; PostgreSQL is migrated by `lacak migrate`."""
    if settings.is_sqlite:
        migrations.upgrade(settings.resolved_database_url)


def run(work: Callable[[Services], Awaitable[T]]) -> T:
    settings = _settings()
    _prepare(settings)

    async def main() -> T:
        async with services(settings) as s:
            return await work(s)

    try:
        return asyncio.run(main())
    except LacakError as exc:
        raise click.ClickException(exc.message) from None


def _emit(data: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else human)


@click.group()
def main() -> None:
    """lacak: a self-hostable instant-delivery tracking server."""


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    migrations.upgrade(settings.resolved_database_url)
    click.echo(f"migrated to {migrations.head_revision()}")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default LACAK_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default LACAK_PORT or 8080).")
@click.option("--workers", type=int, default=1, show_default=True, help="Server processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the HTTP server."""
    import uvicorn

    settings = _settings()
    _prepare(settings)
    logs.configure(settings.log_level)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics to shared files so /metrics adds them all up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lacak-metrics-")
    uvicorn.run(
        "lacak.http.asgi:app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


@main.command()
def worker() -> None:
    """Run the background loops only (simulator steps, courier bookings, webhook delivery)."""
    import signal

    logs.configure(_settings().log_level)

    async def loop_until_signalled(s: Services) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await asyncio.gather(s.couriers.runner.run_forever(stop), s.hooks.run(stop))

    run(loop_until_signalled)


@main.group()
def merchant() -> None:
    """Merchant accounts."""


@merchant.command("create")
@click.argument("name")
@click.option("--prepaid", is_flag=True, help="Orders wait as `created` until marked paid.")
@click.option("--json", "as_json", is_flag=True, help="Print {merchant_id, api_key} as JSON.")
def merchant_create(name: str, prepaid: bool, as_json: bool) -> None:
    """Create a merchant and print its API key (shown only once)."""
    m, key = run(lambda s: s.merchants.create(name, prepaid=prepaid))
    _emit(
        {"merchant_id": m.id, "api_key": key},
        as_json,
        f"merchant {m.id} ({m.name}) created\napi key: {key}\n(shown once; store it now)",
    )


@merchant.command("list")
@click.option("--json", "as_json", is_flag=True)
def merchant_list(as_json: bool) -> None:
    """List merchants."""
    rows = run(lambda s: s.store.list_merchants())
    data = [
        {
            "merchant_id": m.id,
            "name": m.name,
            "payment_mode": m.payment_mode.value,
            "callback_url": m.callback_url,
            "active_keys": n,
        }
        for m, n in rows
    ]
    human = "\n".join(
        f"{d['merchant_id']:>5}  {d['name']:<30} {d['payment_mode']:<10} "
        f"keys={d['active_keys']}  callback={d['callback_url'] or '-'}"
        for d in data
    )
    _emit(data, as_json, human or "no merchants")


@merchant.command("prepaid")
@click.argument("merchant_ref", metavar="MERCHANT")
@click.option("--off", is_flag=True, help="Back to paying on creation.")
def merchant_prepaid(merchant_ref: str, off: bool) -> None:
    """Make a merchant's new orders wait for an operator to mark them paid."""
    m = run(lambda s: s.merchants.set_prepaid(merchant_ref, not off))
    click.echo(f"merchant {m.id}: payment_mode={m.payment_mode.value}")


@main.group()
def key() -> None:
    """Merchant API keys."""


@key.command("rotate")
@click.argument("merchant_ref", metavar="MERCHANT")
@click.option("--json", "as_json", is_flag=True)
def key_rotate(merchant_ref: str, as_json: bool) -> None:
    """Replace the merchant's key (the old one stops working within 5 s everywhere)."""
    m, new = run(lambda s: s.merchants.rotate_key(merchant_ref))
    _emit({"merchant_id": m.id, "api_key": new}, as_json, f"new api key for {m.name}: {new}")


@key.command("revoke")
@click.argument("merchant_ref", metavar="MERCHANT")
def key_revoke(merchant_ref: str) -> None:
    """Revoke every key of the merchant."""
    m, n = run(lambda s: s.merchants.revoke_keys(merchant_ref))
    click.echo(f"revoked {n} key(s) of {m.name}")


@main.group()
def driver() -> None:
    """The operator's own drivers (the `fleet` provider) and their API tokens."""


def _drivers(s: Services) -> Drivers:
    return Drivers(s.db, s.store, s.metrics, utcnow)


@driver.command("create")
@click.argument("name")
@click.option("--phone", required=True, help="Indonesian mobile number, e.g. 081234567890.")
@click.option("--plate", help="Vehicle plate, shown to merchants' tracking.")
@click.option("--photo", help="http(s) URL of the driver's photo.")
@click.option("--json", "as_json", is_flag=True, help="Print {driver_id, token} as JSON.")
def driver_create(name: str, phone: str, plate: str | None, photo: str | None, as_json: bool) -> None:
    """Create a driver and print its API token (shown only once)."""
    d, token = run(lambda s: _drivers(s).create(name, phone, plate, photo))
    _emit(
        {"driver_id": d.id, "token": token},
        as_json,
        f"driver {d.id} ({d.name}) created\ntoken: {token}\n(shown once; store it now)",
    )


@driver.command("list")
@click.option("--json", "as_json", is_flag=True)
def driver_list(as_json: bool) -> None:
    """List drivers, their last known position and how many orders each carries."""
    rows = run(lambda s: _drivers(s).listing())
    data = [
        {
            "driver_id": d.id,
            "name": d.name,
            "phone": d.phone,
            "plate": d.plate,
            "photo": d.photo,
            "active": d.revoked_at is None,
            "lat": d.lat,
            "long": d.long,
            "position_at": wire(d.position_at),
            "carrying": n,
        }
        for d, n in rows
    ]
    human = "\n".join(
        f"{x['driver_id']:>5}  {x['name']:<30} {x['phone']:<15} {x['plate'] or '-':<12} "
        f"{'active' if x['active'] else 'revoked':<8} carrying={x['carrying']}"
        for x in data
    )
    _emit(data, as_json, human or "no drivers")


@driver.command("revoke")
@click.argument("driver_id", metavar="DRIVER", type=int)
def driver_revoke(driver_id: int) -> None:
    """Revoke the driver's token (refused from the next request on). Its orders stay assigned."""
    d = run(lambda s: _drivers(s).revoke(driver_id))
    click.echo(f"driver {d.id} ({d.name}) revoked")


@main.group()
def order() -> None:
    """Orders, by hand."""


async def _merchant_id(s: Services, ref: str | None) -> int | None:
    return None if ref is None else (await s.merchants.get(ref)).id


@order.command("advance")
@click.argument("order_id")
@click.argument("state", type=click.Choice([s.value for s in State]))
@click.option("--merchant", "merchant_ref", help="Merchant id or name, if the id is ambiguous.")
@click.option("--driver-name")
@click.option("--driver-phone")
@click.option("--driver-photo")
@click.option("--tracking-code")
@click.option("--reason")
def order_advance(
    order_id: str,
    state: str,
    merchant_ref: str | None,
    driver_name: str | None,
    driver_phone: str | None,
    driver_photo: str | None,
    tracking_code: str | None,
    reason: str | None,
) -> None:
    """Move an order to STATE (operator source), by the lifecycle rules."""
    driver = Driver(driver_name, driver_phone, driver_photo) if driver_name or driver_phone else None

    async def work(s: Services) -> tuple[str, int, str]:
        o = await s.orders.locate(order_id, await _merchant_id(s, merchant_ref))
        d = await s.orders.advance(
            o.merchant_id, o.order_id, State(state), driver=driver, tracking_code=tracking_code, reason=reason
        )
        return d.outcome.value, d.order.seq, d.order.state.value

    outcome, seq, now = run(work)
    click.echo(f"{order_id}: {outcome}; state={now} seq={seq}")
    if outcome != "applied":
        sys.exit(1)


@order.command("show")
@click.argument("order_id")
@click.option("--merchant", "merchant_ref")
def order_show(order_id: str, merchant_ref: str | None) -> None:
    """Print an order and its history as JSON."""

    async def work(s: Services) -> dict[str, Any]:
        o = await s.orders.locate(order_id, await _merchant_id(s, merchant_ref))
        return {"order": msgspec.to_builtins(o), "history": msgspec.to_builtins(await s.store.history(o.pk))}

    click.echo(json.dumps(run(work), indent=2))


@main.group()
def payment() -> None:
    """Payments."""


@payment.command("paid")
@click.argument("payment_id")
@click.option("--merchant", "merchant_ref", required=True)
def payment_paid(payment_id: str, merchant_ref: str) -> None:
    """Mark a prepaid payment as paid: its orders move on to finding_driver."""

    async def work(s: Services) -> str:
        m = await s.merchants.get(merchant_ref)
        return (await s.orders.mark_paid(m.id, payment_id)).payment_id

    click.echo(f"{run(work)} paid")


@main.command()
@click.option("--base-url", default=None, help="Base URL to print in the examples.")
def demo(base_url: str | None) -> None:
    """Create a demo merchant with a few orders, and print curl and SDK examples."""
    from lacak.demo import seed

    settings = _settings()
    url = base_url or f"http://{settings.host}:{settings.port}"
    click.echo(run(lambda s: seed(s, url)))
