"""The outgoing-URL guard, without a server (IP literals resolve without DNS)."""

from __future__ import annotations

import pytest

from lacak.errors import CallbackRefused
from lacak.netguard import check_url

BLOCKED = [
    "http://127.0.0.1/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/hook",  # CGNAT
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",  # multicast
    "http://192.0.2.10/hook",  # documentation
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://[2001:db8::1]/hook",  # documentation
    "http://localhost:8080/hook",
]


@pytest.mark.anyio
@pytest.mark.parametrize("url", BLOCKED)
async def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(CallbackRefused, match="non-public"):
        await check_url(url, allow_private=False)


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://[::1]/x", "http://10.0.0.1/"])
async def test_private_targets_pass_when_the_operator_allows_them(url: str) -> None:
    assert await check_url(url, allow_private=True)


@pytest.mark.anyio
async def test_public_address_is_accepted() -> None:
    addresses = await check_url("https://93.184.216.34/webhook", allow_private=False)
    assert [str(a) for a in addresses] == ["93.184.216.34"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http or https"),
        ("http:///nohost", "http or https"),
        ("not a url", "http or https"),
        ("http://user:pw@93.184.216.34/", "credentials"),
        ("http://nonexistent.invalid/", "does not resolve"),
        ("http://[::1/", "format"),
    ],
)
async def test_malformed_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(CallbackRefused, match=why):
        await check_url(url, allow_private=True)
