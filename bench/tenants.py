"""The tenants benchmark: one sync worker serving N clients, each with its own ERP.

``python -m bench.tenants --tenants N [--runs 3] [--json PATH] [--big 100000]
[--small-products 200]`` (also ``python -m bench.run --tenants N ...``).

Why this shape: the hub is multi-tenant, and what breaks first with many
tenants is not one big sync but many small ones at once: every tenant's
connector holding an idle connection to its own ERP until the ERP's server
refuses new ones, sockets and memory growing with the number of tenants a
worker has served, one big catalogue holding everyone else's runs back.
Issue #14 asks for figures on exactly that, so the benchmark builds it:

- one PostgreSQL "ERP server" holding one schema per tenant (``t0001``,
  ``t0002``, ...), each with the SQL ERP emulator's tables and
  ``--small-products`` products of its own (a seed per tenant), plus one big
  client (schema ``big``) with ``--big`` products. Each tenant's source has
  its own connection URL (``?application_name=t0001``), so the worker builds
  one connector and engine per tenant, as on a real deployment where every
  client's ERP is a different server; ``pg_stat_activity`` then also says
  which tenant a connection is held for;
- a fresh hub database, Redis db 15 (``BENCH_REDIS_URL``), one
  ``s2s worker --profile sync -c 2`` and one ``s2s api`` subprocess; the
  clients and sources are registered with the hub's own functions;
- every phase is started through the door a user uses: ``POST
  /api/v1/clients/{client}/sources/erp/resync`` with the client's own bearer
  token, 16 requests in flight at once (``httpx.AsyncClient``).

Phases, each "all at once":

1. the first sync of all N tenants;
2. all N resynced unchanged with ``{"full": true}``: the SQL template has no
   modified column, so every run re-reads all of its tenant's rows (the
   figures show ``fetched`` against the rows seeded);
3. the big client's full sync started, and as soon as it has read its first
   page all N small ones resynced as in phase 2; the big run's own time too;
4. beat's dispatcher: N streams made due (interval schedule, ``next_due_at``
   in the past) and ``workers.tasks.dispatch_due()`` timed in this process
   against the bench's hub database and broker, then the runs it started
   followed to the end like the phases above.

A 10-tenant control (phases 1 and 2, fresh databases and a fresh worker) runs
first in the same invocation, so that the worker's RSS at N tenants can be
held against its RSS at 10.

Per phase: runs/s = N / (first request sent -> last small run finished);
latency per run from the hub's ``sync_runs`` row (``finished_at -
created_at``) and from the request being sent (``finished_at`` - the
bench's clock when it sent the request; same machine, same clock); failed
runs (status != succeeded) with their first errors; and at the end of the
phase the ERP connections (``pg_stat_activity`` rows for the ERP database;
the worker is the only thing that connects to it), the worker's open
sockets (``socket:`` links in ``/proc/PID/fd`` of the main process and each
pool child) and the pool children's peak (VmHWM) and current (VmRSS) RSS.

Everything created is removed on exit, Ctrl-C, SIGTERM or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.run import (
    REDIS_URL,
    ROOT,
    SEED,
    Env,
    _children,
    _git_commit,
    _percentile,
    _pg_dsn,
    _pg_url,
    _proc_status,
    _say,
    _terminate_as_interrupt,
    _timed,
    _versions,
    cleaned_up,
    combine,
    machine_facts,
)

# Targets from issue #14, for N = 1,000 tenants on this 2-core machine. They
# are printed beside the figures, never asserted.
TARGET_TENANTS = 1_000
TARGET_FAILED = 0
TARGET_FIRST_RPS = 20.0
TARGET_UNCHANGED_RPS = 60.0
TARGET_P99_RATIO = 2.0  # phase 3's small runs' p99 over phase 2's
TARGET_RSS_RATIO = 1.2  # pool children's RSS at N tenants over at 10

CONTROL_TENANTS = 10
HTTP_CONCURRENCY = 16
# The emulator's tables, created in every tenant's schema.
TABLES = ("products", "customers", "s2s_order", "s2s_order_line")
PRODUCT_COLUMNS = ("Prod", "SKU", "WebName", "product_active", "qty", "price")
BIG = "big"
# Commit the schemas' DDL every so many tenants: one transaction creating a
# thousand schemas would need more locks than the server's lock table holds.
DDL_BATCH = 25
ERRORS_SHOWN = 5
# Settings a user may set for the worker (they reach it through Env's
# environment); recorded with the results when set.
PASSED_THROUGH = ("S2S_CONNECTOR_CACHE", "S2S_RUN_PAGES_IN_FLIGHT")


@dataclass(frozen=True)
class Tenant:
    """One client of the hub: its code (also its ERP schema), token and source."""

    code: str
    token: str
    source_id: int
    rows: int
    products: int


@dataclass(frozen=True)
class Sent:
    """One resync request as the bench saw it (epoch seconds, bench clock)."""

    tenant: str
    sent: float
    answered: float
    status: int
    run_id: int | None
    started: bool
    error: str | None


# --------------------------------------------------------------------------
# Setup: the ERP schemas, the hub's clients, the API process
# --------------------------------------------------------------------------


def _check_redis_url() -> None:
    """Refuse Redis databases other benchmark runs use (11 and 13)."""
    path = urllib.parse.urlparse(REDIS_URL).path.strip("/") or "0"
    if path in ("11", "13"):
        raise SystemExit(f"BENCH_REDIS_URL {REDIS_URL} uses db {path}: other runs use 11 and 13")


def tenant_codes(n: int) -> list[str]:
    """``t0001`` ... : client codes and ERP schema names, sorted as numbers."""
    width = max(4, len(str(n)))
    return [f"t{i:0{width}d}" for i in range(1, n + 1)]


def seed_erp(erp_db: str, schemas: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Create each schema with the emulator's tables and COPY its products in.

    The tables are the emulator's own (``sql_erp.create_schema`` into a
    template schema, then ``CREATE TABLE ... (LIKE tpl.x INCLUDING ALL)`` per
    tenant) and the rows its ``generate_rows`` with a seed per schema, so
    each tenant has a catalogue of its own. All of it goes through one
    connection: a thousand engines, or a thousand row-by-row INSERTs, would
    make the setup longer than the benchmark. Returns schema -> (rows,
    products).
    """
    import psycopg

    from emulators import sql_erp

    with psycopg.connect(_pg_dsn(erp_db), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tpl")
    sql_erp.create_schema(_pg_url(erp_db), *(f"tpl.{t}" for t in TABLES))
    counts: dict[str, tuple[int, int]] = {}
    columns = ", ".join(f'"{c}"' for c in PRODUCT_COLUMNS)
    with psycopg.connect(_pg_dsn(erp_db)) as conn:
        for i, (schema, products) in enumerate(schemas.items(), 1):
            ddl = f'CREATE SCHEMA "{schema}";' + "".join(
                f'CREATE TABLE "{schema}"."{t}" (LIKE tpl."{t}" INCLUDING ALL);' for t in TABLES
            )
            conn.execute(ddl.encode())
            rows = sql_erp.generate_rows(products, seed=SEED + i)
            with conn.cursor().copy(f'COPY "{schema}".products ({columns}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row([row[c] for c in PRODUCT_COLUMNS])
            counts[schema] = (len(rows), len({row["Prod"] for row in rows}))
            if i % DDL_BATCH == 0:
                conn.commit()
        conn.commit()
    return counts


def source_settings(erp_db: str, schema: str, page_size: int) -> dict[str, Any]:
    """The SQL source of one tenant: its own URL (so its own engine) and tables."""
    return {
        "url": f"{_pg_url(erp_db)}?application_name={schema}",
        "page_size": page_size,
        "products_table": f"{schema}.products",
        "customers_table": f"{schema}.customers",
        "order_table": f"{schema}.s2s_order",
        "order_line_table": f"{schema}.s2s_order_line",
        "default_customer_code": "CASH",
        "shipping_code": "SHIP",
    }


def register(erp_db: str, counts: dict[str, tuple[int, int]], page_size: int) -> dict[str, Tenant]:
    """Each schema as a client with one SQL source ``erp``, as ``s2s client add`` does."""
    from hub.db import session_scope
    from workers.sources import upsert_client, upsert_source

    made: list[tuple[str, str, Any]] = []
    with session_scope() as s:
        for code in counts:
            client, token = upsert_client(s, code, f"Tenant {code}")
            if token is None:
                raise RuntimeError(f"client {code} already existed: the hub database is not fresh")
            source = upsert_source(
                s, client, "erp", "sql", source_settings(erp_db, code, page_size)
            )
            made.append((code, token, source))
        s.flush()
        return {code: Tenant(code, token, source.id, *counts[code]) for code, token, source in made}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(env: Env) -> str:
    """``s2s api`` on a free port, in its own process group; its base URL once it answers.

    The process goes into ``env.workers`` so that ``Env.close`` stops it with
    the workers, whatever happens.
    """
    import subprocess

    import httpx

    port = _free_port()
    log_path = env.var_dir / "api.log"
    cmd = [sys.executable, "-m", "s2s.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env.env, cwd=ROOT, start_new_session=True
        )
    env.workers.append(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"s2s api exited:\n{log_path.read_text()[-3000:]}")
        try:
            httpx.get(base + "/health", timeout=5)
            return base
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"s2s api not answering:\n{log_path.read_text()[-3000:]}")


# --------------------------------------------------------------------------
# Triggering and following runs
# --------------------------------------------------------------------------


async def _post_all(base: str, tenants: list[Tenant], body: dict[str, Any]) -> list[Sent]:
    import httpx

    limits = httpx.Limits(
        max_connections=HTTP_CONCURRENCY, max_keepalive_connections=HTTP_CONCURRENCY
    )
    gate = asyncio.Semaphore(HTTP_CONCURRENCY)

    async def one(http: httpx.AsyncClient, tenant: Tenant) -> Sent:
        async with gate:
            sent = time.time()
            try:
                response = await http.post(
                    f"/api/v1/clients/{tenant.code}/sources/erp/resync",
                    json=body,
                    headers={"Authorization": f"Bearer {tenant.token}"},
                )
            except httpx.HTTPError as exc:
                return Sent(tenant.code, sent, time.time(), 0, None, False, repr(exc))
            answered = time.time()
            try:
                data = response.json()
            except ValueError:
                data = {}
            error = None if response.status_code == 202 else response.text[:300]
            return Sent(
                tenant.code,
                sent,
                answered,
                response.status_code,
                data.get("run"),
                bool(data.get("started")),
                error,
            )

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=300) as http:
        return list(await asyncio.gather(*(one(http, t) for t in tenants)))


