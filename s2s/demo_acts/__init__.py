"""The acts of ``s2s demo``: one module per kind that has one, named as the kind.

``s2s demo`` first walks through the SQL ERP (it registers the demo client,
starts the worker and syncs), then calls each registered kind's act in the
registry's order. An act is an ``Act``: it gets the demo's ``Stage`` and
says whether everything it showed went as it should. What acts share
(registering a source, syncing, raising a batch of orders and printing
them) lives here, so that a new kind's act is one new module,
``s2s/demo_acts/<kind>.py`` with its ``ACT``. The channel act
(``shopify``: the push and an order from the store) is called by ``s2s.demo``
itself, right after the SQL walk-through whose catalogue it pushes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, select, text

from hub.db import session_scope
from hub.models import DeadLetter, Order, Product
from s2s.cli.runs import wait_for_run
from workers.orders import submit
from workers.sources import get_client, upsert_source
from workers.tasks import start_sync

DEMO_CLIENT = "demo"


@dataclass(frozen=True)
class Stage:
    """What every act is handed: where to print, the demo client, the hub's
    files, the demo's catalogue size (each act sizes its ERP from it) and the
    run's stamp (which keeps order codes unique across demo runs)."""

    console: Console
    client_id: int
    var_dir: Path
    products: int
    run: str


@dataclass(frozen=True)
class Act:
    """One kind's act, and the demo passwords it gives its emulated ERP.

    The passwords are declared so that the demo's own test can check that
    none of them reaches the screen, a log, the hub's database or a task.
    """

    play: Callable[[Stage], bool]
    secrets: tuple[str, ...] = ()

    def __call__(self, stage: Stage) -> bool:
        return self.play(stage)


def sync(console: Console, source_id: int, stream: str) -> Any:
    """Start a sync of ``stream`` on the worker and wait for its run, with a bar."""

    result = start_sync(source_id, stream, requested_by="demo")
    console.print(f"  {stream}: run {result.run.id}")
    return wait_for_run(result.run.id, timeout=900)


def order(code: str, skus: list[str], customer_code: str | None = None) -> dict[str, Any]:
    """A sample order as a channel hands it over, one line per SKU."""
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


def wait_orders(ids: list[int], done: Callable[[Any], bool], timeout: float = 120) -> list[Any]:
    """The orders once ``done`` holds for each (or the timeout passed): the
    worker raises them in its own processes."""

    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as s:
            rows = [s.get(Order, i) for i in ids]
        if all(done(r) for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def orders_table(console: Console, rows: list[Any], title: str) -> dict[int, Any]:
    """Print the orders with their outcome; returns their dead letters by order id."""

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


def source_skus(source_id: int, limit: int) -> list[str]:
    """The first SKUs the hub holds for a source: what the demo's orders buy."""

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


def withdraw(url: str, table: str, column: str, code: str) -> None:
    """Delete a stock row from an emulated ERP's database: an item withdrawn
    in the ERP since the last sync, which the ERP then refuses on an order."""

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DELETE FROM "{table}" WHERE "{column}" = :code'), {"code": code})
    engine.dispose()


def register(code: str, kind: str, settings: dict[str, Any], name: str) -> int:
    """Add (or update) a source of the demo client; returns its id."""

    with session_scope() as s:
        return upsert_source(s, get_client(s, DEMO_CLIENT), code, kind, settings, name=name).id


def raise_batch(
    stage: Stage, good: list[list[str]], refused: list[str], prefix: str, title: str
) -> tuple[list[Any], dict[int, Any]]:
    """Submit good orders and one the ERP will refuse; wait and print them."""

    batch = [order(f"{prefix}-{n}", skus) for n, skus in enumerate(good)]
    batch.append(order(f"{prefix}-R", refused))
    ids = []
    for item in batch:
        result, errors = submit(stage.client_id, item)
        assert result is not None, errors
        ids.append(result.order.id)
    rows = wait_orders(ids, lambda o: o.status in ("raised", "dead"))
    return rows, orders_table(stage.console, rows, title)
