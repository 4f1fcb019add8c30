"""The fault suite: crashes, lost infrastructure and misbehaving ERPs.

Every test runs real worker processes on PostgreSQL and Redis, breaks
something in the middle of a sync or of raising orders, and then checks what
a user would: the run finishes (or fails with a sentence saying why), every
product arrives once, every order is in its ERP exactly once.

- Workers are killed with SIGKILL (the whole process group) while they
  fetch, map, upsert and raise; each stage has its own worker so the kill
  lands on that stage with its messages in flight.
- Redis "restarts": a TcpProxy in front of it drops every connection and
  refuses new ones for a while, and its database is flushed meanwhile (a
  restart without persistence loses every queued message). The machine's
  Redis itself is never touched.
- PostgreSQL drops the hub's connections (pg_terminate_backend on the test
  database's backends only), several times during the flow.
- The ERP answers 500, 429 with Retry-After, garbage, truncated XML, a body
  of the wrong kind, or too slowly (past the connector's timeout, also after
  it committed an order).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
import redis
from sqlalchemy import create_engine, func, select, text

from emulators import iq_retail, isync, sql_erp
from hub.db import dispose_all, session_scope
from hub.models import DeadLetter, Order, Product, SyncPage, SyncRun, Variant
from tests.conftest import PG_HOST, PG_PORT, PG_USER, Hub, _make_hub, wait_for
from tests.faults import TcpProxy
from tests.integration.test_orders_e2e import canonical
from tests.integration.test_sync_e2e import _expected
from workers.orders import submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]

IQ_PASSWORD = "iq-fault-Pw-19"
ISYNC_PASSWORD = "isync-fault-Pw-23"
FAST_RECOVERY = {
    "S2S_STALE_AFTER": "3",
    "S2S_SWEEP_EVERY": "1",
    "S2S_ORDER_STALE_AFTER": "3",
    "S2S_ORDER_LEASE": "15",
    "S2S_RETRY_BASE": "0.2",
    "S2S_DISPATCH_EVERY": "1",
}


@pytest.fixture
def hub_factory(
    postgres_db: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Hub]]:
    """A hub on PostgreSQL and Redis with fast sweeping; the broker URL may be a proxy's."""
    made: list[Iterator[Hub]] = []

    def make(broker_url: str | None = None, **env: str) -> Hub:
        gen = _make_hub(
            {
                "S2S_DATABASE_URL": postgres_db(),
                "S2S_BROKER_URL": broker_url or redis_url,
                **FAST_RECOVERY,
                **env,
            },
            tmp_path,
            monkeypatch,
        )
        made.append(gen)
        return next(gen)

    yield make
    for gen in made:
        next(gen, None)


def _wait_run(run_id: int, timeout: float = 180) -> SyncRun:
    def done() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run.status != "running" else None

    return wait_for(done, timeout=timeout, what=f"run {run_id} to end")


def _pages(run_id: int, status: str | None = None) -> int:
    with session_scope() as s:
        query = select(func.count()).select_from(SyncPage).where(SyncPage.run_id == run_id)
        if status is not None:
            query = query.where(SyncPage.status == status)
        return s.scalar(query) or 0


def _orders(status: str) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Order).where(Order.status == status)) or 0


def _assert_products_once(expected_codes: set[str]) -> None:
    with session_scope() as s:
        codes = list(s.scalars(select(Product.source_product_code)))
        skus = list(s.scalars(select(Variant.sku)))
    assert len(codes) == len(set(codes)), "a product stored twice"
    assert set(codes) == expected_codes
    assert len(skus) == len(set(skus)), "a variant stored twice"


# --------------------------------------------------------------------------
# IQ Retail, emulated in this process
# --------------------------------------------------------------------------


@pytest.fixture
def iq(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 'iq.sqlite'}"
    iq_retail.seed(url, products=3000, seed=5)
    iq_retail.add_service_item(url, "SHIP")
    with iq_retail.serve(url, password=IQ_PASSWORD) as server:
        server.db_url = url
        yield server


def _iq_source(server: Any, page_size: int = 150, timeout: float = 2.0) -> tuple[int, int]:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "iq",
            "iq_retail",
            {
                "request_url": server.base_url,
                "company_number": "002",
                "user_number": "99",
                "user_password": IQ_PASSWORD,
                "default_debtor_account": "CASH01",
                "shipping_code": "SHIP",
                "page_size": page_size,
                "timeout": timeout,
            },
        )
        return client.id, source.id


