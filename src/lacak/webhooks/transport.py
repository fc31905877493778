"""The ONE place where outgoing webhook POSTs happen, and where aiohttp and socket failures
become `TransportError`s.

A request either gets an HTTP answer, whatever its status (a `Reply`; judging it is the
dispatcher's job), or fails with a `TransportError` whose `kind` is the attempt log's error
class and whose `permanent` flag tells the dispatcher not to retry:

- no complete answer within `timeout` seconds: "timeout";
- refused, reset or dropped connection, a peer that does not speak HTTP: "connect";
- TLS handshake or certificate failure: "tls";
- the host does not resolve: "dns";
- the host is, or resolves to, a non-public address: "ssrf-blocked";
- a URL that can never be sent (malformed, not http(s), carrying credentials): "connect",
  permanent. Nothing else is permanent: DNS and routing change, operators change settings.

"http" (a non-2xx answer) is the dispatcher's to record; this module never raises it.

SSRF: aiohttp connects only to the addresses `GuardedResolver` hands it, after checking every
one of them, so there is no second lookup between check and connect (DNS rebinding); the DNS
cache is off, so every new connection is checked anew. aiohttp does not consult the resolver
for IP-literal hosts, so `post` checks those itself. TLS still verifies the certificate against
the URL's host name (aiohttp passes it as `server_hostname`, whatever address it connects to).

Messages name the host and the failure, never a header (the bearer key is a secret) nor the
full URL (receivers often put a token in the query string).
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Literal, Protocol

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from lacak import netguard
from lacak.errors import CallbackRefused
from lacak.netguard import IPAddress

ErrorClass = Literal["timeout", "connect", "tls", "dns", "ssrf-blocked", "http"]
Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]

BODY_LIMIT = 4096  # the attempt log keeps the first 4 KiB of an answer; more is never read
_MESSAGE_LIMIT = 300
# aiohttp adds these unless told not to: its own User-Agent would name the library and its
# version when a caller sends none, and Accept-Encoding invites compressing an answer of
# which at most 4 KiB is kept.
_SKIP_AUTO_HEADERS = ("User-Agent", "Accept-Encoding")
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class TransportError(Exception):
    """The request did not get an HTTP answer. `kind` is the attempt log's error class."""

    def __init__(self, kind: ErrorClass, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.kind: ErrorClass = kind
        self.permanent = permanent


class Reply(msgspec.Struct, frozen=True):
    """An HTTP answer, whatever its status."""

    status: int
    body: bytes  # at most the first BODY_LIMIT bytes
    retry_after: float | None  # seconds, from `Retry-After`; None when absent or unreadable
    elapsed: float  # seconds from sending the request to the end of `body`


class Transport(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply: ...

    async def close(self) -> None: ...


class _Refused(OSError):
    """Raised inside aiohttp's connector by `GuardedResolver`.

    An OSError, because aiohttp wraps exactly those in `ClientConnectorError` (keeping the
    original as `os_error`), so the kind decided here survives the trip through aiohttp.
    """

    def __init__(self, kind: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorClass = kind
        self.message = message


class GuardedResolver(AbstractResolver):
    """Resolves a host and hands aiohttp only addresses it has checked."""

    def __init__(self, *, allow_private: bool, resolve: Resolve = netguard.resolve) -> None:
        self._allow_private = allow_private
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self._resolve(host, port)
        except (CallbackRefused, OSError, ValueError):
            raise _Refused("dns", f"{host} does not resolve") from None
        found: list[ResolveResult] = []
        for addr in addresses:
            # One non-public address refuses the host, as `netguard.check_url` does: a name
            # that points inside even partly is not a public endpoint.
            if not self._allow_private and netguard.blocked(addr):
                raise _Refused("ssrf-blocked", f"{host} resolves to a non-public address ({addr})")
            addr_family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
            if family and family != addr_family:
                continue
            found.append(
                ResolveResult(
                    hostname=host, host=str(addr), port=port, family=addr_family, proto=0, flags=_NUMERIC
                )
            )
        if not found:
            raise _Refused("dns", f"{host} has no usable address")
        return found

    async def close(self) -> None:
        pass


class AiohttpTransport:
    """Webhook POSTs through one keep-alive aiohttp session, made lazily in the running loop."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        limit: int = 200,
        limit_per_host: int = 0,
        resolve: Resolve | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._resolve = resolve or netguard.resolve
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # An aiohttp session belongs to the loop that made it, so it is made on first use.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                resolver=GuardedResolver(allow_private=self.allow_private, resolve=self._resolve),
                use_dns_cache=False,  # every new connection is resolved and checked again
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                # One session serves every merchant: no cookie set by one receiver is kept.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # no proxy from the environment between the check and the target
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """POST `body` with exactly `headers` (plus Host and Content-Length); redirects are not
        followed, a 3xx is a `Reply` like any other status."""
        target = self._target(url)
        session = self._open()
        started = time.perf_counter()
        try:
            async with session.post(target, data=body, headers=headers, allow_redirects=False) as resp:
                content = await _head(resp.content)
                status = resp.status
                wait = resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            # `from None`: aiohttp's exceptions carry the request (`request_info`, with the
            # Authorization header), which must not travel on into logs.
            raise _translate(exc, target, self.timeout) from None
        return Reply(
            status=status,
            body=content,
            retry_after=None if wait is None else retry_after(wait),
            elapsed=time.perf_counter() - started,
        )

    def _target(self, url: str) -> URL:
        """The parsed URL, refused before any I/O when it can never be sent or is an IP literal
        that may not be called."""
        try:
            target = URL(url)
            host = target.raw_host
        except (ValueError, TypeError):
            raise TransportError("connect", "the URL is malformed", permanent=True) from None
        if target.scheme not in ("http", "https") or not host:
            raise TransportError("connect", "the URL is not an absolute http(s) URL", permanent=True)
        if target.user is not None or target.password is not None:
            # aiohttp would send them as Basic credentials; set_callback refuses such URLs too.
            raise TransportError("connect", "the URL carries credentials", permanent=True)
        # The same test aiohttp uses to skip the resolver (helpers.is_ip_address), so that every
        # host it would connect to without resolving is checked here.
        if not self.allow_private and (":" in host or host.replace(".", "").isdigit()):
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:  # 127.1, 2130706433: legacy forms a socket would still accept
                raise TransportError("connect", f"{host} is not a valid IP address", permanent=True) from None
            if netguard.blocked(addr):
                raise TransportError("ssrf-blocked", f"{host} is a non-public address")
        return target


async def _head(content: aiohttp.StreamReader) -> bytes:
    """The first BODY_LIMIT bytes of the body. The rest stays unread: aiohttp then closes the
    connection instead of draining a large answer."""
    data = await content.read(BODY_LIMIT)
    if not data or len(data) >= BODY_LIMIT or content.at_eof():
        return data
    parts = [data]
    size = len(data)
    while size < BODY_LIMIT:
        chunk = await content.read(BODY_LIMIT - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _translate(exc: BaseException, target: URL, timeout: float) -> TransportError:
    """The one mapping from what aiohttp and the socket layer raise to the attempt log's classes."""
    where = f"{target.raw_host}:{target.port}"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, _Refused):
        # The guarded resolver's verdict; aiohttp wraps it (ClientConnectorDNSError since 3.11).
        return TransportError(exc.os_error.kind, exc.os_error.message)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TransportError("tls", _clip(f"{where}: {_certificate_problem(exc.certificate_error)}"))
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return TransportError("tls", _clip(f"{where}: {_describe(exc)}"))
    if isinstance(exc, TimeoutError):  # the total timeout, and aiohttp's ServerTimeoutError family
        return TransportError("timeout", f"{where}: no answer within {timeout:g} s")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return TransportError("connect", "the URL is not a valid http(s) URL", permanent=True)
    return TransportError("connect", _clip(f"{where}: {_describe(exc)}"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        inner = exc.os_error
        return f"{type(inner).__name__}: {inner.strerror or inner}"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Its str() repeats the full URL; the message says what was wrong with the answer.
        return f"{type(exc).__name__}: {exc.message}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _certificate_problem(err: Exception) -> str:
    if isinstance(err, ssl.SSLCertVerificationError) and err.verify_message:
        return f"certificate verify failed: {err.verify_message}"
    return f"certificate error: {err}"


def _clip(text: str) -> str:
    text = " ".join(text.split())  # aiohttp's parser errors span lines, with a caret under the fault
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def retry_after(value: str) -> float | None:
    """Seconds from a `Retry-After` value: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
