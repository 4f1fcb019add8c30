"""``s2s demo``: the whole hub on one machine, with nothing set up.

It creates an emulated SQL ERP, registers a demo client and source, starts a
real Celery worker process on the configured broker (the embedded SQLite
broker when nothing is configured), syncs with a progress bar, prints what
happened, syncs again to show that an unchanged catalogue writes nothing,
and stops the worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from hub.settings import get_settings

DEMO_CLIENT = "demo"
DEMO_SOURCE = "erp"


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


def _sync(console: Console, source_id: int, stream: str) -> Any:
    from s2s.cli import wait_for_run
    from workers.tasks import start_sync

    result = start_sync(source_id, stream, requested_by="demo")
    console.print(f"  {stream}: run {result.run.id}")
    return wait_for_run(result.run.id, timeout=900)


def run_demo(console: Console, *, products: int = 2000, keep_worker: bool = False) -> int:
    from sqlalchemy import select

    from emulators import sql_erp
    from hub.db import session_scope
    from hub.migrate import upgrade
    from hub.models import Quarantined
    from s2s.cli import runs_table
    from workers.sources import upsert_client, upsert_source

    settings = get_settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    mode = "embedded (SQLite + SQLAlchemy broker)" if settings.embedded else "configured services"
    console.rule("[bold]s2s demo")
    console.print(f"hub: {mode}; files in {settings.var_dir}")

    upgrade()
    erp_path = settings.var_dir / "demo-erp.sqlite"
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
            s, client, DEMO_SOURCE, "sql", {"url": erp_url, "page_size": 250}, name="Demo SQL ERP"
        )
        source_id = src.id

    worker = start_worker(settings.var_dir)
    console.print(
        f"worker started (pid {worker.pid}); log in {settings.var_dir / 'demo-worker.log'}"
    )
    try:
        console.print("[bold]first sync[/]")
        first = [_sync(console, source_id, "products"), _sync(console, source_id, "customers")]
        console.print(runs_table(first, title="first sync"))
        with session_scope() as s:
            bad = s.scalars(
                select(Quarantined).where(Quarantined.run_id == first[0].id).limit(5)
            ).all()
            for q in bad:
                console.print(f"  quarantined {q.record_key}: {q.field}: {q.message}")
        console.print("[bold]second sync[/] (nothing changed in the ERP)")
        second = [_sync(console, source_id, "products"), _sync(console, source_id, "customers")]
        console.print(runs_table(second, title="second sync"))
        changed = sql_erp.change_rows(erp_url, 10, seed=11)
        console.print(f"[bold]third sync[/] after changing {len(changed)} rows in the ERP")
        third = [_sync(console, source_id, "products")]
        console.print(runs_table(third, title="third sync"))
    finally:
        if not keep_worker:
            stop_worker(worker)
    ok = all(r.status == "succeeded" for r in first + second + third)
    unchanged_ok = all(r.created == 0 and r.updated == 0 for r in second)
    if ok and unchanged_ok:
        console.print(
            "[bold green]demo finished:[/] every run succeeded; the unchanged resync wrote nothing"
        )
        return 0
    console.print("[bold red]demo failed:[/] see the tables above and the worker log")
    return 1
