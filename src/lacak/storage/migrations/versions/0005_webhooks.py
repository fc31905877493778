"""Webhook delivery: endpoints (signing secrets, disabled state), attempts, delivery results.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    # One endpoint per merchant (its `callback_url` and dialect stay on `merchants`, where the
    # API has always put them); this row holds what only delivery needs.
    op.create_table(
        "webhook_endpoints",
        sa.Column("merchant_id", PK, sa.ForeignKey("merchants.id"), primary_key=True),
        sa.Column("secret_enc", sa.Text, nullable=False),
        # During a rotation the old secret keeps signing (next to the new one) until then.
        sa.Column("old_secret_enc", sa.Text),
        sa.Column("old_secret_until", TS),
        sa.Column("failing_since", TS),
        sa.Column("disabled_at", TS),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("updated_at", TS, nullable=False),
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("last_status", sa.Integer))
        batch.add_column(sa.Column("last_error", sa.Text))
        # The next attempt was asked for by a person (resend / recover / re-enable).
        batch.add_column(sa.Column("manual", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("deliveries_merchant_created", "deliveries", ["merchant_id", "created_at"])

    op.create_table(
        "delivery_attempts",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", PK, sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),  # scheduled | manual
        sa.Column("started_at", TS, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error_class", sa.Text),  # timeout, connect, tls, dns, ssrf-blocked, http
        sa.Column("error", sa.Text),
        sa.Column("response_body", sa.Text),  # the first 4 KiB
        sa.Column("outcome", sa.Text, nullable=False),  # delivered, retry, failed, disabled
    )
    op.create_index("delivery_attempts_delivery", "delivery_attempts", ["delivery_id", "id"])


def downgrade() -> None:
    op.drop_index("delivery_attempts_delivery", "delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("deliveries_merchant_created", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("manual")
        batch.drop_column("last_error")
        batch.drop_column("last_status")
    op.drop_table("webhook_endpoints")
