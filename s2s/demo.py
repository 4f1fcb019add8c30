"""``s2s demo``: the whole hub on one machine, with nothing set up.

It creates an emulated SQL ERP, registers a demo client and source, starts a
real Celery worker process on the configured broker (the embedded SQLite
broker when nothing is configured), syncs with a progress bar, prints what
happened, syncs again to show that an unchanged catalogue writes nothing,
raises orders into it, then does the same for an emulated IQ Retail, iSync
and SYSPRO (each served on a local port in this process), and stops the
worker.
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
# Demo-only credentials of the emulated ERPs; they exist to show that a
# password never reaches a log, a task or the screen.
DEMO_IQ_PASSWORD = "demo-iq-Secret-5150"
DEMO_ISYNC_PASSWORD = "demo-isync-Secret-2718"
DEMO_SYSPRO_PASSWORD = "demo-syspro-Secret-1618"
DEMO_SECRETS = (DEMO_IQ_PASSWORD, DEMO_ISYNC_PASSWORD, DEMO_SYSPRO_PASSWORD)


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
        run = f"{int(time.time()) % 1_000_000:06d}"
        erps_ok = _iq_act(console, client_id, settings.var_dir, max(products // 2, 50), run)
        erps_ok = _isync_act(console, client_id, max(products // 8, 20), run) and erps_ok
        erps_ok = (
            _syspro_act(console, client_id, settings.var_dir, max(products // 2, 50), run)
            and erps_ok
        )
    finally:
        if not keep_worker:
            stop_worker(worker)
    ok = all(r.status == "succeeded" for r in first + second + third)
    unchanged_ok = all(r.created == 0 and r.updated == 0 for r in second)
    if ok and unchanged_ok and orders_ok and erps_ok:
        console.print(
            "[bold green]demo finished:[/] every run succeeded; the unchanged resync wrote "
            "nothing; good orders raised once into each ERP, the refused ones are in the "
            "dead letters, the interrupted one was retried and raised"
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


def _orders_table(console: Console, rows: list[Any], title: str) -> dict[int, Any]:
    """Print the orders with their outcome; returns their dead letters by order id."""
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import DeadLetter

    ids = [o.id for o in rows]
    with session_scope() as s:
        letters = {
            d.order_id: d for d in s.scalars(select(DeadLetter).where(DeadLetter.order_id.in_(ids)))
        }
    table = Table(title=title)
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
    return letters


def _source_skus(source_id: int, limit: int) -> list[str]:
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Product

    with session_scope() as s:
        return [
            data["variants"][0]["sku"]
            for data in s.scalars(
                select(Product.data)
                .where(Product.source_id == source_id, Product.deleted_at.is_(None))
                .order_by(Product.id)
                .limit(limit)
            )
        ]


def _withdraw(url: str, table: str, column: str, code: str) -> None:
    """Delete a stock row from an emulated ERP's database: an item withdrawn
    in the ERP since the last sync, which the ERP then refuses on an order."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DELETE FROM "{table}" WHERE "{column}" = :code'), {"code": code})
    engine.dispose()


def _iq_act(console: Console, client_id: int, var_dir: Path, items: int, run: str) -> bool:
    """IQ Retail: its emulator on a local port, stock synced over its API, sales
    orders raised, and one refused with IQ's own words."""
    from emulators import iq_retail
    from s2s.cli import runs_table

    console.rule("[bold]IQ Retail")
    path = var_dir / "demo-iq.sqlite"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    summary = iq_retail.seed(url, products=items, seed=5)
    iq_retail.add_service_item(url, "SHIP")
    with iq_retail.serve(url, password=DEMO_IQ_PASSWORD) as server:
        console.print(
            f"emulated IQ Retail API at {server.base_url}: {summary.products} stock items "
            f"({summary.web_items} web items)"
        )
        source_id = _register(
            "iq",
            "iq_retail",
            {
                "request_url": server.base_url,
                "company_number": "002",
                "user_number": "99",
                "user_password": DEMO_IQ_PASSWORD,
                "default_debtor_account": "CASH01",
                "shipping_code": "SHIP",
                "page_size": 500,
            },
            "Demo IQ Retail",
        )
        synced = _sync(console, source_id, "products")
        console.print(runs_table([synced], title="IQ Retail products"))
        skus = _source_skus(source_id, 12)
        withdrawn = skus[-1]
        _withdraw(url, "Stock", "code", withdrawn)
        good = [skus[2 * n : 2 * n + 2] for n in range(3)]
        rows, letters = _raise_batch(
            console, client_id, good, [withdrawn], f"IQ-{run}", "IQ Retail sales orders"
        )
        counts = iq_retail.order_counts(url)
    good_ok = all(o.status == "raised" and o.document_number for o in rows[:3])
    refused = letters.get(rows[3].id)
    refused_ok = refused is not None and f"Invalid Stock Code [{withdrawn}]" in refused.message
    once_ok = counts.headers == counts.orders == 3
    console.print(
        f"IQ now holds {counts.orders} sales orders from the demo, each once"
        if once_ok
        else f"[red]IQ holds {counts.headers} documents for {counts.orders} orders[/]"
    )
    synced_ok = synced.status == "succeeded" and synced.created > 0
    return synced_ok and good_ok and refused_ok and once_ok


def _register(code: str, kind: str, settings: dict[str, Any], name: str) -> int:
    from hub.db import session_scope
    from workers.sources import get_client, upsert_source

    with session_scope() as s:
        return upsert_source(s, get_client(s, DEMO_CLIENT), code, kind, settings, name=name).id


