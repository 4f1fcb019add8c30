"""``s2s demo``: the whole hub on one machine, with nothing set up.

It creates an emulated SQL ERP, registers a demo client and source, starts a
real Celery worker process on the configured broker (the embedded SQLite
broker when nothing is configured), syncs with a progress bar, prints what
happened, syncs again to show that an unchanged catalogue writes nothing,
raises orders into it, pushes the catalogue to an emulated Shopify store and
then to an emulated WooCommerce store, taking an order back from each by
webhook (``s2s.demo_acts.shopify``, ``s2s.demo_acts.woocommerce``), then
plays every other registered kind's act (an emulated IQ Retail, iSync and
SYSPRO, each served on a local port in this process; see
``s2s.demo_acts``), and stops the worker. Last it gives the operations
console a sign-in (an operator ``demo`` with a new password each run,
printed once) and prints its address; with ``--serve`` it keeps serving the
API and the console, with the worker, until Ctrl-C.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from rich.console import Console
from sqlalchemy import select

from emulators import sql_erp
from hub import queries, users
from hub.db import session_scope
from hub.migrate import upgrade
from hub.models import Product
from hub.settings import get_settings
from s2s import demo_acts
from s2s.cli.runs import runs_table
from s2s.demo_acts import DEMO_CLIENT, Act, Stage, order, orders_table, sync, wait_orders
from s2s.demo_acts import shopify as shopify_act
from s2s.demo_acts import woocommerce as woocommerce_act
from workers import kinds
from workers.orders import submit
from workers.sources import upsert_client, upsert_source

DEMO_SOURCE = "erp"
DEMO_USER = "demo"


def _acts() -> list[Act]:
    """The registered kinds' acts (``s2s.demo_acts.<kind>``'s ``ACT``, for
    the kinds that have one), in the registry's order. The SQL ERP has none:
    its walk-through is the frame every act runs inside."""
    acts: list[Act] = []
    for name in kinds.names():
        module = f"{demo_acts.__name__}.{name}"
        if importlib.util.find_spec(module) is not None:
            acts.append(importlib.import_module(module).ACT)
    return acts


# The demo-only credentials of the emulated ERPs and store; they exist to
# show that a password never reaches a log, a task or the screen.
DEMO_SECRETS: tuple[str, ...] = (
    *(secret for act in _acts() for secret in act.secrets),
    *shopify_act.SECRETS,
    *woocommerce_act.SECRETS,
)


def start_worker(
    var_dir: Path, *, concurrency: int = 2, queues: str | None = None
) -> subprocess.Popen[bytes]:
    log = (var_dir / "demo-worker.log").open("ab")
    cmd = [
        sys.executable,
        "-m",
        "s2s.cli",
        "worker",
        "-c",
        str(concurrency),
        "--loglevel",
        "WARNING",
    ]
    if queues:
        cmd += ["-Q", queues]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Serve:
    """Where the console is (or would be) served, and whether to serve it."""

    host: str = "127.0.0.1"
    port: int = 8000
    serve: bool = False

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}/console/"


def run_demo(
    console: Console,
    *,
    products: int = 2000,
    keep_worker: bool = False,
    serving: Serve | None = None,
) -> int:
    """The SQL walk-through, then every registered kind's act, on one worker;
    then the console's address and sign-in, served until Ctrl-C with
    ``serving.serve``."""
    serving = serving or Serve()
    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    mode = "embedded (SQLite + SQLAlchemy broker)" if settings.embedded else "configured services"
    console.rule("[bold]s2s demo")
    console.print(f"hub: {mode}; files in {settings.var_dir}")

    upgrade()
    erp_path = settings.var_dir / "demo-erp.sqlite"
    source_id, client_id, flagged = _sql_source(console, erp_path, products)
    worker = start_worker(settings.var_dir)
    console.print(
        f"worker started (pid {worker.pid}); log in {settings.var_dir / 'demo-worker.log'}"
    )
    try:
        ok = _acts_ok(console, source_id, client_id, erp_path, flagged, products)
        _console_sign_in(console, serving)
        if serving.serve:
            serve(console, serving)
    finally:
        if not keep_worker:
            stop_worker(worker)
    return 0 if ok else 1


def _acts_ok(
    console: Console, source_id: int, client_id: int, erp_path: Path, flagged: int, products: int
) -> bool:
    """Every act of the walk-through, and the verdict printed: True when all held."""
    settings = get_settings()
    syncs_ok = _sql_syncs(console, source_id, erp_path, flagged)
    orders_ok = _orders_act(console, client_id, erp_path)
    run = f"{int(time.time()) % 1_000_000:06d}"
    stage = Stage(console, client_id, settings.var_dir, products, run)
    push_ok = shopify_act.play(stage, source_id, f"sqlite:///{erp_path}")
    woo_ok = woocommerce_act.play(stage, source_id, f"sqlite:///{erp_path}")
    erps_ok = True
    for act in _acts():
        erps_ok = act(stage) and erps_ok
    if syncs_ok and orders_ok and push_ok and woo_ok and erps_ok:
        console.print(
            "[bold green]demo finished:[/] every run succeeded; the unchanged resync wrote "
            "nothing; Delete-flagged products the hub never held were counted skipped at "
            "every sync; the catalogue was pushed to the Shopify store, a change sent only the "
            "changed products, the store's refusal is recorded in its words, and its order "
            "was raised once; pushed to the WooCommerce store too (simple and variable "
            "products, each SKU once), a change sent only the changed products, and its order "
            "was raised once; good orders raised once into each ERP, the refused ones are in "
            "the dead letters, the interrupted one was retried and raised"
        )
        return True
    console.print("[bold red]demo failed:[/] see the tables above and the worker log")
    return False


def _console_sign_in(console: Console, serving: Serve) -> None:
    """An operator ``demo`` with a new random password (printed here, once,
    and kept only as its argon2 hash), and where to sign in with it."""
    password = secrets.token_urlsafe(12)
    with session_scope() as s:
        if users.get(s, DEMO_USER) is None:
            users.add(s, DEMO_USER, password, None)
        else:
            users.set_password(s, DEMO_USER, password)
    console.print(
        f"[bold]console:[/] {serving.address}  sign in as [bold]{DEMO_USER}[/] with "
        f"password [bold]{password}[/] (new each demo run)",
        highlight=False,
        soft_wrap=True,
    )
    if not serving.serve:
        console.print(
            "  served while 's2s api' runs; 's2s demo --serve' keeps it (and a worker) up "
            "after the demo until Ctrl-C",
            highlight=False,
            soft_wrap=True,
        )


def serve(console: Console, serving: Serve) -> None:
    """The HTTP API with the console, as ``s2s api`` serves it, until Ctrl-C."""
    console.print(f"serving the API and the console on {serving.address} until Ctrl-C")
    uvicorn.run(
        "s2s.api_process:create_served_app",
        factory=True,
        host=serving.host,
        port=serving.port,
        log_level="warning",
    )


def _sql_source(console: Console, erp_path: Path, products: int) -> tuple[int, int, int]:
    """Seed the emulated SQL ERP and register the demo client and its source;
    returns the source's and the client's ids, and how many products the ERP
    flags Delete (the hub never held them: each sync counts them skipped)."""

    erp_path.unlink(missing_ok=True)
    erp_url = f"sqlite:///{erp_path}"
    sql_erp.create_schema(erp_url)
    summary = sql_erp.seed(erp_url, products=products, customers=max(products // 10, 10), seed=7)
    console.print(
        f"emulated SQL ERP: {summary.rows} stock rows, {summary.products} products "
        f"({summary.deleted} flagged Delete, {summary.ignored} Ignore, {summary.bad} bad rows)"
    )
    with session_scope() as s:
        client, _ = upsert_client(s, DEMO_CLIENT, "Demo Trading")
        src = upsert_source(
            s,
            client,
            DEMO_SOURCE,
            "sql",
            {
                "url": erp_url,
                "page_size": 250,
                "connect_timeout": 2,
                "default_customer_code": "CASH",
                "shipping_code": "SHIP",
            },
            name="Demo SQL ERP",
        )
        return src.id, client.id, summary.deleted


def _sql_syncs(console: Console, source_id: int, erp_path: Path, flagged: int) -> bool:
    """Sync, sync again unchanged, change rows and sync once more: True when
    every run succeeded, the unchanged resync wrote nothing, and the
    ``flagged`` Delete rows (products the hub never held) were counted
    skipped by both full syncs, not unchanged."""

    console.print("[bold]first sync[/]")
    first = [sync(console, source_id, "products"), sync(console, source_id, "customers")]
    console.print(runs_table(first, title="first sync"))
    with session_scope() as s:
        for q in queries.quarantined_in(s, first[0].id, limit=5):
            console.print(f"  quarantined {q.record_key}: {q.field}: {q.message}")
    console.print("[bold]second sync[/] (nothing changed in the ERP)")
    second = [sync(console, source_id, "products"), sync(console, source_id, "customers")]
    console.print(runs_table(second, title="second sync"))
    console.print(
        f"  skipped: {second[0].skipped} products flagged Delete in the ERP that the hub never "
        f"held (the ERP flags {flagged}): nothing to remove, and not counted unchanged"
    )
    changed = sql_erp.change_rows(f"sqlite:///{erp_path}", 10, seed=11)
    console.print(f"[bold]third sync[/] after changing {len(changed)} rows in the ERP")
    third = [sync(console, source_id, "products")]
    console.print(runs_table(third, title="third sync"))
    ok = all(r.status == "succeeded" for r in first + second + third)
    skipped_ok = first[0].skipped == second[0].skipped == flagged
    return ok and skipped_ok and all(r.created == 0 and r.updated == 0 for r in second)


def _orders_act(console: Console, client_id: int, erp_path: Path) -> bool:
    """Raise sample orders: good ones, one the ERP refuses, and one that meets
    a locked ERP database first and is retried."""

    console.print("[bold]orders[/] into the ERP's order staging tables")
    with session_scope() as s:
        skus = [
            data["variants"][0]["sku"]
            for data in s.scalars(
                select(Product.data)
                .where(Product.deleted_at.is_(None))
                .order_by(Product.id)
                .limit(20)
            )
        ]
    run = f"{int(time.time()) % 1_000_000:06d}"
    good = [order(f"DEMO-{run}-{n}", skus[n : n + 2]) for n in range(1, 6)]
    # An account code longer than the ERP's column: the ERP refuses the document.
    refused = order(f"DEMO-{run}-R", skus[:1], customer_code="C" * 80)
    ids = []
    for item in [*good, refused]:
        result, errors = submit(client_id, item)
        assert result is not None, errors
        ids.append(result.order.id)
    rows = wait_orders(ids, lambda o: o.status in ("raised", "dead"))

    # The ERP's database is busy (an exclusive lock, as during an ERP backup):
    # the raise fails transiently and is retried once the lock is gone.
    lock = sqlite3.connect(str(erp_path), isolation_level=None, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        result, _ = submit(client_id, order(f"DEMO-{run}-T", skus[7:8]))
        assert result is not None
        retry_id = result.order.id
        wait_orders([retry_id], lambda o: o.last_error is not None, timeout=60)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    rows += wait_orders([retry_id], lambda o: o.status in ("raised", "dead"))
    ids.append(retry_id)

    letters = orders_table(console, rows, "orders")
    good_ok = all(o.status == "raised" and o.attempts == 1 for o in rows[:5])
    refused_ok = rows[5].status == "dead" and rows[5].id in letters
    retried_ok = rows[6].status == "raised" and rows[6].attempts >= 2
    return good_ok and refused_ok and retried_ok
