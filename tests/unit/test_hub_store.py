"""The batch upsert writes only what changed, and tri-state flags behave."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hub.db import session_scope
from hub.models import Product, Variant
from hub.store import StoreItem, upsert_products


def product(code: str, price: float = 10.0, skus: tuple[str, ...] | None = None) -> dict:
    return {
        "source_product_code": code,
        "title": f"Product {code}",
        "variants": [
            {"source_variant_code": s, "sku": s, "qty": 1, "price": price}
            for s in (skus or (code,))
        ],
    }


def item(code: str, action: str = "active", **kw) -> StoreItem:
    data = product(code, **kw)
    return StoreItem(code, action, data, f"h-{code}-{kw}")  # type: ignore[arg-type]


def run(url: str, items: list[StoreItem], run_id: int = 1):
    with session_scope(url) as s:
        return upsert_products(s, client_id=1, source_id=1, run_id=run_id, items=items)


def test_created_then_unchanged_writes_nothing(db: str) -> None:
    first = run(db, [item("A"), item("B", skus=("B-1", "B-2"))])
    assert first.as_dict() == {
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "skipped": 0,
        "ignored": 0,
    }
    second = run(db, [item("A"), item("B", skus=("B-1", "B-2"))], run_id=2)
    assert second.created == second.updated == 0 and second.unchanged == 2
    with session_scope(db) as s:
        assert set(s.scalars(select(Product.last_run_id))) == {1}
        assert s.scalar(select(func.count()).select_from(Variant)) == 3


def test_changed_hash_updates_and_replaces_variants(db: str) -> None:
    run(db, [item("B", skus=("B-1", "B-2"))])
    counts = run(db, [item("B", skus=("B-1",), price=12.0)], run_id=2)
    assert counts.updated == 1
    with session_scope(db) as s:
        assert [v.sku for v in s.scalars(select(Variant))] == ["B-1"]
        assert s.scalar(select(Variant.price)) == 12.0


def test_merging_variants_keeps_the_ones_the_page_does_not_mention(db: str) -> None:
    from hub.schemas import canonical_hash

    def hashed(code: str, skus: tuple[str, ...], price: float) -> StoreItem:
        data = product(code, price=price, skus=skus)
        return StoreItem(code, "active", data, canonical_hash(data))

    with session_scope(db) as s:
        upsert_products(
            s, client_id=1, source_id=1, run_id=1, items=[hashed("B", ("B-1", "B-2", "B-3"), 10)]
        )
    # An incremental read brought only B-2, at a new price.
    with session_scope(db) as s:
        counts = upsert_products(
            s,
            client_id=1,
            source_id=1,
            run_id=2,
            items=[hashed("B", ("B-2",), 12)],
            merge_variants=True,
        )
    assert counts.updated == 1
    with session_scope(db) as s:
        prices = {v.sku: v.price for v in s.scalars(select(Variant))}
        stored = s.scalar(select(Product.data))
    assert prices == {"B-1": 10.0, "B-2": 12.0, "B-3": 10.0}
    assert [v["sku"] for v in stored["variants"]] == ["B-1", "B-2", "B-3"]
    # The same line again: the merged product hashes the same, nothing is written.
    with session_scope(db) as s:
        again = upsert_products(
            s,
            client_id=1,
            source_id=1,
            run_id=3,
            items=[hashed("B", ("B-2",), 12)],
            merge_variants=True,
        )
    assert again.unchanged == 1 and again.updated == 0


def test_delete_soft_deletes_and_ignore_leaves_alone(db: str) -> None:
    run(db, [item("A"), item("B")])
    counts = run(db, [item("A", "delete"), item("B", "ignore", price=99.0)], run_id=2)
    assert counts.deleted == 1 and counts.ignored == 1
    with session_scope(db) as s:
        a = s.scalars(select(Product).where(Product.source_product_code == "A")).one()
        b = s.scalars(select(Product).where(Product.source_product_code == "B")).one()
        assert a.deleted_at is not None and a.active is False
        assert b.deleted_at is None and b.last_run_id == 1
    # Deleting again changes nothing; re-activating restores the row.
    assert run(db, [item("A", "delete")], run_id=3).deleted == 0
    assert run(db, [item("A")], run_id=4).updated == 1
    with session_scope(db) as s:
        a = s.scalars(select(Product).where(Product.source_product_code == "A")).one()
        assert a.deleted_at is None and a.active is True


def test_delete_of_unknown_product_creates_nothing(db: str) -> None:
    counts = run(db, [item("Z", "delete")])
    assert counts.created == 0 and counts.deleted == 0
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 0


def test_repeated_key_in_one_page_is_refused(db: str) -> None:
    with pytest.raises(ValueError, match="appears twice"):
        run(db, [item("A"), item("A")])


def raw_item(code: str, raw: str, action: str = "active", **kw) -> StoreItem:
    base = item(code, action, **kw)
    return StoreItem(base.key, base.action, base.data, base.hash, raw)  # type: ignore[arg-type]


def raw_hashes(db: str) -> dict[str, str | None]:
    with session_scope(db) as s:
        return dict(s.execute(select(Product.source_product_code, Product.raw_hash)).all())


def test_raw_hashes_are_kept_with_every_write(db: str) -> None:
    from hub.store import stored_raw_hashes

    run(db, [raw_item("A", "r1"), raw_item("B", "r1"), raw_item("C", "r1")])
    assert raw_hashes(db) == {"A": "r1", "B": "r1", "C": "r1"}
    # Changed, soft-deleted, and unchanged but from other raw rows (an ERP
    # that re-padded a column): each gets the new raw hash, and the last
    # one is not rewritten otherwise.
    counts = run(
        db,
        [raw_item("A", "r2", price=11.0), raw_item("B", "r2", "delete"), raw_item("C", "r2")],
        run_id=2,
    )
    assert (counts.updated, counts.deleted, counts.unchanged) == (1, 1, 1)
    assert raw_hashes(db) == {"A": "r2", "B": "r2", "C": "r2"}
    with session_scope(db) as s:
        assert (
            s.scalars(select(Product.last_run_id).where(Product.source_product_code == "C")).one()
            == 1
        )
        assert stored_raw_hashes(s, "products", 1, ["A", "B", "Z"]) == {"A": "r2", "B": "r2"}
        assert stored_raw_hashes(s, "products", 2, ["A"]) == {}


def test_ignore_and_unknown_raw_hashes_leave_the_stored_one(db: str) -> None:
    run(db, [raw_item("A", "r1"), raw_item("B", "r1")])
    # Ignore leaves the record alone, raw hash included; an item without a
    # raw hash (an incremental merge) does not clear it when unchanged...
    run(db, [raw_item("A", "r2", "ignore"), item("B")], run_id=2)
    assert raw_hashes(db) == {"A": "r1", "B": "r1"}
    # ... and clears it when it writes: the rows it came from are unknown.
    run(db, [item("B", price=12.0)], run_id=3)
    assert raw_hashes(db) == {"A": "r1", "B": None}


def test_many_records_in_one_page(db: str) -> None:
    items = [raw_item(f"P{i:04d}", "r", skus=(f"P{i:04d}-1", f"P{i:04d}-2")) for i in range(1200)]
    assert run(db, items).created == 1200
    changed = [raw_item(f"P{i:04d}", "r2", price=20.0) for i in range(0, 1200, 2)]
    counts = run(db, changed + items[1::2], run_id=2)
    assert (counts.updated, counts.unchanged) == (600, 600)
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(Variant)) == 600 + 1200
        ids = s.scalars(select(Product.id)).all()
        assert len(set(ids)) == 1200
        rows = s.execute(select(Variant.product_id, Variant.sku)).all()
        by_id = dict(s.execute(select(Product.id, Product.source_product_code)).all())
    assert all(sku.startswith(by_id[pid]) for pid, sku in rows)


def test_text_comes_back_exactly_and_variants_keep_their_order(db: str) -> None:
    """What COPY's text format escapes (backslash, tab, newline, carriage
    return) and what JSON escapes come back as written, in the columns and in
    the document; the variants stay in the ERP's order (S, M, L) and the
    document is the stored JSON the mapping made."""
    from hub.schemas import canonical_hash, stored_json

    awkward = 'tab\there, line\nbreak, cr\r, back\\slash, quote", \u00e9 \u2028 \\N'
    data = {
        "source_product_code": "TEE\\1",
        "title": awkward,
        "body_html": "<p>a\\b</p>\n",
        "variants": [
            {"source_variant_code": f"TEE-{size}", "sku": f"TEE\t{size}", "qty": q, "price": p}
            for size, q, p in (("S", 1, 9.5), ("M", None, 10.0), ("L", 3, None))
        ],
    }
    stored = StoreItem("TEE\\1", "active", data, canonical_hash(data), "raw\\1", stored_json(data))
    plain = product("PLAIN")  # no stored JSON given: the store makes it
    run(db, [stored, StoreItem("PLAIN", "active", plain, "h-plain")])
    with session_scope(db) as s:
        row = s.scalars(select(Product).where(Product.source_product_code == "TEE\\1")).one()
        assert row.title == awkward
        assert row.raw_hash == "raw\\1"
        assert row.data == data
        assert [v["source_variant_code"] for v in row.data["variants"]] == [
            "TEE-S",
            "TEE-M",
            "TEE-L",
        ]
        variants = s.scalars(select(Variant).where(Variant.product_id == row.id)).all()
        assert sorted((v.sku, v.qty, v.price) for v in variants) == [
            ("TEE\tL", 3, None),
            ("TEE\tM", None, 10.0),
            ("TEE\tS", 1, 9.5),
        ]
        other = s.scalars(select(Product).where(Product.source_product_code == "PLAIN")).one()
        assert other.data == plain


def test_stored_json_keeps_list_order_and_canonical_numbers() -> None:
    from hub.schemas import canonical_hash, stored_json
    from hub.schemas.hashing import _dumps_once, _stable

    data = {"b": [{"source_variant_code": "2"}, {"source_variant_code": "1"}], "a": 8.0}
    text = stored_json(data)
    assert text == '{"a":8,"b":[{"source_variant_code":"2"},{"source_variant_code":"1"}]}'
    # The canonical JSON (what the hash covers) sorts the list; nothing else differs.
    assert _dumps_once(_stable(data)) == (
        '{"a":8,"b":[{"source_variant_code":"1"},{"source_variant_code":"2"}]}'
    )
    assert canonical_hash(data) != canonical_hash({"a": 8.0, "b": []})
    assert stored_json({"p": 1.234567, "n": None}) == '{"n":null,"p":1.2346}'
