"""A worker SIGKILLed while it holds an ERP account's slot blocks that ERP
for one short slot lease (``S2S_SLOT_LEASE``), not for the longest call it
might have made: holders renew their leases while they work, so a lease
only has to outlive a few missed renewals.

Real worker processes on PostgreSQL and Redis, and the iSync emulator (one
session per account, so every raise holds the account's slot).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from emulators import isync
from hub.db import session_scope
from hub.models import Order, SyncRun
from tests.conftest import Hub, _make_hub, wait_for
from tests.integration.test_orders_e2e import canonical
from workers.orders import submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]

PASSWORD = "isync-slot-Pw-41"
SLOT_LEASE = 30.0  # the default
ORDER_LEASE = 300  # the default: what a killed raise used to hold the account for


@pytest.fixture
def hub(
    postgres_db: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hub]:
    monkeypatch.delenv("S2S_SLOT_LEASE", raising=False)
    yield from _make_hub(
        {
            "S2S_DATABASE_URL": postgres_db(),
            "S2S_BROKER_URL": redis_url,
            "S2S_ORDER_LEASE": str(ORDER_LEASE),
            "S2S_RETRY_BASE": "0.2",
        },
        tmp_path,
        monkeypatch,
    )


@pytest.fixture
def erp() -> Iterator[Any]:
    lines = [{**line, "WebSale": "Active"} for line in isync.generate_stock(20, 2, seed=8)]
    data = isync.IsyncData(lines)
    data.add_service_item("SHIP")
    with isync.serve(data, password=PASSWORD) as server:
        yield server


def _source(server: Any) -> tuple[int, int]:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "isync",
            "isync",
            {
                "service_url": server.service_url,
                "username": server.username,
                "password": PASSWORD,
                "default_customer_code": "CASH01",
                "shipping_code": "SHIP",
                # Longer than the ERP's stall below: the raise is still at
                # the ERP when its worker is killed.
                "timeout": 200,
            },
        )
        return client.id, source.id


def _status(code: str) -> str | None:
    with session_scope() as s:
        return s.scalar(select(Order.status).where(Order.channel_order_code == code))


def test_a_killed_raise_frees_the_erp_account_within_the_slot_lease(
    hub: Hub, erp: Any, redis_url: str
) -> None:
    client_id, source_id = _source(erp)
    hub.start_worker(queues="maintenance,fetch,map,upsert,orders", concurrency=2, name="base")
    run_id = start_sync(source_id, "products", requested_by="test").run.id

    def synced() -> bool:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run is not None and run.status == "succeeded"

    wait_for(synced, timeout=120, what="the products synced")
    skus = [line["SKU"] for line in erp.data.stock_lines()[:4]]

    # The ERP stalls; a raise worker takes the account's slot and waits on it.
    raiser = hub.start_worker(queues="raise.isync", concurrency=1, name="raise1")
    erp.faults.latency = 150.0
    calls = sum(erp.faults.counts().values())
    result, errors = submit(client_id, canonical("#S1", skus[:2]))
    assert result is not None, errors
    # Its login (then its order) is at the ERP, inside the slot.
    wait_for(
        lambda: sum(erp.faults.counts().values()) > calls, timeout=60, what="a raise at the ERP"
    )
    time.sleep(SLOT_LEASE / 3 + 2)  # at least one renewal landed: the lease is the short one
    hub.kill(raiser)
    killed_at = time.monotonic()
    slots = redis.Redis.from_url(redis_url)
    account = list(slots.scan_iter("s2s:slots:account:isync:*"))
    held = slots.zrange(account[0], 0, -1, withscores=True)
    assert len(account) == 1 and len(held) == 1  # still held by the dead worker ...
    assert float(held[0][1]) <= time.time() + SLOT_LEASE  # ... for one short lease at most

    # The ERP is well again; the next order of the source waits for the slot.
    erp.faults.latency = 0.0
    result, errors = submit(client_id, canonical("#S2", skus[2:4]))
    assert result is not None, errors
    hub.start_worker(queues="raise.isync", concurrency=1, name="raise2")
    wait_for(
        lambda: erp.faults.count("CreateSalesOrder") >= 1,
        timeout=ORDER_LEASE / 2,
        interval=0.1,
        what="the next raise at the ERP",
    )
    freed_after = time.monotonic() - killed_at
    print(f"the next raise reached the ERP {freed_after:.1f} s after the kill")
    assert freed_after < SLOT_LEASE + 10, freed_after
    wait_for(lambda: _status("#S2") == "raised", timeout=30, what="#S2 raised")
    assert erp.data.order_counts().get("#S2") == 1
    with session_scope() as s:
        # The killed raise's order keeps its own (order) lease: not raised twice.
        assert s.scalar(select(func.count()).select_from(Order)) == 2
    assert erp.data.order_counts().get("#S1", 0) <= 1
