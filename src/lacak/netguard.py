"""Outgoing-URL guard: lacak only calls public http(s) addresses unless told otherwise.

Every resolved address must be globally routable: private, loopback, link-local, CGNAT,
multicast, reserved, unspecified and documentation ranges (IPv4 and IPv6) are refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from lacak.errors import CallbackRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def blocked(addr: IPAddress) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not addr.is_global or addr.is_multicast


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, or CallbackRefused."""
    if len(url) > 2048:
        raise CallbackRefused("The url may not be greater than 2048 characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackRefused("The url format is invalid.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("The url must be an http or https URL.")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise CallbackRefused("The url format is invalid.")
    if parts.username or parts.password:
        raise CallbackRefused("The url must not carry credentials.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5)
    except (OSError, TimeoutError, ValueError):
        # ValueError includes UnicodeError: the IDNA codec refuses an empty or over-long label
        raise CallbackRefused(f"The url host {host} does not resolve.") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def check_url(url: str, *, allow_private: bool) -> list[IPAddress]:
    """Resolve the URL's host and refuse it if any address is not public."""
    _, host, port = parse_url(url)
    addresses = await resolve(host, port)
    if not allow_private:
        for addr in addresses:
            if blocked(addr):
                raise CallbackRefused(f"The url resolves to a non-public address ({addr}); refused.")
    return addresses
