"""The `lacak` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import click
import msgspec
import uvloop

from lacak import logs
from lacak.drivers.service import Drivers
from lacak.errors import LacakError, ValidationError
from lacak.http.webhooks import (
    DEFAULT_LIMIT,
    delivery_json,
    detail_json,
    endpoint_json,
    merchant_id_of,
    page_json,
    parse_time,
)
from lacak.orders.models import Driver, State
from lacak.settings import Settings
from lacak.storage import migrate as migrations
from lacak.timeutil import utcnow, wire
from lacak.webhooks.dialects import Dialect
from lacak.webhooks.models import Status
from lacak.webhooks.service import MAX_PAGE
from lacak.webhooks.store import Filters
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
        # uvloop, as `lacak serve` uses: the webhook sender (`lacak worker`) spends most of its
        # time in the HTTP client and the event loop.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
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

    # The app factory reads its settings from the environment (in every worker process): the
    # flags go there too, so links and photo URLs name the port actually served.
    if host:
        os.environ["LACAK_HOST"] = host
    if port:
        os.environ["LACAK_PORT"] = str(port)
    settings = _settings()
    _prepare(settings)
    logs.configure(settings.log_level)
    _lift_open_files()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics to shared files so /metrics adds them all up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lacak-metrics-")
    uvicorn.run(
        "lacak.http.asgi:app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        # Behind a reverse proxy, the client address (live-page rate limits, logs) comes from
        # X-Forwarded-For, trusted only from the proxies named.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Live pages hold their streams open for ever: without a bound, a stop waits on them and
        # the shutdown (webhook sender, task loop) never runs. Browsers reconnect on their own.
        timeout_graceful_shutdown=5,
    )


def _lift_open_files() -> None:
    """Every open live page holds a socket: the soft limit (often 1,024) goes up to the hard
    one, or refused connections would take the merchant API down with the pages."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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


# -- webhooks ----------------------------------------------------------------------------------


def _time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time with a timezone, read the way the HTTP API reads it."""
    if value is None:
        return None
    try:
        return parse_time(value, param.name or "time")
    except ValidationError as exc:
        raise click.BadParameter(exc.message, ctx, param) from None


async def _webhook_merchant(s: Services, ref: str | None) -> int | None:
    return None if ref is None else await merchant_id_of(s, ref)


def _delivery_line(d: dict[str, Any]) -> str:
    last = d["last_error"] or (f"HTTP {d['last_status']}" if d["last_status"] else "")
    return (
        f"{d['event_id']}  m={d['merchant_id']:<5} {d['order_id']:<24} seq={d['seq']:<3} {d['state']:<15} "
        f"{d['status']:<11} attempts={d['attempts']:<2} {d['created_at']}  {last}"
    ).rstrip()


@main.group("deliveries")
def deliveries_group() -> None:
    """Webhook deliveries: the attempt log, resend, recover."""


@deliveries_group.command("list")
@click.option("--merchant", "merchant_ref", help="Merchant id or name (default: every merchant).")
@click.option("--status", type=click.Choice([st.value for st in Status]))
@click.option("--order-id", help="Only this order's deliveries.")
@click.option("--since", callback=_time_option, help="Created at or after (ISO 8601 with a timezone).")
@click.option("--until", callback=_time_option, help="Created before (ISO 8601 with a timezone).")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=DEFAULT_LIMIT, show_default=True)
@click.option("--cursor", help="The next cursor printed by the previous page.")
@click.option("--json", "as_json", is_flag=True, help='Print {"deliveries", "next_cursor"} as JSON.')
def deliveries_list(
    merchant_ref: str | None,
    status: str | None,
    order_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List deliveries, newest first, a page at a time."""

    async def work(s: Services) -> dict[str, Any]:
        merchant_id = await _webhook_merchant(s, merchant_ref)
        chosen = Status(status) if status else None
        filters = Filters(merchant_id=merchant_id, status=chosen, order_id=order_id, since=since, until=until)
        return page_json(await s.hooks.service.page(filters, cursor, limit))

    data = run(work)
    lines = [_delivery_line(d) for d in data["deliveries"]]
    if data["next_cursor"] is not None:
        lines.append(f"more: --cursor {data['next_cursor']}")
    _emit(data, as_json, "\n".join(lines) or "no deliveries")


@deliveries_group.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True)
def deliveries_show(event_id: str, as_json: bool) -> None:
    """A delivery and every attempt made for it (with the first 4 KiB of each answer)."""

    async def work(s: Services) -> dict[str, Any]:
        return detail_json(*await s.hooks.service.show(event_id, None))

    d = run(work)
    lines = [
        f"{d['event_id']}: merchant {d['merchant_id']}, order {d['order_id']} seq {d['seq']} ({d['state']})",
        f"status {d['status']}, created {d['created_at']}, delivered {d['delivered_at'] or '-'}, "
        f"next attempt {d['next_attempt_at'] or '-'}",
    ]
    for a in d["attempts"]:
        answer = f"HTTP {a['status_code']}" if a["status_code"] is not None else (a["error_class"] or "-")
        lines.append(
            f"  #{a['attempt']} {a['trigger']:<9} {a['started_at']} {a['duration_ms']:>9.1f} ms  "
            f"{answer:<12} {a['outcome']:<9} {a['error'] or ''}".rstrip()
        )
        if a["response_body"]:
            lines.extend(f"      | {line}" for line in a["response_body"].splitlines())
    if not d["attempts"]:
        lines.append("  no attempts yet")
    _emit(d, as_json, "\n".join(lines))