def _iq_expected(server: Any) -> tuple[int, set[str]]:
    """Every stock row IQ holds (the service item too) and the codes meant for the web."""
    engine = create_engine(server.db_url)
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT code, webitem FROM "Stock"')).all()
    engine.dispose()
    return len(rows), {code for code, web in rows if web}


def _iq_orders_once(server: Any, codes: list[str]) -> None:
    counts = iq_retail.order_counts(server.db_url)
    assert (counts.headers, counts.orders) == (len(codes), len(codes)), counts
    engine = create_engine(server.db_url)
    with engine.connect() as conn:
        in_iq = dict(conn.execute(text("SELECT ordernum, document FROM sorders")).all())
    engine.dispose()
    with session_scope() as s:
        rows = s.execute(select(Order.channel_order_code, Order.document_number)).all()
    assert {code for code, _ in rows} == set(codes)
    for code, document in rows:
        assert in_iq[code] == document, code


def test_workers_killed_while_fetching_mapping_and_upserting(
    hub_factory: Callable[..., Hub], iq: Any
) -> None:
    """A fetching worker, then twice a mapping/upserting one, SIGKILLed with work in flight."""
    # No cap on pages in flight: every page is fetched before any is mapped,
    # so that the writers are killed with a backlog in hand.
    hub = hub_factory(S2S_RUN_PAGES_IN_FLIGHT="1000")
    _, source_id = _iq_source(iq, page_size=150)
    hub.start_worker(queues="maintenance", concurrency=1, name="maint")
    hub.start_beat()
    fetcher = hub.start_worker(queues="fetch", concurrency=1, name="fetch1")
    iq.faults.latency = 0.4  # every fetch is on the wire for a while
    run_id = start_sync(source_id, "products", requested_by="test").run.id
    stock_calls = "IQ_API_Request_GenericSQL"

    def fetch_in_flight() -> bool:
        # IQ has received a page request that has not been stored as a page yet.
        return _pages(run_id) >= 3 and iq.faults.count(stock_calls) > _pages(run_id)

    wait_for(fetch_in_flight, timeout=60, interval=0.02, what="a fetch on the wire")
    hub.kill(fetcher)
    fetched_at_kill = _pages(run_id)
    iq.faults.latency = 0.05
    hub.start_worker(queues="fetch", concurrency=1, name="fetch2")

    # Mapping and writing start only once every page is fetched, so a backlog
    # waits for them and their worker is killed with most of it in hand. (A
    # page is mapped and upserted by map_page in one transaction, or by
    # map_page then upsert_page: one worker serves both queues either way.)
    def all_fetched() -> bool:
        with session_scope() as s:
            total = s.get(SyncRun, run_id).pages_total
        return total is not None and _pages(run_id) == total

    wait_for(all_fetched, timeout=90, what="every page fetched")
    for name in ("write1", "write2"):
        done_before = _pages(run_id, "upserted")
        writer = hub.start_worker(queues="map,upsert", concurrency=1, name=name)
        wait_for(
            lambda d=done_before: _pages(run_id, "upserted") >= d + 2,
            timeout=60,
            interval=0.02,
            what="pages mapped and upserted",
        )
        hub.kill(writer)
        waiting = _pages(run_id, "fetched") + _pages(run_id, "mapped")
        assert waiting >= 1, "the worker finished the run before it could be killed"
    hub.start_worker(queues="map,upsert", concurrency=1, name="write3")

    run = _wait_run(run_id)
    rows, expected = _iq_expected(iq)
    assert run.status == "succeeded", run.error
    assert fetched_at_kill < run.pages_total
    assert run.fetched == rows  # every stock item read once (hidden ones included)
    assert run.created == len(expected) and run.updated == 0 and run.quarantined == 0
    assert _pages(run_id) == run.pages_total == _pages(run_id, "upserted")
    _assert_products_once(expected)
    assert "resumed stalled run" in hub.logs()


