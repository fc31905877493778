"""Merchants, keys, payments, orders, their history and the webhook outbox.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# SQLite keeps timestamps as the wire text (`2024-01-19T04:01:37.000000Z`), which sorts.
TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
MONEY = sa.BigInteger()


def _id() -> sa.Column[int]:
    return sa.Column("id", PK, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "merchants",
        _id(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("payment_mode", sa.Text, nullable=False, server_default="on_create"),
        sa.Column("callback_url", sa.Text),
        sa.Column("webhook_dialect", sa.Text, nullable=False, server_default="kiriminaja-2024"),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("merchants_name", "merchants", ["name"], unique=True)

    op.create_table(
        "api_keys",
        _id(),
        sa.Column("merchant_id", PK, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False),
        sa.Column("key_enc", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_index("api_keys_hash", "api_keys", ["key_hash"], unique=True)
    op.create_index("api_keys_merchant", "api_keys", ["merchant_id"])

    op.create_table(
        "payments",
        _id(),
        sa.Column("merchant_id", PK, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("payment_id", sa.Text, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("qr_content", sa.Text),
        sa.Column("pay_time", TS),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("payments_merchant_pid", "payments", ["merchant_id", "payment_id"], unique=True)

    op.create_table(
        "orders",
        _id(),
        sa.Column("merchant_id", PK, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("payment_pk", PK, sa.ForeignKey("payments.id"), nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("service_type", sa.Text, nullable=False),
        sa.Column("vehicle", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("hold_from", sa.Text),
        sa.Column("seq", sa.Integer, nullable=False),
        *[
            col
            for side in ("origin", "destination")
            for col in (
                sa.Column(f"{side}_name", sa.Text, nullable=False),
                sa.Column(f"{side}_phone", sa.Text, nullable=False),
                sa.Column(f"{side}_address", sa.Text, nullable=False),
                sa.Column(f"{side}_address_note", sa.Text, nullable=False),
                sa.Column(f"{side}_lat", sa.Float, nullable=False),
                sa.Column(f"{side}_long", sa.Float, nullable=False),
            )
        ],
        sa.Column("item_name", sa.Text, nullable=False),
        sa.Column("item_description", sa.Text, nullable=False),
        sa.Column("item_price", MONEY, nullable=False),
        sa.Column("item_weight", sa.Integer, nullable=False),
        sa.Column("shipping_cost", MONEY, nullable=False),
        sa.Column("insurance", MONEY),
        sa.Column("admin_fee", MONEY, nullable=False),
        sa.Column("total_price", MONEY, nullable=False),
        sa.Column("tracking_code", sa.Text, nullable=False, server_default=""),
        sa.Column("driver_name", sa.Text),
        sa.Column("driver_phone", sa.Text),
        sa.Column("driver_photo", sa.Text),
        sa.Column("cancel_description", sa.Text),
        sa.Column("live_tracking_url", sa.Text),
        sa.Column("poly_line", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("allocated_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("canceled_at", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("orders_merchant_order", "orders", ["merchant_id", "order_id"], unique=True)
    op.create_index("orders_order_id", "orders", ["order_id"])
    op.create_index("orders_payment", "orders", ["payment_pk"])

    op.create_table(
        "order_events",
        _id(),
        sa.Column("order_pk", PK, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("from_state", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("native_code", sa.Text),
        sa.Column("native_text", sa.Text),
        sa.Column("dedupe_key", sa.Text),
        sa.Column("lat", sa.Float),
        sa.Column("long", sa.Float),
        sa.Column("note", sa.Text),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    op.create_index("order_events_order", "order_events", ["order_pk", "id"])
    op.create_index("order_events_dedupe", "order_events", ["order_pk", "dedupe_key"], unique=True)

    op.create_table(
        "deliveries",
        _id(),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("merchant_id", PK, sa.ForeignKey("merchants.id"), nullable=False),
        sa.Column("order_pk", PK, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS),
    )
    op.create_index("deliveries_event", "deliveries", ["event_id"], unique=True)
    op.create_index("deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("deliveries_merchant", "deliveries", ["merchant_id", "id"])
    op.create_index("deliveries_order", "deliveries", ["order_pk", "seq"])


def downgrade() -> None:
    for table in ("deliveries", "order_events", "orders", "payments", "api_keys", "merchants"):
        op.drop_table(table)
