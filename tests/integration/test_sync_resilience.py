"""Crashes and schedules: nothing lost, nothing written twice.

A worker is killed with SIGKILL in the middle of a run (the whole process
group, as a crash or an OOM kill of the machine would). Beat's sweeper finds
the stalled run by its heartbeat and re-enqueues what the page rows say is
unfinished; a new worker completes the run with exact counts.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from emulators import sql_erp
from hub.db import session_scope
from hub.models import Product, SourceStream, SyncRun, Variant, utcnow
from tests.conftest import Hub, wait_for
from tests.integration.test_sync_e2e import _expected
from workers.sources import upsert_client, upsert_source
from workers.tasks import dispatch_due, start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]


def dispatch_at_once(count: int) -> list[int]:
    """Run ``count`` of beat's dispatchers at the same moment (beats started by
    mistake); what each one started."""
    barrier = threading.Barrier(count)
    started: list[int] = []

    def dispatch() -> None:
        barrier.wait()
        started.append(dispatch_due())

    threads = [threading.Thread(target=dispatch) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return started


def _source(hub: Hub, erp_url: str, products: int, page_size: int) -> int:
    sql_erp.create_schema(erp_url)
    sql_erp.seed(erp_url, products=products, customers=10, seed=9)
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        return upsert_source(s, client, "erp", "sql", {"url": erp_url, "page_size": page_size}).id


def test_worker_killed_mid_run_loses_and_duplicates_nothing(
    postgres_db: Any, redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import _make_hub

    gen = _make_hub(
        {
            "S2S_DATABASE_URL": postgres_db(),
            "S2S_BROKER_URL": redis_url,
            "S2S_STALE_AFTER": "4",
            "S2S_SWEEP_EVERY": "2",
        },
        tmp_path,
        monkeypatch,
    )
    hub = next(gen)
    try:
        products = 8000
        source_id = _source(hub, postgres_db("s2s_erp"), products, page_size=50)
        expected = _expected(sql_erp.generate_rows(products, 9))
        first = hub.start_worker(concurrency=2, name="first")
        run_id = start_sync(source_id, "products", requested_by="test").run.id

        def some_pages_done() -> bool:
            with session_scope() as s:
                return (s.get(SyncRun, run_id).pages_done or 0) >= 10

        wait_for(some_pages_done, timeout=120, interval=0.05, what="10 pages upserted")
        hub.kill(first)
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            assert run.status == "running"
            assert run.pages_total is None or run.pages_done < run.pages_total

        hub.start_beat()
        hub.start_worker(concurrency=2, name="second")

        def finished() -> SyncRun | None:
            with session_scope() as s:
                r = s.get(SyncRun, run_id)
                return r if r.status != "running" else None

        run = wait_for(finished, timeout=300, what="the run to finish after the crash")
        assert run.status == "succeeded", run.error
        assert run.created == len(expected)
        assert run.updated == 0
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(Product)) == len(expected)
            assert s.scalar(select(func.count()).select_from(Variant)) == sum(
                len(p["variants"]) for p in expected.values()
            )
        assert "resumed stalled run" in hub.logs()
    finally:
        next(gen, None)


def test_beat_dispatches_a_due_source_once(pg_hub: Hub, postgres_db: Any) -> None:
    source_id = _source(pg_hub, postgres_db("s2s_erp"), 200, page_size=100)
    with session_scope() as s:
        s.execute(
            update(SourceStream)
            .where(SourceStream.source_id == source_id, SourceStream.stream == "products")
            .values(interval_seconds=3600, next_due_at=utcnow() - timedelta(seconds=1))
        )
    # Two dispatchers at the same moment (two beats started by mistake).
    assert sum(dispatch_at_once(2)) == 1
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 1
        nxt = s.scalars(
            select(SourceStream.next_due_at).where(
                SourceStream.source_id == source_id, SourceStream.stream == "products"
            )
        ).one()
        assert nxt > utcnow() + timedelta(seconds=3500)


def test_real_beat_starts_scheduled_runs(
    postgres_db: Any, redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import _make_hub

    gen = _make_hub(
        {"S2S_DATABASE_URL": postgres_db(), "S2S_BROKER_URL": redis_url, "S2S_DISPATCH_EVERY": "1"},
        tmp_path,
        monkeypatch,
    )
    hub = next(gen)
    try:
        source_id = _source(hub, postgres_db("s2s_erp"), 300, page_size=100)
        with session_scope() as s:
            s.execute(
                update(SourceStream)
                .where(SourceStream.source_id == source_id, SourceStream.stream == "products")
                .values(interval_seconds=3600, next_due_at=utcnow())
            )
        hub.start_worker()
        hub.start_beat()

        def scheduled_run() -> SyncRun | None:
            with session_scope() as s:
                return s.scalars(
                    select(SyncRun).where(
                        SyncRun.status == "succeeded", SyncRun.requested_by == "schedule"
                    )
                ).first()

        run = wait_for(scheduled_run, timeout=90, what="a scheduled run")
        assert run.created > 0
        time.sleep(3)  # several more beats: not due again for an hour
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(SyncRun)) == 1
    finally:
        next(gen, None)