def test_worker_killed_while_raising_with_a_slow_erp(
    hub_factory: Callable[..., Hub], iq: Any
) -> None:
    """SIGKILL while a raise request is at the ERP: in IQ or not, each order lands once."""
    hub = hub_factory()
    client_id, source_id = _iq_source(iq, page_size=1000)
    hub.start_worker(queues="maintenance,fetch,map,upsert,orders", concurrency=2, name="base")
    assert _wait_run(start_sync(source_id, "products", requested_by="test").run.id).status == (
        "succeeded"
    )
    hub.start_beat()
    with session_scope() as s:
        skus = list(s.scalars(select(Variant.sku).order_by(Variant.sku).limit(40)))
    raiser = hub.start_worker(queues="raise.iq_retail", concurrency=2, name="raise1")
    iq.faults.latency = 0.5
    codes = []
    for n in range(20):
        result, errors = submit(client_id, canonical(f"K{n:03d}", skus[n : n + 2]))
        assert result is not None, errors
        codes.append(f"K{n:03d}")
    orders_calls = "IQ_API_Submit_Document_Sales_Order"

    def raise_in_flight() -> bool:
        # IQ has taken some of the orders; the hub has not recorded them all.
        return iq.faults.count(orders_calls) >= 3 and _orders("raised") < 20

    wait_for(raise_in_flight, timeout=90, interval=0.02, what="a raise at the ERP")
    hub.kill(raiser)
    assert _orders("raised") < 20
    in_iq_at_kill = iq_retail.order_counts(iq.db_url).headers
    iq.faults.latency = 0.0
    hub.start_worker(queues="raise.iq_retail", concurrency=2, name="raise2")
    wait_for(lambda: _orders("raised") == 20, timeout=150, what="20 orders raised")
    _iq_orders_once(iq, codes)
    assert in_iq_at_kill >= 1  # some were in IQ before the hub knew: found, not sent again
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0


def test_erp_answers_500_429_and_past_the_timeout_sync_and_orders_complete(
    hub_factory: Callable[..., Hub], iq: Any
) -> None:
    hub = hub_factory()
    client_id, source_id = _iq_source(iq, page_size=300, timeout=1.0)
    hub.start_worker(concurrency=2, name="w1")
    hub.start_beat()

    # A sync through a proxy answering 500, a rate limiter's 429 and a server too slow.
    iq.faults.fail_next(2, status=500)
    run_id = start_sync(source_id, "products", requested_by="test").run.id
    wait_for(lambda: iq.faults.injected().get("fail", 0) == 2, timeout=60, what="two 500s")
    iq.faults.rate_limit_next(2, retry_after=1)
    wait_for(lambda: iq.faults.injected().get("rate_limit", 0) == 2, timeout=60, what="two 429s")
    iq.faults.latency = 1.5  # past the connector's 1 s timeout
    slow_from = iq.faults.count("IQ_API_Request_GenericSQL")
    wait_for(
        lambda: iq.faults.count("IQ_API_Request_GenericSQL") >= slow_from + 2,
        timeout=60,
        what="two timed-out fetches",
    )
    iq.faults.latency = 0.0
    run = _wait_run(run_id)
    assert run.status == "succeeded", run.error
    rows, expected = _iq_expected(iq)
    assert run.fetched == rows and run.created == len(expected)
    _assert_products_once(expected)
    assert "retrying" in hub.logs()

    # Orders through 500s, 429s, a timeout after IQ committed, and a dropped answer.
    with session_scope() as s:
        skus = list(s.scalars(select(Variant.sku).order_by(Variant.sku).limit(30)))
    iq.faults.fail_next(3, status=500)
    iq.faults.rate_limit_next(3, retry_after=1)
    iq.faults.drop_after_commit_next(1)
    codes = []
    for n in range(12):
        result, errors = submit(client_id, canonical(f"F{n:03d}", skus[n : n + 2]))
        assert result is not None, errors
        codes.append(f"F{n:03d}")
    wait_for(lambda: _orders("raised") >= 4, timeout=90, what="some orders raised")

    # The next orders are committed by IQ after the hub stopped waiting (its
    # timeout is 1 s): the outcome is unknown, so the retry must ask IQ first.
    def calls() -> int:
        # A raise, or the look-up that precedes a resend: both meet the slow IQ.
        return iq.faults.count("IQ_API_Submit_Document_Sales_Order") + iq.faults.count(
            "IQ_API_Request_GenericSQL"
        )

    before = calls()
    iq.faults.latency = 1.5
    wait_for(
        lambda: calls() >= before + 2 or _orders("raised") == 12,
        timeout=150,
        what="raises past the timeout",
    )
    time.sleep(2)
    iq.faults.latency = 0.0
    wait_for(lambda: _orders("raised") == 12, timeout=150, what="12 orders raised")
    _iq_orders_once(iq, codes)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
        assert s.scalar(select(func.max(Order.attempts))) >= 2


@pytest.fixture
def isync_server() -> Iterator[Any]:
    lines = [{**line, "WebSale": "Active"} for line in isync.generate_stock(300, 3, seed=6)]
    data = isync.IsyncData(lines)
    with isync.serve(data, password=ISYNC_PASSWORD) as server:
        yield server


