"""A run's ``skipped`` count: Delete / inactive rows for records the hub never stored

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00

- ``sync_runs.skipped``: such rows used to be counted ``unchanged``, which
  made a catalogue with many withdrawn items look as if the hub held them.
- ``sync_run_totals.skipped``: the same count in the totals that retention
  folds old runs into (``/metrics``).

Both default to 0: runs and totals from before this revision counted these
rows as ``unchanged``, and nothing recorded which were which.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("sync_run_totals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skipped", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_run_totals", schema=None) as batch_op:
        batch_op.drop_column("skipped")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_column("skipped")
