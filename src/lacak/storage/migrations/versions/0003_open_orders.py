"""Index the orders still looking for a driver (the fleet's open-order board).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Partial: only the few open orders are in it, however many finished ones pile up.
    op.create_index(
        "orders_finding_driver",
        "orders",
        ["id"],
        postgresql_where=sa.text("state = 'finding_driver'"),
        sqlite_where=sa.text("state = 'finding_driver'"),
    )
    op.create_index("bookings_provider_status", "bookings", ["provider", "status"])


def downgrade() -> None:
    op.drop_index("bookings_provider_status", "bookings")
    op.drop_index("orders_finding_driver", "orders")
