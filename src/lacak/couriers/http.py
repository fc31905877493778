"""What the outbound courier clients share: one aiohttp session per provider, and the ONE place
where transport and HTTP failures become `CourierError`s.

The mapping decides what the booking task does next, so it is kept in one spot:

- no answer within `settings.couriers.timeout`, a refused or dropped connection, HTTP 5xx, 408
  and 429 are retryable (`Retry-After` is honoured);
- any other refusal (bad request, bad credentials, unknown booking, a 2xx whose body says "not
  successful") is permanent and carries the courier's own error text.

Credentials travel only in headers and request bodies; no message built here contains either.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import msgspec
from yarl import URL

from lacak.couriers.base import Booked, CourierError
from lacak.orders.models import Order
from lacak.settings import CourierSettings

log = logging.getLogger("lacak.couriers")

T = TypeVar("T")
_TEXT_LIMIT = 300
_RETRYABLE_4XX = frozenset({408, 429})  # request timeout, rate limited: the same call may pass later
_decode = msgspec.json.Decoder().decode


class HttpError(CourierError):
    """The courier answered with a failure; `status` lets a client react (Grab refreshes on 401)."""

    def __init__(self, message: str, *, status: int, permanent: bool, retry_after: float | None) -> None:
        super().__init__(message, permanent=permanent, retry_after=retry_after)
        self.status = status


class CourierHttp:
    """One provider's HTTP client: a session made lazily in the running loop, closed by `close()`."""

    def __init__(self, provider: str, timeout: float) -> None:
        self.provider = provider
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # An aiohttp session belongs to the loop that made it, so it is made on first use, inside
        # the loop that serves the task runner, not when the provider is built.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), headers={"Accept": "application/json"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        accept: Callable[[Any], bool] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON of a 2xx answer that `accept`s it (None when empty)."""
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = msgspec.json.encode(body)
            sent["Content-Type"] = "application/json"
        where = f"{method} {URL(url).path}"
        try:
            # Redirects are not followed: they would carry the credential headers to wherever
            # the Location points, and a courier API that redirects is misconfigured anyway.
            request = self._open().request(method, url, data=data, headers=sent, allow_redirects=False)
            async with request as resp:
                raw = await resp.read()
                status, reason, got = resp.status, resp.reason or "", resp.headers
        except TimeoutError:
            raise CourierError(f"{self.provider}: no answer within {self.timeout:g} s ({where})") from None
        except aiohttp.ClientError as exc:
            why = _clip(f"{type(exc).__name__}: {exc}")
            raise CourierError(f"{self.provider}: {why} ({where})") from None
        reply = _json(raw)
        if 200 <= status < 300 and (accept is None or accept(reply)):
            return reply
        retryable = status >= 500 or status in _RETRYABLE_4XX
        text = error_text(reply, got) or reason
        log.debug("courier refused", extra={"provider": self.provider, "call": where, "status": status})
        raise HttpError(
            f"{self.provider} HTTP {status}: {text}",
            status=status,
            permanent=not retryable,
            retry_after=retry_after(got.get("Retry-After")),
        )


class HttpProvider:
    """Base of the three HTTP couriers: the session, `close()`, and find-new-driver.

    None of GoSend, GrabExpress or Borzo documents a "find another driver" call:
    each gives up on a booking it cannot staff, and the partner books again. So asking for a new
    driver cancels the current booking and books anew (a new external id). A permanent refusal
    of that cancel means the booking is already over at the courier (ended without a driver,
    cancelled, unknown), so there is nothing left to cancel; a retryable failure is raised, so
    the step is retried before a second booking could exist next to a live one.
    """

    name = ""

    def __init__(self, settings: CourierSettings) -> None:
        self.settings = settings
        self.http = CourierHttp(self.name, settings.timeout)

    async def book(self, order: Order, generation: int) -> Booked:
        raise NotImplementedError

    async def cancel_booking(self, order: Order, external_id: str | None, reason: str) -> None:
        raise NotImplementedError

    async def cancel(self, order: Order, external_id: str | None) -> None:
        await self.cancel_booking(order, external_id, order.cancel_description or "Cancelled by merchant")

    async def find_new_driver(self, order: Order, external_id: str | None, generation: int) -> Booked:
        if external_id:
            try:
                await self.cancel_booking(order, external_id, "Merchant asked for a new driver")
            except CourierError as exc:
                if not exc.permanent:
                    raise
                log.info(
                    "old booking not cancellable, booking anew",
                    extra={"provider": self.name, "order_pk": order.pk, "error": str(exc)},
                )
        return await self.book(order, generation)

    async def close(self) -> None:
        await self.http.close()


