"""Clients and their sources: ``s2s client ...``, ``s2s source ...``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table
from sqlalchemy.orm import Session

from hub import queries, schedule
from hub.db import session_scope
from hub.models import Client, Source
from s2s.cli.common import CliError, KindType, console, friendly
from workers.sources import (
    channel_secret,
    channel_settings,
    get_client,
    get_source,
    public_settings,
    set_channels,
    upsert_client,
    upsert_source,
)


@click.group()
def client() -> None:
    """Clients: the businesses whose ERPs and channels the hub connects."""


@client.command("add")
@click.argument("code")
@click.option("--name", help="Display name.")
@friendly
def client_add(code: str, name: str | None) -> None:
    """Add a client (prints its API token once)."""
    with session_scope() as s:
        c, token = upsert_client(s, code, name)
    if token:
        console.print(f"client {c.code!r} added; API token (shown once): {token}")
    else:
        console.print(f"client {c.code!r} exists; name updated")


@client.command("list")
@friendly
def client_list() -> None:
    """List clients and their sources."""
    table = Table("client", "name", "sources", "channels")
    with session_scope() as s:
        for c, srcs in queries.clients_with_sources(s):
            table.add_row(
                c.code,
                c.name,
                ", ".join(f"{x.code} ({x.kind})" for x in srcs),
                ", ".join(sorted(c.channel_settings or {})),
            )
    console.print(table)


def describe_channel(c: Client, channel: str) -> str:
    """What is set for a channel, without the secret itself."""
    status = channel_settings(c, channel).get("add_order_status")
    secret = "secret set" if channel_secret(c, channel) else "secret not set"
    return f"{secret}, add_order_status {status or 'not set'}"


@client.command("channel")
@click.argument("client_code")
@click.argument("channel")
@click.option(
    "--secret",
    help="The channel's webhook signing secret; '-' reads it from standard input "
    "(keeps it out of shell history). Omit to keep the stored one.",
)
@click.option("--add-order-status", help="The channel order status at which an order is raised.")
@friendly
def client_channel(
    client_code: str, channel: str, secret: str | None, add_order_status: str | None
) -> None:
    """Set a client's channel: webhook secret (encrypted) and add-order status.

    The channel's settings are replaced by the options given, as 'source add'
    replaces a source's settings; the secret is kept when --secret is omitted.
    """
    spec: dict[str, Any] = {}
    if secret is not None:
        spec["secret"] = sys.stdin.readline().rstrip("\r\n") if secret == "-" else secret
    if add_order_status is not None:
        spec["add_order_status"] = add_order_status
    with session_scope() as s:
        c = get_client(s, client_code)
        set_channels(s, c, {channel: spec})
        described = describe_channel(c, channel)
    console.print(f"channel {client_code}/{channel} saved: {described}", highlight=False)


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise CliError(f"--set takes NAME=VALUE, not {pair!r}")
        k, v = pair.split("=", 1)
        out[k.strip()] = v
    return out


def _parse_every(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        stream, sep, when = pair.partition("=")
        if not sep or not stream.strip():
            raise CliError(f"--every takes STREAM=WHEN (seconds, 15m, cron or off), not {pair!r}")
        out[stream.strip()] = when
    return out


def apply_schedules(session: Session, source: Source, spec: Any, where: str) -> None:
    """Give each of the source's streams its schedule from ``spec``; a stream
    not named is on demand. ``None`` leaves every schedule as it is."""
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise CliError(f"{where}: schedule maps each stream to seconds, 15m, cron or off")
    rows = {r.stream: r for r in schedule.streams_of(session, source.id)}
    unknown = sorted(set(spec) - set(rows))
    if unknown:
        raise CliError(
            f"{where}: source {source.code!r} has no stream {unknown[0]!r} "
            f"(streams: {', '.join(sorted(rows)) or 'none'})"
        )
    for stream, row in rows.items():
        try:
            parsed = schedule.parse(spec.get(stream))
        except schedule.ScheduleError as exc:
            raise CliError(f"{where}.{stream}: {exc}") from None
        schedule.set_schedule(session, row, parsed)


@click.group()
def source() -> None:
    """Sources: a client's ERP."""


@source.command("add")
@click.argument("client_code")
@click.argument("code")
@click.option("--kind", required=True, type=KindType(), help="ERP kind.")
@click.option("--name")
@click.option("--set", "sets", multiple=True, help="A setting NAME=VALUE (repeatable).")
@click.option(
    "--every",
    multiple=True,
    help="Schedule STREAM=WHEN: seconds, 15m/1h/1d, a cron expression or off (repeatable).",
)
@friendly
def source_add(
    client_code: str,
    code: str,
    kind: str,
    name: str | None,
    sets: tuple[str, ...],
    every: tuple[str, ...],
) -> None:
    """Add or update a source. Secret settings are encrypted at rest."""
    with session_scope() as s:
        c = get_client(s, client_code)
        src = upsert_source(s, c, code, kind, _parse_sets(sets), name=name)
        apply_schedules(s, src, _parse_every(every), "--every")
    console.print(f"source {client_code}/{src.code} ({kind}) saved")


@source.command("show")
@click.argument("client_code")
@click.argument("code")
@friendly
def source_show(client_code: str, code: str) -> None:
    """Show a source's settings (secrets shown only as set / not set)."""
    with session_scope() as s:
        src = get_source(s, client_code, code)
        console.print_json(
            json.dumps({"kind": src.kind, "settings": public_settings(src)}, default=str)
        )
