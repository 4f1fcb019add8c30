"""Cron schedules and resyncs queued behind an active run

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cron", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("queued_full", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("queued_since", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("queued_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_streams", schema=None) as batch_op:
        batch_op.drop_column("queued_by")
        batch_op.drop_column("queued_since")
        batch_op.drop_column("queued_full")
        batch_op.drop_column("queued_at")
        batch_op.drop_column("cron")
