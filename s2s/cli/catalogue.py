"""The catalogue as the hub holds it: ``s2s products ...``, ``s2s customers ...``.

So that checking a sync needs no SQL: a client's products and customers
listed with filters, or one shown in full, read through ``hub.catalogue``
(the same records the HTTP feed returns). ``--json`` prints exactly those
records for scripts. Codes, titles and names come from the ERP: they are
printed whole and literally, never cut or read as markup.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from hub import catalogue
from hub.db import session_scope
from s2s.cli.common import CliError, cell, console, friendly, say, say_facts
from workers.sources import get_client


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"--changed-since: {value!r} is not a date or time such as 2026-12-05 or "
            "2026-12-05T14:30"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _state(entry: dict[str, Any]) -> str:
    # The store keeps a record active until its ERP deletes it (soft delete).
    return "deleted" if entry["deleted"] else "active"


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def products_table(entries: list[dict[str, Any]]) -> Table:
    table = Table()
    for name in ("source", "code", "title", "SKUs", "qty", "state", "changed (UTC)"):
        table.add_column(name, justify="right" if name == "qty" else "left")
    for entry in entries:
        data = entry["product"] or {}
        variants = data.get("variants") or []
        qty = sum(v.get("qty") or 0 for v in variants) if variants else None
        table.add_row(
            cell(entry["source"]),
            cell(entry["code"]),
            cell(data.get("title")),
            cell(", ".join(str(v.get("sku")) for v in variants)),
            cell(qty),
            _state(entry),
            _when(entry["changed_at"]),
        )
    return table


def customers_table(entries: list[dict[str, Any]]) -> Table:
    table = Table()
    for name in ("source", "code", "name", "email", "state", "changed (UTC)"):
        table.add_column(name)
    for entry in entries:
        data = entry["customer"] or {}
        name = " ".join(str(data[k]) for k in ("first_name", "last_name") if data.get(k))
        table.add_row(
            cell(entry["source"]),
            cell(entry["code"]),
            cell(name),
            cell(data.get("email")),
            _state(entry),
            _when(entry["changed_at"]),
        )
    return table


def _listing(
    stream: str, table: Callable[[list[dict[str, Any]]], Table], options: dict[str, Any]
) -> None:
    if options["limit"] < 1:
        raise CliError("--limit must be 1 or more")
    with session_scope() as s:
        client = get_client(s, options["client_code"])
        entries = catalogue.listing(
            s,
            client.id,
            stream,
            source=options["source"],
            code=options["code"],
            active=options["active"],
            changed_since=_since(options["changed_since"]),
            limit=options["limit"],
        )
    if options["as_json"]:
        _print_json(entries)
    elif entries:
        console.print(table(entries))
    else:
        say(f"no {stream} match")


def _show(stream: str, client_code: str, code: str, as_json: bool) -> dict[str, Any]:
    with session_scope() as s:
        client = get_client(s, client_code)
        entry = catalogue.one(s, client.id, stream, code)
    if entry is None:
        raise CliError(f"client {client_code!r} has no {stream[:-1]} {code!r}")
    if as_json:
        _print_json(entry)
    return entry


def _list_options(key: str, key_help: str) -> Callable[[Any], Any]:
    """The filters ``list`` takes for both streams."""

    def decorate(fn: Any) -> Any:
        for option in reversed(
            [
                click.option("--client", "client_code", required=True, help="The client's code."),
                click.option("--source", help="Only this source's records (its code)."),
                click.option(key, "code", help=key_help),
                click.option(
                    "--active/--inactive",
                    default=None,
                    help="Only active records, or only deleted ones.",
                ),
                click.option(
                    "--changed-since",
                    metavar="TIME",
                    help="Only those changed at or after TIME (ISO 8601, UTC if no zone).",
                ),
                click.option("--limit", type=int, default=100, show_default=True),
                click.option("--json", "as_json", is_flag=True, help="Print the records as JSON."),
            ]
        ):
            fn = option(fn)
        return fn

    return decorate


@click.group()
def products() -> None:
    """A client's products as the hub holds them."""


@products.command("list")
@_list_options("--sku", "Only the product with this code or a variant with this SKU.")
@friendly
def products_list(**options: Any) -> None:
    """List a client's products by source and code."""
    _listing("products", products_table, options)


@products.command("show")
@click.option("--client", "client_code", required=True, help="The client's code.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.argument("code_or_sku")
@friendly
def products_show(client_code: str, code_or_sku: str, as_json: bool) -> None:
    """A product in full, found by its code or any of its variants' SKUs."""
    entry = _show("products", client_code, code_or_sku, as_json)
    if as_json:
        return
    data = entry["product"] or {}
    say_facts(
        [
            ("source", entry["source"]),
            ("code", entry["code"]),
            ("title", str(data.get("title") or "-")),
            ("state", _state(entry)),
            ("changed (UTC)", _when(entry["changed_at"])),
        ]
    )
    variants = data.get("variants") or []
    if variants:
        table = Table()
        for name in ("variant", "SKU", "qty", "price"):
            table.add_column(name, justify="right" if name in ("qty", "price") else "left")
        for v in variants:
            table.add_row(
                cell(v.get("source_variant_code")),
                cell(v.get("sku")),
                cell(v.get("qty")),
                cell(v.get("price")),
            )
        console.print(table)


@click.group()
def customers() -> None:
    """A client's customers as the hub holds them."""


@customers.command("list")
@_list_options("--code", "Only the customer with this code.")
@friendly
def customers_list(**options: Any) -> None:
    """List a client's customers by source and code."""
    _listing("customers", customers_table, options)


@customers.command("show")
@click.option("--client", "client_code", required=True, help="The client's code.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.argument("code")
@friendly
def customers_show(client_code: str, code: str, as_json: bool) -> None:
    """A customer in full, found by its code."""
    entry = _show("customers", client_code, code, as_json)
    if as_json:
        return
    data = entry["customer"] or {}
    facts = [("source", entry["source"]), ("code", entry["code"]), ("state", _state(entry))]
    facts.append(("changed (UTC)", _when(entry["changed_at"])))
    facts += [(k, str(v)) for k, v in data.items() if k != "source_customer_code" and _plain(v)]
    for i, address in enumerate(data.get("addresses") or [], start=1):
        parts = [str(v) for v in address.values() if v not in (None, "")]
        facts.append((f"address {i}", ", ".join(parts)))
    say_facts(facts)


def _plain(value: Any) -> bool:
    return value is not None and not isinstance(value, (dict, list))
