"""Raw hashes: skip mapping records whose ERP rows have not changed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JsonType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("sync_pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw_hashes", JsonType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_pages", schema=None) as batch_op:
        batch_op.drop_column("raw_hashes")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("raw_hash")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("raw_hash")
