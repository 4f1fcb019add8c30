"""Looking before syncing: ``s2s check``, ``s2s preview``, ``s2s mappings show``."""

from __future__ import annotations

import json

import click

from hub.db import session_scope
from mappings import get_map
from s2s.cli.common import CliError, console, err_console, friendly
from workers.pipeline import map_records
from workers.sources import connector_for, get_source


@click.command()
@click.argument("client_code")
@click.argument("source_code")
@friendly
def check(client_code: str, source_code: str) -> None:
    """Can the hub reach this source with its settings?"""
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
    console.print(f"[green]ok[/]: {connector_for(src).check()}")


@click.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", default="products", show_default=True)
@click.option("--limit", default=5, show_default=True, help="How many records to fetch.")
@friendly
def preview(client_code: str, source_code: str, stream: str, limit: int) -> None:
    """Fetch and map a few records, writing nothing."""
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
    conn = connector_for(src)
    page = conn.read(stream, None, limit)
    items, errors = map_records(src.kind, stream, page.records, src.settings or {})
    for item in items:
        console.print_json(json.dumps({"action": item.action, "record": item.data}, default=str))
    for e in errors:
        err_console.print(f"[yellow]quarantined[/] {e['key']}: {e['field']}: {e['message']}")
    console.print(
        f"{len(page.records)} raw records → {len(items)} {stream}, {len(errors)} quarantined"
    )


@click.group()
def mappings() -> None:
    """The field maps from each ERP to the hub."""


@mappings.command("show")
@click.argument("erp")
@click.argument("stream")
def mappings_show(erp: str, stream: str) -> None:
    """Print a map as the getting-started page's table (e.g. 'sql products')."""
    try:
        m = get_map(erp, stream)
    except KeyError as exc:
        raise CliError(str(exc.args[0]) if exc.args else str(exc)) from None
    click.echo(m.render())
