"""A run knows whether its source held any record of its stream when it began

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 06:00:00

``sync_runs.fresh``: set when the run is created, true when the source had
no stored record of the stream (a client's first sync). Such a run's fetch
cannot find a record unchanged, so it stores full pages unhashed and the
map tasks, which run beside it, hash them (``workers.pages._store_page``):
hashing and the stored-hash lookup leave the run's one sequential path.
Runs from before this revision read as not fresh, which is what they did.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not batch mode: on SQLite batch mode rebuilds the
    # table from its reflection, which leaves out the expression index
    # ix_sync_runs_ended (0007).
    op.add_column(
        "sync_runs", sa.Column("fresh", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_column("fresh")
    if op.get_bind().dialect.name == "sqlite":
        # Rebuilt without it (see upgrade): made again as 0007 made it.
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_sync_runs_ended "
            "ON sync_runs (coalesce(finished_at, created_at), id)"
        )
