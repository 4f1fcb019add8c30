"""Many tenants on one worker: ERP connections bounded, every run succeeds,
and one large run never fills the queues ahead of the others.

The ERP side is checked where an ERP administrator would look: PostgreSQL's
``pg_stat_activity`` for the ERP's database, and the TCP connections to an
HTTP ERP's port. The 150-tenant test runs against this machine's PostgreSQL
as configured (``max_connections`` of 100, shared with the hub's own
database): a worker that kept one idle connection per tenant and pool
process would be refused long before the last run.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from emulators import iq_retail as iq_emulator
from emulators import sql_erp
from hub.db import session_scope
from hub.models import Source, SyncPage, SyncRun
from tests.conftest import PG_HOST, PG_PORT, PG_USER, Hub, wait_for
from workers import sources as hub_sources
from workers.sources import ConnectorCache, upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _erp_connections(database: str) -> int:
    """Connections to ``database`` as its server counts them (ours excluded)."""
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def _create_schemas(url: str, names: list[str]) -> None:
    parsed = make_url(url)
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=parsed.database, autocommit=True
    ) as conn:
        for name in names:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')


def _tenant(code: str, erp_url: str, schema: str | None = None, page_size: int = 500) -> int:
    settings: dict[str, Any] = {"url": erp_url, "page_size": page_size}
    if schema:
        settings["products_table"] = f"{schema}.products"
        settings["customers_table"] = f"{schema}.customers"
        settings["order_table"] = f"{schema}.s2s_order"
        settings["order_line_table"] = f"{schema}.s2s_order_line"
    with session_scope() as s:
        client, _ = upsert_client(s, code, code.title())
        return upsert_source(s, client, "erp", "sql", settings).id


def _wait_runs(run_ids: list[int], timeout: float) -> dict[int, SyncRun]:
    def finished() -> dict[int, SyncRun] | None:
        with session_scope() as s:
            rows = list(s.scalars(select(SyncRun).where(SyncRun.id.in_(run_ids))))
            if all(r.status != "running" for r in rows):
                for row in rows:
                    s.expunge(row)
                return {r.id: r for r in rows}
            return None

    return wait_for(finished, timeout=timeout, interval=0.5, what=f"{len(run_ids)} runs")


@pytest.fixture
def cache_hub(pg_hub: Hub) -> Iterator[Hub]:
    hub_sources._cache.clear()
    yield pg_hub
    hub_sources._cache.clear()


def test_eviction_and_release_close_erp_connections(cache_hub: Hub, postgres_db: Any) -> None:
    """An evicted connector's database connections are closed at once, and a
    connector in the cache holds none once its task has ended."""
    urls = [postgres_db("s2s_erp") for _ in range(3)]
    names = [make_url(u).database for u in urls]
    for url in urls:
        sql_erp.seed(url, products=30, customers=5, seed=3)
    ids = [_tenant(f"t{i}", url) for i, url in enumerate(urls)]
    cache = ConnectorCache()
    with session_scope() as s:
        rows = [s.get(Source, i) for i in ids]
        first = cache.get(rows[0], 2)
        first.read("products", None, 10)
        # Read and returned to the pool: the connection stays open until released.
        assert _erp_connections(names[0]) == 1
        assert cache.release_used() == 1
        assert _erp_connections(names[0]) == 0
        assert cache.get(rows[0], 2) is first  # kept, and usable again
        first.read("products", None, 10)
        second = cache.get(rows[1], 2)
        second.read("products", None, 10)
        assert [_erp_connections(n) for n in names] == [1, 1, 0]
        third = cache.get(rows[2], 2)  # over the limit: the least recently used goes
        third.read("products", None, 10)
        assert ids[0] not in cache and len(cache) == 2
        assert [_erp_connections(n) for n in names] == [0, 1, 1]
        cache.release_used()
        assert [_erp_connections(n) for n in names] == [0, 0, 0]


def _established_to(port: int) -> int:
    """This machine's ESTABLISHED TCP connections whose remote port is ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def test_release_closes_http_keep_alive(cache_hub: Hub, postgres_db: Any) -> None:
    """An HTTP ERP (IQ Retail) keeps no socket open between tasks either."""
    url = postgres_db("s2s_iq")
    iq_emulator.seed(url, products=20, seed=3)
    with iq_emulator.serve(url, password="iq-Secret-77") as server:
        port = int(server.base_url.rstrip("/").rsplit(":", 1)[1].split("/")[0])
        with session_scope() as s:
            client, _ = upsert_client(s, "iq", "IQ client")
            settings = {
                "request_url": server.base_url,
                "company_number": "002",
                "user_number": "99",
                "user_password": "iq-Secret-77",
                "page_size": 10,
            }
            source = upsert_source(s, client, "iq", "iq_retail", settings)
            cache = ConnectorCache()
            conn = cache.get(source, 4)
            conn.read("products", None, 10)
            assert _established_to(port) == 1  # keep-alive while the task runs
            cache.release_used()
            wait_for(lambda: _established_to(port) == 0, timeout=5, what="the socket closed")
            conn.read("products", None, 10)  # reconnects on demand
            assert _established_to(port) == 1
            cache.clear()  # closing (eviction) closes it too
            wait_for(lambda: _established_to(port) == 0, timeout=5, what="the socket closed")