@deliveries_group.command("resend")
@click.argument("event_id")
def deliveries_resend(event_id: str) -> None:
    """Send one delivery again now, whatever its status."""
    d = delivery_json(run(lambda s: s.hooks.service.resend(event_id, None)))
    click.echo(f"{d['event_id']}: {d['status']}, due now (manual resend)")


@deliveries_group.command("recover")
@click.option(
    "--since", required=True, callback=_time_option, help="ISO 8601 with a timezone: 2024-01-19T00:00:00Z."
)
@click.option("--merchant", "merchant_ref", help="Merchant id or name (default: every merchant).")
def deliveries_recover(since: datetime, merchant_ref: str | None) -> None:
    """Send again every failed delivery created since a time (progress on stderr)."""
    from tqdm import tqdm

    async def work(s: Services) -> int:
        merchant_id = await _webhook_merchant(s, merchant_ref)
        total = await s.hooks.service.count_failed(since, merchant_id)
        # disable=None: a bar on a terminal, nothing when stderr is a pipe or a file.
        with tqdm(total=total, unit="delivery", desc="recover", file=sys.stderr, disable=None) as bar:
            return await s.hooks.service.recover(since, merchant_id, bar.update)

    n = run(work)
    click.echo(f"requeued {n} failed deliver{'y' if n == 1 else 'ies'} since {wire(since)}")


@main.group("webhooks")
def webhooks_group() -> None:
    """A merchant's webhook endpoint: status, signing secret, re-enable, dialect."""


@webhooks_group.command("show")
@click.argument("merchant_ref", metavar="MERCHANT")
@click.option("--json", "as_json", is_flag=True)
def webhooks_show(merchant_ref: str, as_json: bool) -> None:
    """The endpoint: URL, dialect, secret rotation, health."""

    async def work(s: Services) -> dict[str, Any]:
        return endpoint_json(await s.hooks.service.endpoint(await merchant_id_of(s, merchant_ref)))

    e = run(work)
    state = f"disabled since {e['disabled_at']} ({e['disabled_reason']})" if e["disabled_at"] else "enabled"
    lines = [
        f"merchant {e['merchant_id']}: {e['url'] or 'no callback URL'}",
        f"dialect {e['dialect']}, {state}",
        f"failing since {e['failing_since'] or '-'}, held back until {e['held_until'] or '-'}",
        f"previous secret valid until {e['rotating_until'] or '-'}",
    ]
    _emit(e, as_json, "\n".join(lines))


@webhooks_group.command("secret")
@click.argument("merchant_ref", metavar="MERCHANT")
@click.option("--rotate", is_flag=True, help="Make a new one; the old one keeps signing for a while.")
def webhooks_secret(merchant_ref: str, rotate: bool) -> None:
    """Print the merchant's whsec_ signing secret (made now if it has none)."""

    async def work(s: Services) -> tuple[str, datetime | None]:
        merchant_id = await merchant_id_of(s, merchant_ref)
        if rotate:
            return await s.hooks.service.rotate_secret(merchant_id)
        return await s.hooks.service.secret(merchant_id), None

    secret, until = run(work)
    click.echo(secret)  # alone on stdout, for scripts
    if until is not None:
        click.echo(f"the previous secret keeps signing too until {wire(until)}", err=True)


@webhooks_group.command("enable")
@click.argument("merchant_ref", metavar="MERCHANT")
def webhooks_enable(merchant_ref: str) -> None:
    """Re-enable a disabled endpoint; its paused deliveries go now."""

    async def work(s: Services) -> tuple[int, int]:
        merchant_id = await merchant_id_of(s, merchant_ref)
        return merchant_id, await s.hooks.service.enable(merchant_id)

    merchant_id, resumed = run(work)
    click.echo(f"merchant {merchant_id}: endpoint enabled, {resumed} paused deliveries resumed")


@webhooks_group.command("dialect")
@click.argument("merchant_ref", metavar="MERCHANT")
@click.argument("dialect", type=click.Choice([d.value for d in Dialect]))
def webhooks_dialect(merchant_ref: str, dialect: str) -> None:
    """Choose the body format of the merchant's webhooks."""

    async def work(s: Services) -> dict[str, Any]:
        merchant_id = await merchant_id_of(s, merchant_ref)
        return endpoint_json(await s.hooks.service.set_dialect(merchant_id, dialect))

    e = run(work)
    click.echo(f"merchant {e['merchant_id']}: dialect {e['dialect']}")


@webhooks_group.command("receive")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9000, show_default=True)
@click.option("--secret", envvar="LACAK_RECEIVE_SECRET", help="whsec_ secret: verify every delivery.")
def webhooks_receive(host: str, port: int, secret: str | None) -> None:
    """A development receiver: print each delivery, verified with the standardwebhooks package."""
    from lacak.webhooks import receiver

    receiver.serve(host, port, secret, click.echo)
