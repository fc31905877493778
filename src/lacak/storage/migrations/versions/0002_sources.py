"""Where status comes from: bookings, due tasks, courier inbox, drivers, positions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", PK, primary_key=True, autoincrement=True)


def _order_fk(nullable: bool = False) -> sa.Column[int]:
    return sa.Column("order_pk", PK, sa.ForeignKey("orders.id"), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("driver_plate", sa.Text))

    # One booking per order with the provider that carries it; `generation` grows on every
    # re-booking (find-new-driver) so that work scheduled for an older one can tell it is stale.
    op.create_table(
        "bookings",
        sa.Column("order_pk", PK, sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("bookings_external", "bookings", ["provider", "external_id"], unique=True)

    # Due work, claimed by any process: courier bookings, cancels, simulator steps.
    op.create_table(
        "tasks",
        _id(),
        sa.Column("kind", sa.Text, nullable=False),
        _order_fk(nullable=True),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("lease_until", TS),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("payload", sa.Text, nullable=False, server_default="{}"),
        sa.Column("done_at", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(
        "tasks_due",
        "tasks",
        ["due_at"],
        postgresql_where=sa.text("done_at IS NULL"),
        sqlite_where=sa.text("done_at IS NULL"),
    )
    op.create_index("tasks_order", "tasks", ["order_pk"])

    # Every inbound courier message, raw, with what became of it.
    op.create_table(
        "courier_inbox",
        _id(),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("native_status", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        _order_fk(nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", TS, nullable=False),
    )
    op.create_index("courier_inbox_received", "courier_inbox", ["provider", "id"])

    op.create_table(
        "drivers",
        _id(),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=False),
        sa.Column("plate", sa.Text),
        sa.Column("photo", sa.Text),
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("lat", sa.Float),
        sa.Column("long", sa.Float),
        sa.Column("position_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_index("drivers_token", "drivers", ["token_hash"], unique=True)

    op.create_table(
        "assignments",
        sa.Column("order_pk", PK, sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("driver_id", PK, sa.ForeignKey("drivers.id"), nullable=False),
        sa.Column("assigned_at", TS, nullable=False),
    )
    op.create_index("assignments_driver", "assignments", ["driver_id"])

    # The trail of positions per order (bounded by pruning), and the newest one per order.
    op.create_table(
        "positions",
        _id(),
        _order_fk(),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("long", sa.Float, nullable=False),
        sa.Column("accuracy", sa.Float),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
    )
    op.create_index("positions_order", "positions", ["order_pk", "id"])
    op.create_table(
        "live_positions",
        sa.Column("order_pk", PK, sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("long", sa.Float, nullable=False),
        sa.Column("at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "live_positions",
        "positions",
        "assignments",
        "drivers",
        "courier_inbox",
        "tasks",
        "bookings",
    ):
        op.drop_table(table)
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("driver_plate")
