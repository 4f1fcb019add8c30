"""Batched raising: many orders per claim and per ERP transaction, each still once.

A source's queued orders are claimed a batch at a time and the SQL
connector inserts a batch in one transaction. These tests hold the
source's slot while orders queue up, so that the batch is known to hold
them all when the slot is let go, then prove what batching must not
change: a refused order is dead-lettered alone, with the ERP's words, and
a worker killed in the middle of a batch loses and duplicates nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from emulators import sql_erp
from hub import orders as order_states
from hub.db import session_scope
from hub.models import DeadLetter, Order, OrderEvent
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import (
    Shop,
    _all_raised,
    _assert_exactly_once,
    _count,
    _shop,
    canonical,
    slow_erp,
)
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers import limits
from workers.orders import submit

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _queue_up(shop: Shop, orders: list[tuple[str, list[str]]]) -> str:
    """Submit ``orders`` while holding the source's only slot, until all are
    queued; returns the slot's token (the caller releases it)."""
    limits.reset_client()
    # Waits while anything else (the sync's last task, a drain) holds it.
    held = wait_for(
        lambda: limits.acquire(shop.source_id, 1, 120), timeout=60, what="the source's slot"
    )
    for code, skus in orders:
        result, errors = submit(shop.client_id, canonical(code, skus))
        assert not errors and result is not None and result.created
    wait_for(
        lambda: _count(order_states.QUEUED) == len(orders),
        timeout=60,
        what="every order queued",
    )
    return held


def test_a_refused_order_sinks_no_other_order_of_its_batch(
    orders_hub: Hub, postgres_db: Any
) -> None:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    bad_sku = shop.skus[3]
    engine = create_engine(shop.erp_url)
    with engine.begin() as conn:
        # This ERP checks stock codes on import; one SKU was withdrawn in it.
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
        conn.execute(text('DELETE FROM products WHERE "SKU" = :s'), {"s": bad_sku})
    engine.dispose()
    orders = [(f"G{i:03d}", [shop.skus[10 + i], shop.skus[60 + i]]) for i in range(40)]
    orders[17] = ("BAD17", [shop.skus[5], bad_sku])
    held = _queue_up(shop, orders)
    limits.release(shop.source_id, held)

    def settled() -> bool:
        return _count(order_states.RAISED) == 39 and _count(order_states.DEAD) == 1

    wait_for(settled, timeout=120, what="39 raised and 1 dead letter")
    good = [code for code, _ in orders if code != "BAD17"]
    counts = sql_erp.order_counts(shop.erp_url)
    assert counts.headers == counts.orders == 39
    engine = create_engine(shop.erp_url)
    with engine.connect() as conn:
        in_erp = dict(conn.execute(text("SELECT channel_order_code, id FROM s2s_order")).all())
    engine.dispose()
    assert set(in_erp) == set(good)
    with session_scope() as s:
        rows = s.execute(select(Order.channel_order_code, Order.document_number, Order.attempts))
        for code, document, attempts in rows:
            assert attempts == 1, code
            if code != "BAD17":
                assert document == str(in_erp[code]), code
        letter = s.scalars(select(DeadLetter)).one()
        bad = s.scalars(select(Order).where(Order.channel_order_code == "BAD17")).one()
        assert letter.order_id == bad.id and bad.document_number is None
        assert (letter.stage, letter.error_class, letter.attempts) == ("raise", "rejected", 1)
        # The ERP's own words: its constraint, and the order named.
        assert "stock_code_known" in letter.message and "BAD17" in letter.message
        assert "replay" in letter.fix
        # One claim took all forty orders: one batch, written at one instant.
        claims = s.scalars(
            select(func.count(func.distinct(OrderEvent.at))).where(
                OrderEvent.status == order_states.RAISING
            )
        ).one()
        assert claims == 1


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    orders_hub: Hub, postgres_db: Any
) -> None:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    # Each order costs the ERP 20 ms at COMMIT: a batch of a hundred spends
    # two seconds committing, and a worker killed then leaves orders the ERP
    # may hold while the hub still says "raising".
    slow_erp(shop.erp_url, 0.02, deferred=True)
    orders = [(f"K{i:04d}", [shop.skus[(i * 7) % len(shop.skus)]]) for i in range(150)]
    held = _queue_up(shop, orders)
    limits.release(shop.source_id, held)
    wait_for(
        lambda: _count(order_states.RAISING) > 0,
        timeout=60,
        interval=0.05,
        what="a batch being raised",
    )
    orders_hub.kill(orders_hub.workers[0])
    with session_scope() as s:
        in_flight = set(
            s.scalars(select(Order.id).where(Order.status == order_states.RAISING)).all()
        )
    assert in_flight and _count(order_states.RAISED) < 150
    orders_hub.start_beat()
    orders_hub.start_worker(concurrency=2, name="w2")
    _all_raised(150)
    _assert_exactly_once(shop, [code for code, _ in orders])
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
        for order in s.scalars(select(Order).where(Order.id.in_(in_flight))):
            # Taken again after its lease ran out, asking the ERP first:
            # either found there (committed as the worker died) or raised.
            assert order.attempts == 2, order.channel_order_code
            last = s.scalars(
                select(OrderEvent.message)
                .where(OrderEvent.order_id == order.id)
                .order_by(OrderEvent.id.desc())
                .limit(1)
            ).one()
            assert last.startswith(("found already in the ERP as", "raised as")), last
