"""Change feed: a per-client change number on products and customers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 18:30:00

- ``change_seq`` on ``products`` and ``customers``: the client's change
  number of the row's last write, in commit order (``hub.catalogue``), with
  an index on (client_id, change_seq) for the feed's keyset pages.
- ``change_counters`` (client_id, stream, value): the last number given.

Existing rows are numbered here, per client in id order, and the counters
start after them, so the feed read from the start holds every row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STREAMS = ("products", "customers")


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column(
            "client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("client_id", "stream"),
    )
    for table in STREAMS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("change_seq", sa.BigInteger(), nullable=True))
        op.execute(
            f"UPDATE {table} SET change_seq = n.rn FROM ("
            f"SELECT id, row_number() OVER (PARTITION BY client_id ORDER BY id) AS rn "
            f"FROM {table}) AS n WHERE {table}.id = n.id"
        )
        op.execute(
            f"INSERT INTO change_counters (client_id, stream, value) "
            f"SELECT client_id, '{table}', max(change_seq) FROM {table} GROUP BY client_id"
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_change", ["client_id", "change_seq"], unique=False)


def downgrade() -> None:
    for table in STREAMS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_change")
            batch_op.drop_column("change_seq")
    op.drop_table("change_counters")
