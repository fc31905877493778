"""Drop `order_events_order`: `order_events_dedupe` (order_pk, dedupe_key) already finds an
order's history, and every state change wrote both.

An order has tens of history rows at most, so sorting them by id after the index found them
costs nothing, while the second index cost every transition one more B-tree insert at a random
page (a page more for each commit to write, and for the checkpoint after it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("order_events_order", "order_events")


def downgrade() -> None:
    op.create_index("order_events_order", "order_events", ["order_pk", "id"])
