"""The batch upsert's unit tests again, on PostgreSQL.

On PostgreSQL the store writes through psycopg (COPY, prepared statements,
index probes that do not depend on planner statistics) instead of the
portable statements SQLite gets: the same tests hold both to the same
results.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from hub.db import session_scope
from tests.unit.test_hub_store import (  # noqa: F401 - collected here against PostgreSQL
    test_changed_hash_updates_and_replaces_variants,
    test_created_then_unchanged_writes_nothing,
    test_delete_of_unknown_product_creates_nothing,
    test_delete_soft_deletes_and_ignore_leaves_alone,
    test_ignore_and_unknown_raw_hashes_leave_the_stored_one,
    test_many_records_in_one_page,
    test_merging_variants_keeps_the_ones_the_page_does_not_mention,
    test_raw_hashes_are_kept_with_every_write,
    test_repeated_key_in_one_page_is_refused,
    test_text_comes_back_exactly_and_variants_keep_their_order,
)

pytestmark = [pytest.mark.services]


def test_a_dropped_connection_is_an_sqlalchemy_operational_error(db: str) -> None:
    """Tasks retry on SQLAlchemy's OperationalError; psycopg's own must arrive as one."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from hub.store import stored_raw_hashes

    with pytest.raises(OperationalError), session_scope(db) as s:
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
        with session_scope(db) as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        stored_raw_hashes(s, "products", 1, ["A"])


def test_removing_a_client_still_removes_its_catalogue(db: str) -> None:
    """Products and customers keep no foreign key to their client (migration
    0013): the cascade runs through their source, which still removes them."""
    from sqlalchemy import func, select, text

    from hub.models import Customer, Product, Variant
    from hub.store import StoreItem, upsert_customers, upsert_products

    product = {
        "source_product_code": "A",
        "title": "A",
        "variants": [{"source_variant_code": "A", "sku": "A", "qty": 1, "price": 1.0}],
    }
    with session_scope(db) as s:
        upsert_products(
            s, client_id=1, source_id=1, run_id=1, items=[StoreItem("A", "active", product, "h")]
        )
        upsert_customers(
            s,
            client_id=1,
            source_id=1,
            run_id=1,
            items=[StoreItem("C", "active", {"source_customer_code": "C"}, "h")],
        )
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 1
        s.execute(text("DELETE FROM clients WHERE id = 1"))
    with session_scope(db) as s:
        for model in (Product, Variant, Customer):
            assert s.scalar(select(func.count()).select_from(model)) == 0


def test_documents_are_kept_as_json_text_and_survive_the_retype(postgres_db: Any) -> None:
    """Migration 0016 retypes products' and customers' documents from JSONB
    to json: a document stored before it reads back the same after it (and
    after a downgrade), and the store's writes go into json columns."""
    from alembic import command
    from sqlalchemy import text

    from hub.migrate import alembic_config, upgrade
    from hub.models import Client, Product, Source

    url = postgres_db()
    upgrade(url, revision="0015")
    before = {"title": "Ünïcode \\ tab\t", "variants": [{"sku": "B"}, {"sku": "A"}], "n": 1.5}
    with session_scope(url) as s:
        client = Client(code="c1", name="c1")
        s.add(client)
        s.flush()
        s.add(Source(client_id=client.id, code="erp", kind="sql", name="erp", settings={}))
        s.flush()
        s.execute(
            text(
                "INSERT INTO products (client_id, source_id, source_product_code, title, "
                "active, hash, data, created_at, updated_at) VALUES (1, 1, 'OLD', 'old', "
                "true, 'h', CAST(:doc AS jsonb), now(), now())"
            ),
            {"doc": json.dumps(before)},
        )

    def column_types() -> set[str]:
        with session_scope(url) as s:
            return set(
                s.scalars(
                    text(
                        "SELECT data_type FROM information_schema.columns WHERE "
                        "table_name IN ('products', 'customers') AND column_name = 'data'"
                    )
                )
            )

    def stored() -> dict[str, Any]:
        with session_scope(url) as s:
            return s.scalars(select(Product.data).where(Product.source_product_code == "OLD")).one()

    upgrade(url)
    assert column_types() == {"json"}
    assert stored() == before
    command.downgrade(alembic_config(url), "0015")
    assert column_types() == {"jsonb"}
    assert stored() == before
    upgrade(url)
    from hub.store import StoreItem, upsert_products

    doc = {"source_product_code": "NEW", "title": "new", "variants": []}
    with session_scope(url) as s:
        upsert_products(
            s, client_id=1, source_id=1, run_id=1, items=[StoreItem("NEW", "active", doc, "h")]
        )
    with session_scope(url) as s:
        assert (
            s.scalars(select(Product.data).where(Product.source_product_code == "NEW")).one() == doc
        )


