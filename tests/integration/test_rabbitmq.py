"""RabbitMQ as the broker: the sync and order end-to-end scenarios, and a
worker SIGKILLed mid-raise, on a vhost of the test's own.

Without Redis the hub keeps its account slots in the database and sends
every "drain this source" request (no once-only markers): these tests show
the flow is exact all the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import func, select

from emulators import sql_erp
from hub import order_states
from hub.db import session_scope
from hub.models import SourceStream, SyncRun
from tests.conftest import Hub, _make_hub, wait_for
from tests.faults import TcpProxy
from tests.integration.test_orders_e2e import (
    _all_raised,
    _assert_exactly_once,
    _count,
    _shop,
    _submit_many,
    killed_mid_raise,
    slow_erp,
)
from tests.integration.test_sync_e2e import _full_scenario, _wait_run
from workers.tasks import start_sync


def _quiet(source_id: int) -> bool:
    """No run of the source active and no resync queued behind one, twice a
    second apart with no run started between (the dispatcher claims a
    queued resync, then starts its run, in two transactions)."""
    first = _idle(source_id)
    time.sleep(1)
    return first is not None and first == _idle(source_id)


def _idle(source_id: int) -> int | None:
    """How many runs the source has had, when none is active or queued."""
    with session_scope() as s:
        runs = s.scalar(
            select(func.count()).select_from(SyncRun).where(SyncRun.source_id == source_id)
        )
        active = s.scalar(
            select(func.count())
            .select_from(SyncRun)
            .where(SyncRun.source_id == source_id, SyncRun.status == "running")
        )
        queued = s.scalar(
            select(func.count())
            .select_from(SourceStream)
            .where(SourceStream.source_id == source_id, SourceStream.queued_at.is_not(None))
        )
    return None if active or queued else int(runs or 0)


pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def rabbit_hub(
    postgres_db: Any, rabbit_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hub]:
    yield from _make_hub(
        {
            "S2S_DATABASE_URL": postgres_db(),
            "S2S_BROKER_URL": rabbit_url,
            "S2S_ORDER_STALE_AFTER": "3",
            "S2S_ORDER_LEASE": "15",
            "S2S_SWEEP_EVERY": "2",
            "S2S_STALE_AFTER": "5",
            "S2S_RETRY_BASE": "0.3",
        },
        tmp_path,
        monkeypatch,
    )


def test_sql_erp_sync_on_rabbitmq(rabbit_hub: Hub, postgres_db: Any) -> None:
    assert rabbit_hub.env["S2S_BROKER_URL"].startswith("amqp://")
    _full_scenario(rabbit_hub, postgres_db("s2s_erp"))


def test_300_orders_each_raised_once_on_rabbitmq(rabbit_hub: Hub, postgres_db: Any) -> None:
    shop = _shop(rabbit_hub, postgres_db("s2s_erp"))
    codes = _submit_many(shop, 300)
    _all_raised(300)
    _assert_exactly_once(shop, codes)


def test_worker_killed_while_raising_on_rabbitmq(rabbit_hub: Hub, postgres_db: Any) -> None:
    killed_mid_raise(rabbit_hub, postgres_db("s2s_erp"), orders=200, raised_first=30)


def test_rabbitmq_cut_mid_flow_loses_and_duplicates_nothing(
    postgres_db: Any, rabbit_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker's connections cut five times while orders are raised and
    syncs run (a TCP proxy between the hub and RabbitMQ refuses and drops
    everything for 5 s): every run succeeds, every order is raised once, and
    the same worker process serves throughout."""
    parsed = urlparse(rabbit_url)
    proxy = TcpProxy(parsed.port or 5672).start()
    hubs = _make_hub(
        {
            "S2S_DATABASE_URL": postgres_db(),
            "S2S_BROKER_URL": rabbit_url.replace(f":{parsed.port}/", f":{proxy.port}/"),
            "S2S_ORDER_STALE_AFTER": "3",
            "S2S_ORDER_LEASE": "15",
            "S2S_SWEEP_EVERY": "2",
            "S2S_STALE_AFTER": "5",
            "S2S_RETRY_BASE": "0.3",
        },
        tmp_path,
        monkeypatch,
    )
    hub = next(hubs)
    try:
        shop = _shop(hub, postgres_db("s2s_erp"))
        worker = hub.workers[0]
        hub.start_beat()
        slow_erp(shop.erp_url, 0.01)
        codes = _submit_many(shop, 200)
        runs = []
        for n, cut in enumerate((20, 60, 100, 140, 180)):
            wait_for(
                lambda cut=cut: _count(order_states.RAISED) >= cut,
                timeout=120,
                interval=0.05,
                what=f"{cut} orders raised",
            )
            # A sync with something to write is under way at every cut. If
            # the last cut's run is still active (its pages held up by the
            # cut), the resync waits behind it, as the CLI's --queue and
            # the API's queue: true do; it would otherwise be that run,
            # which may have read these rows before they changed.
            sql_erp.change_rows(shop.erp_url, 20, seed=n)
            started = start_sync(shop.source_id, "products", requested_by="test", queue_behind=True)
            runs.append(started.run.id)
            proxy.stop()
            time.sleep(5)
            proxy.start()
            time.sleep(1)
            assert worker.poll() is None, f"the worker exited at the cut after {cut} orders"
        _all_raised(200)
        _assert_exactly_once(shop, codes)
        for run_id in runs:
            run = _wait_run(run_id)
            assert run.status == "succeeded", run.error
        # Resyncs queued behind those start once they end (beat's dispatcher).
        wait_for(lambda: _quiet(shop.source_id), timeout=120, what="the queued resyncs")
        with session_scope() as s:
            statuses = set(
                s.scalars(select(SyncRun.status).where(SyncRun.source_id == shop.source_id))
            )
        assert statuses == {"succeeded"}
        # Every change reached the hub: one more sync finds nothing to write.
        last = _wait_run(start_sync(shop.source_id, "products", requested_by="test").run.id)
        assert (last.status, last.created, last.updated, last.deleted) == ("succeeded", 0, 0, 0)
        assert worker.poll() is None, "the worker exited instead of reconnecting"
    finally:
        proxy.stop()
        next(hubs, None)
