"""Where everything stands and when it runs: ``s2s status``, ``s2s schedule``,
``s2s pause``, ``s2s resume``."""

from __future__ import annotations

import click
from rich.table import Table
from sqlalchemy.orm import Session

from hub import queries, schedule
from hub.db import session_scope
from s2s.cli.common import CliError, cell, console, friendly, pages, say, stamp
from workers import channels as channel_records
from workers.ops import broadcasts, queue_depths, workers_online
from workers.pushing import channel_summary
from workers.sources import get_client, get_source


@click.command()
@click.option("--client", "client_code", help="Only this client's sources.")
@friendly
def status(client_code: str | None) -> None:
    """Per source and stream: schedule, paused, next due, last run with counts and
    progress; then open dead letters, queue depths and the workers online."""
    with session_scope() as s:
        client_id = get_client(s, client_code).id if client_code else None
        table = _streams_table(queries.stream_statuses(s, client_id))
        channels = _channels_table(s, client_id)
        letters, oldest = queries.open_letters(s)
    console.print(table)
    if channels is not None:
        console.print(channels)
    if letters:
        say(f"dead letters: {letters} open, oldest {stamp(oldest)} UTC (s2s dlq list shows them)")
    else:
        say("dead letters: none open")
    _say_broker()


def _streams_table(rows: list[queries.StreamStatus]) -> Table:
    table = Table(caption="counts: +created ~updated =unchanged -deleted !quarantined")
    for col in ("client", "source", "stream", "schedule", "paused", "next due (UTC)"):
        table.add_column(col, no_wrap=True)
    for col in ("last run", "status", "counts", "pages"):
        table.add_column(col)
    for row in rows:
        src, st, last = row.source, row.stream, row.last_run
        counts = (
            f"+{last.created} ~{last.updated} ={last.unchanged} -{last.deleted} !{last.quarantined}"
            if last
            else ""
        )
        state = last.status if last else "never run"
        if st.queued_at is not None:
            state += " (+1 queued)"
        paused = "yes" if st.paused else ("source disabled" if not src.enabled else "no")
        table.add_row(
            cell(row.client_code),
            cell(src.code),
            st.stream,
            cell(schedule.of(st).describe()),
            paused,
            stamp(st.next_due_at) if st.next_due_at else "-",
            str(last.id) if last else "-",
            state,
            counts,
            pages(last) if last else "",
        )
    return table


def _channels_table(s: Session, client_id: int | None) -> Table | None:
    """Per pushing channel: products waiting (feed lag), the last push, refusals."""
    rows = [
        (code, ch)
        for code, ch in queries.channels_with_clients(s, client_id)
        if channel_records.pushes(ch)
    ]
    if not rows:
        return None
    table = Table(caption="last push: +created ~updated $stock-only ^archived !refused")
    for col in ("client", "channel", "kind", "paused", "waiting", "refused", "next push (UTC)"):
        table.add_column(col, no_wrap=True)
    for col in ("last push", "status", "counts", "error"):
        table.add_column(col)
    for client_code, ch in rows:
        v = channel_summary(ch, s)
        last = v["last_push"]
        counts = (
            f"+{last['created']} ~{last['updated']} ${last['stock']} ^{last['archived']} "
            f"!{last['refused']}"
            if last
            else ""
        )
        table.add_row(
            cell(client_code),
            cell(ch.code),
            ch.kind,
            "yes" if ch.paused else "no",
            str(v["waiting"]),
            str(v["refused"]),
            stamp(ch.next_push_at) if ch.next_push_at else "-",
            str(last["id"]) if last else "-",
            last["status"] if last else "never pushed",
            counts,
            cell(last["error"] or "") if last else "",
        )
    return table


def _say_broker() -> None:
    """Queue depths and the workers online, warning of a queue nobody serves."""
    depths = queue_depths()
    say("queues: " + ", ".join(f"{q}={n if n is not None else '?'}" for q, n in depths.items()))
    workers = workers_online()
    if workers is None:
        say("workers: unknown (the broker did not answer)")
    elif not workers:
        how = "" if broadcasts() else " (no heartbeat under the var directory)"
        say(f"workers: none online{how}")
    else:
        say(f"workers: {len(workers)} online")
        for name, queues in sorted(workers.items()):
            say(f"  {name}: {', '.join(queues)}")
        served = {q for qs in workers.values() for q in qs}
        idle = [q for q, n in depths.items() if n and q not in served]
        if idle:
            say(f"warning: no worker consumes {', '.join(idle)}, which hold messages")


@click.command("schedule")
@click.argument("client_code")
@click.argument("source_code")
@click.argument("stream")
@click.argument("when")
@friendly
def schedule_cmd(client_code: str, source_code: str, stream: str, when: str) -> None:
    """Set a stream's schedule: seconds or 15m / 1h / 1d, a cron expression
    ("*/15 * * * *", "@daily", "TZ=Africa/Johannesburg 0 2 * * *"), or off.

    Takes effect at beat's next dispatch (seconds), without a restart.
    """
    try:
        parsed = schedule.parse(when)
    except schedule.ScheduleError as exc:
        raise CliError(str(exc)) from None
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
        rows = schedule.streams_of(s, src.id, stream)
        if not rows:
            known = ", ".join(r.stream for r in schedule.streams_of(s, src.id)) or "none"
            raise CliError(
                f"source {client_code}/{source_code} has no stream {stream!r} (streams: {known})"
            )
        schedule.set_schedule(s, rows[0], parsed)
        nxt = rows[0].next_due_at
        paused = rows[0].paused
    tail = f"; next due {stamp(nxt)} UTC" if nxt else ""
    if paused:
        tail += " (paused: s2s resume starts it)"
    say(f"{client_code}/{source_code} {stream}: {parsed.describe()}{tail}")


def _pause(client_code: str, source_code: str, stream: str | None, paused: bool) -> None:
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
        rows = schedule.streams_of(s, src.id, stream)
        if not rows:
            raise CliError(f"source {client_code}/{source_code} has no stream {stream!r}")
        changed = schedule.set_paused(s, rows, paused)
        names = [r.stream for r in rows]
    verb = "paused" if paused else "resumed"
    already = [n for n in names if n not in changed]
    if changed:
        say(f"{client_code}/{source_code}: {verb} {', '.join(changed)}")
    if already:
        say(f"{client_code}/{source_code}: {', '.join(already)} already {verb}")


@click.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", help="Only this stream (default: all of the source's streams).")
@friendly
def pause(client_code: str, source_code: str, stream: str | None) -> None:
    """Stop scheduled runs of a source (a run in progress finishes; resync still works)."""
    _pause(client_code, source_code, stream, True)


@click.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", help="Only this stream (default: all of the source's streams).")
@friendly
def resume(client_code: str, source_code: str, stream: str | None) -> None:
    """Resume scheduled runs; a stream whose time passed while paused runs once now."""
    _pause(client_code, source_code, stream, False)
