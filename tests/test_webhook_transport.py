"""The webhook transport against real servers on loopback, in the test's own event loop.

Every answer is a `Reply` (2xx or not, a redirect is not followed); every other outcome is a
`TransportError` of the attempt log's class; non-public targets are refused before a connection
is made, including a host whose DNS answer changes between the check and the send.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lacak import netguard
from lacak.errors import CallbackRefused
from lacak.netguard import IPAddress
from lacak.webhooks.transport import AiohttpTransport, Reply, TransportError, retry_after

pytestmark = pytest.mark.anyio

SECRET = "Bearer 9f2c1d7e-secret-api-key"
HEADERS = {
    "Authorization": SECRET,
    "User-Agent": "KiriminAja-Push-Services",
    "Content-Type": "application/json",
    "Accept": "application/json",
    "webhook-id": "msg_2b5Xx9QwzQ1",
    "webhook-timestamp": "1704870212",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}
BODY = b'{"method":"update_instant_packages","data":{"order_id":"NBL2-1704870212382"}}'


@dataclass
class Seen:
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 that records every request it gets."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.path, raw_headers(request), await request.read()))
        path = request.path
        if path == "/big":
            return web.Response(body=b"a" * 4000 + b"b" * 6000)
        if path == "/trickle":
            # the body arrives in pieces, so one read cannot return all that is kept
            resp = web.StreamResponse(status=200)
            await resp.prepare(request)
            for piece in (b"1" * 1500, b"2" * 1500, b"3" * 1500, b"4" * 1500):
                await resp.write(piece)
                await asyncio.sleep(0.02)
            await resp.write_eof()
            return resp
        if path == "/500":
            return web.Response(status=500, text="boom")
        if path == "/301":
            return web.Response(status=301, headers={"Location": "/moved"})
        if path == "/410":
            return web.Response(status=410, text="gone")
        if path == "/429-seconds":
            return web.Response(status=429, headers={"Retry-After": "120"})
        if path == "/429-date":
            later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
            return web.Response(status=429, headers={"Retry-After": format_datetime(later, usegmt=True)})
        if path == "/hang":
            await self.release.wait()
        if path == "/close":
            return web.Response(text="bye", headers={"Connection": "close"})
        return web.Response(text="ok")


def raw_headers(request: web.Request) -> list[tuple[str, str]]:
    """The request's headers as sent: names in their case, in their order."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]


