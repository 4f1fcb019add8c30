"""A network partition: two worker hosts, one cut off mid-run and mid-raise.

Each host is a network namespace on a bridge (``tests.netns``); PostgreSQL,
Redis and the ERP stay on the machine and are reached through proxies on the
bridge's address, as worker machines reach a database server. One host's link
goes down for longer than the broker's visibility timeout (its packets are
lost, its connections hang), first while a product sync runs, then while
orders are raised; then it comes back. The other host must finish the work,
and the cut host's late work must change nothing: every product count exact,
every order in the ERP once.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from emulators import sql_erp
from hub import order_states
from hub.db import session_scope
from hub.models import Order, Product, SyncRun, Variant
from tests.conftest import PG_PORT, Hub, _make_hub, unavailable, wait_for
from tests.faults import TcpProxy
from tests.integration.test_orders_e2e import (
    Shop,
    _assert_exactly_once,
    _count,
    _submit_many,
    slow_erp,
)
from tests.integration.test_sync_e2e import _expected
from tests.netns import Lan, NetnsUnavailable
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

PRODUCTS = 3000
SEED = 7
# The broker gives a task a worker took but never acknowledged to another
# after this many seconds; the cut lasts longer. Tasks' time limit is half of
# it (the hub's rule), above the database's own network limits (hub.db).
VISIBILITY = 60
TIME_LIMIT = VISIBILITY // 2
# Long enough for the other host to take over everything the cut one held:
# its leases (orders 12 s, slots 8 s), and the rows its open transactions
# lock, which PostgreSQL frees when it ends them (hub 15 s here, ERP 30 s).
CUT = VISIBILITY + 30
_TASK = re.compile(r"Task (s2s\.[\w.]+)\[([0-9a-f-]+)\] (received|succeeded|failed|retry|raised)")


def _in_flight(log: Path, prefix: str) -> set[str]:
    """Tasks named ``prefix``... a worker's log shows received and not ended."""
    open_ids: set[str] = set()
    for name, task_id, what in _TASK.findall(log.read_text(errors="replace")):
        if not name.startswith(prefix):
            continue
        if what == "received":
            open_ids.add(task_id)
        else:
            open_ids.discard(task_id)
    return open_ids