def resync_all(base: str, tenants: list[Tenant], full: bool) -> list[Sent]:
    """One resync request per tenant, ``HTTP_CONCURRENCY`` in flight, as clients' tools would."""
    return asyncio.run(_post_all(base, tenants, {"full": True} if full else {}))


def _run_columns() -> tuple[str, ...]:
    """The ``sync_runs`` columns the figures read; the counters named once, in hub.runs."""
    from hub.runs import RECORD_OUTCOMES

    return ("id", "source_id", "status", "created_at", "finished_at", *RECORD_OUTCOMES, "error")


def wait_runs(hub_db: str, run_ids: list[int], label: str, timeout: float) -> list[dict[str, Any]]:
    """Poll ``sync_runs`` until none of ``run_ids`` is running; their rows then.

    Plain psycopg, one connection: the bench's polling should cost the
    machine as little as it can while the worker is measured.
    """
    import psycopg

    from hub.runs import ACTIVE

    deadline = time.monotonic() + timeout
    said = time.monotonic()
    with psycopg.connect(_pg_dsn(hub_db), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM sync_runs WHERE id = ANY(%s) AND status = %s",
                (run_ids, ACTIVE),
            ).fetchone()
            left = int(row[0]) if row else 0
            if left == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: {left} runs still running after {timeout:.0f}s")
            if time.monotonic() - said > 15:
                _say(f"{label}: {len(run_ids) - left}/{len(run_ids)} runs finished")
                said = time.monotonic()
            time.sleep(0.2)
        columns = _run_columns()
        cur = conn.execute(
            f"SELECT {', '.join(columns)} FROM sync_runs WHERE id = ANY(%s)", (run_ids,)
        )
        return [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]