@asynccontextmanager
async def receiving(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()


@dataclass
class Listener:
    """A bare TCP listener that counts connections: 'no request' means not even a connect."""

    connections: int = 0
    port: int = 0
    answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def listening(host: str = "127.0.0.1", answer: bytes | None = None) -> AsyncIterator[Listener]:
    listener = Listener() if answer is None else Listener(answer=answer)
    server = await asyncio.start_server(listener.handle, host, 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def transport(**options: object) -> AsyncIterator[AiohttpTransport]:
    options.setdefault("timeout", 2.0)
    options.setdefault("allow_private", True)
    t = AiohttpTransport(**options)  # type: ignore[arg-type]
    try:
        yield t
    finally:
        await t.close()


def resolving_to(*answers: str) -> tuple[Callable[[str, int], Awaitable[list[IPAddress]]], list[str]]:
    """A fake DNS: the n-th lookup gets the n-th answer (the last one repeats); logs the names."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(answers[min(len(asked), len(answers)) - 1])]

    return resolve, asked


async def failure(t: AiohttpTransport, url: str) -> TransportError:
    with pytest.raises(TransportError) as caught:
        await t.post(url, BODY, HEADERS)
    assert SECRET.split()[1] not in str(caught.value)
    return caught.value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- answers ---------------------------------------------------------------------------------------


async def test_a_2xx_answer_keeps_only_the_first_4_kib_of_the_body() -> None:
    async with receiving() as rx, transport() as t:
        reply = await t.post(rx.url("/big"), BODY, HEADERS)
        trickled = await t.post(rx.url("/trickle"), BODY, HEADERS)
        small = await t.post(rx.url("/ok"), BODY, HEADERS)
    assert isinstance(reply, Reply)
    assert reply.status == 200
    assert reply.body == b"a" * 4000 + b"b" * 96
    assert reply.retry_after is None
    assert 0 < reply.elapsed < 2
    assert trickled.body == b"1" * 1500 + b"2" * 1500 + b"3" * 1096
    assert (small.status, small.body) == (200, b"ok")
    assert [s.body for s in rx.seen] == [BODY, BODY, BODY]


@pytest.mark.parametrize(("path", "status", "body"), [("/500", 500, b"boom"), ("/410", 410, b"gone")])
async def test_failure_statuses_are_answers(path: str, status: int, body: bytes) -> None:
    async with receiving() as rx, transport() as t:
        reply = await t.post(rx.url(path), BODY, HEADERS)
    assert (reply.status, reply.body) == (status, body)


async def test_redirects_are_not_followed() -> None:
    async with receiving() as rx, transport() as t:
        reply = await t.post(rx.url("/301"), BODY, HEADERS)
    assert reply.status == 301
    assert [s.path for s in rx.seen] == ["/301"]  # the Location target received nothing


async def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    async with receiving() as rx, transport() as t:
        seconds = await t.post(rx.url("/429-seconds"), BODY, HEADERS)
        date = await t.post(rx.url("/429-date"), BODY, HEADERS)
    assert (seconds.status, seconds.retry_after) == (429, 120.0)
    assert date.status == 429
    assert date.retry_after is not None
    assert 85 <= date.retry_after <= 90


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), (" 7 ", 7.0), ("-5", None), ("1.5", None), ("soon", None), ("", None), ("nan", None)],
)
def test_retry_after_values(value: str, expected: float | None) -> None:
    assert retry_after(value) == expected


def test_retry_after_in_the_past_is_now() -> None:
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


async def test_headers_arrive_exactly_as_given() -> None:
    async with receiving() as rx, transport() as t:
        await t.post(rx.url("/ok"), BODY, HEADERS)
    (seen,) = rx.seen
    # The caller's headers, byte for byte, plus only what HTTP itself needs: no aiohttp
    # User-Agent, no Accept-Encoding.
    expected = [*HEADERS.items(), ("Host", f"127.0.0.1:{rx.port}"), ("Content-Length", str(len(BODY)))]
    assert sorted(seen.headers) == sorted(expected)


async def test_without_a_user_agent_none_is_sent() -> None:
    async with receiving() as rx, transport() as t:
        await t.post(rx.url("/ok"), BODY, {"Content-Type": "application/json"})
    names = {name.lower() for name, _ in rx.seen[0].headers}
    assert "user-agent" not in names  # aiohttp would name itself and its version
    assert "accept-encoding" not in names


async def test_connections_are_kept_alive_and_each_new_one_is_resolved_again() -> None:
    resolve, asked = resolving_to("127.0.0.1")
    async with receiving() as rx, transport(resolve=resolve) as t:
        for _ in range(3):
            assert (await t.post(rx.url("/ok", "hooks.invalid"), BODY, HEADERS)).status == 200
        assert asked == ["hooks.invalid"]  # one connection, reused
        await t.post(rx.url("/close", "hooks.invalid"), BODY, HEADERS)
        await t.post(rx.url("/ok", "hooks.invalid"), BODY, HEADERS)
        assert len(asked) == 2  # no DNS cache: the new connection was looked up and checked
    # The connection went to the resolved address, and the request still names the host.
    assert ("Host", f"hooks.invalid:{rx.port}") in rx.seen[0].headers


# -- failures ---------------------------------------------------------------------------------------


async def test_no_answer_within_the_timeout() -> None:
    async with receiving() as rx, transport(timeout=0.5) as t:
        started = time.monotonic()
        err = await failure(t, rx.url("/hang"))
        took = time.monotonic() - started
    assert (err.kind, err.permanent) == ("timeout", False)
    assert 0.45 <= took < 1.5


async def test_a_refused_connection() -> None:
    async with transport() as t:
        err = await failure(t, f"http://127.0.0.1:{free_port()}/hook")
    assert (err.kind, err.permanent) == ("connect", False)


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # the peer hangs up without a word (aiohttp: ServerDisconnectedError)
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",  # not HTTP at all
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",  # body cut short
    ],
)
async def test_a_peer_that_does_not_answer_in_http(answer: bytes) -> None:
    async with listening(answer=answer) as peer, transport() as t:
        err = await failure(t, f"http://127.0.0.1:{peer.port}/hook?token=s3cr3t")
    assert (err.kind, err.permanent) == ("connect", False)
    assert "s3cr3t" not in str(err)


async def test_an_unknown_host() -> None:
    async with transport(allow_private=False) as t:
        err = await failure(t, "http://nonexistent.invalid/hook")
    assert (err.kind, err.permanent) == ("dns", False)


async def test_a_lookup_that_fails_is_a_dns_error() -> None:
    async def refuse(host: str, port: int) -> list[IPAddress]:
        raise CallbackRefused(f"The url host {host} does not resolve.")

    async with transport(resolve=refuse) as t:
        err = await failure(t, "http://hooks.invalid/hook")
    assert err.kind == "dns"


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("ftp://93.184.216.34/hook", False),
        ("not a url", False),
        ("http:///nohost", False),
        ("http://user:pw@93.184.216.34/hook", False),
        ("http://127.1/hook", False),  # legacy IPv4 forms a socket would map onto an address
        ("http://2130706433/hook", False),
        ("http://127.1/hook", True),  # refused by aiohttp itself, translated the same way
    ],
)
async def test_a_url_that_can_never_be_sent_is_permanent(url: str, allow_private: bool) -> None:
    async with transport(allow_private=allow_private) as t:
        err = await failure(t, url)
    assert (err.kind, err.permanent) == ("connect", True)


# -- SSRF ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "localhost", "[::ffff:127.0.0.1]", "0x7f.0.0.1"],
)
async def test_non_public_targets_are_refused_before_connecting(host: str) -> None:
    async with listening() as v4, listening("::1") as v6, transport(allow_private=False) as t:
        port = v6.port if host == "[::1]" else v4.port
        started = time.monotonic()
        err = await failure(t, f"http://{host}:{port}/hook")
        assert time.monotonic() - started < 0.5  # refused, not timed out
    assert (err.kind, err.permanent) == ("ssrf-blocked", False)
    assert v4.connections == v6.connections == 0


async def test_private_targets_are_reached_when_allowed() -> None:
    async with listening() as v4, listening("::1") as v6, transport(allow_private=True) as t:
        for host, port in [("127.0.0.1", v4.port), ("[::1]", v6.port), ("localhost", v4.port)]:
            assert (await t.post(f"http://{host}:{port}/hook", BODY, HEADERS)).status == 200
    assert v4.connections == 2
    assert v6.connections == 1


async def test_a_host_that_resolves_differently_at_send_time_is_refused() -> None:
    # DNS rebinding: public when the URL is checked, loopback when the webhook is sent.
    resolve, asked = resolving_to("93.184.216.34", "127.0.0.1")
    async with listening() as rx, transport(allow_private=False, resolve=resolve) as t:
        url = f"http://rebind.invalid:{rx.port}/hook"
        checked = await resolve("rebind.invalid", rx.port)
        assert not any(netguard.blocked(addr) for addr in checked)  # what check_url would pass
        err = await failure(t, url)
    assert (err.kind, err.permanent) == ("ssrf-blocked", False)
    assert "127.0.0.1" in str(err)
    assert asked == ["rebind.invalid", "rebind.invalid"]
    assert rx.connections == 0


async def test_one_non_public_address_among_public_ones_refuses_the_host() -> None:
    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.1.2.3")]

    async with transport(allow_private=False, resolve=mixed) as t:
        err = await failure(t, "http://mixed.invalid/hook")
    assert err.kind == "ssrf-blocked"


# -- TLS ----------------------------------------------------------------------------------------------


def self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.invalid")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("hooks.invalid"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


async def test_an_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    server_names: list[str | None] = []
    context = self_signed(tmp_path)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    resolve, _ = resolving_to("127.0.0.1")
    async with receiving(context) as rx, transport(resolve=resolve) as t:
        err = await failure(t, f"https://hooks.invalid:{rx.port}/hook")
        by_address = await failure(t, f"https://127.0.0.1:{rx.port}/hook")
    assert (err.kind, err.permanent) == ("tls", False)
    assert "self-signed" in str(err) or "self signed" in str(err)
    assert by_address.kind == "tls"
    # The handshake named the URL's host, not the address it connected to.
    assert server_names[0] == "hooks.invalid"
    assert rx.seen == []
