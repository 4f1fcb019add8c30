"""A source's concurrency slots are shared by every worker and expire."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from hub.db import session_scope
from hub.models import DeadLetter, Order, SyncRun
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import _shop, canonical
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers import limits
from workers.orders import submit
from workers.sources import get_client, upsert_source
from workers.tasks import start_sync


def _slots_behave() -> None:
    limits.reset_client()
    first = limits.acquire(4242, 1, 30)
    assert first is not None
    assert limits.acquire(4242, 1, 30) is None  # the only slot is held
    two = limits.acquire(4243, 2, 30), limits.acquire(4243, 2, 30)
    assert all(two) and limits.acquire(4243, 2, 30) is None
    limits.release(4242, first)
    again = limits.acquire(4242, 1, 1)
    assert again is not None
    time.sleep(1.5)  # a holder that died: its lease runs out
    assert limits.acquire(4242, 1, 30) is not None
    # An ERP account's slot is shared by every source that logs in as it,
    # and taking a source's slot with it is all or nothing.
    account = [(4244, 5), ("account:isync:abc", 1)]
    with limits.holding(account, 30) as held:
        assert held
        with limits.holding([(4245, 5), ("account:isync:abc", 1)], 30) as other:
            assert not other  # another source, same account: must wait
        assert limits.acquire(4245, 1, 30) is not None  # and it let its own slot go
    with limits.holding([(4245, 5), ("account:isync:abc", 1)], 30) as other:
        assert other  # released when the first block ended


@pytest.mark.services
def test_slots_on_redis(pg_hub: Hub) -> None:
    assert limits._uses_redis()
    _slots_behave()


def test_slots_on_the_embedded_default(embedded_hub: Hub) -> None:
    assert not limits._uses_redis()
    _slots_behave()


@pytest.mark.services
@pytest.mark.slow
def test_waiting_for_a_slot_uses_no_attempt(orders_hub: Hub, postgres_db: Any) -> None:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    limits.reset_client()
    held = limits.acquire(shop.source_id, 1, 60)  # another worker is talking to this ERP
    assert held is not None
    result, _ = submit(shop.client_id, canonical("W1", [shop.skus[0]]))
    assert result is not None
    time.sleep(4)
    with session_scope() as s:
        order = s.get(Order, result.order.id)
        assert (order.status, order.attempts) == ("queued", 0)
    limits.release(shop.source_id, held)

    def raised() -> Order | None:
        with session_scope() as s:
            o = s.get(Order, result.order.id)
            return o if o.status == "raised" else None

    assert wait_for(raised, timeout=60, what="raised").attempts == 1


@pytest.mark.services
@pytest.mark.slow
def test_order_mixing_two_erps_is_rejected_with_the_reason(
    orders_hub: Hub,
    postgres_db: Any,
) -> None:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    with session_scope() as s:
        client = get_client(s, "acme")
        # A second ERP whose codes carry a prefix, read with a custom query.
        other = upsert_source(
            s,
            client,
            "erp2",
            "sql",
            {
                "url": shop.erp_url,
                "default_customer_code": "CASH",
                "shipping_code": "SHIP",
                "products_query": 'SELECT \'B-\' || "Prod" AS "Prod", \'B-\' || "SKU" AS "SKU", '
                '"WebName", product_active, qty, price FROM products',
            },
        )
        other_id = other.id
    run_id = start_sync(other_id, "products", requested_by="test").run.id
    wait_for(lambda: _succeeded(run_id), timeout=120, what="second ERP synced")
    result, _ = submit(shop.client_id, canonical("M1", [shop.skus[0], "B-" + shop.skus[1]]))
    assert result is not None

    def letter() -> DeadLetter | None:
        with session_scope() as s:
            return s.scalars(select(DeadLetter)).first()

    dead = wait_for(letter, timeout=60, what="the dead letter")
    assert dead.error_class == "mixed_sources" and dead.stage == "route"
    assert "erp:" in dead.message and "erp2:" in dead.message
    assert "B-" + shop.skus[1] in dead.message


def _succeeded(run_id: int) -> bool:
    with session_scope() as s:
        return s.get(SyncRun, run_id).status == "succeeded"
