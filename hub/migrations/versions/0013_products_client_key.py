"""Products and customers: no foreign key or index of their own on client_id

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 05:00:00

Why: a full sync writes every product row by COPY, and PostgreSQL checks
each foreign key of each row with a trigger that looks the parent up and
locks it; the sync's write benchmark spent about 0.5 s of 6 per 100,000
products on the client check alone. That check says nothing the source's
does not: a product's ``source_id`` references its source (ON DELETE
CASCADE) and the source references its client (ON DELETE CASCADE), so a
client's removal still removes its products and customers, through their
sources. ``client_id`` stays, denormalised, for the lookups by client.

``ix_products_client`` / ``ix_customers_client`` (client_id) go too: the
change-feed indexes (client_id, change_seq) begin with the same column and
serve every lookup by client, and each index is one more write per row.

The foreign keys are dropped on PostgreSQL only: SQLite's unnamed ones
cannot be dropped without rebuilding the tables, and the embedded hub's
writes are not the ones this is about.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("products", "customers")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_client_id_fkey")
    for table in _TABLES:
        op.drop_index(f"ix_{table}_client", table_name=table)


def downgrade() -> None:
    for table in _TABLES:
        op.create_index(f"ix_{table}_client", table, ["client_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {table}_client_id_fkey FOREIGN KEY "
                "(client_id) REFERENCES clients (id) ON DELETE CASCADE"
            )
