"""Orders into a SQL ERP: exactly once through crashes, lost messages and faults.

Every test runs real worker processes against PostgreSQL and Redis, raises
orders into the SQL ERP emulator's staging tables, and counts what landed
there: each order once, with the document number the hub recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, func, select, text

from emulators import sql_erp
from hub import orders as order_states
from hub.db import session_scope
from hub.models import DeadLetter, Order, OrderEvent, SyncRun
from tests.conftest import PG_PORT, Hub, _make_hub, wait_for
from tests.faults import TcpProxy
from tests.integration.test_sync_e2e import _expected
from workers.orders import route_order, submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

PRODUCTS = 400
SEED = 13


@dataclass
class Shop:
    hub: Hub
    erp_url: str
    client_id: int
    source_id: int
    skus: list[str]


@pytest.fixture
def orders_hub(
    postgres_db: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hub]:
    yield from _make_hub(
        {
            "S2S_DATABASE_URL": postgres_db(),
            "S2S_BROKER_URL": redis_url,
            "S2S_ORDER_STALE_AFTER": "3",
            "S2S_ORDER_LEASE": "15",
            "S2S_SWEEP_EVERY": "2",
            "S2S_STALE_AFTER": "5",
            "S2S_RETRY_BASE": "0.3",
        },
        tmp_path,
        monkeypatch,
    )


def _shop(hub: Hub, erp_url: str, source_url: str | None = None, workers: bool = True) -> Shop:
    sql_erp.create_schema(erp_url)
    sql_erp.seed(erp_url, products=PRODUCTS, customers=5, seed=SEED)
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "erp",
            "sql",
            {
                "url": source_url or erp_url,
                "default_customer_code": "CASH",
                "shipping_code": "SHIP",
                "page_size": 200,
            },
        )
        ids = (client.id, source.id)
    if workers:
        hub.start_worker(concurrency=2, name="w1")
    run_id = start_sync(ids[1], "products", requested_by="test").run.id

    def synced() -> bool:
        with session_scope() as s:
            return s.get(SyncRun, run_id).status == "succeeded"

    wait_for(synced, timeout=120, what="the product sync")
    expected = _expected(sql_erp.generate_rows(PRODUCTS, SEED))
    skus = sorted(sku for p in expected.values() for sku in p["variants"])
    return Shop(hub, erp_url, ids[0], ids[1], skus)


def canonical(code: str, skus: list[str], shipping: float = 95.0) -> dict[str, Any]:
    return {
        "channel": "api",
        "channel_order_code": code,
        "instruction": "add_order",
        "ordered_date": "2026-11-22T10:00:00Z",
        "customer": {"first_name": "Thandi", "last_name": "Mokoena", "email": "t@example.com"},
        "shipping_address": {
            "first_name": "Thandi",
            "last_name": "Mokoena",
            "address1": "86 Beach Road",
            "city": "Cape Town",
            "zip": "7441",
        },
        "line_items": [
            {"sku": sku, "title": f"Item {sku}", "qty": 1 + i % 3, "price": 100 + i}
            for i, sku in enumerate(skus)
        ],
        "shipping_lines": [{"title": "Courier", "price": shipping}] if shipping else [],
    }


def _submit_many(shop: Shop, n: int, prefix: str = "T") -> list[str]:
    codes = []
    for i in range(n):
        code = f"{prefix}{i:05d}"
        skus = [shop.skus[(i * 7 + j) % len(shop.skus)] for j in range(1 + i % 3)]
        result, errors = submit(shop.client_id, canonical(code, skus))
        assert not errors and result is not None and result.created
        codes.append(code)
    return codes


def _count(status: str) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Order).where(Order.status == status)) or 0


def _all_raised(n: int, timeout: float = 240) -> None:
    wait_for(lambda: _count(order_states.RAISED) == n, timeout=timeout, what=f"{n} orders raised")


def _assert_exactly_once(shop: Shop, codes: list[str]) -> None:
    counts = sql_erp.order_counts(shop.erp_url)
    assert counts.headers == len(codes) and counts.orders == len(codes)
    engine = create_engine(shop.erp_url)
    with engine.connect() as conn:
        in_erp = dict(conn.execute(text("SELECT channel_order_code, id FROM s2s_order")).all())
        lines = conn.execute(text("SELECT count(*) FROM s2s_order_line")).scalar_one()
    engine.dispose()
    with session_scope() as s:
        rows = s.execute(select(Order.channel_order_code, Order.document_number, Order.order)).all()
    assert {code for code, _, _ in rows} == set(codes)
    for code, document, _ in rows:
        assert document == str(in_erp[code]), code
    # Every ordered line once, plus one shipping line per order.
    assert lines == sum(len(o["line_items"]) + len(o["shipping_lines"]) for _, _, o in rows)


def test_500_orders_each_raised_exactly_once(orders_hub: Hub, postgres_db: Any) -> None:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    codes = _submit_many(shop, 500)
    _all_raised(500)
    _assert_exactly_once(shop, codes)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
        # Submitting an order again is recognised, not raised again.
    again, _ = submit(shop.client_id, canonical(codes[0], [shop.skus[0]]))
    assert again is not None and not again.created
    assert sql_erp.order_counts(shop.erp_url).headers == 500


def slow_erp(erp_url: str, seconds: float, deferred: bool = False) -> None:
    """Make the ERP take ``seconds`` per staged order (a trigger on its header table).

    Batched raising is fast enough that a few hundred orders can be raised
    before a test gets to kill a worker; a slow ERP keeps the flow in the
    middle while the fault is injected. ``deferred``: the time is spent in
    COMMIT, so a worker killed then leaves orders the ERP still commits
    (the ambiguous case ``find_order`` exists for).
    """
    engine = create_engine(erp_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION slow_erp() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN PERFORM pg_sleep({seconds}); RETURN NEW; END $$"
            )
        )
        if deferred:
            conn.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER slow_erp AFTER INSERT ON s2s_order "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_erp()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER slow_erp BEFORE INSERT ON s2s_order "
                    "FOR EACH ROW EXECUTE FUNCTION slow_erp()"
                )
            )
    engine.dispose()


def killed_mid_raise(hub: Hub, erp_url: str, orders: int, raised_first: int) -> None:
    """Submit ``orders`` to a slow ERP, SIGKILL the worker once
    ``raised_first`` are raised, start another: every order once (on any broker)."""
    shop = _shop(hub, erp_url)
    slow_erp(shop.erp_url, 0.01)
    codes = _submit_many(shop, orders)
    wait_for(
        lambda: _count(order_states.RAISED) >= raised_first,
        timeout=120,
        interval=0.05,
        what="some orders raised",
    )
    hub.kill(hub.workers[0])
    assert _count(order_states.RAISED) < orders
    hub.start_beat()
    hub.start_worker(concurrency=2, name="w2")
    _all_raised(orders)
    _assert_exactly_once(shop, codes)


def test_worker_killed_while_raising_every_order_once(orders_hub: Hub, postgres_db: Any) -> None:
    killed_mid_raise(orders_hub, postgres_db("s2s_erp"), orders=300, raised_first=40)


def test_redis_flushed_mid_flow_sweeper_finishes(
    orders_hub: Hub, postgres_db: Any, redis_url: str
) -> None:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    codes = _submit_many(shop, 100, prefix="A")
    _all_raised(100)
    # A running drain re-reads the database until the source has nothing
    # left, so a flush only loses work that waits in Redis: hold the raise
    # queue's messages there (a worker that only routes), then flush them.
    orders_hub.kill(orders_hub.workers[0])
    orders_hub.start_worker(queues="maintenance,orders", name="router")
    codes += _submit_many(shop, 200, prefix="B")
    wait_for(
        lambda: _count(order_states.QUEUED) == 200,
        timeout=120,
        what="the second orders routed",
    )
    redis.Redis.from_url(redis_url).flushdb()  # every queued message is gone
    orders_hub.start_worker(name="raiser")
    orders_hub.start_beat()
    _all_raised(300)
    _assert_exactly_once(shop, codes)
    assert "swept" in orders_hub.logs()


def test_unreachable_erp_is_retried_then_raised(orders_hub: Hub, postgres_db: Any) -> None:
    erp_url = postgres_db("s2s_erp")
    proxy = TcpProxy(PG_PORT).start()
    via_proxy = erp_url.replace(f":{PG_PORT}/", f":{proxy.port}/")
    shop = _shop(orders_hub, erp_url, source_url=via_proxy)
    proxy.stop()  # the ERP is now unreachable: refused, and live connections dropped
    codes = _submit_many(shop, 5, prefix="R")

    def retried() -> bool:
        transient = OrderEvent.message.like("transient:%")
        with session_scope() as s:
            orders_retried = s.scalar(
                select(func.count(func.distinct(OrderEvent.order_id))).where(transient)
            )
        return orders_retried == 5

    wait_for(retried, timeout=60, what="transient failures recorded")
    assert _count(order_states.RAISED) == 0
    proxy.start()
    try:
        _all_raised(5, timeout=120)
    finally:
        proxy.stop()
    _assert_exactly_once(shop, codes)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
        assert all(a >= 2 for a in s.scalars(select(Order.attempts)))


def test_rejected_line_is_dead_lettered_at_once_then_replayed(
    orders_hub: Hub, postgres_db: Any
) -> None:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    engine = create_engine(shop.erp_url)
    sku = shop.skus[3]
    with engine.begin() as conn:
        # This ERP checks stock codes on import (as real ERPs do).
        conn.execute(
            text(
                'INSERT INTO products ("Prod", "SKU", "WebName", product_active, qty, price) '
                "VALUES ('SHIP', 'SHIP', 'Courier', 'Ignore', '0', '0')"
            )
        )
        conn.execute(
            text(
                "ALTER TABLE s2s_order_line ADD CONSTRAINT stock_code_known "
                'FOREIGN KEY (sku) REFERENCES products ("SKU")'
            )
        )
        saved = dict(
            conn.execute(text('SELECT * FROM products WHERE "SKU" = :s'), {"s": sku})
            .mappings()
            .one()
        )
        conn.execute(text('DELETE FROM products WHERE "SKU" = :s'), {"s": sku})
    result, _ = submit(shop.client_id, canonical("X00001", [sku]))
    assert result is not None

    def dead() -> DeadLetter | None:
        with session_scope() as s:
            return s.scalars(select(DeadLetter)).first()

    letter = wait_for(dead, timeout=60, what="the dead letter")
    assert letter.error_class == "rejected" and letter.attempts == 1
    assert "stock_code_known" in letter.message or "foreign key" in letter.message.lower()
    assert "replay" in letter.fix

    with engine.begin() as conn:  # the data is fixed in the ERP
        conn.execute(
            text(
                "INSERT INTO products VALUES (:Prod, :SKU, :WebName, :product_active, :qty, :price)"
            ),
            saved,
        )
    engine.dispose()
    with session_scope() as s:
        order = order_states.replay(s, letter.id, "stock code restored")
        order_id = order.id
    route_order.apply_async(args=(order_id,))
    _all_raised(1, timeout=60)
    _assert_exactly_once(shop, ["X00001"])
    with session_scope() as s:
        history = [
            e.status
            for e in s.scalars(
                select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
            )
        ]
        assert history[0] == "received" and "dead" in history and history[-1] == "raised"
        assert s.get(DeadLetter, letter.id).status == "replayed"
