"""A batch of staged orders on PostgreSQL: each table's rows as one JSON array.

SQLAlchemy inserts a batch of headers with RETURNING as one multi-row
INSERT of fifteen parameters a row, and psycopg parses such a statement
anew every time (it keeps the parse only of statements of up to 50
parameters): under a flood of orders that parse was about a tenth of the
worker's CPU. The lines went as a pipelined executemany, a Bind and an
Execute built in Python for every row. Here each table gets one INSERT of
one parameter, a JSON array that ``json_populate_recordset`` turns into
rows of the staging table's own row type, so every value is read by the
column's input function as a literal would be: the ERP's real column types
apply (an over-long code is refused, an amount is rounded to the column's
scale) whatever the hub declares for them.

Only rows that all carry the same fields go this way (the fields left out
keep the table's defaults, as with the multi-row INSERT); anything else is
the caller's portable path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Table, text
from sqlalchemy.engine import Connection


def takes(conn: Connection, *tables_rows: Sequence[dict[str, Any]]) -> bool:
    """Whether this connection and these rows can go as JSON arrays."""
    if conn.dialect.name != "postgresql":
        return False
    return all(rows and all(row.keys() == rows[0].keys() for row in rows) for rows in tables_rows)


def _plain(value: Any) -> Any:
    """A value ``_coerce`` made, as the JSON text PostgreSQL's input reads back."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


def insert(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: Column[Any] | None
) -> list[Any]:
    """Insert ``rows`` (``takes`` said yes) in one statement; ``returning``'s
    values in the rows' order, or [] without it.

    Rows are inserted in their order (``WITH ORDINALITY ... ORDER BY``), so
    a serial key rises with it and sorting the keys gives the rows' order:
    the assumption SQLAlchemy's own sorted RETURNING makes on PostgreSQL.
    """
    quote = conn.dialect.identifier_preparer.quote
    target = conn.dialect.identifier_preparer.format_table(table)
    names = ", ".join(quote(name) for name in rows[0])
    picked = ", ".join(f"r.{quote(name)}" for name in rows[0])
    statement = (
        f"INSERT INTO {target} ({names}) SELECT {picked} "
        f"FROM json_populate_recordset(NULL::{target}, CAST(:rows AS json)) "
        "WITH ORDINALITY AS r ORDER BY r.ordinality"
    )
    if returning is not None:
        statement += f" RETURNING {quote(returning.name)}"
    result = conn.execute(text(statement), {"rows": json.dumps(rows, default=_plain)})
    if returning is None:
        return []
    keys = sorted(result.scalars().all())
    if len(keys) != len(rows):
        raise RuntimeError(f"the staging insert returned {len(keys)} keys for {len(rows)} rows")
    return keys
