"""Stored records' documents as json text, not JSONB (PostgreSQL)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 08:00:00

``products.data`` and ``customers.data`` are written whole and read whole:
nothing queries inside them or compares them in SQL (the ``hash`` and
``raw_hash`` columns say what changed). As ``json`` PostgreSQL checks the
text and keeps it, instead of parsing it into JSONB's binary form on every
write (about half its CPU in COPYing a page of products) and printing it back
on every read. The rewrite takes each table's lock for as long as it runs
(about a second per 100,000 products). SQLite stores JSON as text already:
nothing to do there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("products", "customers")


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN data TYPE {to} USING data::{to}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
