"""Batch upserts that write only what changed.

A page of canonical records arrives with each record's stable hash. One
SELECT fetches the stored hashes of the page's keys; records whose hash is
unchanged are not written at all, so an unchanged catalogue costs one read
per page. New records are inserted and changed ones updated in bulk, with
their variants replaced, inside the caller's transaction. Each row written
carries a change number for the change feed (``hub.catalogue.take_numbers``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.catalogue import take_numbers
from hub.models import Customer, Product, utcnow
from hub.schemas import canonical_hash, stored_json
from hub.schemas.scalars import storable
from hub.writers import PgWriter, PortableWriter, as_sqlalchemy_errors, chunks

Action = Literal["active", "delete", "ignore"]


@dataclass(frozen=True)
class StoreItem:
    """One canonical record and what the ERP's tri-state flag asks for it.

    ``raw_hash`` is the hash of the ERP rows the record was mapped from
    (``workers.pipeline.raw_hasher``), kept with the record so the next fetch
    can skip mapping it when the rows are the same; None when unknown.
    ``json`` is ``data`` as the store keeps it (``hub.schemas.stored_json``),
    when the mapping made it already; otherwise the store makes it.
    """

    key: str
    action: Action
    data: dict[str, Any] | None = None
    hash: str | None = None
    raw_hash: str | None = None
    json: str | None = None

    def document(self) -> str:
        """``data`` as the store writes it."""
        return self.json if self.json is not None else stored_json(self.data or {})


@dataclass
class Counts:
    """What a page's write did with each record, each counted once.

    ``created``: new to the hub. ``updated``: stored, content changed (or
    listed active again after a delete). ``unchanged``: stored, nothing to
    write: the same content, or a Delete / inactive row for a record the hub
    already holds deleted (the fetch counts records whose raw rows hash as
    before unchanged too, unmapped: ``workers.pages``). ``deleted``: a
    Delete / inactive row for a record the hub held active, soft-deleted.
    ``skipped``: a Delete / inactive row for a record the hub never stored,
    nothing to remove (apart from ``unchanged`` so that withdrawn items do
    not look held). ``ignored``: flagged Ignore; whatever the hub holds of
    it, if anything, is left alone. Rejected records are the run's
    ``quarantined``, not counted here.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    ignored: int = 0
    written_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        """The counts, for the run's counters (``hub.runs.add_counts``) and logs."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "written_keys"}


class Stored(NamedTuple):
    """What the change detection needs of a stored record."""

    id: int
    hash: str
    deleted_at: datetime | None
    raw_hash: str | None


@dataclass(frozen=True)
class Plan:
    """A page split into what to write: see ``_plan``."""

    inserts: list[StoreItem]
    updates: list[tuple[int, StoreItem]]
    deletes: list[tuple[int, str | None]]
    # Records unchanged but mapped from rows with another raw hash (or none
    # was known): only their raw hash is written, so the next fetch skips them.
    raw_only: list[tuple[int, str]]
    # The change numbers of the inserts, updates and deletes (``_numbered``).
    seqs: tuple[range, range, range] = (range(0), range(0), range(0))

    def deleted(self) -> list[tuple[int, str | None, int]]:
        return [(rid, rh, n) for (rid, rh), n in zip(self.deletes, self.seqs[2], strict=True)]


def _numbered(session: Session, client_id: int, stream: str, plan: Plan) -> Plan:
    """The plan with change numbers drawn for its writes (one statement)."""
    sizes = (len(plan.inserts), len(plan.updates), len(plan.deletes))
    return replace(plan, seqs=take_numbers(session, client_id, stream, sizes))


_KEYS = {"products": "source_product_code", "customers": "source_customer_code"}
_MODELS: dict[str, type[Product] | type[Customer]] = {"products": Product, "customers": Customer}


def _pg(session: Session) -> Any | None:
    """The psycopg connection under the session's transaction, on PostgreSQL
    with psycopg; None elsewhere (SQLite, other drivers), where the portable
    SQLAlchemy statements are used instead."""
    conn = session.connection()
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        return conn.connection.driver_connection
    return None


def _keys_json(keys: Sequence[str]) -> str:
    """A page's keys as one JSON array, the lookups' parameter: the driver
    sends it as it is, where a list went through its array dumper, item by
    item in Python (about 6% of an unchanged resync's sequential path)."""
    return json.dumps(list(keys))


def _lookup_sql(table: str, key: str, columns: str) -> str:
    """Stored rows of a page's keys (a JSON array: ``_keys_json``), one
    index probe per key.

    Written as a LATERAL subquery with OFFSET 0 so that the planner cannot
    flatten it into a join: on tables without statistics (autovacuum off, or
    a table that just grew) it would otherwise scan every row of the source
    for each page, where a probe of the unique index per key is what this
    lookup always wants.
    """
    return (
        f"SELECT k.code, {columns} FROM json_array_elements_text(%s::json) AS k(code) "
        f"CROSS JOIN LATERAL (SELECT {columns} FROM {table} "
        f"WHERE source_id = %s AND {key} = k.code OFFSET 0) AS t"
    )


def _range_sql(table: str, key: str) -> str:
    """Stored raw hashes of every record between a page's least and greatest
    key, in the database's own collation (so the range holds each of the
    page's keys whatever order the ERP pages in), at most %s of them: one
    walk along the unique index instead of a probe per key."""
    return (
        f"SELECT t.{key}, t.raw_hash FROM (SELECT min(c) AS lo, max(c) AS hi "
        "FROM json_array_elements_text(%s::json) AS c) AS b CROSS JOIN LATERAL "
        f"(SELECT {key}, raw_hash FROM {table} WHERE source_id = %s "
        f"AND {key} >= b.lo AND {key} <= b.hi LIMIT %s) AS t"
    )


# A page's range may hold at most this many stored records per key on the
# page before the lookup probes key by key instead.
RANGE_SLACK = 2
# After a range too sparse for its page (an ERP that pages in an order of
# its own), this many lookups of the same source and stream probe directly.
RANGE_PAUSE = 16
_range_paused: dict[tuple[str, int], int] = {}


def _by_range(pg: Any, stream: str, source_id: int, keys: list[str]) -> dict[str, str] | None:
    """``stored_raw_hashes`` by one index range, or None when the page's
    range holds too many other records for that to pay (then paused for the
    next ``RANGE_PAUSE`` lookups of the source's stream).

    A resync reads an ERP in its key order, so a page's keys are mostly
    neighbours in the hub's index as well: walking the range cost about
    3 ms a 2,000-key page against 6 ms for the probes, on the run's one
    sequential path.
    """
    memo = (stream, source_id)
    paused = _range_paused.get(memo, 0)
    if paused:
        _range_paused[memo] = paused - 1
        return None
    limit = RANGE_SLACK * len(keys) + 1
    sql = _range_sql(_MODELS[stream].__tablename__, _KEYS[stream])
    with as_sqlalchemy_errors(sql):
        rows = pg.execute(sql, (_keys_json(keys), source_id, limit)).fetchall()
    if len(rows) >= limit:
        _range_paused[memo] = RANGE_PAUSE
        return None
    wanted = set(keys)
    return {code: rh for code, rh in rows if rh is not None and code in wanted}


def stored_raw_hashes(
    session: Session, stream: str, source_id: int, keys: Sequence[str]
) -> dict[str, str]:
    """{key: raw hash} of the stored records among ``keys`` that have one.

    A key PostgreSQL cannot hold as text was never stored: it is left out of
    the lookup instead of failing it (and with it the whole page), and its
    record goes to the mapping, which quarantines it with the field and why.
    """
    if not keys:
        return {}
    model, key = _MODELS[stream], _KEYS[stream]
    pg = _pg(session)
    if pg is not None:
        page = [k for k in keys if storable(k)]
        if not page:
            return {}
        ranged = _by_range(pg, stream, source_id, page)
        if ranged is not None:
            return ranged
        sql = _lookup_sql(model.__tablename__, key, "raw_hash")
        with as_sqlalchemy_errors(sql):
            rows = pg.execute(sql, (_keys_json(page), source_id)).fetchall()
        return {code: rh for code, rh in rows if rh is not None}
    key_col = getattr(model, key)
    found: dict[str, str] = {}
    for chunk in chunks(list(keys)):
        for code, rh in session.execute(
            select(key_col, model.raw_hash).where(
                model.source_id == source_id, key_col.in_(chunk), model.raw_hash.is_not(None)
            )
        ):
            found[code] = rh
    return found


def _existing(
    session: Session,
    model: type[Product] | type[Customer],
    key_col: Any,
    source_id: int,
    keys: list[str],
) -> dict[str, Stored]:
    if not keys:
        return {}
    pg = _pg(session)
    if pg is not None:
        sql = _lookup_sql(model.__tablename__, key_col.key, "id, hash, deleted_at, raw_hash")
        with as_sqlalchemy_errors(sql):
            rows = pg.execute(sql, (_keys_json(keys), source_id)).fetchall()
        return {code: Stored(*rest) for code, *rest in rows}
    found: dict[str, Stored] = {}
    for chunk in chunks(keys):
        rows = session.execute(
            select(key_col, model.id, model.hash, model.deleted_at, model.raw_hash).where(
                model.source_id == source_id, key_col.in_(chunk)
            )
        )
        for key, *rest in rows:
            found[key] = Stored(*rest)
    return found


def _plan(items: Sequence[StoreItem], existing: dict[str, Stored], counts: Counts) -> Plan:
    """Split a page into inserts, updates, soft-deletes and raw-hash-only
    writes; count every record (see ``Counts`` for what each count means)."""
    plan = Plan([], [], [], [])
    seen: set[str] = set()
    for item in items:
        if item.action == "ignore":
            counts.ignored += 1
            continue
        if item.key in seen:
            # The mapping stage groups a page by key; a repeat here would be
            # a second write of the same row in one statement.
            raise ValueError(f"record {item.key!r} appears twice in one page")
        seen.add(item.key)
        current = existing.get(item.key)
        if item.action == "delete":
            if current is None:
                # No row to keep a raw hash on: the next fetch maps it
                # again and it is skipped again, never counted unchanged.
                counts.skipped += 1
            elif current.deleted_at is None:
                plan.deletes.append((current.id, item.raw_hash))
                counts.deleted += 1
            else:
                # Held deleted already; with its raw hash kept, the next
                # fetch counts it unchanged as well.
                counts.unchanged += 1
                _keep_raw_hash(plan, current, item)
            continue
        if current is None:
            plan.inserts.append(item)
            counts.created += 1
        elif current.hash == item.hash and current.deleted_at is None:
            counts.unchanged += 1
            _keep_raw_hash(plan, current, item)
        else:
            plan.updates.append((current.id, item))
            counts.updated += 1
    return plan


def _keep_raw_hash(plan: Plan, current: Stored | None, item: StoreItem) -> None:
    if current is not None and item.raw_hash is not None and current.raw_hash != item.raw_hash:
        plan.raw_only.append((current.id, item.raw_hash))


def _merge_variants(
    session: Session, source_id: int, items: Sequence[StoreItem]
) -> list[StoreItem]:
    """Each active item with the variants already stored for its product added.

    For ERPs whose incremental reads return only the changed variant lines
    (iSync): such an item holds a product's changed variants only, and
    replacing the stored variants with them would drop the unchanged ones. A
    variant in the item wins over the stored one with the same code; the
    hash is computed again over the merged product, so an unchanged variant
    line still writes nothing.
    """
    keys = [i.key for i in items if i.action == "active"]
    stored: dict[str, list[dict[str, Any]]] = {}
    for chunk in chunks(keys):
        for key, data in session.execute(
            select(Product.source_product_code, Product.data).where(
                Product.source_id == source_id,
                Product.source_product_code.in_(chunk),
                Product.deleted_at.is_(None),
            )
        ):
            stored[key] = list((data or {}).get("variants") or [])
    merged: list[StoreItem] = []
    for item in items:
        old = stored.get(item.key)
        if item.action != "active" or not old or item.data is None:
            merged.append(item)
            continue
        fresh = list(item.data.get("variants") or [])
        codes = {str(v.get("source_variant_code")) for v in fresh}
        variants = fresh + [v for v in old if str(v.get("source_variant_code")) not in codes]
        variants.sort(key=lambda v: str(v.get("source_variant_code")))
        data = {**item.data, "variants": variants}
        merged.append(StoreItem(item.key, item.action, data, canonical_hash(data)))
    return merged


def upsert_products(
    session: Session,
    *,
    client_id: int,
    source_id: int,
    run_id: int,
    items: Sequence[StoreItem],
    merge_variants: bool = False,
) -> Counts:
    """Write a page of products; ``merge_variants`` keeps stored variants the
    page does not mention (see ``_merge_variants``) instead of replacing them."""
    counts = Counts()
    if merge_variants:
        items = _merge_variants(session, source_id, items)
    keys = [i.key for i in items if i.action != "ignore"]
    existing = _existing(session, Product, Product.source_product_code, source_id, keys)
    plan = _numbered(session, client_id, "products", _plan(items, existing, counts))
    pg = _pg(session)
    writer = PgWriter(pg, "products") if pg is not None else PortableWriter(session, Product)
    now = utcnow()
    written = _write_products(writer, plan, client_id, source_id, run_id, now)
    if plan.deletes:
        writer.soft_delete(plan.deleted(), now, run_id)
    if plan.raw_only:
        writer.set_raw_hashes(plan.raw_only)
    variant_rows = _variant_rows(written, client_id, source_id)
    if variant_rows:
        writer.insert_variants(variant_rows)
    counts.written_keys = [it.key for _, it in written]
    return counts


def _write_products(
    writer: PgWriter | PortableWriter,
    plan: Plan,
    client_id: int,
    source_id: int,
    run_id: int,
    now: datetime,
) -> list[tuple[int, StoreItem]]:
    """Insert the new products and update the changed ones: (id, item) of each.

    An updated product's variant rows are deleted here, so that the caller
    writes every written product's variants afresh in one statement.
    """
    written: list[tuple[int, StoreItem]] = []
    if plan.inserts:
        ids = writer.insert(
            [
                {
                    "client_id": client_id,
                    "source_id": source_id,
                    "source_product_code": it.key,
                    "title": (it.data or {}).get("title") or "",
                    "active": True,
                    "hash": it.hash,
                    "raw_hash": it.raw_hash,
                    "data": it.document(),
                    "created_at": now,
                    "updated_at": now,
                    "last_run_id": run_id,
                    "change_seq": seq,
                }
                for it, seq in zip(plan.inserts, plan.seqs[0], strict=True)
            ]
        )
        written.extend(zip(ids, plan.inserts, strict=True))
    if plan.updates:
        writer.update(
            [
                {
                    "id": pid,
                    "title": (it.data or {}).get("title") or "",
                    "hash": it.hash,
                    "raw_hash": it.raw_hash,
                    "data": it.document(),
                    "change_seq": seq,
                }
                for (pid, it), seq in zip(plan.updates, plan.seqs[1], strict=True)
            ],
            now,
            run_id,
        )
        writer.delete_variants([pid for pid, _ in plan.updates])
        written.extend(plan.updates)
    return written


def _variant_rows(
    written: list[tuple[int, StoreItem]], client_id: int, source_id: int
) -> list[dict[str, Any]]:
    """The variants table's rows for the written products: what lookups by SKU read."""
    return [
        {
            "product_id": pid,
            "client_id": client_id,
            "source_id": source_id,
            "source_variant_code": str(v.get("source_variant_code")),
            "sku": str(v.get("sku")),
            "qty": v.get("qty"),
            "price": v.get("price"),
        }
        for pid, it in written
        for v in (it.data or {}).get("variants", [])
    ]


def upsert_customers(
    session: Session, *, client_id: int, source_id: int, run_id: int, items: Sequence[StoreItem]
) -> Counts:
    counts = Counts()
    keys = [i.key for i in items if i.action != "ignore"]
    existing = _existing(session, Customer, Customer.source_customer_code, source_id, keys)
    plan = _numbered(session, client_id, "customers", _plan(items, existing, counts))
    pg = _pg(session)
    writer = PgWriter(pg, "customers") if pg is not None else PortableWriter(session, Customer)
    now = utcnow()
    if plan.inserts:
        writer.insert(
            [
                {
                    "client_id": client_id,
                    "source_id": source_id,
                    "source_customer_code": it.key,
                    "active": True,
                    "hash": it.hash,
                    "raw_hash": it.raw_hash,
                    "data": it.document(),
                    "created_at": now,
                    "updated_at": now,
                    "last_run_id": run_id,
                    "change_seq": seq,
                }
                for it, seq in zip(plan.inserts, plan.seqs[0], strict=True)
            ]
        )
    if plan.updates:
        writer.update(
            [
                {
                    "id": cid,
                    "hash": it.hash,
                    "raw_hash": it.raw_hash,
                    "data": it.document(),
                    "change_seq": seq,
                }
                for (cid, it), seq in zip(plan.updates, plan.seqs[1], strict=True)
            ],
            now,
            run_id,
        )
    if plan.deletes:
        writer.soft_delete(plan.deleted(), now, run_id)
    if plan.raw_only:
        writer.set_raw_hashes(plan.raw_only)
    counts.written_keys = [it.key for it in plan.inserts] + [it.key for _, it in plan.updates]
    return counts


UPSERTS = {"products": upsert_products, "customers": upsert_customers}
