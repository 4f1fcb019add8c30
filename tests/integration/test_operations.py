"""Operations: horizontal scale, schedules with two beats, resyncs, status, metrics.

Worker and beat processes are started the way operators start them
(``s2s worker``, ``s2s beat``), against PostgreSQL and Redis; status is
also checked on the embedded default, whose broker cannot broadcast.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from starlette.testclient import TestClient

from emulators import sql_erp
from hub.db import session_scope
from hub.models import DeadLetter, Order, Product, SourceStream, SyncRun, utcnow
from tests.conftest import ROOT, Hub, wait_for
from tests.integration.test_sync_e2e import _expected
from workers.sources import upsert_client, upsert_source
from workers.tasks import dispatch_due, start_sync

SEED = 11


def _client_source(hub: Hub, code: str, products: int, page_size: int = 50) -> tuple[int, str]:
    """A client with its own SQL ERP (a SQLite file); returns the source id and its token."""
    url = f"sqlite:///{hub.var_dir / f'erp-{code}.sqlite'}"
    sql_erp.create_schema(url)
    sql_erp.seed(url, products=products, customers=5, seed=SEED)
    with session_scope() as s:
        client, token = upsert_client(s, code)
        source = upsert_source(s, client, "erp", "sql", {"url": url, "page_size": page_size})
        return source.id, token or ""


def _s2s_worker(hub: Hub, name: str, queues: str, concurrency: int = 2) -> subprocess.Popen[bytes]:
    """``s2s worker`` as an operator runs it, in its own process group (to SIGKILL)."""
    log = (hub.var_dir / f"worker-{name}.log").open("ab")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "s2s.cli", "worker", "-Q", queues, "-c", str(concurrency)),
            *("--name", f"{name}@%h", "--no-events"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=hub.env,
        cwd=ROOT,
        start_new_session=True,
    )
    hub.workers.append(proc)
    hub._wait_ready(name, proc)
    return proc


def _s2s_beat(hub: Hub, name: str) -> subprocess.Popen[bytes]:
    log = (hub.var_dir / f"beat-{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s.cli", "beat"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=hub.env,
        cwd=ROOT,
    )
    hub.workers.append(proc)
    return proc


def _runs(source_id: int) -> list[SyncRun]:
    with session_scope() as s:
        return list(
            s.scalars(select(SyncRun).where(SyncRun.source_id == source_id).order_by(SyncRun.id))
        )


@pytest.fixture
def ops_hub(
    postgres_db: Any, redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """PostgreSQL and Redis, with beat's intervals short enough for a test."""
    from tests.conftest import _make_hub

    yield from _make_hub(
        {
            "S2S_DATABASE_URL": postgres_db(),
            "S2S_BROKER_URL": redis_url,
            "S2S_DISPATCH_EVERY": "1",
            "S2S_SWEEP_EVERY": "2",
            "S2S_STALE_AFTER": "5",
        },
        tmp_path,
        monkeypatch,
    )


@pytest.mark.services
@pytest.mark.slow
def test_three_workers_three_clients_in_parallel_one_killed_loses_nothing(ops_hub: Hub) -> None:
    hub = ops_hub
    products = 2500
    expected = _expected(sql_erp.generate_rows(products, SEED))
    sources = {code: _client_source(hub, code, products)[0] for code in ("c1", "c2", "c3")}
    # Different queues per worker, each queue served by two of them: losing
    # any one worker leaves every queue served.
    victim = _s2s_worker(hub, "a", "fetch,map")
    _s2s_worker(hub, "b", "map,upsert,maintenance")
    _s2s_worker(hub, "c", "upsert,fetch,maintenance")
    _s2s_beat(hub, "only")  # its sweeper resumes what the killed worker held

    run_ids = {
        code: start_sync(sid, "products", requested_by="test").run.id
        for code, sid in sources.items()
    }

    def all_progressing() -> bool:
        with session_scope() as s:
            runs = [s.get(SyncRun, rid) for rid in run_ids.values()]
            return all(r.status == "running" and r.pages_done >= 3 for r in runs)

    # Parallel: at one moment every client's run has landed pages and none has finished.
    wait_for(all_progressing, timeout=120, interval=0.05, what="three runs progressing at once")
    # Kill the worker while it holds a task, as a crash would find it.
    wait_for(lambda: _in_flight(hub, "a"), timeout=30, interval=0.01, what="a task on worker a")
    hub.kill(victim)
    lost = _in_flight(hub, "a")
    assert lost, "worker a held no task when killed"
    with session_scope() as s:
        assert all(s.get(SyncRun, rid).status == "running" for rid in run_ids.values())

    status = hub.run_cli("status")
    assert status.returncode == 0, status.stderr
    assert "workers: 2 online" in status.stdout
    assert re.search(r"b@\S+: maintenance, map, upsert", status.stdout), status.stdout

    def finished() -> list[SyncRun] | None:
        with session_scope() as s:
            runs = [s.get(SyncRun, rid) for rid in run_ids.values()]
            return runs if all(r.status != "running" for r in runs) else None

    runs = wait_for(finished, timeout=240, what="the runs to finish on the other workers")
    for run in runs:
        assert run.status == "succeeded", run.error
        assert (run.created, run.updated) == (len(expected), 0), run.id
    with session_scope() as s:
        for sid in sources.values():
            count = s.scalar(select(func.count()).where(Product.source_id == sid))
            assert count == len(expected)
    # What the killed worker held came back through the sweeper.
    assert "resumed stalled run" in hub.logs(), lost


