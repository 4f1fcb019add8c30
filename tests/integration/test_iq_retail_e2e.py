"""IQ Retail end to end: the hub against the IQ API emulator, over HTTP.

Real worker processes, PostgreSQL and Redis; the emulator answers as IQ's
API does (HTTP 200 with error codes in the body), with faults injected.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from emulators import iq_retail
from hub.db import session_scope
from hub.models import DeadLetter, Order, Product, SyncRun
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import canonical
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers.orders import submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

PASSWORD = "iq-Secret-77"
ITEMS = 20_000


@pytest.fixture
def iq(postgres_db: Any) -> Iterator[Any]:
    url = postgres_db("s2s_iq")
    iq_retail.seed(url, products=ITEMS, seed=3)
    iq_retail.add_service_item(url, "SHIP")  # the service item shipping is raised as
    with iq_retail.serve(url, password=PASSWORD) as server:
        server.db_url = url
        yield server


def _source(iq: Any, password: str = PASSWORD, **over: Any) -> tuple[int, int]:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "iq",
            "iq_retail",
            {
                "request_url": iq.base_url,
                "company_number": "002",
                "user_number": "99",
                "user_password": password,
                "default_debtor_account": "CASH01",
                "shipping_code": "SHIP",
                "page_size": 500,
                **over,
            },
        )
        return client.id, source.id


def _run(source_id: int, **kw: Any) -> SyncRun:
    run_id = start_sync(
        source_id, "products", requested_by=kw.pop("requested_by", "test"), **kw
    ).run.id

    def done() -> SyncRun | None:
        with session_scope() as s:
            r = s.get(SyncRun, run_id)
            return r if r.status != "running" else None

    return wait_for(done, timeout=300, what=f"run {run_id}")


def test_20000_items_then_incremental_fetches_only_changes(orders_hub: Hub, iq: Any) -> None:
    expected = [i for i in iq_retail.generate_stock(ITEMS, 3) if i["webitem"]]
    _, source_id = _source(iq)
    orders_hub.start_worker(concurrency=2)
    first = _run(source_id)
    assert first.status == "succeeded", first.error
    assert first.created == len(expected) and first.quarantined == 0
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == len(expected)
        sample = s.scalars(
            select(Product).where(Product.source_product_code == expected[10]["code"])
        ).one()
        variant = sample.data["variants"][0]
        assert sample.data["title"] == expected[10]["descript"]
        assert variant["sku"] == expected[10]["code"]
        assert variant["price"] == pytest.approx(float(expected[10]["sellprice1"]))
        assert variant["qty"] == max(int(float(expected[10]["onhand"])), 0)
        assert first.high_water is not None

    changed = iq_retail.touch(iq.db_url, 50, seed=8, when="2026-11-22 09:00:00")
    second = _run(source_id)  # incremental by default: a watermark exists now
    assert second.status == "succeeded", second.error
    assert not second.full and second.since == first.high_water
    assert 50 <= second.fetched < 100  # the changes, plus whatever the overlap window holds
    assert second.updated == len([c for c in changed if c in {e["code"] for e in expected}])
    assert second.created == 0

    full = _run(source_id, full=True)
    assert full.fetched >= ITEMS and full.updated == 0


def test_orders_exactly_once_even_when_the_connection_drops_after_commit(
    orders_hub: Hub,
    iq: Any,
) -> None:
    client_id, source_id = _source(iq)
    orders_hub.start_worker(concurrency=2)
    assert _run(source_id).status == "succeeded"
    with session_scope() as s:
        skus = list(s.scalars(select(Product.source_product_code).order_by(Product.id).limit(30)))
    iq.faults.drop_after_commit_next(1)
    codes = []
    for n in range(20):
        result, errors = submit(client_id, canonical(f"#{1000 + n}", skus[n : n + 2]))
        assert result is not None, errors
        codes.append(f"#{1000 + n}")

    def all_raised() -> bool:
        with session_scope() as s:
            return (
                s.scalar(select(func.count()).select_from(Order).where(Order.status == "raised"))
                == 20
            )

    wait_for(all_raised, timeout=120, what="20 orders raised")
    counts = iq_retail.order_counts(iq.db_url)
    assert counts.orders == 20 and counts.headers == 20  # the dropped one was found, not resent
    engine = create_engine(iq.db_url)
    with engine.connect() as conn:
        in_iq = dict(conn.execute(text("SELECT ordernum, document FROM sorders")).all())
    engine.dispose()
    with session_scope() as s:
        for code, document in s.execute(select(Order.channel_order_code, Order.document_number)):
            assert in_iq[code] == document
        assert s.scalar(select(func.max(Order.attempts))) == 2  # the dropped one, once more


def test_unknown_stock_code_is_dead_lettered_with_iqs_words(orders_hub: Hub, iq: Any) -> None:
    client_id, source_id = _source(iq)
    orders_hub.start_worker(concurrency=2)
    assert _run(source_id).status == "succeeded"
    with session_scope() as s:
        sku = s.scalars(select(Product.source_product_code).order_by(Product.id).limit(1)).one()
    engine = create_engine(iq.db_url)
    with engine.begin() as conn:  # the item is gone from IQ since the last sync
        conn.execute(text('DELETE FROM "Stock" WHERE code = :c'), {"c": sku})
    engine.dispose()
    result, _ = submit(client_id, canonical("#2001", [sku]))
    assert result is not None

    def letter() -> DeadLetter | None:
        with session_scope() as s:
            return s.scalars(select(DeadLetter)).first()

    dead = wait_for(letter, timeout=60, what="the dead letter")
    assert dead.error_class == "rejected" and dead.attempts == 1
    assert f"Invalid Stock Code [{sku}]" in dead.message


def test_wrong_credentials_in_check_and_on_a_scheduled_run(orders_hub: Hub, iq: Any) -> None:
    _, source_id = _source(iq, password="not-the-password")
    check = orders_hub.run_cli("check", "acme", "iq")
    assert check.returncode == 1 and "Traceback" not in check.stderr
    lines = [ln for ln in check.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "user" in lines[0].lower()
    assert "not-the-password" not in check.stderr + check.stdout
    orders_hub.start_worker(concurrency=2)
    run = _run(source_id, requested_by="schedule")
    assert run.status == "failed"
    reason = lines[0].removeprefix("error: ").split(" — ")[0]
    assert reason[:40] in run.error
    assert "not-the-password" not in run.error


# --------------------------------------------------------------------------
# qty_formula, and what check counts
# --------------------------------------------------------------------------

SMALL = 600


@pytest.fixture
def small_iq(postgres_db: Any) -> Iterator[Any]:
    url = postgres_db("s2s_iq")
    server_summary = iq_retail.seed(url, products=SMALL, seed=11)
    with iq_retail.serve(url, password=PASSWORD) as server:
        server.db_url = url
        server.summary = server_summary
        yield server


def _quantities() -> dict[str, int]:
    with session_scope() as s:
        return {
            p.source_product_code: p.data["variants"][0]["qty"]
            for p in s.scalars(select(Product).where(Product.deleted_at.is_(None)))
        }


def test_check_counts_web_items_and_a_new_qty_formula_remaps_every_product(
    orders_hub: Hub, small_iq: Any
) -> None:
    summary = small_iq.summary
    web = {r["code"]: r for r in iq_retail.generate_stock(SMALL, 11) if r["webitem"]}
    _, source_id = _source(small_iq)
    check = orders_hub.run_cli("check", "acme", "iq")
    assert check.returncode == 0, check.stderr
    assert (
        f"{summary.web_items:,} web items will sync as products (of {summary.products:,} "
        f"stock items; the other {summary.hidden:,} are not ticked WebItem"
    ) in " ".join(check.stdout.split())

    orders_hub.start_worker(concurrency=2)
    first = _run(source_id)
    assert first.status == "succeeded", first.error
    assert first.created == summary.web_items == len(web)
    assert _quantities() == {c: max(int(r["onhand"]), 0) for c, r in web.items()}

    # The operator says this site reads stock less sales orders. Nothing
    # changed in IQ, yet the next full run maps every record again (the
    # settings are part of each raw hash) and updates those whose qty moves.
    _source(small_iq, qty_formula="onhand_less_sales_orders")
    expected = {c: max(int(r["onhand"] - r["salesorder"]), 0) for c, r in web.items()}
    moved = sum(1 for c in web if expected[c] != max(int(web[c]["onhand"]), 0))
    assert moved > 0
    second = _run(source_id, full=True)
    assert second.status == "succeeded", second.error
    assert second.updated == moved and second.created == 0 and second.quarantined == 0
    assert _quantities() == expected