# -- helpers for the clients ------------------------------------------------------------------


def credentials(provider: str, **values: str | None) -> list[str]:
    """The named settings' values, or a permanent error naming (never showing) the missing ones."""
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise CourierError(f"{provider}: not configured, set {', '.join(missing)}", permanent=True)
    return [v for v in values.values() if v]


def pick(provider: str, table: Mapping[str, T], key: str, what: str) -> T:
    """The courier's code for one of lacak's values (service type, vehicle)."""
    if key not in table:
        raise CourierError(f"{provider}: no {what} for {key!r}", permanent=True)
    return table[key]


def expect(reply: Any, shape: type[T], provider: str) -> T:
    """The fields a client needs from a 2xx answer, or a retryable error when they are missing."""
    try:
        return msgspec.convert(reply, shape)
    except msgspec.ValidationError as exc:
        raise CourierError(f"{provider}: unexpected answer: {exc}") from None


def msisdn(phone: str) -> str:
    """`0812…`, `+62812…` or `62812…` as `62812…`, the form all three couriers accept."""
    phone = phone.removeprefix("+")
    return "62" + phone[1:] if phone.startswith("0") else phone


def retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), None when absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_text(reply: Any, headers: Mapping[str, str]) -> str:
    """The courier's own words for a failure, whichever of the documented shapes it used.

    GoSend: `errors: [str]`, `errorMessage`, header `Error-Message`; GrabExpress: `{target,
    reason, message}` and OAuth `{error, error_description}`; Borzo: `errors: [code]` with
    `parameter_errors` mirroring the request tree.
    """
    parts: list[str] = []
    if isinstance(reply, dict):
        for key in ("errors", "errorMessage", "message", "error_description", "error", "reason"):
            text = _first_text(reply.get(key))
            if text:
                parts.append(text)
                break
        if isinstance(reply.get("target"), str) and reply["target"]:
            parts.append(f"at {reply['target']}")
        parts.extend(_flatten(reply.get("parameter_errors"), ""))
    elif isinstance(reply, str) and reply.strip() and not reply.lstrip().startswith("<"):
        parts.append(reply.strip())  # a plain-text body; HTML error pages say nothing useful
    if not parts and headers.get("Error-Message"):
        parts.append(headers["Error-Message"])
    return _clip("; ".join(parts))


def _first_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return _first_text(value[0])
    if isinstance(value, dict):
        return _first_text(value.get("message"))
    return ""


def _flatten(tree: Any, path: str) -> list[str]:
    """Borzo's parameter_errors as `points[0].contact_person.phone: invalid_phone` lines."""
    if isinstance(tree, dict):
        return [line for key, sub in tree.items() for line in _flatten(sub, f"{path}.{key}" if path else key)]
    if isinstance(tree, list):
        if tree and all(isinstance(code, str) for code in tree):
            return [f"{path}: {', '.join(tree)}"]
        return [line for i, sub in enumerate(tree) for line in _flatten(sub, f"{path}[{i}]")]
    if tree in (None, ""):
        return []
    return [f"{path}: {tree}"]


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return _decode(raw)
    except msgspec.DecodeError:
        return raw.decode("utf-8", "replace")


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"