def test_worker_holds_no_erp_connection_after_its_tasks(cache_hub: Hub, postgres_db: Any) -> None:
    """With a real worker: after each run, the ERP's server sees no connection
    from the hub, whatever the cache size."""
    urls = [postgres_db("s2s_erp") for _ in range(3)]
    for url in urls:
        sql_erp.seed(url, products=200, customers=5, seed=5)
    ids = [_tenant(f"t{i}", url, page_size=50) for i, url in enumerate(urls)]
    cache_hub.env["S2S_CONNECTOR_CACHE"] = "2"
    cache_hub.start_worker(queues="maintenance,fetch,map,upsert", concurrency=2)
    for _ in range(2):
        runs = [start_sync(i, "products", full=True, requested_by="test").run.id for i in ids]
        done = _wait_runs(runs, timeout=120)
        assert {r.status for r in done.values()} == {"succeeded"}, [r.error for r in done.values()]
        time.sleep(0.5)  # the task's postrun hook runs just after the run's last commit
        assert [_erp_connections(make_url(u).database) for u in urls] == [0, 0, 0]


TENANTS = 150
TENANT_PRODUCTS = 40


def test_150_tenants_resynced_at_once_all_succeed(cache_hub: Hub, postgres_db: Any) -> None:
    """150 clients, each with its own ERP schema on one PostgreSQL server, all
    synced at once by one worker (-c 2), then all resynced unchanged: every
    run succeeds with exact counts, and no ERP connection is left open."""
    erp_url = postgres_db("s2s_erp")
    erp_db = make_url(erp_url).database
    schemas = [f"t{i:04d}" for i in range(TENANTS)]
    _create_schemas(erp_url, schemas)
    rows = sql_erp.generate_rows(TENANT_PRODUCTS, 11)
    summary = sql_erp.summarize(rows)
    for schema in schemas:
        sql_erp.seed(
            erp_url,
            products=TENANT_PRODUCTS,
            customers=0,
            seed=11,
            products_table=f"{schema}.products",
            customers_table=f"{schema}.customers",
            order_table=f"{schema}.s2s_order",
            order_line_table=f"{schema}.s2s_order_line",
        )
    ids = [_tenant(f"c{schema}", erp_url, schema) for schema in schemas]
    cache_hub.start_worker(queues="maintenance,fetch,map,upsert", concurrency=2)
    peak = {"erp": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak["erp"] = max(peak["erp"], _erp_connections(erp_db))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for phase in ("first", "unchanged"):
            run_ids = [
                start_sync(i, "products", full=True, requested_by="test").run.id for i in ids
            ]
            done = _wait_runs(run_ids, timeout=300)
            failed = [(r.id, r.error) for r in done.values() if r.status != "succeeded"]
            assert not failed, f"{phase}: {len(failed)} failed runs, e.g. {failed[:3]}"
            for run in done.values():
                assert run.fetched == summary.rows, (phase, run.id)
                if phase == "first":
                    assert run.quarantined == summary.bad, run.id
                else:
                    assert run.created == run.updated == 0, run.id
            time.sleep(0.5)
            assert _erp_connections(erp_db) == 0, phase
    finally:
        stop.set()
        watcher.join()
    # Two pool processes, each reading one page at a time (plus its read-ahead).
    assert peak["erp"] <= 4, peak


def test_a_runs_pages_in_flight_never_exceed_the_cap(cache_hub: Hub, postgres_db: Any) -> None:
    """A large full sync keeps at most S2S_RUN_PAGES_IN_FLIGHT pages waiting
    for map_page, parks its fetch when it reaches them and still lands every
    product; a small run started beside it finishes long before it."""
    cap = 3
    erp_url = postgres_db("s2s_erp")
    big_rows = 6000
    sql_erp.seed(erp_url, products=big_rows, customers=0, seed=9)
    small_url = postgres_db("s2s_erp")
    sql_erp.seed(small_url, products=50, customers=0, seed=9)
    big = _tenant("big", erp_url, page_size=100)
    small = _tenant("small", small_url, page_size=100)
    cache_hub.env["S2S_RUN_PAGES_IN_FLIGHT"] = str(cap)
    cache_hub.start_worker(queues="maintenance,fetch,map,upsert", concurrency=2)
    run_id = start_sync(big, "products", full=True, requested_by="test").run.id
    seen: list[int] = []
    stop = threading.Event()
    hub_url = make_url(cache_hub.env["S2S_DATABASE_URL"])

    def watch() -> None:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=hub_url.database, autocommit=True
        ) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM sync_pages WHERE run_id = %s AND status = 'fetched'",
                    (run_id,),
                ).fetchone()
                seen.append(int(row[0]) if row else 0)
                time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        wait_for(lambda: max(seen, default=0) > 0, timeout=60, what="a page queued for mapping")
        small_run = start_sync(small, "products", full=True, requested_by="test").run.id
        done = _wait_runs([run_id, small_run], timeout=300)
    finally:
        stop.set()
        watcher.join()
    big_run, small_done = done[run_id], done[small_run]
    assert big_run.status == small_done.status == "succeeded", (big_run.error, small_done.error)
    summary = sql_erp.summarize(sql_erp.generate_rows(big_rows, 9))
    assert big_run.fetched == summary.rows and big_run.quarantined == summary.bad
    assert max(seen) <= cap, max(seen)
    assert max(seen) == cap  # the cap was reached, so the limit was really exercised
    assert "fetch waits" in cache_hub.logs()
    assert small_done.finished_at is not None and big_run.finished_at is not None
    assert small_done.finished_at < big_run.finished_at
    with session_scope() as s:
        pages = s.scalars(select(SyncPage.status).where(SyncPage.run_id == run_id)).all()
        assert set(pages) == {"upserted"} and len(pages) == big_run.pages_total
        assert s.get(SyncRun, run_id).fetch_parked_at is None


