"""Channel orders: ``s2s orders template``, ``submit``, ``list`` and ``show``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hub import queries
from hub.db import session_scope
from hub.models import Client, Order, Source
from s2s.cli.common import (
    CliError,
    Listing,
    console,
    flat,
    friendly,
    iso,
    print_json,
    say,
    say_facts,
    stamp,
)
from s2s.cli.dlq import letters_table
from s2s.order_example import order_example_json
from workers.orders import submit
from workers.sources import get_client

ORDER_STATES = ("received", "stored", "queued", "raising", "raised", "dead", "discarded")


def _order_label(payload: Any, index: int) -> str:
    """How a problem names an order: its channel code when it has one, else its place."""
    code = payload.get("channel_order_code") if isinstance(payload, dict) else None
    if isinstance(code, str | int) and not isinstance(code, bool) and str(code).strip():
        return f"order #{str(code).strip()}"
    return f"order [{index}]"


def _read_orders(file: Path) -> list[Any]:
    """The file's orders: one JSON object or a list of them; bad JSON is one clear line."""
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    except UnicodeDecodeError:
        raise CliError(f"{file}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{file}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    orders = doc if isinstance(doc, list) else [doc]
    if not orders:
        raise CliError(f"{file}: the list holds no orders")
    return orders


@click.group()
def orders() -> None:
    """Channel orders: a template, submit, list, show their state history."""


@orders.command("template")
def orders_template() -> None:
    """Print a complete canonical order, every field filled, to edit and submit.

    The same example as the README's and the API document's: ``s2s orders
    template > order.json`` gives a file ``s2s orders submit`` takes as it is
    (change the SKUs and the customer code to ones your ERP knows).
    """
    click.echo(order_example_json())


@orders.command("submit")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--client", "client_code", required=True, help="The client the orders belong to.")
@friendly
def orders_submit(file: Path, client_code: str) -> None:
    """Submit a JSON file holding one canonical order or a list of them.

    Goes through the same intake as the API (validated, stored once per
    channel and order code, then routed), so a file submitted twice raises
    nothing twice. Valid orders are stored even when others in the file are
    not; the exit status is 1 if any order was invalid.
    """
    if str(file) != "-" and not file.is_file():
        raise CliError(f"{file}: no such file")
    payloads = _read_orders(file)
    with session_scope() as s:
        client_id = get_client(s, client_code).id
    invalid = 0
    for index, payload in enumerate(payloads):
        result, errors = submit(client_id, payload)
        if result is None:
            invalid += 1
            label = _order_label(payload, index)
            for field, message in errors:
                # "record" is the schema's name for the whole order, not a field.
                where = "" if field == "record" else f"{field}: "
                say(f"{label}: {where}{message}", err=True)
            continue
        row = result.order
        outcome = row.status if result.created else f"duplicate of order {row.id}"
        say(f"order {row.id} {row.channel}/{row.channel_order_code}: {outcome}")
    if invalid:
        accepted = len(payloads) - invalid
        raise CliError(
            f"{invalid} of {len(payloads)} orders invalid and not stored; {accepted} accepted"
        )


@orders.command("list")
@click.option("--client", "client_code", help="Only this client's orders.")
@click.option("--status", help=f"Only orders in this state ({', '.join(ORDER_STATES)}).")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array on stdout, for scripts.")
@friendly
def orders_list(client_code: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List orders, newest first, with where each stands and the last error whole."""
    if status is not None and status not in ORDER_STATES:
        raise CliError(f"unknown order status {status!r} (one of {', '.join(ORDER_STATES)})")
    with session_scope() as s:
        client_id = get_client(s, client_code).id if client_code else None
        found = queries.orders_listing(s, client_id=client_id, status=status, limit=limit)
        if as_json:
            print_json([_order_json(*row) for row in found])
            return
        table = Listing(("last error",))
        for name in ("id", "client", "channel", "order code", "status", "source", "document"):
            table.column(name, justify="right" if name == "id" else "left")
        table.column("attempts", justify="right")
        table.column("updated (UTC)")
        for order, ccode, scode in found:
            table.row(
                f"order {order.id}",
                [
                    str(order.id),
                    ccode,
                    order.channel,
                    order.channel_order_code,
                    order.status,
                    scode or "-",
                    order.document_number or "-",
                    str(order.attempts),
                    stamp(order.updated_at),
                ],
                [order.last_error],
            )
    console.print(table)


def _order_json(order: Order, client_code: str, source_code: str | None) -> dict[str, Any]:
    """An order for scripts: the table's fields, whole, with ISO times."""
    return {
        "id": order.id,
        "client": client_code,
        "channel": order.channel,
        "channel_order_code": order.channel_order_code,
        "instruction": order.instruction,
        "status": order.status,
        "source": source_code,
        "document_number": order.document_number,
        "attempts": order.attempts,
        "last_error": order.last_error,
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
        "raised_at": iso(order.raised_at),
    }


def _order_facts(order: Order, c: Client | None, src: Source | None) -> list[tuple[str, str]]:
    return [
        ("order", f"{order.id} {order.channel}/{order.channel_order_code}"),
        ("client", c.code if c else str(order.client_id)),
        ("instruction", order.instruction),
        ("status", order.status),
        ("source", f"{src.code} ({src.kind})" if src else "-"),
        ("document number", order.document_number or "-"),
        ("attempts", str(order.attempts)),
        ("received", f"{stamp(order.created_at)} UTC"),
        ("updated", f"{stamp(order.updated_at)} UTC"),
        ("raised", f"{stamp(order.raised_at)} UTC" if order.raised_at else "-"),
        ("last error", flat(order.last_error) or "-"),
    ]


@orders.command("show")
@click.argument("order_id", type=int)
@friendly
def orders_show(order_id: int) -> None:
    """An order's facts, ERP document number, last error, state history and dead letters."""
    with session_scope() as s:
        order = s.get(Order, order_id)
        if order is None:
            raise CliError(f"no order {order_id}")
        c = s.get(Client, order.client_id)
        src = s.get(Source, order.source_id) if order.source_id else None
        say_facts(_order_facts(order, c, src))
        history = Listing(("message",), title="history")
        history.column("time (UTC)")
        history.column("status")
        for ev in queries.order_history(s, order.id):
            history.row(f"{stamp(ev.at)} {ev.status}", [stamp(ev.at), ev.status], [ev.message])
        console.print(history)
        letters = [
            (letter, order, c.code if c else "") for letter in queries.letters_of_order(s, order.id)
        ]
        if letters:
            console.print(letters_table(letters, full=True, title="dead letters"))
