"""End to end: a SQL ERP synced by real worker processes.

Runs twice: on PostgreSQL with the Redis broker (production's shape) and on
the embedded default (SQLite files and the SQLAlchemy broker). The expected
data is recomputed from the emulator's pure row generator, independently of
the hub's own mapping code.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from emulators import sql_erp
from hub.db import session_scope
from hub.models import Product, Quarantined, SyncRun, Variant
from tests.conftest import Hub, wait_for
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.slow]

PRODUCTS = 5000
SEED = 42


def _expected(rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Active, valid products as the seed's (corrected) table maps them."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row["Prod"], []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for prod, group in groups.items():
        flag = group[0]["product_active"].strip().lower()
        if flag not in ("1", "true", "active", "y", "yes"):
            continue
        try:
            variants = {
                r["SKU"]: {
                    "qty": max(int(r["qty"].strip()), 0),
                    "price": float(Decimal(r["price"].strip())),
                }
                for r in group
            }
        except Exception:
            continue  # a bad row: quarantined, checked separately
        if not group[0]["WebName"].strip():
            continue
        out[prod] = {"title": group[0]["WebName"].strip(), "variants": variants}
    return out


def _wait_run(run_id: int, timeout: float = 240) -> SyncRun:
    def done() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run is not None and run.status != "running" else None

    return wait_for(done, timeout=timeout, what=f"run {run_id} to finish")


def _sync(source_id: int) -> SyncRun:
    result = start_sync(source_id, "products", requested_by="test")
    assert result.created
    run = _wait_run(result.run.id)
    assert run.status == "succeeded", run.error
    return run


def _setup(hub: Hub, erp_url: str) -> int:
    sql_erp.create_schema(erp_url)
    sql_erp.seed(erp_url, products=PRODUCTS, customers=50, seed=SEED)
    with session_scope() as s:
        client, _ = upsert_client(s, "acme", "Acme")
        source = upsert_source(s, client, "erp", "sql", {"url": erp_url, "page_size": 500})
        return source.id


def _full_scenario(hub: Hub, erp_url: str) -> None:
    rows = sql_erp.generate_rows(PRODUCTS, SEED)
    summary = sql_erp.summarize(rows)
    expected = _expected(rows)
    source_id = _setup(hub, erp_url)
    hub.start_worker(concurrency=2)

    # 1. A full sync lands every active, valid product with every field mapped.
    first = _sync(source_id)
    assert first.fetched == summary.rows
    assert first.created == len(expected)
    assert first.quarantined == summary.bad
    assert first.ignored == summary.ignored
    # Delete flags on products the hub never had: nothing to remove, skipped.
    assert (first.deleted, first.skipped, first.unchanged) == (0, summary.deleted, 0)
    with session_scope() as s:
        stored = {p.source_product_code: p for p in s.scalars(select(Product))}
        assert set(stored) == set(expected)
        for code, want in expected.items():
            data = stored[code].data
            assert data["title"] == want["title"], code
            got = {v["sku"]: v for v in data["variants"]}
            assert set(got) == set(want["variants"]), code
            for sku, v in want["variants"].items():
                assert got[sku]["source_variant_code"] == sku
                assert got[sku]["qty"] == v["qty"], sku
                assert got[sku]["price"] == pytest.approx(v["price"]), sku
                assert {"tier": "retail", "price": pytest.approx(v["price"])} in got[sku][
                    "price_tiers"
                ]
                assert got[sku]["inventory_management"] is True
        assert s.scalar(select(func.count()).select_from(Variant)) == sum(
            len(p["variants"]) for p in expected.values()
        )
        # Bad rows are quarantined naming record and field; their pages landed.
        hub_field = {"qty": "variants.qty", "price": "variants.retail_price", "WebName": "title"}
        quarantined = {(q.record_key, q.field) for q in s.scalars(select(Quarantined))}
        assert quarantined == {(sku, hub_field[f]) for sku, f in summary.bad_skus}

    # 2. A second sync writes no product row. Products whose raw rows hash as
    # before are not even mapped; bad rows are mapped, and quarantined, again.
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Product.raw_hash.is_(None))) == 0
    second = _sync(source_id)
    assert (second.created, second.updated, second.deleted) == (0, 0, 0)
    # The Delete rows of products the hub never had are mapped again (there
    # is no stored row to keep their raw hash on) and skipped again.
    assert (second.unchanged, second.skipped) == (len(expected), summary.deleted)
    assert second.quarantined == summary.bad
    with session_scope() as s:
        assert set(s.scalars(select(Product.last_run_id).distinct())) == {first.id}

    # 3. Ten changed rows update exactly their products.
    changed = sql_erp.change_rows(erp_url, 10, seed=3)
    changed_products = {next(r["Prod"] for r in rows if r["SKU"] == sku) for sku in changed}
    third = _sync(source_id)
    assert third.updated == len(changed_products) and third.created == 0
    with session_scope() as s:
        touched = set(
            s.scalars(select(Product.source_product_code).where(Product.last_run_id == third.id))
        )
    assert touched == changed_products

    # 4. Delete soft-deletes; Ignore leaves the hub's copy alone even if changed.
    simple = [
        p for p, v in expected.items() if list(v["variants"]) == [p] and p not in changed_products
    ]
    to_delete, to_ignore = simple[0], simple[1]
    sql_erp.set_flag(erp_url, to_delete, "Delete")
    sql_erp.set_flag(erp_url, to_ignore, "Ignore")
    fourth = _sync(source_id)
    assert fourth.deleted == 1 and fourth.updated == 0
    with session_scope() as s:
        deleted = s.scalars(select(Product).where(Product.source_product_code == to_delete)).one()
        ignored = s.scalars(select(Product).where(Product.source_product_code == to_ignore)).one()
        assert deleted.deleted_at is not None and deleted.active is False
        assert ignored.deleted_at is None and ignored.last_run_id == first.id


@pytest.mark.services
def test_sql_erp_sync_on_postgres_and_redis(pg_hub: Hub, postgres_db: Any) -> None:
    _full_scenario(pg_hub, postgres_db("s2s_erp"))


def test_sql_erp_sync_on_embedded_default(embedded_hub: Hub) -> None:
    assert embedded_hub.env.get("S2S_DATABASE_URL") is None
    _full_scenario(embedded_hub, f"sqlite:///{embedded_hub.var_dir / 'erp.sqlite'}")


@pytest.mark.services
def test_two_resyncs_at_once_make_one_run(pg_hub: Hub, postgres_db: Any) -> None:
    erp_url = postgres_db("s2s_erp")
    source_id = _setup(pg_hub, erp_url)
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def ask() -> None:
        barrier.wait()
        results.append(start_sync(source_id, "products", requested_by="test"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert len({r.run.id for r in results}) == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 1