def test_stored_raw_hashes_by_range_match_the_probes_and_give_way_to_them(db: str) -> None:
    """On PostgreSQL a page's stored raw hashes are read by one walk along
    the index between its least and greatest key: the answer is the one
    the key-by-key probes give (records between the page's keys but not on
    it left out, soft-deleted ones in), and a page spread too thin over the
    index (an ERP paging in its own order) is probed instead, for the next
    ``RANGE_PAUSE`` lookups of that source too."""
    from hub import store
    from hub.store import RANGE_PAUSE, RANGE_SLACK, stored_raw_hashes
    from tests.unit.test_hub_store import raw_item, run

    codes = [f"K{i:04d}" for i in range(600)]
    run(db, [raw_item(code, f"r-{code}") for code in codes])
    run(db, [raw_item("K0100", "gone", "delete")], run_id=2)  # soft-deleted, hash kept
    store._range_paused.clear()

    def probed(keys: list[str]) -> dict[str, str]:
        with session_scope(db) as s:
            sql = store._lookup_sql("products", "source_product_code", "raw_hash")
            rows = (
                s.connection()
                .connection.driver_connection.execute(sql, (store._keys_json(keys), 1))
                .fetchall()
            )
            return {code: rh for code, rh in rows if rh is not None}

    # Every other key of a stretch, and two the hub never stored: the range
    # holds twice the page, which is still within the slack.
    page = [*codes[50:250:2], "K0050x", "K0100a"]
    with session_scope(db) as s:
        found = stored_raw_hashes(s, "products", 1, page)
    assert found == probed(page)
    assert len(found) == 100 and found["K0100"] == "gone" and "K0051" not in found
    assert store._range_paused == {}

    # Spread over the whole index: more than RANGE_SLACK stored records per
    # key between its ends, so it is probed, and the source's next lookups too.
    sparse = codes[:: RANGE_SLACK * 4]
    with session_scope(db) as s:
        assert stored_raw_hashes(s, "products", 1, sparse) == probed(sparse)
    assert store._range_paused == {("products", 1): RANGE_PAUSE}
    with session_scope(db) as s:
        assert stored_raw_hashes(s, "products", 1, page) == probed(page)
    assert store._range_paused == {("products", 1): RANGE_PAUSE - 1}
    # Another source is not paused, and finds nothing of source 1.
    with session_scope(db) as s:
        assert stored_raw_hashes(s, "products", 2, page) == {}
    store._range_paused.clear()


def test_keys_postgresql_cannot_hold_are_quarantined_and_the_page_lands(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ERP row whose key holds a NUL or a lone surrogate (an HTTP ERP's
    JSON can carry both) is quarantined, its entry written with the value
    escaped, and the rest of its page is stored: at the first sync and at
    the resync, when the stored-hash lookup meets the key again."""
    from connectors.base import Page
    from hub.models import Product, Quarantined, SyncRun
    from hub.settings import get_settings
    from tests.unit.test_store_page import ROWS, _target
    from workers import pages

    monkeypatch.setenv("S2S_DATABASE_URL", db)
    get_settings.cache_clear()
    bad = [
        {**ROWS[0], "Prod": "N\x00UL", "SKU": "N1"},
        {**ROWS[0], "Prod": "S\ud800R", "SKU": "S1"},
    ]
    try:
        for sync in (1, 2):
            target = _target(db)
            page = Page(records=[ROWS[0], *bad], next_cursor=None)
            stored = pages._store_page(target, None, 0, None, page)
            assert stored is not None and stored.finished
            with session_scope(db) as s:
                run = s.get(SyncRun, target.run_id)
                assert run is not None
                counted = (run.status, run.created, run.unchanged, run.quarantined)
                assert counted == ("succeeded", 2 - sync, sync - 1, 2)
                entries = s.scalars(
                    select(Quarantined).where(Quarantined.run_id == target.run_id)
                ).all()
                keys = {(q.record_key, q.field) for q in entries}
                assert ("N\\u0000UL", "source_product_code") in keys
                assert ("S\\ud800R", "source_product_code") in keys
                raw = next(q.raw for q in entries if q.record_key == "N\\u0000UL")
                assert raw["source_product_code"] == "N\\u0000UL"
                assert s.scalars(select(Product.source_product_code)).all() == ["P1"]
    finally:
        get_settings.cache_clear()
