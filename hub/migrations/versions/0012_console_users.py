"""The operations console's users and its sign-in rate limit

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:00:00

- ``console_users``: username (unique), an argon2 password hash, and the
  client the user belongs to (null: an operator, who sees every client);
  removed with its client; when the user last signed out (a session signed
  in before that is over).
- ``console_login_failures``: failed sign-ins by key (``user:<name>``,
  ``ip:<address>``) and time, for the per-minute limit; rows older than the
  window are deleted as new ones are written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("client_id", _ID, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("password_changed_at", _WHEN, nullable=False),
        sa.Column("signed_out_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "console_login_failures",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_login_failures_key_at", "console_login_failures", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_console_login_failures_key_at", table_name="console_login_failures")
    op.drop_table("console_login_failures")
    op.drop_table("console_users")