def test_dispatch_starts_many_due_streams_once_each(cache_hub: Hub, redis_url: str) -> None:
    """Beat's dispatcher with more due streams than one batch, sent twice at
    once (two beats): each due stream starts one run and one first fetch; a
    stream whose run is still active and a paused one start nothing."""
    import redis as redis_lib

    from hub.models import SourceStream, utcnow
    from tests.integration.test_sync_resilience import dispatch_at_once
    from workers.dispatch import DISPATCH_BATCH

    count = DISPATCH_BATCH + 60
    with session_scope() as s:
        ids = []
        for i in range(count):
            client, _ = upsert_client(s, f"d{i:04d}")
            settings = {"url": f"postgresql+psycopg://erp@127.0.0.1/erp{i}", "page_size": 50}
            source = upsert_source(s, client, "erp", "sql", settings, schedules={"products": 900})
            ids.append(source.id)
    busy, paused = ids[7], ids[8]
    assert start_sync(busy, "products", requested_by="test").created
    past = utcnow().replace(microsecond=0)
    with session_scope() as s:
        for row in s.scalars(select(SourceStream).where(SourceStream.stream == "products")):
            row.next_due_at = past
            row.paused = row.source_id == paused
    broker = redis_lib.Redis.from_url(redis_url)
    broker.delete("fetch")  # the busy run's own first fetch
    assert sum(dispatch_at_once(2)) == count - 2
    with session_scope() as s:
        runs = s.scalars(select(SyncRun).where(SyncRun.requested_by == "schedule")).all()
        assert sorted(r.source_id for r in runs) == sorted(set(ids) - {busy, paused})
        assert all(r.page_size == 50 and r.full for r in runs)
        streams = {r.source_id: r for r in s.scalars(select(SourceStream))}
        assert all(streams[i].next_due_at > past for i in ids if i != paused)
        assert streams[paused].next_due_at == past
    assert broker.llen("fetch") == count - 2