_RECEIVED = re.compile(r"Task (\S+)\[([0-9a-f-]+)\] received")
_ENDED = re.compile(r"Task \S+\[([0-9a-f-]+)\] (?:succeeded|retry|raised|failed)")


def _in_flight(hub: Hub, name: str) -> list[str]:
    """Tasks the worker's log shows received and not yet ended."""
    text = (hub.var_dir / f"worker-{name}.log").read_text(errors="replace")
    ended = set(_ENDED.findall(text))
    return [f"{n}[{i}]" for n, i in _RECEIVED.findall(text) if i not in ended]


@pytest.mark.services
@pytest.mark.slow
def test_two_beats_start_each_due_run_once_and_follow_schedule_changes(ops_hub: Hub) -> None:
    hub = ops_hub
    ids = {
        code: _client_source(hub, code, 100, page_size=100)[0] for code in ("d1", "d2", "d3", "d4")
    }
    now = utcnow()
    with session_scope() as s:
        for code in ("d1", "d2", "d3"):
            s.execute(
                update(SourceStream)
                .where(SourceStream.source_id == ids[code], SourceStream.stream == "products")
                .values(interval_seconds=3600, next_due_at=now - timedelta(seconds=1))
            )
    assert hub.run_cli("pause", "d3", "erp").returncode == 0
    _s2s_worker(hub, "w", "maintenance,fetch,map,upsert")
    _s2s_beat(hub, "one")
    _s2s_beat(hub, "two")
    start = utcnow()
    # A schedule set while both beats run is honoured without restarting them.
    changed = hub.run_cli("schedule", "d4", "erp", "products", "10s")
    assert changed.returncode == 0 and "every 10s" in changed.stdout, changed.stderr
    time.sleep(4)
    assert _runs(ids["d3"]) == []  # paused: due, but not started
    resumed_at = utcnow()
    assert "resumed customers, products" in hub.run_cli("resume", "d3", "erp").stdout
    time.sleep(12)

    def scheduled(code: str) -> list[SyncRun]:
        return [r for r in _runs(ids[code]) if r.requested_by == "schedule"]

    assert len(scheduled("d1")) == 1 and len(scheduled("d2")) == 1
    assert len(scheduled("d3")) == 1 and scheduled("d3")[0].created_at >= resumed_at
    d4 = scheduled("d4")
    assert len(d4) == 1, [r.created_at for r in d4]
    assert d4[0].created_at >= start + timedelta(seconds=9)
    # Both beats were really sending the dispatcher all along.
    for name in ("one", "two"):
        sent = (hub.var_dir / f"beat-{name}.log").read_text().count("dispatch-due")
        assert sent >= 8, f"beat {name} sent dispatch-due {sent} times"


@pytest.mark.services
def test_dispatch_honours_cron_pause_and_schedule_edits(pg_hub: Hub) -> None:
    hub = pg_hub
    sid, _ = _client_source(hub, "acme", 20)
    ok = hub.run_cli("schedule", "acme", "erp", "products", "*/5 * * * *")
    assert ok.returncode == 0, ok.stderr
    with session_scope() as s:
        row = s.scalars(
            select(SourceStream).where(
                SourceStream.source_id == sid, SourceStream.stream == "products"
            )
        ).one()
        assert row.cron == "*/5 * * * *" and row.interval_seconds is None
        assert row.next_due_at.minute % 5 == 0 and row.next_due_at > utcnow()
        row.next_due_at = utcnow() - timedelta(seconds=1)
    assert dispatch_due() == 1
    with session_scope() as s:
        row = s.scalars(
            select(SourceStream).where(
                SourceStream.source_id == sid, SourceStream.stream == "products"
            )
        ).one()
        # The next cron slot, not "now + an interval".
        assert row.next_due_at.minute % 5 == 0 and row.next_due_at.second == 0
        assert row.next_due_at - utcnow() <= timedelta(minutes=5)
    bad = hub.run_cli("schedule", "acme", "erp", "products", "61 * * * *")
    assert bad.returncode == 1 and "outside 0-59" in bad.stderr
    off = hub.run_cli("schedule", "acme", "erp", "products", "off")
    assert "on demand" in off.stdout
    with session_scope() as s:
        assert (
            s.scalar(
                select(SourceStream.next_due_at).where(
                    SourceStream.source_id == sid, SourceStream.stream == "products"
                )
            )
            is None
        )