@pytest.fixture
def lan() -> Iterator[Lan]:
    net = Lan()
    try:
        net.start("a", "b")
    except NetnsUnavailable as exc:
        net.stop()
        unavailable(f"worker hosts cannot be made: {exc}")
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def partition_hub(
    lan: Lan, postgres_db: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Hub, dict[str, str], TcpProxy]]:
    """The hub (this process and beat on the machine), the worker hosts' env
    (services through the bridge) and the ERP's proxy (slowed at will)."""
    pg = TcpProxy(PG_PORT, host=lan.server).start()
    redis_port = int(redis_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    broker = TcpProxy(redis_port, host=lan.server).start()
    erp = TcpProxy(PG_PORT, host=lan.server).start()
    database_url = postgres_db()
    hubs = _make_hub(
        {
            "S2S_DATABASE_URL": database_url,
            "S2S_BROKER_URL": redis_url,
            "S2S_VISIBILITY_TIMEOUT": str(VISIBILITY),
            "S2S_TASK_TIME_LIMIT": str(TIME_LIMIT),
            "S2S_RETRY_BASE": "0.3",
            "S2S_RETRY_CAP": "5",
            "S2S_STALE_AFTER": "6",
            "S2S_SWEEP_EVERY": "2",
            "S2S_ORDER_STALE_AFTER": "4",
            "S2S_ORDER_LEASE": "12",
            "S2S_SLOT_LEASE": "8",
            "S2S_PAGE_SIZE": "100",
            "S2S_DB_IDLE_TRANSACTION_TIMEOUT": "15",
        },
        tmp_path,
        monkeypatch,
    )
    hub = next(hubs)
    local = f"127.0.0.1:{PG_PORT}"
    remote = dict(hub.env)
    remote["S2S_DATABASE_URL"] = database_url.replace(local, f"{lan.server}:{pg.port}")
    remote["S2S_BROKER_URL"] = redis_url.replace(
        f"127.0.0.1:{redis_port}", f"{lan.server}:{broker.port}"
    )
    assert remote["S2S_DATABASE_URL"] != database_url, database_url
    assert remote["S2S_BROKER_URL"] != redis_url, redis_url
    try:
        yield hub, remote, erp
    finally:
        for proxy in (pg, broker, erp):
            proxy.stop()
        next(hubs, None)


def _run(run_id: int) -> SyncRun:
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None
        s.expunge(run)
        return run


def _holding(hub: Hub, host: str, prefix: str) -> None:
    """Wait until ``host``'s worker is in the middle of a ``prefix`` task."""
    log = hub.var_dir / f"worker-{host}.log"
    wait_for(
        lambda: _in_flight(log, prefix),
        timeout=120,
        interval=0.02,
        what=f"host {host} working on a {prefix} task",
    )


def _partition(lan: Lan, host: str, finished: Callable[[], Any], what: str) -> Any:
    """Cut ``host`` off for CUT seconds; the work must be ``finished`` by the
    other host before the cut ends."""
    lan.cut(host)
    started = time.monotonic()
    try:
        try:
            done = wait_for(finished, timeout=CUT, what=f"{what} while host {host} is cut off")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; orders by status: {_by_status()}") from None
        time.sleep(max(0.0, CUT - (time.monotonic() - started)))
    finally:
        lan.restore(host)
    return done


def _by_status() -> dict[str, int]:
    with session_scope() as s:
        rows = s.execute(select(Order.status, func.count()).group_by(Order.status)).all()
    return {status: n for status, n in rows}


def _settled(broker_url: str) -> None:
    """Wait until the broker holds no task a worker took and did not
    acknowledge: the cut host's tasks have been restored and run again (or
    acknowledged late), so whatever they could change has happened."""
    client = redis.Redis.from_url(broker_url)
    try:
        wait_for(
            lambda: client.hlen("unacked") == 0 and client.llen("orders") == 0,
            timeout=240,
            what="the broker to hold no unacknowledged task",
        )
    finally:
        client.close()


def _serving(hub: Hub, workers: dict[str, Any]) -> None:
    """Each host's worker answers as the same process it started as, and no
    worker log shows a fatal error (a worker can log one and hang on)."""
    from workers.app import app

    for host, proc in workers.items():
        assert proc.poll() is None, f"the worker on host {host} exited"
        name = f"{host}@{socket.gethostname()}"
        stats = wait_for(
            lambda name=name: app.control.inspect(destination=[name], timeout=3).stats(),
            timeout=60,
            what=f"worker {name} to answer",
        )
        assert stats[name]["pid"] == proc.pid, (host, stats[name]["pid"], proc.pid)
    logs = hub.logs()
    assert "Unrecoverable error" not in logs, logs[logs.index("Unrecoverable error") - 2000 :]


def test_partitioned_host_changes_nothing_and_the_other_finishes(
    lan: Lan, partition_hub: tuple[Hub, dict[str, str], TcpProxy], postgres_db: Any
) -> None:
    hub, remote, erp_proxy = partition_hub
    erp_url = postgres_db("s2s_erp")
    sql_erp.create_schema(erp_url)
    sql_erp.seed(erp_url, products=PRODUCTS, customers=5, seed=SEED)
    erp_remote = erp_url.replace(f"127.0.0.1:{PG_PORT}", f"{lan.server}:{erp_proxy.port}")
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "erp",
            "sql",
            {
                "url": erp_remote,
                "default_customer_code": "CASH",
                "shipping_code": "SHIP",
                "page_size": 100,
            },
        )
        client_id, source_id = client.id, source.id
    workers = {
        host: hub.start_worker(name=host, prefix=lan.run_in(host), env=remote)
        for host in ("a", "b")
    }
    hub.start_beat()

    # 1. Mid-run: the ERP answers slowly, so the sync's pages are spread
    # over both hosts for a while; host a is cut holding one.
    erp_proxy.delay = 0.05
    run_id = start_sync(source_id, "products", requested_by="test").run.id
    _holding(hub, "a", "s2s.sync.")
    run = _partition(
        lan, "a", lambda: (r := _run(run_id)).status != "running" and r, "the sync run"
    )
    erp_proxy.delay = 0.0
    assert run.status == "succeeded", run.error
    rows = sql_erp.generate_rows(PRODUCTS, SEED)
    expected = _expected(rows)
    summary = sql_erp.summarize(rows)
    assert run.fetched == summary.rows
    assert run.created == len(expected), (run.created, len(expected))
    assert (run.updated, run.quarantined) == (0, summary.bad)
    _serving(hub, workers)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == len(expected)
        assert s.scalar(select(func.count()).select_from(Variant)) == sum(
            len(p["variants"]) for p in expected.values()
        )

    # 2. Mid-raise: orders flow into a slow ERP; whichever host is raising
    # is cut off holding the source's batch.
    slow_erp(erp_url, 0.02)
    skus = sorted(sku for p in expected.values() for sku in p["variants"])
    shop = Shop(hub, erp_url, client_id, source_id, skus)
    codes = _submit_many(shop, 150)
    logs = {h: hub.var_dir / f"worker-{h}.log" for h in workers}
    raising = wait_for(
        lambda: next((h for h, log in logs.items() if _in_flight(log, "s2s.orders.drain")), None),
        timeout=120,
        interval=0.02,
        what="a host raising orders",
    )
    assert _count(order_states.RAISED) < 150
    _partition(lan, raising, lambda: _count(order_states.RAISED) == 150, "150 orders raised")
    # The cut host's late answers and its redelivered tasks come after the
    # other host finished: once they have all run, nothing may have changed.
    _settled(hub.env["S2S_BROKER_URL"])
    _assert_exactly_once(shop, codes)
    assert _run(run_id).created == len(expected)
    _serving(hub, workers)
