"""Sync runs: ``s2s resync``, ``s2s runs``, and the run table the demo shares."""

from __future__ import annotations

import time
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub import queries
from hub.db import session_scope
from hub.models import SyncRun
from hub.runs import RECORD_OUTCOMES
from s2s import actions
from s2s.cli.common import CliError, Listing, console, friendly, iso, pages, print_json, say
from workers.sources import get_source


def wait_for_run(run_id: int, *, timeout: float = 3600, show: bool = True) -> Any:
    """Poll the run row until it ends, with a progress bar of records done."""
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
        transient=False,
    ) as progress:
        bar = progress.add_task(f"run {run_id}", total=None)
        while True:
            with session_scope() as s:
                run = s.get(SyncRun, run_id)
                assert run is not None
                # Every outcome but "fetched" is a record settled one way or another.
                done = sum(getattr(run, o) for o in RECORD_OUTCOMES if o != "fetched")
                total = run.fetched if run.pages_total is not None else None
                progress.update(bar, completed=done, total=total)
                if run.status != "running":
                    progress.update(bar, total=max(run.fetched, 1), completed=max(run.fetched, 1))
                    return run
            if time.monotonic() > deadline:
                raise CliError(
                    f"run {run_id} is still running after {timeout:.0f}s (s2s runs shows it)"
                )
            time.sleep(0.25)


def _seconds(run: Any) -> float | None:
    return (run.finished_at - run.created_at).total_seconds() if run.finished_at else None


def runs_table(rows: list[Any], title: str | None = None) -> Listing:
    """Runs with their counts and whole errors; the CLI's run listings and the demo share it."""
    table = Listing(("error",), title=title)
    table.column("run", justify="right")
    for col in ("stream", "status"):
        table.column(col)
    for col in (*RECORD_OUTCOMES, "pages", "seconds"):
        table.column(col, justify="right")
    for r in rows:
        secs = _seconds(r)
        table.row(
            f"run {r.id}",
            [
                str(r.id),
                r.stream,
                r.status,
                *(str(getattr(r, outcome)) for outcome in RECORD_OUTCOMES),
                pages(r),
                f"{secs:.1f}" if secs is not None else "…",
            ],
            [r.error],
        )
    return table


def run_json(run: Any) -> dict[str, Any]:
    """A run for scripts: what the table shows, whole, with ISO times."""
    secs = _seconds(run)
    return {
        "id": run.id,
        "stream": run.stream,
        "status": run.status,
        "requested_by": run.requested_by,
        **{outcome: getattr(run, outcome) for outcome in RECORD_OUTCOMES},
        "pages_done": run.pages_done,
        "pages_total": run.pages_total,
        "seconds": round(secs, 3) if secs is not None else None,
        "created_at": iso(run.created_at),
        "finished_at": iso(run.finished_at),
        "error": run.error,
    }


@click.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", default="products", show_default=True)
@click.option("--wait/--no-wait", default=False, help="Wait and show progress until the run ends.")
@click.option(
    "--full", is_flag=True, help="Read everything, not only what changed since the last run."
)
@click.option("--since", "since", help="Read what changed since this time (YYYY-MM-DD[ HH:MM:SS]).")
@click.option(
    "--queue",
    "queue_behind",
    is_flag=True,
    help="If a run of this stream is active, queue this resync to start when it ends "
    "(beat starts it) instead of refusing.",
)
@friendly
def resync(
    client_code: str,
    source_code: str,
    stream: str,
    wait: bool,
    full: bool,
    since: str | None,
    queue_behind: bool,
) -> None:
    """Start a sync of one stream now; with a run active, refuse (saying which) or --queue."""
    try:
        done = actions.resync(
            client_code,
            source_code,
            stream,
            full=full,
            since=since,
            queue_behind=queue_behind,
            requested_by="cli",
        )
    except actions.ActionError as exc:
        raise CliError(str(exc)) from None
    say(done.sentence())
    result = done.result
    if wait:
        run = wait_for_run(result.run.id)
        console.print(runs_table([run]))
        if run.status != "succeeded":
            raise SystemExit(1)


@click.command("runs")
@click.argument("client_code")
@click.argument("source_code")
@click.option("--limit", default=20, show_default=True)
@click.option("--quarantine", is_flag=True, help="Also list the latest run's quarantined records.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array on stdout, for scripts.")
@friendly
def runs_cmd(
    client_code: str, source_code: str, limit: int, quarantine: bool, as_json: bool
) -> None:
    """List a source's sync runs, newest first, with their counts and errors.

    With --json and --quarantine, the latest run carries its held-back
    records as ``quarantined_records``.
    """
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
        rows = queries.recent_runs(s, src.id, limit)
        held = queries.quarantined_in(s, rows[0].id) if quarantine and rows else []
        if as_json:
            doc = [run_json(r) for r in rows]
            if quarantine and doc:
                doc[0]["quarantined_records"] = [
                    {"record": q.record_key, "field": q.field, "reason": q.message} for q in held
                ]
            print_json(doc)
            return
        console.print(runs_table(rows))
        if quarantine and rows:
            table = Listing(("reason",))
            table.column("record")
            table.column("field")
            for q in held:
                table.row(
                    f"record {q.record_key} ({q.field})", [q.record_key, q.field], [q.message]
                )
            console.print(table)
