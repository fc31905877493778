"""The live-tracking link of each order: a random token, looked up by the public page.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for orders created before this revision: their links would need the server's public
    # URL, which a migration does not know, so they simply have no lacak page.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("live_token", sa.Text))
    op.create_index("orders_live_token", "orders", ["live_token"], unique=True)


def downgrade() -> None:
    op.drop_index("orders_live_token", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("live_token")