def test_soap_erp_answers_garbage_truncated_and_wrong_content(
    hub_factory: Callable[..., Hub], isync_server: Any
) -> None:
    """iSync answers an HTML page, a SOAP fault, a cut-off envelope and JSON: retried, once each."""
    hub = hub_factory()
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source_id = upsert_source(
            s,
            client,
            "isync",
            "isync",
            {
                "service_url": isync_server.service_url,
                "username": isync_server.username,
                "password": ISYNC_PASSWORD,
                "page_size": 100,
                "timeout": 2,
            },
        ).id
    faults = isync_server.faults
    faults.garbage_next(1)  # an HTML "Service Unavailable" page with HTTP 200
    hub.start_worker(concurrency=2, name="w1")
    hub.start_beat()
    run_id = start_sync(source_id, "products", requested_by="test").run.id
    for arm, kind in (
        (lambda: faults.fault_next(1), "fault"),
        (lambda: faults.garbage_next(1, b'<s:Envelope xmlns:s="x"><s:Body><Execu'), "garbage"),
        (lambda: faults.garbage_next(1, b'{"error": "not xml"}'), "garbage"),
        (lambda: faults.fail_next(1, 502), "fail"),
    ):
        before = faults.injected().get(kind, 0)
        arm()
        wait_for(
            lambda k=kind, b=before: faults.injected().get(k, 0) > b or _wait_done(run_id),
            timeout=60,
            what=f"the {kind} answer",
        )
    run = _wait_run(run_id)
    assert run.status == "succeeded", run.error
    expected = {line["JobProductID"] for line in isync_server.data.stock_lines()}
    assert run.created == len(expected) and run.fetched == 900
    _assert_products_once(expected)
    assert sum(faults.injected().values()) >= 4
    assert ISYNC_PASSWORD not in hub.logs()


def _wait_done(run_id: int) -> bool:
    with session_scope() as s:
        return s.get(SyncRun, run_id).status != "running"


# --------------------------------------------------------------------------
# Redis and PostgreSQL
# --------------------------------------------------------------------------


def _sql_shop(hub: Hub, products: int = 2000) -> tuple[int, int, str, set[str]]:
    url = f"sqlite:///{hub.var_dir / 'erp.sqlite'}"
    sql_erp.seed(url, products=products, customers=5, seed=17)
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "erp",
            "sql",
            {
                "url": url,
                "default_customer_code": "CASH",
                "shipping_code": "SHIP",
                "page_size": 100,
            },
        )
        ids = client.id, source.id
    expected = set(_expected(sql_erp.generate_rows(products, 17)))
    return ids[0], ids[1], url, expected


def _sql_orders_once(erp_url: str, codes: list[str]) -> None:
    counts = sql_erp.order_counts(erp_url)
    assert (counts.headers, counts.orders) == (len(codes), len(codes)), counts
    with session_scope() as s:
        rows = s.execute(select(Order.channel_order_code, Order.document_number)).all()
    assert {code for code, _ in rows} == set(codes)
    assert all(document for _, document in rows)


def test_redis_restarted_mid_run_loses_and_duplicates_nothing(
    hub_factory: Callable[..., Hub], redis_url: str
) -> None:
    parsed = urlparse(redis_url)
    proxy = TcpProxy(parsed.port or 6379).start()
    hub = hub_factory(broker_url=redis_url.replace(f":{parsed.port}/", f":{proxy.port}/"))
    try:
        client_id, source_id, erp_url, expected = _sql_shop(hub)
        worker = hub.start_worker(concurrency=2, name="w1")
        beat = hub.start_beat()
        run_id = start_sync(source_id, "products", requested_by="test").run.id
        wait_for(lambda: _pages(run_id, "upserted") >= 3, timeout=60, what="pages upserted")

        # "Restart": every connection dropped, new ones refused, the queues lost.
        proxy.stop()
        redis.Redis.from_url(redis_url).flushdb()
        with session_scope() as s:
            skus = list(s.scalars(select(Variant.sku).order_by(Variant.sku).limit(10)))
        codes = []
        for n in range(5):  # orders taken while Redis is down are kept, not lost
            result, errors = submit(client_id, canonical(f"R{n:03d}", skus[n : n + 2]))
            assert result is not None, errors
            codes.append(f"R{n:03d}")
        time.sleep(3)
        proxy.start()
        # The same worker reconnects and serves (gossip, whose stop on the
        # dead connection made it exit, is off: s2s.cli.processes).
        time.sleep(2)
        assert worker.poll() is None, "the worker exited instead of reconnecting"
        if beat.poll() is not None:
            hub.start_beat()

        run = _wait_run(run_id, timeout=180)
        assert run.status == "succeeded", run.error
        assert run.created == len(expected) and run.updated == 0
        _assert_products_once(expected)
        wait_for(lambda: _orders("raised") == 5, timeout=120, what="5 orders raised")
        _sql_orders_once(erp_url, codes)
    finally:
        proxy.stop()


