"""Where everything stands and when it runs: ``s2s status``, ``s2s schedule``,
``s2s pause``, ``s2s resume``."""

from __future__ import annotations

from typing import Any

import click

from hub import queries, schedule
from hub.db import session_scope
from hub.runs import RECORD_OUTCOMES
from s2s import actions
from s2s.cli.common import CliError, Listing, console, friendly, iso, pages, print_json, say, stamp
from s2s.cli.runs import run_json
from workers.ops import broadcasts, queue_depths, workers_online
from workers.sources import get_client, get_source


@click.command()
@click.option("--client", "client_code", help="Only this client's sources.")
@click.option("--json", "as_json", is_flag=True, help="A JSON object on stdout, for scripts.")
@friendly
def status(client_code: str | None, as_json: bool) -> None:
    """Per source and stream: schedule, paused, next due, last run with counts,
    progress and error; per pushing channel its last push; then open dead
    letters, queue depths and the workers online."""
    with session_scope() as s:
        client_id = get_client(s, client_code).id if client_code else None
        streams = queries.stream_statuses(s, client_id)
        channels = actions.pushing_channels(s, client_id)
        letters, oldest = queries.open_letters(s)
        if as_json:
            doc = {
                "streams": [_stream_json(row) for row in streams],
                "channels": [{"client": code, **summary} for code, _, summary in channels],
                "dead_letters": {"open": letters, "oldest_at": iso(oldest)},
            }
    if as_json:
        print_json({**doc, **_broker_json()})
        return
    console.print(_streams_table(streams))
    if channels:
        console.print(_channels_table(channels))
    if letters:
        say(f"dead letters: {letters} open, oldest {stamp(oldest)} UTC (s2s dlq list shows them)")
    else:
        say("dead letters: none open")
    _say_broker()


# The status table's short form of a run's counts, in RECORD_OUTCOMES' order.
_SIGNS = {
    "created": "+",
    "updated": "~",
    "unchanged": "=",
    "deleted": "-",
    "skipped": "/",
    "quarantined": "!",
}
_SHOWN = tuple(name for name in RECORD_OUTCOMES if name in _SIGNS)


def _counts(run: Any) -> str:
    return " ".join(f"{_SIGNS[name]}{getattr(run, name)}" for name in _SHOWN) if run else ""


def _streams_table(rows: list[queries.StreamStatus]) -> Listing:
    caption = "counts: " + " ".join(f"{_SIGNS[name]}{name}" for name in _SHOWN)
    table = Listing(("error",), caption=caption)
    for col in ("client", "source", "stream", "schedule", "paused", "next due (UTC)"):
        table.column(col, no_wrap=True)
    for col in ("last run", "status", "counts", "pages"):
        table.column(col)
    for row in rows:
        src, st, last = row.source, row.stream, row.last_run
        state = last.status if last else "never run"
        if st.queued_at is not None:
            state += " (+1 queued)"
        paused = "yes" if st.paused else ("source disabled" if not src.enabled else "no")
        table.row(
            f"{row.client_code}/{src.code} {st.stream} run {last.id}" if last else "",
            [
                row.client_code,
                src.code,
                st.stream,
                schedule.of(st).describe(),
                paused,
                stamp(st.next_due_at) if st.next_due_at else "-",
                str(last.id) if last else "-",
                state,
                _counts(last),
                pages(last) if last else "",
            ],
            [last.error if last else None],
        )
    return table


def _stream_json(row: queries.StreamStatus) -> dict[str, Any]:
    """A stream for scripts, as the table shows it, the last run whole."""
    src, st = row.source, row.stream
    return {
        "client": row.client_code,
        "source": src.code,
        "kind": src.kind,
        "stream": st.stream,
        "enabled": src.enabled,
        "schedule": schedule.of(st).describe(),
        "paused": st.paused,
        "next_due_at": iso(st.next_due_at),
        "resync_queued": st.queued_at is not None,
        "last_run": run_json(row.last_run) if row.last_run else None,
    }


def _channels_table(rows: list[actions.PushingChannel]) -> Listing:
    table = Listing(
        ("error",), caption="last push: +created ~updated $stock-only ^archived !refused"
    )
    for col in ("client", "channel", "kind", "paused", "waiting", "refused", "next push (UTC)"):
        table.column(col, no_wrap=True)
    for col in ("last push", "status", "counts"):
        table.column(col)
    for client_code, ch, v in rows:
        last = v["last_push"]
        counts = (
            f"+{last['created']} ~{last['updated']} ${last['stock']} ^{last['archived']} "
            f"!{last['refused']}"
            if last
            else ""
        )
        table.row(
            f"{client_code}/{ch.code} push {last['id']}" if last else "",
            [
                client_code,
                ch.code,
                ch.kind,
                "yes" if ch.paused else "no",
                str(v["waiting"]),
                str(v["refused"]),
                stamp(ch.next_push_at) if ch.next_push_at else "-",
                str(last["id"]) if last else "-",
                last["status"] if last else "never pushed",
                counts,
            ],
            [last["error"] if last else None],
        )
    return table


def _broker_json() -> dict[str, Any]:
    """Queue depths (null: the broker did not answer), the workers online
    (null: unknown) and the queues holding messages that no worker consumes."""
    depths = queue_depths()
    workers = workers_online()
    served = {q for qs in (workers or {}).values() for q in qs}
    idle = [q for q, n in depths.items() if n and q not in served] if workers is not None else []
    return {
        "queues": depths,
        "workers": None if workers is None else dict(sorted(workers.items())),
        "unconsumed_queues": idle,
    }


def _say_broker() -> None:
    """Queue depths and the workers online, warning of a queue nobody serves."""
    facts = _broker_json()
    depths, workers = facts["queues"], facts["workers"]
    say("queues: " + ", ".join(f"{q}={n if n is not None else '?'}" for q, n in depths.items()))
    if workers is None:
        say("workers: unknown (the broker did not answer)")
    elif not workers:
        how = "" if broadcasts() else " (no heartbeat under the var directory)"
        say(f"workers: none online{how}")
    else:
        say(f"workers: {len(workers)} online")
        for name, queues in workers.items():
            say(f"  {name}: {', '.join(queues)}")
        idle = facts["unconsumed_queues"]
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
    try:
        done = actions.set_paused(client_code, source_code, stream, paused)
    except actions.ActionError as exc:
        raise CliError(str(exc)) from None
    for sentence in done.sentences():
        say(sentence)


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
