"""Looking before syncing: ``s2s check``, ``s2s preview``, ``s2s mappings show``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from connectors.base import Connector
from hub.db import session_scope
from mappings import get_map
from s2s.cli.common import CliError, console, err_console, friendly
from workers.pipeline import kind_map, map_records
from workers.sources import connector_for, get_source, release_connectors


@click.command()
@click.argument("client_code")
@click.argument("source_code")
@friendly
def check(client_code: str, source_code: str) -> None:
    """Can the hub reach this source with its settings?"""
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
    console.print(f"[green]ok[/]: {connector_for(src).check()}")


@dataclass
class _Sample:
    """The raw rows of a preview's first records, and the pages read for them."""

    limit: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    records: int = 0
    pages: int = 0

    def add(self, row: dict[str, Any], key: Any) -> None:
        """Take the row if its record is taken already or there is room for
        it. A row without a usable key is a record of its own (the mapping
        quarantines it, naming why)."""
        if key is not None and str(key) in self.keys:
            self.rows.append(row)
        elif self.records < self.limit:
            if key is not None:
                self.keys.add(str(key))
            self.records += 1
            self.rows.append(row)


def _sample(
    conn: Connector, kind: str, stream: str, settings: dict[str, Any], limit: int
) -> _Sample:
    """The rows of the first ``limit`` records, reading pages of ``limit``
    rows until that many records are complete or the source has no more.

    An ERP may send one record as several rows (iSync: a stock line per
    variant), and a full read's page holds whole records only: the
    connector keeps a record's first rows back until its last one is read
    (the sync maps each page on its own and relies on this too). So a page
    may hold fewer records than rows, or none at all; counting records, not
    rows, is what makes ``--limit 3`` show three products.
    """
    sample = _Sample(limit)
    # First, so that a stream the ERP does not offer is refused in its words.
    page = conn.read(stream, None, limit)
    key_of = kind_map(kind, stream).key_of
    while True:
        sample.pages += 1
        for row in page.records:
            sample.add(row, key_of(row, settings))
        if sample.records >= limit or page.next_cursor is None:
            return sample
        page = conn.read(stream, page.next_cursor, limit)


@click.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", default="products", show_default=True)
@click.option(
    "--limit",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many records (products or customers, each complete) to show.",
)
@friendly
def preview(client_code: str, source_code: str, stream: str, limit: int) -> None:
    """Fetch and map the first records, writing nothing; each is named by its code.

    Reads on until ``--limit`` records are complete (an ERP may send one
    product over several rows). A deletion prints its code with ``"record":
    null``: the ERP asks for it to be removed, and the sync will count it
    deleted if the hub holds it, skipped if the hub never did.
    """
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
    settings = dict(src.settings or {})
    try:
        sample = _sample(connector_for(src), src.kind, stream, settings, limit)
    finally:
        release_connectors()
    items, errors = map_records(src.kind, stream, sample.rows, settings)
    for item in items:
        shown = {"code": item.key, "action": item.action, "record": item.data}
        console.print_json(json.dumps(shown, default=str))
    for e in errors:
        err_console.print(f"[yellow]quarantined[/] {e['key']}: {e['field']}: {e['message']}")
    pages = f"{sample.pages} page{'s' if sample.pages != 1 else ''}"
    console.print(
        f"{len(sample.rows)} raw records → {len(items)} {stream}, {len(errors)} quarantined "
        f"({pages} of up to {limit} rows read)"
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
