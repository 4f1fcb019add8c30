"""Retention of run history: indexes for pruning, totals that survive it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 15:00:00

- ``ix_sync_runs_ended`` on (coalesce(finished_at, created_at), id): the
  prune walks old runs in that order (``hub.retention``).
- ``ix_quarantine_record`` on (source_id, stream, record_key, run_id):
  whether a later run quarantined the same record again.
- ``sync_run_totals`` and ``sync_history_fold``: what folded runs counted,
  so ``/metrics`` counters neither go down when runs are pruned nor recount
  the whole history at every scrape.

The reads of ``s2s status``, the sweeper and the dispatcher's active lock
keys were already served by ``ix_sync_runs_source_stream``,
``ix_sync_runs_status`` and the unique ``lock_key`` (measured with 200,000
runs: see the README's Retention section).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ("fetched", "created", "updated", "unchanged", "deleted", "ignored", "quarantined")


def upgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_runs_ended", [sa.text("coalesce(finished_at, created_at)"), "id"], unique=False
        )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quarantine_record", ["source_id", "stream", "record_key", "run_id"], unique=False
        )
    op.create_table(
        "sync_run_totals",
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in OUTCOMES),
        sa.PrimaryKeyConstraint("stream", "status"),
    )
    fold = op.create_table(
        "sync_history_fold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("through_run_id", sa.BigInteger(), nullable=False),
        sa.Column("folded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(fold, [{"id": 1, "through_run_id": 0, "folded_at": None}])


def downgrade() -> None:
    op.drop_table("sync_history_fold")
    op.drop_table("sync_run_totals")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_record")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_ended")
