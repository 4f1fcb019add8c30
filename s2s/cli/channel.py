"""``s2s channel add|list|show``: a client's sales channels as records."""

from __future__ import annotations

import json
import os
from typing import Any

import click
from rich.table import Table

from hub.db import session_scope
from hub.models import Client
from s2s.cli.apply import _expand_env
from s2s.cli.clients import _parse_sets, describe_channel
from s2s.cli.common import CliError, cell, console, friendly, say
from workers import channels as channel_records
from workers.sources import get_client, set_channels


@click.group("channel")
def channel() -> None:
    """Channels: the stores (Shopify, WooCommerce) a client's orders come from."""


def _from_env(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VAR`` pairs: the setting's value read from the environment, never argv."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, var = pair.partition("=")
        if not name.strip() or not var.strip():
            raise CliError(f"--secret-from-env takes NAME=VARIABLE, not {pair!r}")
        if var.strip() not in os.environ:
            raise CliError(
                f"--secret-from-env {name.strip()}: environment variable {var} is not set"
            )
        out[name.strip()] = os.environ[var.strip()]
    return out


@channel.command("add")
@click.argument("client_code")
@click.argument("kind", type=click.Choice(channel_records.KINDS))
@click.option("--code", help="The channel's code in webhook paths (default: the kind).")
@click.option("--set", "sets", multiple=True, help="A setting NAME=VALUE (repeatable; ${ENV}).")
@click.option(
    "--secret-from-env",
    "from_env",
    multiple=True,
    help="A secret setting NAME=VARIABLE read from the environment (repeatable).",
)
@friendly
def channel_add(
    client_code: str, kind: str, code: str | None, sets: tuple[str, ...], from_env: tuple[str, ...]
) -> None:
    """Declare a client's channel (settings replaced; stored secrets kept unless given).

    Secrets are encrypted at rest and never printed; pass them with
    --secret-from-env or --set NAME='${VAR}' to keep them out of argv.
    """
    code = code or kind
    spec = _expand_env(_parse_sets(sets), f"channel {client_code}/{code}")
    spec.update(_from_env(from_env))
    with session_scope() as s:
        c = get_client(s, client_code)
        set_channels(s, c, {code: {"kind": kind, **spec}})
        described = describe_channel(c, code)
    say(f"channel {client_code}/{code} saved: {described}")


@channel.command("list")
@click.option("--client", "client_code", help="Only this client's channels.")
@friendly
def channel_list(client_code: str | None) -> None:
    """List channels: client, code, kind, store address, add-order status."""
    table = Table("client", "channel", "kind")
    # A store's address folds rather than being cut: it is copied from here.
    table.add_column("store", overflow="fold")
    table.add_column("add-order status", overflow="fold")
    with session_scope() as s:
        only: Client | None = get_client(s, client_code) if client_code else None
        codes = {c.id: c.code for c in s.query(Client)}
        for ch in channel_records.list_channels(s, only):
            settings = ch.settings or {}
            table.add_row(
                codes.get(ch.client_id, str(ch.client_id)),
                ch.code,
                ch.kind,
                cell(settings.get("store_url") or "-"),
                cell(settings.get("add_order_status") or "-"),
            )
    console.print(table)


@channel.command("show")
@click.argument("client_code")
@click.argument("code")
@friendly
def channel_show(client_code: str, code: str) -> None:
    """Show a channel's settings, defaults filled in (secrets shown as ***)."""
    with session_scope() as s:
        c = get_client(s, client_code)
        row = channel_records.get_channel(s, c, code)
        if row is None:
            raise CliError(
                f"client {client_code!r} has no channel {code!r} "
                f"(add it with 's2s channel add {client_code} KIND')"
            )
        view = channel_records.public_view(row)
    console.print_json(json.dumps(view, default=str))