def test_one_worker_outlives_five_redis_cuts_while_syncs_and_orders_flow(
    hub_factory: Callable[..., Hub], redis_url: str
) -> None:
    """Redis cut (every connection dropped, new ones refused) for 3 s and
    restored, five times, while a sync runs and orders are raised: the same
    worker process serves throughout, the run succeeds with every product
    once, and every order is in the ERP once."""
    parsed = urlparse(redis_url)
    proxy = TcpProxy(parsed.port or 6379).start()
    hub = hub_factory(broker_url=redis_url.replace(f":{parsed.port}/", f":{proxy.port}/"))
    try:
        client_id, source_id, erp_url, expected = _sql_shop(hub, products=4000)
        worker = hub.start_worker(concurrency=2, name="w1")
        hub.start_beat()
        run_id = start_sync(source_id, "products", requested_by="test").run.id
        wait_for(lambda: _pages(run_id, "upserted") >= 2, timeout=60, what="pages upserted")
        with session_scope() as s:
            skus = list(s.scalars(select(Variant.sku).order_by(Variant.sku).limit(60)))
        codes: list[str] = []
        for cut in range(5):
            for n in range(6):  # orders keep arriving, before and during each cut
                code = f"C{cut}{n:02d}"
                result, errors = submit(client_id, canonical(code, skus[n * 2 : n * 2 + 2]))
                assert result is not None, errors
                codes.append(code)
            proxy.stop()
            time.sleep(3)
            proxy.start()
            time.sleep(2)
            assert worker.poll() is None, f"the worker exited at cut {cut + 1}"
        run = _wait_run(run_id, timeout=240)
        assert run.status == "succeeded", run.error
        _assert_products_once(expected)
        wait_for(lambda: _orders("raised") == len(codes), timeout=180, what="orders raised")
        _sql_orders_once(erp_url, codes)
        assert worker.poll() is None
    finally:
        proxy.stop()


def _terminate_hub_backends(database_url: str) -> int:
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def test_postgres_connections_dropped_mid_flow(hub_factory: Callable[..., Hub]) -> None:
    hub = hub_factory()
    client_id, source_id, erp_url, expected = _sql_shop(hub, products=3000)
    hub.start_worker(concurrency=2, name="w1")
    hub.start_beat()
    database_url = hub.env["S2S_DATABASE_URL"]
    run_id = start_sync(source_id, "products", requested_by="test").run.id
    wait_for(lambda: _pages(run_id, "upserted") >= 2, timeout=60, what="pages upserted")
    with session_scope() as s:
        skus = list(s.scalars(select(Variant.sku).order_by(Variant.sku).limit(30)))
    codes = []
    stop = threading.Event()
    terminated: list[int] = []

    def cut() -> None:
        while not stop.wait(0.7):
            terminated.append(_terminate_hub_backends(database_url))

    cutter = threading.Thread(target=cut, daemon=True)
    cutter.start()
    try:
        for n in range(10):
            for _attempt in range(5):  # this process's own connection may be cut too
                try:
                    result, errors = submit(client_id, canonical(f"P{n:03d}", skus[n : n + 2]))
                    break
                except Exception:  # the test process's own session, cut on purpose
                    time.sleep(0.2)
            else:
                pytest.fail("could not submit an order while connections were being cut")
            assert result is not None, errors
            codes.append(f"P{n:03d}")
        time.sleep(3)
    finally:
        stop.set()
        cutter.join()
        dispose_all()  # this process's pooled connections were cut too
    assert sum(terminated) > 0, "no backend was ever terminated"
    run = _wait_run(run_id, timeout=180)
    assert run.status == "succeeded", run.error
    assert run.created == len(expected) and run.updated == 0
    _assert_products_once(expected)
    wait_for(lambda: _orders("raised") == 10, timeout=120, what="10 orders raised")
    _sql_orders_once(erp_url, codes)
