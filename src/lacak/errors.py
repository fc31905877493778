"""Every error lacak raises on purpose, in one tree.

    LacakError
    ├── ValidationError        a request field is missing or malformed (names the field)
    ├── DomainError            a business rule refused the request
    │   ├── NotFound           no such order/payment for this merchant ("data not found")
    │   ├── InvalidOrder       the order exists but cannot take this action now
    │   ├── DistanceTooFar     origin and destination more than the tariff's limit apart
    │   ├── DuplicateOrderId   the merchant already has an order with this id
    │   └── CallbackRefused    the callback URL is not an acceptable public http(s) URL
    ├── AuthError              missing, unknown or revoked credentials
    ├── ConfigError            the operator's configuration cannot be used
    └── StorageError           the database failed in a way the caller may want to handle
        ├── UniqueViolation    an insert collided with a unique index
        └── DatabaseUnavailable the database cannot be reached

Domain code raises these and knows nothing of HTTP; the HTTP edge (`lacak.http.envelope`)
is the one place that turns them into status codes and envelopes. Driver-level exceptions
(sqlite3, asyncpg) are translated into `StorageError`s in exactly one place per driver.
"""

from __future__ import annotations


class LacakError(Exception):
    """Base of every error lacak raises deliberately."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(LacakError):
    """A request field is missing or malformed; `message` names the first bad field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DomainError(LacakError):
    """A business rule refused the request."""


class NotFound(DomainError):
    def __init__(self, message: str = "data not found") -> None:
        super().__init__(message)


class InvalidOrder(DomainError):
    def __init__(self, message: str = "order id yang dipilih tidak valid.") -> None:
        super().__init__(message)


class DistanceTooFar(DomainError):
    def __init__(self, message: str = "cannot process the request, distance more than 40km") -> None:
        super().__init__(message)


class DuplicateOrderId(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order_id {order_id} already exists")
        self.order_id = order_id


class CallbackRefused(DomainError):
    pass


class AuthError(LacakError):
    pass


class ConfigError(LacakError):
    pass


class StorageError(LacakError):
    pass


class UniqueViolation(StorageError):
    pass


class DatabaseUnavailable(StorageError):
    pass
