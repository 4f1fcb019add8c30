"""Batch upserts that write only what changed.

A page of canonical records arrives with each record's stable hash. One
SELECT fetches the stored hashes of the page's keys; records whose hash is
unchanged are not written at all, so an unchanged catalogue costs one read
per page. New records are inserted and changed ones updated in bulk, with
their variants replaced, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from hub.models import Customer, Product, Variant, utcnow

Action = Literal["active", "delete", "ignore"]

# Large IN lists are split so that SQLite's bound-parameter limit and
# PostgreSQL's planner both stay comfortable.
_CHUNK = 2000


@dataclass(frozen=True)
class StoreItem:
    """One canonical record and what the ERP's tri-state flag asks for it."""

    key: str
    action: Action
    data: dict[str, Any] | None = None
    hash: str | None = None


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    ignored: int = 0
    written_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "ignored": self.ignored,
        }


def _chunks(seq: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _existing(
    session: Session,
    model: type[Product] | type[Customer],
    key_col: Any,
    source_id: int,
    keys: list[str],
) -> dict[str, tuple[int, str, datetime | None]]:
    found: dict[str, tuple[int, str, datetime | None]] = {}
    for chunk in _chunks(keys):
        rows = session.execute(
            select(key_col, model.id, model.hash, model.deleted_at).where(
                model.source_id == source_id, key_col.in_(chunk)
            )
        )
        for key, id_, hash_, deleted_at in rows:
            found[key] = (id_, hash_, deleted_at)
    return found


def _plan(
    items: Sequence[StoreItem],
    existing: dict[str, tuple[int, str, datetime | None]],
    counts: Counts,
) -> tuple[list[StoreItem], list[tuple[int, StoreItem]], list[int]]:
    """Split a page into inserts, updates and soft-deletes; count the rest."""
    inserts: list[StoreItem] = []
    updates: list[tuple[int, StoreItem]] = []
    deletes: list[int] = []
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
            if current is not None and current[2] is None:
                deletes.append(current[0])
                counts.deleted += 1
            else:
                counts.unchanged += 1
            continue
        if current is None:
            inserts.append(item)
            counts.created += 1
        elif current[1] == item.hash and current[2] is None:
            counts.unchanged += 1
        else:
            updates.append((current[0], item))
            counts.updated += 1
    return inserts, updates, deletes


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
    from hub.schemas import canonical_hash

    keys = [i.key for i in items if i.action == "active"]
    stored: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks(keys):
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
    inserts, updates, deletes = _plan(items, existing, counts)
    now = utcnow()

    written: list[tuple[int, StoreItem]] = []
    if inserts:
        rows = [
            {
                "client_id": client_id,
                "source_id": source_id,
                "source_product_code": it.key,
                "title": (it.data or {}).get("title") or "",
                "active": True,
                "hash": it.hash,
                "data": it.data,
                "created_at": now,
                "updated_at": now,
                "last_run_id": run_id,
            }
            for it in inserts
        ]
        result = session.execute(
            insert(Product).returning(
                Product.id, Product.source_product_code, sort_by_parameter_order=True
            ),
            rows,
        )
        ids = [r[0] for r in result]
        written.extend(zip(ids, inserts, strict=True))
    if updates:
        session.execute(
            update(Product.__table__)
            .where(Product.__table__.c.id == bindparam("b_id"))
            .values(
                title=bindparam("b_title"),
                active=True,
                hash=bindparam("b_hash"),
                data=bindparam("b_data", type_=Product.__table__.c.data.type),
                updated_at=now,
                deleted_at=None,
                last_run_id=run_id,
            ),
            [
                {
                    "b_id": pid,
                    "b_title": (it.data or {}).get("title") or "",
                    "b_hash": it.hash,
                    "b_data": it.data,
                }
                for pid, it in updates
            ],
        )
        for chunk in _chunks([pid for pid, _ in updates]):
            session.execute(delete(Variant).where(Variant.product_id.in_(chunk)))
        written.extend(updates)
    if deletes:
        for chunk in _chunks(deletes):
            session.execute(
                update(Product)
                .where(Product.id.in_(chunk))
                .values(active=False, deleted_at=now, updated_at=now, last_run_id=run_id)
            )
    variant_rows = [
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
    if variant_rows:
        session.execute(insert(Variant), variant_rows)
    counts.written_keys = [it.key for _, it in written]
    return counts


def upsert_customers(
    session: Session, *, client_id: int, source_id: int, run_id: int, items: Sequence[StoreItem]
) -> Counts:
    counts = Counts()
    keys = [i.key for i in items if i.action != "ignore"]
    existing = _existing(session, Customer, Customer.source_customer_code, source_id, keys)
    inserts, updates, deletes = _plan(items, existing, counts)
    now = utcnow()
    if inserts:
        session.execute(
            insert(Customer),
            [
                {
                    "client_id": client_id,
                    "source_id": source_id,
                    "source_customer_code": it.key,
                    "active": True,
                    "hash": it.hash,
                    "data": it.data,
                    "created_at": now,
                    "updated_at": now,
                    "last_run_id": run_id,
                }
                for it in inserts
            ],
        )
    if updates:
        session.execute(
            update(Customer.__table__)
            .where(Customer.__table__.c.id == bindparam("b_id"))
            .values(
                active=True,
                hash=bindparam("b_hash"),
                data=bindparam("b_data", type_=Customer.__table__.c.data.type),
                updated_at=now,
                deleted_at=None,
                last_run_id=run_id,
            ),
            [{"b_id": cid, "b_hash": it.hash, "b_data": it.data} for cid, it in updates],
        )
    if deletes:
        for chunk in _chunks(deletes):
            session.execute(
                update(Customer)
                .where(Customer.id.in_(chunk))
                .values(active=False, deleted_at=now, updated_at=now, last_run_id=run_id)
            )
    counts.written_keys = [it.key for it in inserts] + [it.key for _, it in updates]
    return counts


UPSERTS = {"products": upsert_products, "customers": upsert_customers}