def test_a_parked_fetch_resumed_by_the_sweeper_reads_each_page_once(
    cache_hub: Hub, postgres_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker maps for a while, so the fetch parks at the cap and the sweeper
    pushes the stalled run on page by page; once mapping starts, the parked
    fetch is handed on. Every page is read once, in one chain of cursors, and
    nothing is read again from the start after the last page."""
    from tests.conftest import _configure

    erp_url = postgres_db("s2s_erp")
    rows_seeded = 700
    sql_erp.seed(erp_url, products=rows_seeded, customers=0, seed=13)
    source_id = _tenant("parked", erp_url, page_size=100)
    env = {"S2S_RUN_PAGES_IN_FLIGHT": "2", "S2S_STALE_AFTER": "2", "S2S_SWEEP_EVERY": "1"}
    cache_hub.env.update(env)
    _configure({k: v for k, v in cache_hub.env.items() if k.startswith("S2S_")}, monkeypatch)
    cache_hub.start_worker(queues="maintenance,fetch", concurrency=1, name="fetcher")
    cache_hub.start_beat()
    run_id = start_sync(source_id, "products", full=True, requested_by="test").run.id

    def stored() -> int:
        with session_scope() as s:
            return len(s.scalars(select(SyncPage.id).where(SyncPage.run_id == run_id)).all())

    def all_fetched() -> bool:
        with session_scope() as s:
            return s.get(SyncRun, run_id).pages_total is not None

    # Parked at 2 pages, then pushed on by the sweeper, one page a time, to the end.
    wait_for(all_fetched, timeout=120, what="the sweeper pushing a parked run to its last page")
    assert stored() > 2
    cache_hub.start_worker(queues="map,upsert", concurrency=1, name="mapper")
    run = _wait_runs([run_id], timeout=180)[run_id]
    assert run.status == "succeeded", run.error
    summary = sql_erp.summarize(sql_erp.generate_rows(rows_seeded, 13))
    assert run.fetched == summary.rows and run.quarantined == summary.bad
    time.sleep(3)  # a stray fetch handed on after the end would store a page here
    with session_scope() as s:
        pages = s.execute(
            select(SyncPage.seq, SyncPage.cursor_in, SyncPage.cursor_out)
            .where(SyncPage.run_id == run_id)
            .order_by(SyncPage.seq)
        ).all()
    assert [p.seq for p in pages] == list(range(run.pages_total))
    assert pages[0].cursor_in is None and pages[-1].cursor_out is None
    for before, after in itertools.pairwise(pages):
        assert after.cursor_in == before.cursor_out is not None
