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
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

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
        source_id, client_id = src.id, client.id

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
        orders_ok = _orders_act(console, client_id, erp_path)
    finally:
        if not keep_worker:
            stop_worker(worker)
    ok = all(r.status == "succeeded" for r in first + second + third)
    unchanged_ok = all(r.created == 0 and r.updated == 0 for r in second)
    if ok and unchanged_ok and orders_ok:
        console.print(
            "[bold green]demo finished:[/] every run succeeded; the unchanged resync wrote "
            "nothing; good orders raised once, the refused one is in the dead letters, "
            "the interrupted one was retried and raised"
        )
        return 0
    console.print("[bold red]demo failed:[/] see the tables above and the worker log")
    return 1


def _order(code: str, skus: list[str], customer_code: str | None = None) -> dict[str, Any]:
    return {
        "channel": "api",
        "channel_order_code": code,
        "instruction": "add_order",
        "ordered_date": "2026-11-22T10:00:00Z",
        "customer": {
            "source_customer_code": customer_code,
            "first_name": "Thandi",
            "last_name": "Mokoena",
            "email": "thandi@example.com",
        },
        "shipping_address": {
            "first_name": "Thandi",
            "last_name": "Mokoena",
            "address1": "86 Beach Road",
            "city": "Cape Town",
            "zip": "7441",
            "country_code": "ZA",
        },
        "line_items": [
            {"sku": sku, "title": f"Item {sku}", "qty": 1 + i, "price": 120.0 + 10 * i}
            for i, sku in enumerate(skus)
        ],
        "shipping_lines": [{"title": "Courier", "price": 95.0}],
    }


def _wait_orders(ids: list[int], done: Any, timeout: float = 120) -> list[Any]:
    from hub.db import session_scope
    from hub.models import Order

    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as s:
            rows = [s.get(Order, i) for i in ids]
        if all(done(r) for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def _orders_act(console: Console, client_id: int, erp_path: Path) -> bool:
    """Raise sample orders: good ones, one the ERP refuses, and one that meets
    a locked ERP database first and is retried."""
    import sqlite3

    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import DeadLetter, Product
    from workers.orders import submit

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
    good = [_order(f"DEMO-{run}-{n}", skus[n : n + 2]) for n in range(1, 6)]
    # An account code longer than the ERP's column: the ERP refuses the document.
    refused = _order(f"DEMO-{run}-R", skus[:1], customer_code="C" * 80)
    ids = []
    for order in [*good, refused]:
        result, errors = submit(client_id, order)
        assert result is not None, errors
        ids.append(result.order.id)
    rows = _wait_orders(ids, lambda o: o.status in ("raised", "dead"))

    # The ERP's database is busy (an exclusive lock, as during an ERP backup):
    # the raise fails transiently and is retried once the lock is gone.
    lock = sqlite3.connect(str(erp_path), isolation_level=None, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        result, _ = submit(client_id, _order(f"DEMO-{run}-T", skus[7:8]))
        assert result is not None
        retry_id = result.order.id
        _wait_orders([retry_id], lambda o: o.last_error is not None, timeout=60)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    rows += _wait_orders([retry_id], lambda o: o.status in ("raised", "dead"))
    ids.append(retry_id)

    with session_scope() as s:
        letters = {
            d.order_id: d for d in s.scalars(select(DeadLetter).where(DeadLetter.order_id.in_(ids)))
        }
    table = Table(title="orders")
    for col in ("order", "status", "ERP document", "attempts", "note"):
        table.add_column(col)
    for o in rows:
        note = ""
        if o.id in letters:
            d = letters[o.id]
            note = f"dead letter {d.id}, {d.error_class}: {d.message}; fix: {d.fix}"
        elif o.attempts > 1:
            note = f"retried after: {o.last_error or 'a transient failure'}"
        table.add_row(
            o.channel_order_code, o.status, o.document_number or "-", str(o.attempts), note
        )
    console.print(table)
    good_ok = all(o.status == "raised" and o.attempts == 1 for o in rows[:5])
    refused_ok = rows[5].status == "dead" and rows[5].id in letters
    retried_ok = rows[6].status == "raised" and rows[6].attempts >= 2
    return good_ok and refused_ok and retried_ok
