"""The store's writes, portable or PostgreSQL-fast: the same five each way.

``hub.store`` decides what a page writes (inserts, updates, soft deletes,
raw hashes, variants); a writer says it to the database. Rows arrive as
dicts whose ``data`` is the record's JSON text as the store keeps it
(``hub.schemas.stored_json``, usually made by the mapping already), so that
neither writer encodes a record again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hub.models import Customer, Product, Variant

# Large IN lists are split so that SQLite's bound-parameter limit and
# PostgreSQL's planner both stay comfortable.
CHUNK = 2000


def chunks(seq: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


@contextlib.contextmanager
def as_sqlalchemy_errors(statement: str) -> Iterator[None]:
    """Raise psycopg's errors as SQLAlchemy's, as the session would have, so
    callers catch one family (a dropped connection is an OperationalError)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


class PortableWriter:
    """SQLAlchemy Core statements: every backend (SQLite for the embedded hub)."""

    def __init__(self, session: Session, model: type[Product] | type[Customer]) -> None:
        self.session = session
        self.model = model
        self.table = model.__table__

    def insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert records; their ids in the order given."""
        result = self.session.execute(
            insert(self.table).returning(self.table.c.id, sort_by_parameter_order=True),
            [{**row, "data": json.loads(row["data"])} for row in rows],
        )
        return [r[0] for r in result]

    def update(self, rows: list[dict[str, Any]], now: datetime, run_id: int) -> None:
        values: dict[str, Any] = {
            "active": True,
            "hash": bindparam("b_hash"),
            "raw_hash": bindparam("b_raw_hash"),
            "data": bindparam("b_data", type_=self.table.c.data.type),
            "updated_at": now,
            "deleted_at": None,
            "last_run_id": run_id,
            "change_seq": bindparam("b_change_seq"),
        }
        if "title" in self.table.c:
            values["title"] = bindparam("b_title")
        self.session.execute(
            update(self.table).where(self.table.c.id == bindparam("b_id")).values(**values),
            [
                {f"b_{k}": json.loads(v) if k == "data" else v for k, v in row.items()}
                for row in rows
            ],
        )

    def delete_variants(self, product_ids: list[int]) -> None:
        for chunk in chunks(product_ids):
            self.session.execute(delete(Variant).where(Variant.product_id.in_(chunk)))

    def soft_delete(
        self, rows: list[tuple[int, str | None, int]], now: datetime, run_id: int
    ) -> None:
        self.session.execute(
            update(self.table)
            .where(self.table.c.id == bindparam("b_id"))
            .values(
                active=False,
                deleted_at=now,
                updated_at=now,
                last_run_id=run_id,
                raw_hash=bindparam("b_raw_hash"),
                change_seq=bindparam("b_change_seq"),
            ),
            [{"b_id": rid, "b_raw_hash": rh, "b_change_seq": seq} for rid, rh, seq in rows],
        )

    def set_raw_hashes(self, rows: list[tuple[int, str]]) -> None:
        self.session.execute(
            update(self.table)
            .where(self.table.c.id == bindparam("b_id"))
            .values(raw_hash=bindparam("b_raw_hash")),
            [{"b_id": rid, "b_raw_hash": rh} for rid, rh in rows],
        )

    def insert_variants(self, rows: list[dict[str, Any]]) -> None:
        self.session.execute(insert(Variant), rows)


# COPY's text format: a backslash, tab, newline or carriage return inside a
# value is written as an escape; nothing else needs one.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str | None) -> str:
    """A text value as COPY's text format reads it (None: NULL)."""
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_ESCAPES)
    return value


def _doc(value: str) -> str:
    """JSON text for COPY: JSON escapes every control character itself, so
    only its backslashes need doubling."""
    return value.replace("\\", "\\\\") if "\\" in value else value


def _number(value: Any) -> str:
    """An int or float column's value (None: NULL), as ``str`` spells it."""
    return "\\N" if value is None else str(value)


