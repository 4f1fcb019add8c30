"""Pushes to the channels: ``s2s push``, ``s2s channel problems|pushes|check``."""

from __future__ import annotations

import time

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub import pushes
from hub.db import session_scope
from hub.models import Channel, PushRun
from s2s.cli.channel import channel
from s2s.cli.common import CliError, cell, console, friendly, say
from workers import channels as channel_records
from workers.pushing import connector_for, start_push
from workers.sources import get_client

_SENT = ("created", "updated", "stock", "archived")
_COLUMNS = ("run", "status", "by", *pushes.COUNTS, "seconds", "error")


def _channel(client_code: str, code: str) -> tuple[int, str]:
    with session_scope() as s:
        client = get_client(s, client_code)
        row = channel_records.get_channel(s, client, code)
        if row is None:
            raise CliError(
                f"client {client_code!r} has no channel {code!r} "
                f"(add it with 's2s channel add {client_code} KIND')"
            )
        return row.id, row.kind


def wait_for_push(run_id: int, *, timeout: float = 3600, show: bool = True) -> PushRun:
    """Poll the push run until it ends, with a bar of products gone through."""
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("products"),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    ) as progress:
        bar = progress.add_task(f"push {run_id}", total=None)
        while True:
            with session_scope() as s:
                run = s.get(PushRun, run_id)
                assert run is not None
                total = max(run.target - (0 if run.full else run.position), run.considered)
                progress.update(bar, completed=run.considered, total=total or None)
                if run.status != pushes.ACTIVE:
                    s.expunge(run)
                    return run
            if time.monotonic() > deadline:
                raise CliError(f"push {run_id} is still running after {timeout:.0f}s")
            time.sleep(0.25)


def push_table(rows: list[PushRun], title: str | None = None) -> Table:
    """Push runs with their counts (``s2s channel pushes``, ``s2s push --wait``, the demo)."""
    table = Table(title=title)
    for col in _COLUMNS:
        table.add_column(col, justify="left" if col in ("status", "by", "error") else "right")
    for r in rows:
        secs = (r.finished_at - r.created_at).total_seconds() if r.finished_at else None
        table.add_row(
            str(r.id),
            r.status,
            r.requested_by,
            *(str(getattr(r, name)) for name in pushes.COUNTS),
            f"{secs:.1f}" if secs is not None else "…",
            cell(r.error or ""),
        )
    return table


@click.command("push")
@click.argument("client_code")
@click.argument("channel_code")
@click.option("--full", is_flag=True, help="Send every product again, whatever the store holds.")
@click.option(
    "--retry-refused", is_flag=True, help="Send the products the store refused once more."
)
@click.option("--wait/--no-wait", default=False, help="Wait and show progress until it ends.")
@friendly
def push(client_code: str, channel_code: str, full: bool, retry_refused: bool, wait: bool) -> None:
    """Push a client's products, prices and stock to one of its channels.

    Sends what changed since the store was last brought up to date (the
    change feed from the channel's cursor); a worker serving push.<kind>
    does the work. With --wait, shows progress and the run's counts.
    """
    channel_id, _kind = _channel(client_code, channel_code)
    try:
        result = start_push(channel_id, full=full, retry_refused=retry_refused, requested_by="cli")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    run = result.run
    if not result.created:
        say(f"push {run.id} of {client_code}/{channel_code} is already running")
    else:
        say(f"push {run.id} of {client_code}/{channel_code} started")
    if wait:
        ended = wait_for_push(run.id)
        console.print(push_table([ended]))
        if ended.status != pushes.SUCCEEDED:
            raise CliError(f"push {ended.id} {ended.status}: {ended.error}")


@channel.command("problems")
@click.argument("client_code")
@click.argument("channel_code")
@click.option("--limit", default=100, show_default=True)
@friendly
def channel_problems(client_code: str, channel_code: str, limit: int) -> None:
    """Products the store refused, with the store's own words.

    They are sent again when they change in the ERP, or with
    's2s push CLIENT CHANNEL --retry-refused'.
    """
    channel_id, _ = _channel(client_code, channel_code)
    with session_scope() as s:
        row = s.get(Channel, channel_id)
        assert row is not None
        found = pushes.problems(s, row, limit)
    if not found:
        say(f"{client_code}/{channel_code}: the store has refused no product")
        return
    table = Table("source", "product", "refused at", "in store", "the store's words")
    for p in found:
        table.add_row(
            p["source"],
            p["code"],
            p["refused_at"] or "",
            "yes" if p["in_store"] else "no",
            cell(p["error"] or ""),
        )
    console.print(table)


@channel.command("pushes")
@click.argument("client_code")
@click.argument("channel_code")
@click.option("--limit", default=20, show_default=True)
@friendly
def channel_pushes(client_code: str, channel_code: str, limit: int) -> None:
    """A channel's recent push runs with their counts."""
    channel_id, _ = _channel(client_code, channel_code)
    with session_scope() as s:
        row = s.get(Channel, channel_id)
        assert row is not None
        runs = pushes.runs_of(s, row, limit)
        for r in runs:
            s.expunge(r)
    console.print(push_table(runs, title=f"pushes of {client_code}/{channel_code}"))


@channel.command("check")
@click.argument("client_code")
@click.argument("channel_code")
@friendly
def channel_check(client_code: str, channel_code: str) -> None:
    """Reach the store with the channel's settings and say what was found."""
    channel_id, _ = _channel(client_code, channel_code)
    with session_scope() as s:
        row = s.get(Channel, channel_id)
        assert row is not None
        if not channel_records.pushes(row):
            raise CliError(f"channel {channel_code!r} has no store_url: it takes orders only")
        connector = connector_for(row)
    with connector:
        say(connector.check())


def _set_paused(client_code: str, channel_code: str, paused: bool) -> None:
    channel_id, _ = _channel(client_code, channel_code)
    with session_scope() as s:
        row = s.get(Channel, channel_id)
        assert row is not None
        already = row.paused == paused
        row.paused = paused
    verb = "paused" if paused else "resumed"
    say(f"{client_code}/{channel_code}: pushes {'already ' if already else ''}{verb}")


@channel.command("pause")
@click.argument("client_code")
@click.argument("channel_code")
@friendly
def channel_pause(client_code: str, channel_code: str) -> None:
    """No scheduled or sync-triggered pushes to this store; `s2s push` still works."""
    _set_paused(client_code, channel_code, True)


@channel.command("resume")
@click.argument("client_code")
@click.argument("channel_code")
@friendly
def channel_resume(client_code: str, channel_code: str) -> None:
    """Pushes to this store on its schedule and after syncs again."""
    _set_paused(client_code, channel_code, False)
