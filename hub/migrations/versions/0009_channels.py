"""Channels as records: one row per client and sales channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 19:00:00

- ``channels`` (client_id, code unique per client, kind, plain ``settings``
  JSON, encrypted ``secrets``, created/updated).

Every client's ``channel_settings`` / ``channel_secrets`` are moved into rows
(kind = code = the JSON key); the client's single secrets token is split into
one token per channel, so the hub's key (S2S_SECRET_KEY) must be set when a
hub holding channel secrets is upgraded. The client columns are left in place
for now (still written alongside the rows until every reader has moved to the
records); a later migration drops them.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from hub import crypto

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("settings", _JSON, nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "code", name="uq_channels_client_code"),
    )
    _move_client_channels()


def _move_client_channels() -> None:
    """One row per key of each client's channel JSON, its secret re-encrypted alone."""
    bind = op.get_bind()
    clients = sa.table(
        "clients",
        sa.column("id", _ID),
        sa.column("channel_settings", _JSON),
        sa.column("channel_secrets", sa.Text()),
    )
    channels = sa.table(
        "channels",
        sa.column("client_id", _ID),
        sa.column("code", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("settings", _JSON),
        sa.column("secrets", sa.Text()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for client_id, settings, token in bind.execute(
        sa.select(clients.c.id, clients.c.channel_settings, clients.c.channel_secrets)
    ):
        secrets = crypto.decrypt(token) if token else {}
        for name in sorted(set(settings or {}) | set(secrets)):
            secret = secrets.get(name)
            rows.append(
                {
                    "client_id": client_id,
                    "code": name,
                    "kind": name,
                    "settings": dict((settings or {}).get(name) or {}),
                    "secrets": crypto.encrypt({"secret": secret}) if secret else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        bind.execute(channels.insert(), rows)


def downgrade() -> None:
    op.drop_table("channels")
