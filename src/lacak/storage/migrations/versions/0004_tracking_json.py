"""Keep each order's rendered tracking view with it, for one-column lookups.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL means "not rendered yet" (rows from before this revision): the lookup then renders
    # from the columns, so no backfill is needed.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("tracking_json", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("tracking_json")
