"""The merchant record (no secrets in it: keys live hashed and encrypted in their own table)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class PaymentMode(StrEnum):
    ON_CREATE = "on_create"  # orders are paid when created (the default)
    PREPAID = "prepaid"  # orders wait as `created` until an operator marks the payment paid


class Merchant(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    payment_mode: PaymentMode = PaymentMode.ON_CREATE
    callback_url: str | None = None
    webhook_dialect: str = "kiriminaja-2024"
    created_at: datetime

    @property
    def prepaid(self) -> bool:
        return self.payment_mode == PaymentMode.PREPAID