def _raise_batch(
    console: Console,
    client_id: int,
    good: list[list[str]],
    refused: list[str],
    prefix: str,
    title: str,
) -> tuple[list[Any], dict[int, Any]]:
    """Submit good orders and one the ERP will refuse; wait and print them."""
    from workers.orders import submit

    batch = [_order(f"{prefix}-{n}", skus) for n, skus in enumerate(good)]
    batch.append(_order(f"{prefix}-R", refused))
    ids = []
    for order in batch:
        result, errors = submit(client_id, order)
        assert result is not None, errors
        ids.append(result.order.id)
    rows = _wait_orders(ids, lambda o: o.status in ("raised", "dead"))
    return rows, _orders_table(console, rows, title)


def _isync_act(console: Console, client_id: int, products: int, run: str) -> bool:
    """iSync: variable products (one stock line per size and colour) over SOAP,
    sessions shared by the worker's processes, sales orders with shipping as
    a service line, and one refused with iSync's ResponseText."""
    from emulators import isync
    from s2s.cli import runs_table

    console.rule("[bold]iSync")
    data = isync.IsyncData.generated(products=products, variants_per_product=4, seed=5)
    data.add_service_item("SHIP")
    with isync.serve(data, password=DEMO_ISYNC_PASSWORD) as server:
        console.print(
            f"emulated iSync messaging service at {server.service_url}: "
            f"{len(data.stock_lines())} stock lines of {products} products"
        )
        source_id = _register(
            "isync",
            "isync",
            {
                "service_url": server.service_url,
                "username": server.username,
                "password": DEMO_ISYNC_PASSWORD,
                "default_customer_code": "CASH01",
                "shipping_code": "SHIP",
                "page_size": 250,
            },
            "Demo iSync",
        )
        synced = _sync(console, source_id, "products")
        console.print(runs_table([synced], title="iSync products"))
        skus = _source_skus(source_id, 10)
        lines = data.stock_lines()
        withdrawn = skus[-1]
        data.seed([line for line in lines if line["SKU"] != withdrawn])
        data.add_service_item("SHIP")
        rows, letters = _raise_batch(
            console,
            client_id,
            [skus[0:2], skus[2:4]],
            [withdrawn],
            f"IS-{run}",
            "iSync sales orders",
        )
        counts = data.order_counts()
    good_ok = all(o.status == "raised" for o in rows[:2]) and set(counts.values()) == {1}
    refused = letters.get(rows[2].id)
    refused_ok = refused is not None and withdrawn in refused.message
    return synced.status == "succeeded" and synced.created > 0 and good_ok and refused_ok


def _syspro_act(console: Console, client_id: int, var_dir: Path, stock: int, run: str) -> bool:
    """SYSPRO: the company database read by key (three queries a page),
    customers for the trade store, SORTOI orders through e.net, and one
    refused with SYSPRO's ErrorDescription."""
    from emulators import syspro
    from s2s.cli import runs_table

    console.rule("[bold]SYSPRO")
    path = var_dir / "demo-syspro.sqlite"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    summary = syspro.seed(url, stock=stock, customers=40, seed=5)
    with syspro.serve(url, operator_password=DEMO_SYSPRO_PASSWORD) as server:
        console.print(
            f"emulated SYSPRO company database ({summary.stock} stock codes, "
            f"{summary.customers} customers) and e.net at {server.enet_url}"
        )
        source_id = _register(
            "syspro",
            "syspro",
            {
                "database_url": url,
                "operator": "ADMIN",
                "operator_password": DEMO_SYSPRO_PASSWORD,
                "company_id": "EDU1",
                "enet_url": server.enet_url,
                "price_codes": {"A": "retail", "B": "wholesale", "C": "trade"},
                "sales_rep": "001",
                "default_customer_code": "CASH01",
                "order_warehouse": "WH01",
                "page_size": 500,
            },
            "Demo SYSPRO",
        )
        synced = [_sync(console, source_id, "products"), _sync(console, source_id, "customers")]
        console.print(runs_table(synced, title="SYSPRO products and customers"))
        skus = _source_skus(source_id, 10)
        withdrawn = skus[-1]
        _withdraw(url, "InvMaster", "StockCode", withdrawn)
        rows, letters = _raise_batch(
            console,
            client_id,
            [skus[0:2], skus[2:4]],
            [withdrawn],
            f"SY-{run}",
            "SYSPRO sales orders (SORTOI)",
        )
        counts = syspro.order_counts(url)
    good_ok = all(o.status == "raised" for o in rows[:2]) and counts.headers == counts.orders == 2
    refused = letters.get(rows[2].id)
    refused_ok = refused is not None and withdrawn in refused.message
    runs_ok = all(r.status == "succeeded" and r.created > 0 for r in synced)
    return runs_ok and good_ok and refused_ok


def _orders_act(console: Console, client_id: int, erp_path: Path) -> bool:
    """Raise sample orders: good ones, one the ERP refuses, and one that meets
    a locked ERP database first and is retried."""
    import sqlite3

    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Product
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

    letters = _orders_table(console, rows, "orders")
    good_ok = all(o.status == "raised" and o.attempts == 1 for o in rows[:5])
    refused_ok = rows[5].status == "dead" and rows[5].id in letters
    retried_ok = rows[6].status == "raised" and rows[6].attempts >= 2
    return good_ok and refused_ok and retried_ok
