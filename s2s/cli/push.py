"""Pushes to the channels: ``s2s push``, ``s2s channel problems|pushes|check``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
from rich.console import Console, ConsoleOptions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub import pushes
from hub.db import session_scope
from hub.models import Channel, PushRun
from s2s.cli.channel import channel
from s2s.cli.common import CliError, Listing, console, friendly, print_json, say, stamp
from workers import channels as channel_records
from workers.pushing import connector_for, start_push
from workers.sources import get_client


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


# A count's name in words, where the name alone says too little.
_SAID = {"stock": "stock-only"}


class PushTable:
    """Push runs with their counts and whole errors (``s2s channel pushes``,
    ``s2s push --wait``, the demo).

    A column per count, with the errors folded beside them, needs 130 to 160
    characters; cut to a narrower terminal, the headers no longer say which
    count is which. There the counts go in one column of words instead (the
    ones that are not 0), and the errors fold beside them or follow the
    table (``Listing``). Decided when printed.
    """

    def __init__(self, rows: list[PushRun], title: str | None = None) -> None:
        self.wide = self._listing(rows, title, compact=False)
        self.narrow = self._listing(rows, title, compact=True)

    @staticmethod
    def _listing(rows: list[PushRun], title: str | None, *, compact: bool) -> Listing:
        table = Listing(("error",), title=title)
        table.column("run", justify="right", no_wrap=True)
        table.column("status", no_wrap=True)
        table.column("by", no_wrap=True)
        if compact:
            table.column("products")
        for col in () if compact else pushes.COUNTS:
            table.column(col, justify="right")
        table.column("seconds", justify="right")
        for r in rows:
            secs = (r.finished_at - r.created_at).total_seconds() if r.finished_at else None
            counts = [_counted(r)] if compact else [str(getattr(r, n)) for n in pushes.COUNTS]
            seconds = f"{secs:.1f}" if secs is not None else "…"
            table.row(
                f"push {r.id}", [str(r.id), r.status, r.requested_by, *counts, seconds], [r.error]
            )
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Listing]:
        yield self.wide if self.wide.fits(console, options) else self.narrow


def _counted(run: PushRun) -> str:
    """'12 considered: 10 created, 1 refused', the counts of 0 left out."""
    done = [f"{getattr(run, n)} {_SAID.get(n, n)}" for n in pushes.COUNTS[1:] if getattr(run, n)]
    return f"{run.considered} considered" + (f": {', '.join(done)}" if done else "")


def push_table(rows: list[PushRun], title: str | None = None) -> PushTable:
    """The push runs' table (see ``PushTable``)."""
    return PushTable(rows, title)


def problems_table(found: list[dict[str, Any]], title: str | None = None) -> Listing:
    """Refused products with the store's words whole (``s2s channel problems``,
    the demo); ``found`` as ``hub.pushes.problems`` gives them."""
    table = Listing(("the store's words",), title=title)
    # Codes never wrap, so they can be read and grepped whole.
    table.column("source", no_wrap=True)
    table.column("product", no_wrap=True)
    table.column("refused (UTC)", no_wrap=True)
    table.column("in store")
    for p in found:
        at = datetime.fromisoformat(p["refused_at"]) if p["refused_at"] else None
        table.row(
            f"product {p['source']}:{p['code']}",
            [p["source"], p["code"], stamp(at), "yes" if p["in_store"] else "no"],
            [p["error"]],
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
@click.option("--json", "as_json", is_flag=True, help="A JSON array on stdout, for scripts.")
@friendly
def channel_problems(client_code: str, channel_code: str, limit: int, as_json: bool) -> None:
    """Products the store refused, newest first, with the store's own words.

    They are sent again when they change in the ERP, or with
    's2s push CLIENT CHANNEL --retry-refused'.
    """
    channel_id, _ = _channel(client_code, channel_code)
    with session_scope() as s:
        row = s.get(Channel, channel_id)
        assert row is not None
        found = pushes.problems(s, row, limit)
    if as_json:
        print_json(found)
    elif not found:
        say(f"{client_code}/{channel_code}: the store has refused no product")
    else:
        console.print(problems_table(found))


@channel.command("pushes")
@click.argument("client_code")
@click.argument("channel_code")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array on stdout, for scripts.")
@friendly
def channel_pushes(client_code: str, channel_code: str, limit: int, as_json: bool) -> None:
    """A channel's recent push runs, newest first, with their counts and errors."""
    channel_id, _ = _channel(client_code, channel_code)
    with session_scope() as s:
        row = s.get(Channel, channel_id)
        assert row is not None
        runs = pushes.runs_of(s, row, limit)
        for r in runs:
            s.expunge(r)
    if as_json:
        print_json([pushes.run_view(r) for r in runs])
    elif not runs:
        say(f"{client_code}/{channel_code}: no push yet")
    else:
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