@pytest.mark.services
def test_resync_while_active_is_refused_or_queued_and_says_which(pg_hub: Hub) -> None:
    hub = pg_hub
    sid, token = _client_source(hub, "acme", 300, page_size=100)
    first = hub.run_cli("resync", "acme", "erp")
    assert "run 1 started" in first.stdout, first.stderr
    refused = hub.run_cli("resync", "acme", "erp", "--full")
    assert "run 1 is already active" in refused.stdout and "--queue" in refused.stdout
    queued = hub.run_cli("resync", "acme", "erp", "--queue", "--since", "2026-01-01")
    assert "run 1 is active" in queued.stdout and "queued" in queued.stdout
    api = TestClient(__import__("s2s.api", fromlist=["create_app"]).create_app())
    auth = {"Authorization": f"Bearer {token}"}
    url = "/api/v1/clients/acme/sources/erp/resync"
    answer = api.post(url, headers=auth, json={"stream": "products", "queue": True, "full": True})
    assert answer.status_code == 202 and answer.json()["queued"] is True
    assert "queued" in answer.json()["message"]
    bad = api.post(url, headers=auth, json={"since": "last tuesday"})
    assert bad.status_code == 400 and "since" in bad.json()["error"]
    # The queued requests merged into one: full wins.
    assert dispatch_due() == 0  # run 1 is still active: nothing starts
    hub.start_worker()
    wait_for(lambda: _runs(sid)[0].status != "running", timeout=60, what="run 1")
    assert dispatch_due() == 1
    runs = _runs(sid)
    assert len(runs) == 2 and runs[1].full is True and runs[1].requested_by == "api"
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(SourceStream.queued_at.is_not(None))) == 0
    status = api.get("/api/v1/clients/acme/status", headers=auth).json()
    products = next(x for x in status["streams"] if x["stream"] == "products")
    assert products["last_run"]["id"] == runs[1].id and products["paused"] is False


def _dead_letter(client_code: str) -> None:
    with session_scope() as s:
        from hub.models import Client

        cid = s.scalars(select(Client.id).where(Client.code == client_code)).one()
        order = Order(
            client_id=cid,
            channel="api",
            channel_order_code="X1",
            instruction="add_order",
            status="dead",
            order={},
        )
        s.add(order)
        s.flush()
        s.add(
            DeadLetter(
                order_id=order.id,
                client_id=cid,
                stage="raise",
                error_class="Rejected",
                message="no",
                fix="fix it",
            )
        )


@pytest.mark.services
@pytest.mark.parametrize("shape", ["pg_hub", "embedded_hub"])
def test_status_shows_queues_dead_letters_and_workers(
    shape: str, request: pytest.FixtureRequest
) -> None:
    hub: Hub = request.getfixturevalue(shape)
    _client_source(hub, "acme", 50)
    assert hub.run_cli("schedule", "acme", "erp", "customers", "1h").returncode == 0
    _dead_letter("acme")
    assert "started" in hub.run_cli("resync", "acme", "erp").stdout
    before = hub.run_cli("status")
    assert before.returncode == 0, before.stderr
    out = before.stdout
    assert "fetch=1" in out  # the first fetch waits: no worker yet
    assert "workers: none online" in out
    assert "dead letters: 1 open" in out
    assert re.search(r"customers\s+│\s+every 1h\s+│\s+no", out), out
    hub.start_worker(queues="maintenance,fetch,map,upsert", name="solo")
    wait_for(lambda: _runs(_source_id("acme"))[0].status == "succeeded", timeout=60, what="run")
    after = hub.run_cli("status").stdout
    assert "fetch=0" in after and "workers: 1 online" in after
    assert re.search(r"solo@\S+: fetch, maintenance, map, upsert", after), after
    runs = hub.run_cli("runs", "acme", "erp")
    assert re.search(r"│\s+1 │ products │ succeeded .*│\s+(\d+)/\1 │", runs.stdout), runs.stdout


def _source_id(client_code: str) -> int:
    from hub.models import Client, Source

    with session_scope() as s:
        return s.scalars(
            select(Source.id)
            .join(Client, Client.id == Source.client_id)
            .where(Client.code == client_code)
        ).one()


@pytest.mark.services
def test_metrics_endpoint_in_prometheus_text_format(pg_hub: Hub) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from s2s.api import create_app

    hub = pg_hub
    sid, _ = _client_source(hub, "acme", 60)
    _dead_letter("acme")
    hub.start_worker(name="m")
    run_id = start_sync(sid, "products", requested_by="test").run.id
    wait_for(lambda: _runs(sid)[0].status == "succeeded", timeout=60, what=f"run {run_id}")
    response = TestClient(create_app()).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    run = _runs(sid)[0]
    assert samples[("s2s_sync_runs_total", (("status", "succeeded"), ("stream", "products")))] == 1
    key = ("s2s_sync_records_total", (("outcome", "created"), ("stream", "products")))
    assert samples[key] == run.created > 0
    assert samples[("s2s_orders", (("state", "dead"),))] == 1
    assert samples[("s2s_dead_letters", (("status", "open"),))] == 1
    assert samples[("s2s_queue_depth", (("queue", "fetch"),))] == 0
    assert samples[("s2s_workers_online", ())] == 1
    assert samples[("s2s_broker_up", ())] == 1
    assert "acme" not in response.text  # aggregates only: no client names
