"""The push: channels' progress and schedule, push runs, and the binder

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 20:00:00

- ``channels``: ``push_cursor`` (how far along the change feed the store
  is), ``next_push_at``, ``push_wanted_at`` (a sync's changes waiting),
  ``paused``, ``last_push_run_id``.
- ``push_runs``: one row per push of a channel, one active at a time
  (``lock_key`` unique), with its position on the feed and its counts.
- ``channel_products``: per channel and product, the store's ids and the
  hashes of what the store confirmed, or the store's refusal.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(
            sa.Column("push_cursor", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("next_push_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("push_wanted_at", _WHEN, nullable=True))
        batch.add_column(
            sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("last_push_run_id", _ID, nullable=True))
    op.create_table(
        "push_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lock_key", sa.String(length=80), nullable=True),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("retry_refused", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "considered",
                "created",
                "updated",
                "stock",
                "archived",
                "unchanged",
                "skipped",
                "refused",
            )
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("heartbeat_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lock_key"),
    )
    op.create_index("ix_push_runs_channel", "push_runs", ["channel_id", "id"])
    op.create_index("ix_push_runs_status", "push_runs", ["status"])
    op.create_table(
        "channel_products",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("product_id", _ID, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("store_id", sa.String(length=255), nullable=True),
        sa.Column("ids", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("product_hash", sa.String(length=64), nullable=True),
        sa.Column("stock_hash", sa.String(length=64), nullable=True),
        sa.Column("confirmed_at", _WHEN, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("refused_hash", sa.String(length=64), nullable=True),
        sa.Column("refused_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel_id", "product_id", name="uq_channel_products"),
    )
    op.create_index("ix_channel_products_refused", "channel_products", ["channel_id", "refused_at"])


def downgrade() -> None:
    op.drop_table("channel_products")
    op.drop_index("ix_push_runs_status", table_name="push_runs")
    op.drop_index("ix_push_runs_channel", table_name="push_runs")
    op.drop_table("push_runs")
    with op.batch_alter_table("channels") as batch:
        for name in ("last_push_run_id", "paused", "push_wanted_at", "next_push_at", "push_cursor"):
            batch.drop_column(name)