class PgWriter:
    """The same writes through psycopg on the session's own connection and
    transaction: new rows by COPY (ids drawn from the table's sequence first),
    changes as prepared single-row statements sent in one pipeline.

    Why not the ORM or SQLAlchemy's multi-row INSERT: for a page of records
    with JSON documents they cost more than the mapping itself (a new
    statement text per batch size, parsed anew each time, plus RETURNING);
    COPY is the fastest way into PostgreSQL, and prepared statements probe
    the primary key whatever the planner's statistics say. The COPY text is
    made here, a line per row, and sent in one piece: psycopg's per-row
    ``write_row`` adapts each value through its dumpers, several times the
    cost for columns whose types are known here (ints, hex hashes, text and
    the records' JSON, already text).
    """

    def __init__(self, pg: Any, table: str) -> None:
        self.pg = pg
        self.table = table

    def _ids(self, count: int) -> list[int]:
        """Ids for new rows, drawn from the table's own sequence (as a default would)."""
        rows = self.pg.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (self.table, count),
        ).fetchall()
        return [r[0] for r in rows]

    def _copy(self, table: str, columns: str, lines: list[str]) -> None:
        sql = f"COPY {table} ({columns}) FROM STDIN"
        with as_sqlalchemy_errors(sql), self.pg.cursor() as cur, cur.copy(sql) as copy:
            copy.write("".join(lines))

    def _many(self, sql: str, params: list[tuple[Any, ...]]) -> None:
        with as_sqlalchemy_errors(sql), self.pg.cursor() as cur:
            cur.executemany(sql, params)

    def insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert records (every row with the same keys); their new ids in order."""
        ids = self._ids(len(rows))
        titled = "title" in rows[0]
        first = rows[0]
        code = "source_product_code" if "source_product_code" in first else "source_customer_code"
        # What every row of one page shares: the client, source, run and time.
        fixed = (first["client_id"], first["source_id"], first["last_run_id"])
        if any((r["client_id"], r["source_id"], r["last_run_id"]) != fixed for r in rows):
            raise ValueError("one insert writes one client's, source's and run's rows")
        client, source, run = fixed
        now = first["created_at"].isoformat()
        head = f"{client}\t{source}\t"
        tail = f"\t{now}\t{now}\t{run}\t"
        lines = [
            f"{i}\t{head}{_text(r[code])}\t"
            + (f"{_text(r['title'])}\t" if titled else "")
            + f"t\t{r['hash']}\t{_text(r['raw_hash'])}\t{_doc(r['data'])}{tail}"
            f"{_number(r['change_seq'])}\n"
            for i, r in zip(ids, rows, strict=True)
        ]
        columns = (
            f"id, client_id, source_id, {code}, "
            + ("title, " if titled else "")
            + "active, hash, raw_hash, data, created_at, updated_at, last_run_id, change_seq"
        )
        self._copy(self.table, columns, lines)
        return ids

    def update(self, rows: list[dict[str, Any]], now: datetime, run_id: int) -> None:
        title = "title = %s, " if "title" in rows[0] else ""
        sql = (
            f"UPDATE {self.table} SET {title}active = true, hash = %s, raw_hash = %s, "
            "data = %s::json, updated_at = %s, deleted_at = NULL, last_run_id = %s, "
            "change_seq = %s WHERE id = %s"
        )
        self._many(
            sql,
            [
                (
                    *((row["title"],) if title else ()),
                    row["hash"],
                    row["raw_hash"],
                    row["data"],
                    now,
                    run_id,
                    row["change_seq"],
                    row["id"],
                )
                for row in rows
            ],
        )

    def delete_variants(self, product_ids: list[int]) -> None:
        self._many("DELETE FROM variants WHERE product_id = %s", [(i,) for i in product_ids])

    def soft_delete(
        self, rows: list[tuple[int, str | None, int]], now: datetime, run_id: int
    ) -> None:
        self._many(
            f"UPDATE {self.table} SET active = false, deleted_at = %s, updated_at = %s, "
            "last_run_id = %s, raw_hash = %s, change_seq = %s WHERE id = %s",
            [(now, now, run_id, rh, seq, rid) for rid, rh, seq in rows],
        )

    def set_raw_hashes(self, rows: list[tuple[int, str]]) -> None:
        self._many(
            f"UPDATE {self.table} SET raw_hash = %s WHERE id = %s", [(rh, rid) for rid, rh in rows]
        )

    def insert_variants(self, rows: list[dict[str, Any]]) -> None:
        lines = [
            f"{r['product_id']}\t{r['client_id']}\t{r['source_id']}\t"
            f"{_text(r['source_variant_code'])}\t{_text(r['sku'])}\t"
            f"{_number(r['qty'])}\t{_number(r['price'])}\n"
            for r in rows
        ]
        columns = "product_id, client_id, source_id, source_variant_code, sku, qty, price"
        self._copy("variants", columns, lines)