def _sockets(pid: int) -> int | None:
    """Open sockets of one process: ``socket:[inode]`` links under /proc/PID/fd."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    count = 0
    for fd in fds:
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return count


def resources(worker_pid: int, erp_db: str) -> dict[str, Any]:
    """What the worker holds now: ERP connections, sockets, RSS.

    ERP connections are ``pg_stat_activity`` rows for the ERP database: the
    worker's pool processes are the only clients of that database while the
    benchmark runs (the API never reads an ERP, the bench's seeding
    connection is closed), and ``application_name`` says for which tenants.
    """
    import psycopg

    with psycopg.connect(_pg_dsn("postgres"), autocommit=True) as conn:
        erp = conn.execute(
            "SELECT count(*), count(DISTINCT application_name), "
            "count(*) FILTER (WHERE state = 'idle') FROM pg_stat_activity WHERE datname = %s",
            (erp_db,),
        ).fetchone()
        server = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()
    kids = _children(worker_pid)
    child_sockets = [_sockets(pid) for pid in kids]
    hwm = [v for v in (_proc_status(pid, "VmHWM") for pid in kids) if v is not None]
    rss = [v for v in (_proc_status(pid, "VmRSS") for pid in kids) if v is not None]
    main_sockets = _sockets(worker_pid)
    return {
        "erp_connections": int(erp[0]) if erp else None,
        "erp_connection_tenants": int(erp[1]) if erp else None,
        "erp_connections_idle": int(erp[2]) if erp else None,
        "server_connections": int(server[0]) if server else None,
        "sockets_main": main_sockets,
        "sockets_children": [s for s in child_sockets if s is not None],
        "sockets_total": (main_sockets or 0) + sum(s or 0 for s in child_sockets),
        "child_pids": kids,
        "child_hwm_kb_max": max(hwm) if hwm else None,
        "child_rss_kb_max": max(rss) if rss else None,
        "child_rss_kb_sum": sum(rss) if rss else None,
        "main_rss_kb": _proc_status(worker_pid, "VmRSS"),
        "main_hwm_kb": _proc_status(worker_pid, "VmHWM"),
    }


class Peaks:
    """The most ERP connections and worker sockets seen while a phase runs.

    The figures at the end of a phase say what a worker keeps; these say
    what it takes while busy (a fetch's read-ahead may hold a second
    connection, say). Sampled every ``interval`` seconds in a thread with
    its own connection, so that the phase's code stays the same.
    """

    def __init__(self, erp_db: str, worker_pid: int, interval: float = 0.25) -> None:
        self.erp_db, self.worker_pid, self.interval = erp_db, worker_pid, interval
        self.erp_connections = 0
        self.sockets = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peaks", daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(_pg_dsn("postgres"), autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.erp_db,)
                ).fetchone()
                pids = [self.worker_pid, *_children(self.worker_pid)]
                sockets = sum(_sockets(pid) or 0 for pid in pids)
                self.erp_connections = max(self.erp_connections, int(row[0]) if row else 0)
                self.sockets = max(self.sockets, sockets)
                self.samples += 1
                self._stop.wait(self.interval)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def figures(self) -> dict[str, int]:
        return {
            "erp_connections": self.erp_connections,
            "sockets_total": self.sockets,
            "samples": self.samples,
        }


def _seconds(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def figures(sent: list[Sent], rows: list[dict[str, Any]], start: float) -> dict[str, Any]:
    """A phase's figures from its requests and its runs' rows.

    ``start`` is when the phase's first request was sent (bench clock). Both
    latencies are per run: ``run_row`` from the hub's own ``created_at`` to
    ``finished_at``; ``request`` from the request being sent to
    ``finished_at`` (queueing in the API included).
    """
    sent_at = {s.run_id: s.sent for s in sent if s.run_id is not None}
    finished = [r for r in rows if r["finished_at"] is not None]
    last = max((r["finished_at"].timestamp() for r in finished), default=start)
    seconds = last - start
    by_row = [_seconds(r["created_at"], r["finished_at"]) for r in finished]
    by_request = [
        r["finished_at"].timestamp() - sent_at[r["id"]] for r in finished if r["id"] in sent_at
    ]
    failed = [r for r in rows if r["status"] != "succeeded"]
    refused = [s for s in sent if not s.started]
    errors = [f"{s.tenant}: HTTP {s.status} {s.error}" for s in refused]
    errors += [f"run {r['id']} {r['status']}: {(r['error'] or '')[:300]}" for r in failed]
    totals = {
        k: sum(int(r[k]) for r in rows)
        for k in ("fetched", "created", "updated", "unchanged", "deleted", "ignored", "quarantined")
    }
    return {
        "runs": len(sent),
        "seconds": round(seconds, 3),
        "runs_per_s": round(len(sent) / seconds, 1) if seconds > 0 else None,
        "requests_seconds": round(max(s.answered for s in sent) - start, 3) if sent else None,
        "http_status": dict(Counter(str(s.status) for s in sent)),
        "succeeded": sum(1 for r in rows if r["status"] == "succeeded"),
        "failed": len(failed) + len(refused),
        "errors": errors[:ERRORS_SHOWN],
        "latency_run_row_p50_s": round(_percentile(by_row, 50), 3),
        "latency_run_row_p99_s": round(_percentile(by_row, 99), 3),
        "latency_run_row_max_s": round(max(by_row), 3) if by_row else None,
        "latency_request_p50_s": round(_percentile(by_request, 50), 3),
        "latency_request_p99_s": round(_percentile(by_request, 99), 3),
        "latency_request_max_s": round(max(by_request), 3) if by_request else None,
        **totals,
    }


def _run_ids(sent: list[Sent]) -> list[int]:
    return [s.run_id for s in sent if s.run_id is not None and s.started]


def phase(
    env: Env,
    base: str,
    worker_pid: int,
    tenants: list[Tenant],
    label: str,
    full: bool,
    timeout: float,
) -> dict[str, Any]:
    """Resync every tenant at once through the API, wait for all, measure."""
    with Peaks(env.erp_db, worker_pid) as peaks:
        start = time.time()
        sent = resync_all(base, tenants, full)
        rows = wait_runs(env.hub_db, _run_ids(sent), label, timeout)
    result = figures(sent, rows, start)
    result["peak_during"] = peaks.figures()
    result["rows_seeded"] = sum(t.rows for t in tenants)
    result["products_seeded"] = sum(t.products for t in tenants)
    result["at_end"] = resources(worker_pid, env.erp_db)
    _say(
        f"{label}: {result['runs_per_s']} runs/s, p99 {result['latency_run_row_p99_s']} s, "
        f"{result['failed']} failed, {result['at_end']['erp_connections']} ERP connections"
    )
    return result


def phase_with_big(
    env: Env,
    base: str,
    worker_pid: int,
    tenants: list[Tenant],
    big: Tenant,
    timeout: float,
) -> dict[str, Any]:
    """The big client's full sync started; once it has read a page, everyone else's."""
    import psycopg

    big_start = time.time()
    (big_sent,) = resync_all(base, [big], True)
    if big_sent.run_id is None or not big_sent.started:
        raise RuntimeError(f"the big client's run did not start: {big_sent.error}")
    deadline = time.monotonic() + 120
    with psycopg.connect(_pg_dsn(env.hub_db), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT fetched, status FROM sync_runs WHERE id = %s", (big_sent.run_id,)
            ).fetchone()
            if row and (row[0] > 0 or row[1] != "running"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the big client's run read nothing in 120 s")
            time.sleep(0.05)
    waited = time.time() - big_start
    result = phase(env, base, worker_pid, tenants, "3. with the big run", True, timeout)
    result["small_done_while_big_running"] = result.pop("at_end")
    (big_row,) = wait_runs(env.hub_db, [big_sent.run_id], "big run", timeout)
    big_fig = figures([big_sent], [big_row], big_start)
    result["big_run"] = {
        "products": big.products,
        "rows": big.rows,
        "status": big_row["status"],
        "error": (big_row["error"] or "")[:300] or None,
        "run_row_seconds": round(_seconds(big_row["created_at"], big_row["finished_at"]), 3),
        "products_per_s": round(
            big.products / _seconds(big_row["created_at"], big_row["finished_at"]), 1
        ),
        "first_page_after_s": round(waited, 3),
        **{k: big_fig[k] for k in ("fetched", "created", "unchanged", "quarantined")},
    }
    result["at_end"] = resources(worker_pid, env.erp_db)
    return result


def measure_dispatch(
    env: Env, worker_pid: int, tenants: list[Tenant], timeout: float
) -> dict[str, Any]:
    """Beat's dispatcher with N due rows, called in this process, and the runs it starts.

    ``workers.tasks.dispatch_due()`` runs here against the bench's hub
    database and broker (the worker processes then run what it enqueued), so
    its wall time is the task's own: finding the due rows, claiming each and
    starting its run. A day's interval keeps the streams from falling due
    again during the benchmark.
    """
    import psycopg

    from workers.tasks import dispatch_due

    ids = [t.source_id for t in tenants]
    with psycopg.connect(_pg_dsn(env.hub_db), autocommit=True) as conn:
        before = conn.execute("SELECT coalesce(max(id), 0) FROM sync_runs").fetchone()
        last_id = int(before[0]) if before else 0
        made_due = conn.execute(
            "UPDATE source_streams SET interval_seconds = 86400, "
            "next_due_at = now() - interval '1 minute' "
            "WHERE stream = 'products' AND source_id = ANY(%s)",
            (ids,),
        ).rowcount
    with Peaks(env.erp_db, worker_pid) as peaks:
        start = time.time()
        t0 = time.perf_counter()
        started = dispatch_due()
        dispatch_seconds = time.perf_counter() - t0
        with psycopg.connect(_pg_dsn(env.hub_db), autocommit=True) as conn:
            run_ids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM sync_runs WHERE id > %s AND requested_by = 'schedule'",
                    (last_id,),
                ).fetchall()
            ]
        rows = wait_runs(env.hub_db, run_ids, "4. beat's runs", timeout)
    by_source = {t.source_id: t for t in tenants}
    sent = [
        Sent(by_source[r["source_id"]].code, start, start, 0, r["id"], True, None) for r in rows
    ]
    result = figures(sent, rows, start)
    result["rows_seeded"] = sum(t.rows for t in tenants)
    result["peak_during"] = peaks.figures()
    result.pop("http_status")
    result.pop("requests_seconds")
    return {
        "due_rows": made_due,
        "dispatch_seconds": round(dispatch_seconds, 3),
        "dispatch_ms_per_row": round(1000 * dispatch_seconds / max(made_due, 1), 3),
        "runs_started": started,
        **result,
        "at_end": resources(worker_pid, env.erp_db),
    }


# --------------------------------------------------------------------------
# One whole run: the control, then N tenants
# --------------------------------------------------------------------------


def _env(page_size: int, concurrency: int, keep_logs: bool) -> Env:
    return Env(page_size=page_size, concurrency=concurrency, keep_logs=keep_logs)


def _tenants_world(
    env: Env, n: int, small: int, big: int, page_size: int
) -> tuple[dict[str, Tenant], dict[str, Any]]:
    """Open the databases, seed the ERP schemas and register their clients."""
    _timed("databases created and migrated", env.open)
    # Import the hub's task code now, once: this process calls dispatch_due
    # minutes later, and other people's commits in the working tree meanwhile
    # must not give it a mix of old and new modules.
    import workers.tasks  # noqa: F401

    schemas = dict.fromkeys(tenant_codes(n), small)
    if big:
        schemas[BIG] = big
    t0 = time.perf_counter()
    counts = seed_erp(env.erp_db, schemas)
    seeded = time.perf_counter() - t0
    _say(f"ERP seeded: {n:,} schemas x {small} products" + (f" + {big:,}" if big else ""))
    t0 = time.perf_counter()
    tenants = register(env.erp_db, counts, page_size)
    registered = time.perf_counter() - t0
    _say(f"{len(tenants):,} clients registered in {registered:.1f}s")
    return tenants, {
        "seed_seconds": round(seeded, 3),
        "register_seconds": round(registered, 3),
    }


def control(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """10 tenants, phases 1 and 2, with a fresh hub and worker: the RSS baseline."""
    env = _env(args.page_size, args.concurrency, args.keep_logs)
    with cleaned_up(env, "control: cleaning up (worker, api, databases, redis db)"):
        tenants, setup = _tenants_world(
            env, CONTROL_TENANTS, args.small_products, 0, args.page_size
        )
        small = list(tenants.values())
        worker = env.start_worker("sync")
        base = start_api(env)
        idle = resources(worker.pid, env.erp_db)
        first = phase(env, base, worker.pid, small, "control 1. first sync", False, timeout)
        second = phase(env, base, worker.pid, small, "control 2. unchanged", True, timeout)
        return {
            "tenants": CONTROL_TENANTS,
            "setup": setup,
            "idle_worker": idle,
            "first_sync": first,
            "unchanged_resync": second,
        }


def main_phases(args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """N tenants and the big client: phases 1 to 4 with a fresh hub and worker."""
    env = _env(args.page_size, args.concurrency, args.keep_logs)
    with cleaned_up(env, "cleaning up (worker, api, databases, redis db)"):
        tenants, setup = _tenants_world(
            env, args.tenants, args.small_products, args.big, args.page_size
        )
        big = tenants.pop(BIG, None)
        small = list(tenants.values())
        worker = env.start_worker("sync")
        base = start_api(env)
        result: dict[str, Any] = {"setup": setup, "idle_worker": resources(worker.pid, env.erp_db)}
        try:
            result["first_sync"] = phase(
                env, base, worker.pid, small, "1. first sync", False, timeout
            )
            result["unchanged_resync"] = phase(
                env, base, worker.pid, small, "2. unchanged", True, timeout
            )
            if big is not None:
                result["with_big_run"] = phase_with_big(env, base, worker.pid, small, big, timeout)
            result["dispatch_due"] = measure_dispatch(env, worker.pid, small, timeout)
        except Exception as exc:
            # A thousand tenants take minutes: keep the phases already
            # measured, say which one failed and why, and exit non-zero.
            traceback.print_exc()
            print(env.logs_tail(), file=sys.stderr)
            result["error"] = f"{type(exc).__name__}: {exc}"[:1000]
        return result


def _effective_settings() -> dict[str, Any]:
    """The hub's settings that bear on tenants, as the worker reads them (env passed through).

    Read by name with a default, so the bench runs on code that predates
    any of them.
    """
    from hub.settings import get_settings

    settings = get_settings()
    names = ("page_size", "connector_cache", "run_pages_in_flight")
    return {name: getattr(settings, name, None) for name in names}


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """One whole run: the 10-tenant control, then N tenants; plain data."""
    timeout = float(args.timeout)
    results: dict[str, Any] = {
        "benchmark": "tenants",
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "git_commit": _git_commit(),
        "config": {
            "tenants": args.tenants,
            "control_tenants": CONTROL_TENANTS,
            "small_products": args.small_products,
            "big_products": args.big,
            "page_size": args.page_size,
            "worker_concurrency": args.concurrency,
            "http_concurrency": HTTP_CONCURRENCY,
            "broker": REDIS_URL,
            "env": {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ},
        },
    }
    with _terminate_as_interrupt():
        control_figures = control(args, timeout)
        results["config"]["hub_settings"] = _effective_settings()
        results["versions"] = _versions()
        results["phases"] = {"control": control_figures, **main_phases(args, timeout)}
    end_commit = _git_commit()
    if end_commit != results["git_commit"]:
        # The worker processes started later than this one: say so.
        results["git_commit_at_end"] = end_commit
    return results


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISS")


def _mib(kb: int | None) -> str:
    return "?" if kb is None else f"{kb / 1024:.0f} MiB"


def _phase_rows(
    name: str, p: dict[str, Any], target_rps: float | None, since: str = "request"
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            name,
            f"{p['runs_per_s'] or 0:,.1f} runs/s  ({p['runs']:,} runs in {p['seconds']:.1f} s; "
            f"requests answered in {p.get('requests_seconds', 0) or 0:.1f} s)",
            f">= {target_rps:.0f} runs/s" if target_rps else "",
            _verdict((p["runs_per_s"] or 0) >= target_rps) if target_rps else "",
        ),
        (
            "   latency p50 / p99 / max, run row",
            f"{p['latency_run_row_p50_s']:.2f} / {p['latency_run_row_p99_s']:.2f} / "
            f"{p['latency_run_row_max_s'] or 0:.2f} s",
            "",
            "",
        ),
        (
            f"   latency p50 / p99 / max, from {since}",
            f"{p['latency_request_p50_s']:.2f} / {p['latency_request_p99_s']:.2f} / "
            f"{p['latency_request_max_s'] or 0:.2f} s",
            "",
            "",
        ),
        (
            "   failed runs",
            f"{p['failed']}  (fetched {p['fetched']:,} of {p.get('rows_seeded', 0):,} rows; "
            f"{p['created']:,} created, {p['unchanged']:,} unchanged)",
            f"{TARGET_FAILED}",
            _verdict(p["failed"] <= TARGET_FAILED),
        ),
    ]
    peak = p.get("peak_during")
    if peak:
        rows.append(
            (
                "   during: most ERP connections / worker sockets",
                f"{peak['erp_connections']} / {peak['sockets_total']}  ({peak['samples']} samples)",
                "",
                "",
            )
        )
    rows += [("     " + e[:110], "", "", "") for e in p["errors"]]
    return rows


def _resource_rows(label: str, r: dict[str, Any], pool: int) -> list[tuple[str, ...]]:
    return [
        (
            f"   {label}: ERP connections / sockets",
            f"{r['erp_connections']} ({r['erp_connection_tenants']} tenants, "
            f"{r['erp_connections_idle']} idle) / main {r['sockets_main']}, "
            f"children {r['sockets_children']}; server total {r['server_connections']}",
            f"<= {pool}",
            _verdict(r["erp_connections"] is not None and r["erp_connections"] <= pool),
        ),
        (
            f"   {label}: pool children RSS",
            f"peak {_mib(r['child_hwm_kb_max'])}, now {_mib(r['child_rss_kb_max'])} (max of "
            f"{len(r['child_pids'])}); main {_mib(r['main_rss_kb'])}",
            "",
            "",
        ),
    ]


def _big_rows(
    n: int, with_big: dict[str, Any], unchanged: dict[str, Any] | None, pool: int
) -> list[tuple[str, ...]]:
    b = with_big["big_run"]
    rows = _phase_rows(f"3. {n:,} resynced beside the big run", with_big, None)
    if unchanged:
        ratio = with_big["latency_run_row_p99_s"] / max(unchanged["latency_run_row_p99_s"], 1e-9)
        rows.append(
            (
                "   small runs' p99 / phase 2's p99",
                f"{ratio:.2f}x  ({with_big['latency_run_row_p99_s']:.2f} s vs "
                f"{unchanged['latency_run_row_p99_s']:.2f} s)",
                f"<= {TARGET_P99_RATIO:.0f}x",
                _verdict(ratio <= TARGET_P99_RATIO),
            )
        )
    rows.append(
        (
            f"   big run: {b['products']:,} products, full sync",
            f"{b['run_row_seconds']:.1f} s, {b['products_per_s']:,.0f} products/s, "
            f"{b['status']}" + (f" ({b['error'][:60]})" if b["error"] else ""),
            "",
            "",
        )
    )
    rows += _resource_rows("small runs done", with_big["small_done_while_big_running"], pool)
    rows += _resource_rows("end", with_big["at_end"], pool)
    return rows


def _dispatch_rows(d: dict[str, Any], pool: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [
        (
            f"4. dispatch_due with {d['due_rows']:,} due rows (in-process)",
            f"{d['dispatch_seconds']:.2f} s, {d['dispatch_ms_per_row']:.2f} ms a row, "
            f"{d['runs_started']:,} runs started",
            "",
            "",
        ),
        (
            "   the runs it started",
            f"{d['runs_per_s'] or 0:,.1f} runs/s  ({d['runs']:,} runs in {d['seconds']:.1f} s "
            "from the call)",
            "",
            "",
        ),
    ]
    rows += _phase_rows("", d, None, since="the call")[1:]
    rows += _resource_rows("end", d["at_end"], pool)
    return rows


def table(results: dict[str, Any]) -> str:
    """The figures as a fixed-width table, each target beside its figure.

    Phases missing because one failed are left out; the error is printed last.
    """
    p, c = results["phases"], results["config"]
    pool = int(c["worker_concurrency"])
    n = c["tenants"]
    ctl = p["control"]
    rows: list[tuple[str, ...]] = []
    rows += _phase_rows(f"control: first sync of {ctl['tenants']}", ctl["first_sync"], None)
    rows += _resource_rows("end", ctl["first_sync"]["at_end"], pool)
    rows += _phase_rows(
        f"control: unchanged resync of {ctl['tenants']}", ctl["unchanged_resync"], None
    )
    rows += _resource_rows("end", ctl["unchanged_resync"]["at_end"], pool)
    if "first_sync" in p:
        rows += _phase_rows(f"1. first sync of {n:,} at once", p["first_sync"], TARGET_FIRST_RPS)
        rows += _resource_rows("end", p["first_sync"]["at_end"], pool)
    unchanged = p.get("unchanged_resync")
    if unchanged:
        rows += _phase_rows(f"2. unchanged full resync of {n:,}", unchanged, TARGET_UNCHANGED_RPS)
        rows += _resource_rows("end", unchanged["at_end"], pool)
    if p.get("with_big_run"):
        rows += _big_rows(n, p["with_big_run"], unchanged, pool)
    if p.get("dispatch_due"):
        rows += _dispatch_rows(p["dispatch_due"], pool)
    at_n = unchanged["at_end"]["child_hwm_kb_max"] if unchanged else None
    at_10 = ctl["unchanged_resync"]["at_end"]["child_hwm_kb_max"]
    if at_n and at_10:
        ratio = at_n / at_10
        rows.append(
            (
                f"RSS: pool children's peak after phase 2, {n:,} vs {ctl['tenants']} tenants",
                f"{_mib(at_n)} vs {_mib(at_10)}: {ratio:.2f}x",
                f"<= {TARGET_RSS_RATIO:.1f}x",
                _verdict(ratio <= TARGET_RSS_RATIO),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    m, v = results["machine"], results["versions"]
    commit = results["git_commit"]
    if results.get("git_commit_at_end"):
        commit += f" (at the end: {results['git_commit_at_end']})"
    head = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, kernel {m['kernel']}",
        f"versions: python {v['python']}, postgresql {v['postgresql']}, redis {v['redis']}, "
        f"celery {v['celery']}, sqlalchemy {v['sqlalchemy']}",
        f"postgresql settings: {v['postgresql_settings']}",
        f"commit {commit}; {n:,} tenants x {c['small_products']} products, "
        f"big client {c['big_products']:,}; page size {c['page_size']}; worker -c "
        f"{c['worker_concurrency']}; {c['http_concurrency']} requests in flight; "
        f"hub settings {c.get('hub_settings')}",
        f"targets are issue #14's for {TARGET_TENANTS:,} tenants"
        + ("" if n == TARGET_TENANTS else f" (this run: {n:,}; verdicts shown for reference)"),
        "",
    ]
    body = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    if p.get("error"):
        body += ["", f"FAILED, later phases not measured: {p['error']}"]
    if results.get("each_run"):
        body += ["", *_each_run_lines(results)]
    return "\n".join(head + body)


def _each_run_lines(results: dict[str, Any]) -> list[str]:
    lines = [f"median of {results['runs']} runs (fresh databases each); the runs:"]
    for i, run in enumerate(results["each_run"], 1):
        p = run["phases"]
        first, unchanged = p.get("first_sync") or {}, p.get("unchanged_resync") or {}
        lines.append(
            f"  run {i}: first {first.get('runs_per_s')} runs/s, "
            f"unchanged {unchanged.get('runs_per_s')} runs/s, "
            f"p99 {unchanged.get('latency_run_row_p99_s')} s / with big "
            f"{(p.get('with_big_run') or {}).get('latency_run_row_p99_s')} s, "
            f"failed {first.get('failed')}+{unchanged.get('failed')}, "
            f"dispatch {(p.get('dispatch_due') or {}).get('dispatch_seconds')} s"
            + (f", FAILED: {p['error'][:80]}" if p.get("error") else "")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tenants",
        description="Benchmark one sync worker serving N tenants, each with its own SQL ERP.",
    )
    parser.add_argument("--tenants", type=int, required=True, help="small clients (N)")
    parser.add_argument(
        "--small-products", type=int, default=200, help="products per small client's ERP"
    )
    parser.add_argument(
        "--big", type=int, default=100_000, help="products of the big client (0: no phase 3)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="run the whole benchmark N times (fresh databases each) and report medians",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "tenants.json",
        help="where to write results",
    )
    parser.add_argument("--page-size", type=int, default=500, help="records per page (S2S default)")
    parser.add_argument("-c", "--concurrency", type=int, default=2, help="worker pool size")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for one phase's runs"
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the worker and API logs' temp directory"
    )
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.small_products < 1 or args.big < 0 or args.runs < 1:
        parser.error("--tenants, --small-products and --runs must be at least 1, --big >= 0")
    _check_redis_url()
    each = []
    for i in range(args.runs):
        if args.runs > 1:
            _say(f"run {i + 1} of {args.runs}")
        each.append(benchmark(args))
    results = combine(each)
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.json}")
    return 1 if any(run["phases"].get("error") for run in each) else 0


if __name__ == "__main__":
    sys.exit(main())
