"""The ``s2s`` command: one entry point for operators.

Every failure an operator can cause (a missing client, a bad setting, an ERP
that refuses the credentials, a database that is not upgraded) prints one
line saying what is wrong and exits 1; tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Piped output (CI logs, files) gets a width that fits the run tables
# instead of rich's 80-column fallback.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    def show(self, file: Any = None) -> None:
        # Driver messages may span lines; an operator's error is one line.
        text = " ".join(self.message.split())
        err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)


def friendly(fn: F) -> F:
    """Turn the errors an operator can cause into one clear line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from connectors.base import ConnectorError
        from hub.crypto import SecretsError
        from hub.orders import ReplayError
        from workers.sources import SetupError

        try:
            return fn(*args, **kwargs)
        except (SetupError, SecretsError, ReplayError) as exc:
            raise CliError(str(exc)) from None
        except ConnectorError as exc:
            hint = f" — {exc.hint}" if exc.hint else ""
            raise CliError(f"{exc.message}{hint}") from None
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc.orig) if exc.orig is not None else str(exc)
            if "no such table" in text or ("does not exist" in text and "relation" in text):
                raise CliError(
                    "the hub's database has no tables yet: run 's2s db upgrade'"
                ) from None
            raise CliError(f"the hub's database is unreachable: {text.splitlines()[0]}") from None

    return wrapper  # type: ignore[return-value]


@click.group()
def cli() -> None:
    """Integration hub: sync ERPs into the hub, raise channel orders into ERPs."""
    from hub.logs import configure
    from hub.settings import get_settings

    try:
        s = get_settings()
    except ValueError as exc:
        # A bad setting in the environment (S2S_RETENTION_DAYS=0, ...) is
        # the operator's to fix: one line naming it, for every command.
        raise CliError(str(exc)) from None
    configure(s.log_format, "WARNING" if s.log_level == "INFO" else s.log_level)


# --------------------------------------------------------------------- db
@cli.group()
def db() -> None:
    """The hub's database."""


@db.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Create or migrate the hub's tables."""
    from hub.migrate import current_revision, upgrade
    from hub.settings import get_settings

    upgrade()
    console.print(
        f"database at revision {current_revision()} ({_safe_url(get_settings().database_url)})"
    )


def _safe_url(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


# ------------------------------------------------------------- clients
@cli.group()
def client() -> None:
    """Clients: the businesses whose ERPs and channels the hub connects."""


@client.command("add")
@click.argument("code")
@click.option("--name", help="Display name.")
@friendly
def client_add(code: str, name: str | None) -> None:
    """Add a client (prints its API token once)."""
    from hub.db import session_scope
    from workers.sources import upsert_client

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
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Client, Source

    table = Table("client", "name", "sources", "channels")
    with session_scope() as s:
        for c in s.scalars(select(Client).order_by(Client.code)):
            srcs = s.scalars(select(Source).where(Source.client_id == c.id).order_by(Source.code))
            table.add_row(
                c.code,
                c.name,
                ", ".join(f"{x.code} ({x.kind})" for x in srcs),
                ", ".join(sorted(c.channel_settings or {})),
            )
    console.print(table)


def _describe_channel(c: Any, channel: str) -> str:
    """What is set for a channel, without the secret itself."""
    from workers.sources import channel_secret, channel_settings

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
    from hub.db import session_scope
    from workers.sources import get_client, set_channels

    spec: dict[str, Any] = {}
    if secret is not None:
        spec["secret"] = sys.stdin.readline().rstrip("\r\n") if secret == "-" else secret
    if add_order_status is not None:
        spec["add_order_status"] = add_order_status
    with session_scope() as s:
        c = get_client(s, client_code)
        set_channels(s, c, {channel: spec})
        described = _describe_channel(c, channel)
    console.print(f"channel {client_code}/{channel} saved: {described}", highlight=False)


# ------------------------------------------------------------- sources
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


def _apply_schedules(session: Any, source: Any, spec: dict[str, Any] | None, where: str) -> None:
    """Give each of the source's streams its schedule from ``spec``; a stream
    not named is on demand. ``None`` leaves every schedule as it is."""
    from hub import schedule

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


@cli.group()
def source() -> None:
    """Sources: a client's ERP."""


@source.command("add")
@click.argument("client_code")
@click.argument("code")
@click.option("--kind", required=True, help="ERP kind, e.g. sql.")
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
    from hub.db import session_scope
    from workers.sources import get_client, upsert_source

    with session_scope() as s:
        c = get_client(s, client_code)
        src = upsert_source(s, c, code, kind, _parse_sets(sets), name=name)
        _apply_schedules(s, src, _parse_every(every), "--every")
    console.print(f"source {client_code}/{src.code} ({kind}) saved")


@source.command("show")
@click.argument("client_code")
@click.argument("code")
@friendly
def source_show(client_code: str, code: str) -> None:
    """Show a source's settings (secrets shown only as set / not set)."""
    from hub.db import session_scope
    from workers.sources import get_source, public_settings

    with session_scope() as s:
        src = get_source(s, client_code, code)
        console.print_json(
            json.dumps({"kind": src.kind, "settings": public_settings(src)}, default=str)
        )


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, where: str) -> Any:
    """${NAME} in a YAML value reads the environment, so files need not hold secrets."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in os.environ:
                raise CliError(f"{where}: environment variable {m.group(1)} is not set")
            return os.environ[m.group(1)]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, where) for v in value]
    return value


@cli.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly
def apply_file(file: Path) -> None:
    """Declare clients, their sources and channels in a YAML file (${ENV} allowed).

    A client's ``channels:`` maps shopify / woocommerce to ``secret`` (the
    webhook signing secret, encrypted at rest) and ``add_order_status``.
    """
    import yaml

    from hub.db import session_scope
    from workers.sources import set_channels, upsert_client, upsert_source

    try:
        doc = yaml.safe_load(file.read_text()) or {}
    except yaml.MarkedYAMLError as exc:
        # Only the problem and where: the parser's own message quotes the
        # offending line, which may be a line holding a secret.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CliError(f"{file}: not valid YAML{where}: {exc.problem or 'cannot parse'}") from None
    except yaml.YAMLError:
        raise CliError(f"{file}: not valid YAML") from None
    clients = doc.get("clients") if isinstance(doc, dict) else None
    if not isinstance(clients, list):
        raise CliError(f"{file}: expected a top-level 'clients:' list")
    with session_scope() as s:
        for i, c in enumerate(clients):
            where = f"{file}: clients[{i}]"
            if not isinstance(c, dict) or not c.get("code"):
                raise CliError(f"{where}: each client needs a 'code'")
            cl, token = upsert_client(s, str(c["code"]), c.get("name"))
            msg = f"client {cl.code}"
            if token:
                msg += f" added; API token (shown once): {token}"
            console.print(msg)
            for j, src in enumerate(c.get("sources") or []):
                swhere = f"{where}.sources[{j}]"
                if not isinstance(src, dict) or not src.get("code") or not src.get("kind"):
                    raise CliError(f"{swhere}: each source needs 'code' and 'kind'")
                settings = _expand_env(src.get("settings") or {}, f"{swhere}.settings")
                saved = upsert_source(
                    s,
                    cl,
                    str(src["code"]),
                    str(src["kind"]),
                    settings,
                    name=src.get("name"),
                    enabled=bool(src.get("enabled", True)),
                )
                # Without 'schedule:' the source's schedules are left as they are.
                _apply_schedules(s, saved, src.get("schedule") or None, f"{swhere}.schedule")
                console.print(f"  source {cl.code}/{src['code']} ({src['kind']}) saved")
            channels = c.get("channels")
            if channels is not None:
                if not isinstance(channels, dict):
                    raise CliError(
                        f"{where}.channels: expected a mapping of channel name to "
                        "'secret' and 'add_order_status'"
                    )
                expanded = _expand_env(channels, f"{where}.channels")
                for name in set_channels(s, cl, expanded):
                    console.print(
                        f"  channel {cl.code}/{name} saved: {_describe_channel(cl, name)}",
                        highlight=False,
                    )


# ---------------------------------------------------------- check/preview
@cli.command()
@click.argument("client_code")
@click.argument("source_code")
@friendly
def check(client_code: str, source_code: str) -> None:
    """Can the hub reach this source with its settings?"""
    from hub.db import session_scope
    from workers.sources import connector_for, get_source

    with session_scope() as s:
        src = get_source(s, client_code, source_code)
    console.print(f"[green]ok[/]: {connector_for(src).check()}")


@cli.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", default="products", show_default=True)
@click.option("--limit", default=5, show_default=True, help="How many records to fetch.")
@friendly
def preview(client_code: str, source_code: str, stream: str, limit: int) -> None:
    """Fetch and map a few records, writing nothing."""
    from hub.db import session_scope
    from workers.pipeline import map_records
    from workers.sources import connector_for, get_source

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


# ------------------------------------------------------------ sync runs
def wait_for_run(run_id: int, *, timeout: float = 3600, show: bool = True) -> Any:
    """Poll the run row until it ends, with a progress bar of records done."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hub.db import session_scope
    from hub.models import SyncRun

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
                done = run.created + run.updated + run.unchanged + run.deleted + run.ignored
                total = run.fetched if run.pages_total is not None else None
                progress.update(bar, completed=done + run.quarantined, total=total)
                if run.status != "running":
                    progress.update(bar, total=max(run.fetched, 1), completed=max(run.fetched, 1))
                    return run
            if time.monotonic() > deadline:
                raise CliError(
                    f"run {run_id} is still running after {timeout:.0f}s (s2s runs shows it)"
                )
            time.sleep(0.25)


def _parse_since(value: str) -> str:
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.strip()).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise CliError(
            f"--since takes a date and time such as 2026-11-01 08:00:00, not {value!r}"
        ) from None


@cli.command()
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
    from hub.db import session_scope
    from workers.sources import connector_class, get_source
    from workers.tasks import start_sync

    if full and since:
        raise CliError("--full reads everything; --since reads what changed since then: pick one")
    with session_scope() as s:
        src = get_source(s, client_code, source_code)
    cls = connector_class(src.kind)
    if stream not in cls.streams:
        from workers.sources import unsupported_stream

        raise CliError(unsupported_stream(cls, stream))
    if since is not None:
        since = _parse_since(since)
    result = start_sync(
        src.id,
        stream,
        requested_by="cli",
        full=full or None,
        since=since,
        queue_behind=queue_behind,
    )
    where = f"{client_code}/{source_code} {stream}"
    if result.created:
        _say(f"run {result.run.id} started for {where}")
    elif result.queued:
        _say(
            f"run {result.run.id} is active for {where}; this resync is queued and starts "
            "when it ends"
        )
    else:
        _say(
            f"run {result.run.id} is already active for {where}; not starting another "
            "(--queue runs one after it)"
        )
    if wait:
        run = wait_for_run(result.run.id)
        console.print(runs_table([run]))
        if run.status != "succeeded":
            raise SystemExit(1)


def _pages(run: Any) -> str:
    """Pages landed of pages known: '12/?' while the ERP is still being read."""
    total = run.pages_total if run.pages_total is not None else "?"
    return f"{run.pages_done}/{total}"


def runs_table(rows: list[Any], title: str | None = None) -> Table:
    """Runs with their counts; the CLI's run listings and the demo share it."""
    table = Table(title=title)
    for col in (
        "run",
        "stream",
        "status",
        "fetched",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "ignored",
        "quarantined",
        "pages",
        "seconds",
        "error",
    ):
        table.add_column(col, justify="left" if col in ("stream", "status", "error") else "right")
    for r in rows:
        secs = (r.finished_at - r.created_at).total_seconds() if r.finished_at else None
        table.add_row(
            str(r.id),
            r.stream,
            r.status,
            str(r.fetched),
            str(r.created),
            str(r.updated),
            str(r.unchanged),
            str(r.deleted),
            str(r.ignored),
            str(r.quarantined),
            _pages(r),
            f"{secs:.1f}" if secs is not None else "…",
            _cell((r.error or "")[:80]),
        )
    return table


@cli.command("runs")
@click.argument("client_code")
@click.argument("source_code")
@click.option("--limit", default=20, show_default=True)
@click.option("--quarantine", is_flag=True, help="Also list the latest run's quarantined records.")
@friendly
def runs_cmd(client_code: str, source_code: str, limit: int, quarantine: bool) -> None:
    """List a source's sync runs with their counts and errors."""
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Quarantined, SyncRun
    from workers.sources import get_source

    with session_scope() as s:
        src = get_source(s, client_code, source_code)
        rows = list(
            s.scalars(
                select(SyncRun)
                .where(SyncRun.source_id == src.id)
                .order_by(SyncRun.id.desc())
                .limit(limit)
            )
        )
        console.print(runs_table(rows))
        if quarantine and rows:
            q = s.scalars(
                select(Quarantined).where(Quarantined.run_id == rows[0].id).order_by(Quarantined.id)
            )
            table = Table("record", "field", "reason")
            for row in q:
                table.add_row(row.record_key, row.field, row.message)
            console.print(table)


@cli.command()
@click.option("--client", "client_code", help="Only this client's sources.")
@friendly
def status(client_code: str | None) -> None:
    """Per source and stream: schedule, paused, next due, last run with counts and
    progress; then open dead letters, queue depths and the workers online."""
    from sqlalchemy import func, select

    from hub import schedule
    from hub.db import session_scope
    from hub.models import Client, DeadLetter, Source, SourceStream, SyncRun
    from workers.ops import broadcasts, queue_depths, workers_online
    from workers.sources import get_client

    table = Table(caption="counts: +created ~updated =unchanged -deleted !quarantined")
    for col in ("client", "source", "stream", "schedule", "paused", "next due (UTC)"):
        table.add_column(col, no_wrap=True)
    for col in ("last run", "status", "counts", "pages"):
        table.add_column(col)
    with session_scope() as s:
        query = (
            select(Client.code, Source, SourceStream)
            .join(Source, Source.client_id == Client.id)
            .join(SourceStream, SourceStream.source_id == Source.id)
            .order_by(Client.code, Source.code, SourceStream.stream)
        )
        if client_code:
            query = query.where(Client.id == get_client(s, client_code).id)
        for ccode, src, st in s.execute(query).all():
            last = s.scalars(
                select(SyncRun)
                .where(SyncRun.source_id == st.source_id, SyncRun.stream == st.stream)
                .order_by(SyncRun.id.desc())
                .limit(1)
            ).first()
            counts = (
                f"+{last.created} ~{last.updated} ={last.unchanged} "
                f"-{last.deleted} !{last.quarantined}"
                if last
                else ""
            )
            state = last.status if last else "never run"
            if st.queued_at is not None:
                state += " (+1 queued)"
            paused = "yes" if st.paused else ("source disabled" if not src.enabled else "no")
            table.add_row(
                _cell(ccode),
                _cell(src.code),
                st.stream,
                _cell(schedule.of(st).describe()),
                paused,
                _when(st.next_due_at) if st.next_due_at else "-",
                str(last.id) if last else "-",
                state,
                counts,
                _pages(last) if last else "",
            )
        letters = s.execute(
            select(func.count(), func.min(DeadLetter.created_at)).where(DeadLetter.status == "open")
        ).one()
    console.print(table)
    if letters[0]:
        _say(
            f"dead letters: {letters[0]} open, oldest {_when(letters[1])} UTC "
            "(s2s dlq list shows them)"
        )
    else:
        _say("dead letters: none open")
    depths = queue_depths()
    _say("queues: " + ", ".join(f"{q}={n if n is not None else '?'}" for q, n in depths.items()))
    workers = workers_online()
    if workers is None:
        _say("workers: unknown (the broker did not answer)")
    elif not workers:
        how = "" if broadcasts() else " (no heartbeat under the var directory)"
        _say(f"workers: none online{how}")
    else:
        _say(f"workers: {len(workers)} online")
        for name, queues in sorted(workers.items()):
            _say(f"  {name}: {', '.join(queues)}")
        served = {q for qs in workers.values() for q in qs}
        idle = [q for q, n in depths.items() if n and q not in served]
        if idle:
            _say(f"warning: no worker consumes {', '.join(idle)}, which hold messages")


@cli.command("schedule")
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
    from hub import schedule
    from hub.db import session_scope
    from workers.sources import get_source

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
    tail = f"; next due {_when(nxt)} UTC" if nxt else ""
    if paused:
        tail += " (paused: s2s resume starts it)"
    _say(f"{client_code}/{source_code} {stream}: {parsed.describe()}{tail}")


def _pause(client_code: str, source_code: str, stream: str | None, paused: bool) -> None:
    from hub import schedule
    from hub.db import session_scope
    from workers.sources import get_source

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
        _say(f"{client_code}/{source_code}: {verb} {', '.join(changed)}")
    if already:
        _say(f"{client_code}/{source_code}: {', '.join(already)} already {verb}")


@cli.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", help="Only this stream (default: all of the source's streams).")
@friendly
def pause(client_code: str, source_code: str, stream: str | None) -> None:
    """Stop scheduled runs of a source (a run in progress finishes; resync still works)."""
    _pause(client_code, source_code, stream, True)


@cli.command()
@click.argument("client_code")
@click.argument("source_code")
@click.option("--stream", help="Only this stream (default: all of the source's streams).")
@friendly
def resume(client_code: str, source_code: str, stream: str | None) -> None:
    """Resume scheduled runs; a stream whose time passed while paused runs once now."""
    _pause(client_code, source_code, stream, False)


# ----------------------------------------------------------------- orders
ORDER_STATES = ("received", "stored", "queued", "raising", "raised", "dead", "discarded")


def _say(text: str, *, err: bool = False) -> None:
    """Print operator-facing text verbatim on one line.

    Order codes, SKUs and ERP messages come from outside: rich must not read
    ``[...]`` in them as markup, and a long line must not be wrapped into two.
    """
    (err_console if err else console).print(text, markup=False, highlight=False, soft_wrap=True)


def _cell(value: Any) -> Text:
    """A table cell holding outside text literally (never as rich markup)."""
    return Text("" if value is None else str(value))


def _when(at: Any) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else "-"


def _short(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _order_label(payload: Any, index: int) -> str:
    """How a problem names an order: its channel code when it has one, else its place."""
    code = payload.get("channel_order_code") if isinstance(payload, dict) else None
    if isinstance(code, str | int) and not isinstance(code, bool) and str(code).strip():
        return f"order #{str(code).strip()}"
    return f"order [{index}]"


def _read_orders(file: Path) -> list[Any]:
    """The file's orders: one JSON object or a list of them; bad JSON is one clear line."""
    try:
        text = click.get_text_stream("stdin").read() if str(file) == "-" else file.read_text()
    except UnicodeDecodeError:
        raise CliError(f"{file}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{file}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    orders = doc if isinstance(doc, list) else [doc]
    if not orders:
        raise CliError(f"{file}: the list holds no orders")
    return orders


@cli.group()
def orders() -> None:
    """Channel orders: submit, list, show their state history."""


@orders.command("submit")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--client", "client_code", required=True, help="The client the orders belong to.")
@friendly
def orders_submit(file: Path, client_code: str) -> None:
    """Submit a JSON file holding one canonical order or a list of them.

    Goes through the same intake as the API (validated, stored once per
    channel and order code, then routed), so a file submitted twice raises
    nothing twice. Valid orders are stored even when others in the file are
    not; the exit status is 1 if any order was invalid.
    """
    from hub.db import session_scope
    from workers.orders import submit
    from workers.sources import get_client

    if str(file) != "-" and not file.is_file():
        raise CliError(f"{file}: no such file")
    payloads = _read_orders(file)
    with session_scope() as s:
        client_id = get_client(s, client_code).id
    invalid = 0
    for index, payload in enumerate(payloads):
        result, errors = submit(client_id, payload)
        if result is None:
            invalid += 1
            label = _order_label(payload, index)
            for field, message in errors:
                # "record" is the schema's name for the whole order, not a field.
                where = "" if field == "record" else f"{field}: "
                _say(f"{label}: {where}{message}", err=True)
            continue
        row = result.order
        outcome = row.status if result.created else f"duplicate of order {row.id}"
        _say(f"order {row.id} {row.channel}/{row.channel_order_code}: {outcome}")
    if invalid:
        accepted = len(payloads) - invalid
        raise CliError(
            f"{invalid} of {len(payloads)} orders invalid and not stored; {accepted} accepted"
        )


@orders.command("list")
@click.option("--client", "client_code", help="Only this client's orders.")
@click.option("--status", help=f"Only orders in this state ({', '.join(ORDER_STATES)}).")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@friendly
def orders_list(client_code: str | None, status: str | None, limit: int) -> None:
    """List orders, newest first, with where each stands."""
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Client, Order, Source
    from workers.sources import get_client

    if status is not None and status not in ORDER_STATES:
        raise CliError(f"unknown order status {status!r} (one of {', '.join(ORDER_STATES)})")
    table = Table(
        "id",
        "client",
        "channel",
        "order code",
        "status",
        "source",
        "document",
        "attempts",
        "updated (UTC)",
    )
    with session_scope() as s:
        query = (
            select(Order, Client.code, Source.code)
            .join(Client, Client.id == Order.client_id)
            .outerjoin(Source, Source.id == Order.source_id)
            .order_by(Order.id.desc())
            .limit(limit)
        )
        if client_code:
            query = query.where(Order.client_id == get_client(s, client_code).id)
        if status:
            query = query.where(Order.status == status)
        for order, ccode, scode in s.execute(query):
            table.add_row(
                str(order.id),
                _cell(ccode),
                _cell(order.channel),
                _cell(order.channel_order_code),
                order.status,
                _cell(scode or "-"),
                _cell(order.document_number or "-"),
                str(order.attempts),
                _when(order.updated_at),
            )
    console.print(table)


def _letters_table(letters: list[Any], *, full: bool) -> Table:
    """Dead letters; ``full`` adds the outcome columns (for --all and order pages)."""
    # Piped output is 140 columns: identifiers and classes never wrap (so they
    # can be read and grepped whole); the free-text columns take the squeeze.
    table = Table()
    for name in ("id", "order", "order code", "client", "stage", "error"):
        table.add_column(name, no_wrap=True)
    table.add_column("message", ratio=3)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    if full:
        table.add_column("status", no_wrap=True)
        table.add_column("resolution", ratio=2)
    for letter, order, ccode in letters:
        row: list[Any] = [
            str(letter.id),
            str(letter.order_id),
            _cell(order.channel_order_code),
            _cell(ccode),
            letter.stage,
            _cell(letter.error_class),
            _cell(_short(letter.message)),
            str(letter.attempts),
            _when(letter.created_at),
        ]
        if full:
            row += [letter.status, _cell(_short(letter.resolution, 40))]
        table.add_row(*row)
    return table


@orders.command("show")
@click.argument("order_id", type=int)
@friendly
def orders_show(order_id: int) -> None:
    """An order's facts, ERP document number, last error, state history and dead letters."""
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Client, DeadLetter, Order, OrderEvent, Source

    with session_scope() as s:
        order = s.get(Order, order_id)
        if order is None:
            raise CliError(f"no order {order_id}")
        c = s.get(Client, order.client_id)
        src = s.get(Source, order.source_id) if order.source_id else None
        facts = [
            ("order", f"{order.id} {order.channel}/{order.channel_order_code}"),
            ("client", c.code if c else str(order.client_id)),
            ("instruction", order.instruction),
            ("status", order.status),
            ("source", f"{src.code} ({src.kind})" if src else "-"),
            ("document number", order.document_number or "-"),
            ("attempts", str(order.attempts)),
            ("received", f"{_when(order.created_at)} UTC"),
            ("updated", f"{_when(order.updated_at)} UTC"),
            ("raised", f"{_when(order.raised_at)} UTC" if order.raised_at else "-"),
            ("last error", " ".join((order.last_error or "-").split())),
        ]
        width = max(len(k) for k, _ in facts)
        for key, value in facts:
            _say(f"{key:<{width}}  {value}")
        history = Table("time (UTC)", "status", "message", title="history")
        for ev in s.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
        ):
            history.add_row(_when(ev.at), ev.status, _cell(ev.message))
        console.print(history)
        letters = [
            (letter, order, c.code if c else "")
            for letter in s.scalars(
                select(DeadLetter).where(DeadLetter.order_id == order.id).order_by(DeadLetter.id)
            )
        ]
        if letters:
            table = _letters_table(letters, full=True)
            table.title = "dead letters"
            console.print(table)


# -------------------------------------------------------------------- dlq
@cli.group()
def dlq() -> None:
    """Dead letters: orders that need a person; see why, fix, replay or discard."""


@dlq.command("list")
@click.option("--client", "client_code", help="Only this client's dead letters.")
@click.option("--all", "show_all", is_flag=True, help="Also replayed and discarded ones.")
@friendly
def dlq_list(client_code: str | None, show_all: bool) -> None:
    """List open dead letters (all of them with --all), oldest first."""
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Client, DeadLetter, Order
    from workers.sources import get_client

    with session_scope() as s:
        query = (
            select(DeadLetter, Order, Client.code)
            .join(Order, Order.id == DeadLetter.order_id)
            .join(Client, Client.id == DeadLetter.client_id)
            .order_by(DeadLetter.id)
        )
        if client_code:
            query = query.where(DeadLetter.client_id == get_client(s, client_code).id)
        if not show_all:
            query = query.where(DeadLetter.status == "open")
        letters = [tuple(row) for row in s.execute(query)]
        if letters:
            console.print(_letters_table(letters, full=show_all))
    if not letters:
        _say("no dead letters" if show_all else "no open dead letters")


@dlq.command("show")
@click.argument("letter_id", type=int)
@friendly
def dlq_show(letter_id: int) -> None:
    """A dead letter in full: why, what to fix, and the order's canonical payload."""
    from hub.db import session_scope
    from hub.models import Client, DeadLetter, Order, Source

    with session_scope() as s:
        letter = s.get(DeadLetter, letter_id)
        if letter is None:
            raise CliError(f"no dead letter {letter_id}")
        order = s.get(Order, letter.order_id)
        assert order is not None  # the foreign key cascades: a letter has its order
        c = s.get(Client, letter.client_id)
        src = s.get(Source, letter.source_id) if letter.source_id else None
        facts = [
            ("dead letter", str(letter.id)),
            ("status", letter.status),
            ("order", f"{order.id} {order.channel}/{order.channel_order_code} ({order.status})"),
            ("client", c.code if c else str(letter.client_id)),
            ("source", f"{src.code} ({src.kind})" if src else "-"),
            ("stage", letter.stage),
            ("error", letter.error_class),
            ("attempts", str(letter.attempts)),
            ("created", f"{_when(letter.created_at)} UTC"),
            ("resolved", f"{_when(letter.resolved_at)} UTC" if letter.resolved_at else "-"),
            ("resolution", letter.resolution or "-"),
            ("message", " ".join(letter.message.split())),
            ("fix", " ".join(letter.fix.split())),
        ]
        width = max(len(k) for k, _ in facts)
        for key, value in facts:
            _say(f"{key:<{width}}  {value}")
        _say("order payload:")
        console.print_json(json.dumps(order.order, default=str, ensure_ascii=False))


def _enqueue_route(order_id: int) -> str | None:
    """Hand a replayed order to routing; None when sent, else why it was not.

    The order is already committed as ``received``, so a broker that is down
    loses nothing: the sweeper routes received orders it finds stale.
    """
    from workers.orders import route_order

    try:
        route_order.apply_async(args=(order_id,))
    except Exception as exc:  # any broker failure: the database still holds the order
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


@dlq.command("replay")
@click.argument("letter_ids", nargs=-1, type=int)
@click.option("--all-open", is_flag=True, help="Replay every open dead letter of --client.")
@click.option("--client", "client_code", help="The client whose open dead letters to replay.")
@friendly
def dlq_replay(letter_ids: tuple[int, ...], all_open: bool, client_code: str | None) -> None:
    """Send dead-lettered orders through routing again, with today's settings and products.

    Fix what the letter's 'fix' says first (a setting, a product sync); each
    letter is replayed in its own transaction and its order routed only after
    that commit, so a worker never sees the order before it is 'received'.
    """
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import DeadLetter
    from hub.orders import ReplayError, replay
    from workers.sources import get_client

    if all_open == bool(letter_ids):
        raise CliError("give dead letter ids, or --all-open with --client CODE (not both)")
    if client_code and not all_open:
        raise CliError("--client goes with --all-open; dead letter ids need no client")
    if all_open:
        if not client_code:
            raise CliError("--all-open needs --client CODE: replay one client's letters at a time")
        with session_scope() as s:
            cid = get_client(s, client_code).id
            letter_ids = tuple(
                s.scalars(
                    select(DeadLetter.id)
                    .where(DeadLetter.client_id == cid, DeadLetter.status == "open")
                    .order_by(DeadLetter.id)
                )
            )
        if not letter_ids:
            _say(f"no open dead letters for client {client_code}")
            return
    failures: list[str] = []
    for letter_id in letter_ids:
        try:
            with session_scope() as s:
                order = replay(s, letter_id, note="replayed with s2s dlq replay")
                label = f"order {order.id} {order.channel}/{order.channel_order_code}"
                order_id = order.id
        except ReplayError as exc:
            failures.append(str(exc))
            continue
        problem = _enqueue_route(order_id)
        if problem is None:
            _say(f"dead letter {letter_id} replayed: {label} sent to routing again")
        else:
            _say(
                f"dead letter {letter_id} replayed: {label} is received but could not be "
                f"queued ({problem}); the sweeper will route it"
            )
    if failures:
        for message in failures[:-1]:
            CliError(message).show()
        raise CliError(failures[-1])


@dlq.command("discard")
@click.argument("letter_id", type=int)
@click.option("--reason", help="Why the order will not be raised (kept as the audit record).")
@friendly
def dlq_discard(letter_id: int, reason: str | None) -> None:
    """Give up on a dead-lettered order; the letter stays, with the reason, as the record."""
    from hub.db import session_scope
    from hub.models import DeadLetter, Order
    from hub.orders import discard

    # Checked here rather than by click, so the operator gets one line, not usage text.
    if reason is None or not reason.strip():
        raise CliError(f"say why: s2s dlq discard {letter_id} --reason TEXT")
    with session_scope() as s:
        letter = s.get(DeadLetter, letter_id)
        if letter is None:
            raise CliError(f"no dead letter {letter_id}")
        discard(s, letter_id, reason.strip())
        order = s.get(Order, letter.order_id)
        assert order is not None
        label = f"order {order.id} {order.channel}/{order.channel_order_code}"
    _say(f"dead letter {letter_id} discarded: {label} will not be raised ({reason.strip()})")


# ------------------------------------------------------------------- keys
@cli.group()
def keys() -> None:
    """The key that encrypts secrets at rest (S2S_SECRET_KEY)."""


@keys.command("rotate")
@friendly
def keys_rotate() -> None:
    """Re-encrypt every stored secret under the current S2S_SECRET_KEY.

    To rotate: set S2S_SECRET_KEY to the new key and S2S_OLD_SECRET_KEYS to
    the old one (every process reads both, so nothing stops working), run
    this, then remove the old key. All or nothing: when one secret cannot be
    read with the keys given, nothing is changed and the line says which.
    Prints counts only, never a secret.
    """
    from sqlalchemy import select

    from hub import crypto
    from hub.db import session_scope
    from hub.models import Client, Source

    with session_scope() as s:
        clients = {c.id: c for c in s.scalars(select(Client))}
        sources = list(s.scalars(select(Source).order_by(Source.id)))
        labels: dict[str, Any] = {}
        tokens: dict[str, str | None] = {}
        for src in sources:
            owner = clients.get(src.client_id)
            label = f"source {owner.code if owner else src.client_id}/{src.code}"
            labels[label], tokens[label] = (src, "secrets"), src.secrets
        for c in clients.values():
            label = f"client {c.code}'s channel secrets"
            labels[label], tokens[label] = (c, "channel_secrets"), c.channel_secrets
        rotated = crypto.rotate_many(tokens)
        changed = 0
        for label, token in rotated.items():
            row, attribute = labels[label]
            if token:
                setattr(row, attribute, token)
                changed += 1
    _say(
        f"re-encrypted {changed} stored secret sets ({len(sources)} sources, "
        f"{len(clients)} clients) under the current S2S_SECRET_KEY; "
        "S2S_OLD_SECRET_KEYS can now be emptied"
    )


# -------------------------------------------------------------- processes
@cli.command()
@click.option(
    "--profile",
    type=click.Choice(["sync", "orders", "all"]),
    default="all",
    show_default=True,
    help="Which queues to serve: sync (maintenance, fetch, map, upsert), orders "
    "(maintenance, orders, raise.*) or all.",
)
@click.option("--queues", "-Q", help="Comma-separated queues (overrides --profile).")
@click.option("--concurrency", "-c", type=int, default=2, show_default=True)
@click.option("--name", "-n", help="Worker name (default celery@HOSTNAME); unique per machine.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "--events/--no-events",
    default=None,
    help="Send task events for Flower (default: on, except on the embedded broker).",
)
def worker(
    profile: str,
    queues: str | None,
    concurrency: int,
    name: str | None,
    loglevel: str,
    events: bool | None,
) -> None:
    """Run a Celery worker process serving the chosen queues (start as many as you like)."""
    from workers.app import PROFILES, QUEUES, app
    from workers.ops import broadcasts

    qs = queues or ",".join(PROFILES[profile])
    unknown = [q for q in qs.split(",") if q.strip() and q.strip() not in QUEUES]
    if unknown:
        raise CliError(f"unknown queue {unknown[0]!r} (queues: {', '.join(QUEUES)})")
    if concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    argv = ["worker", "-Q", qs, "-c", str(concurrency), "--loglevel", loglevel, "-O", "fair"]
    if name:
        argv += ["-n", name]
    if events if events is not None else broadcasts():
        argv.append("-E")
    app.worker_main(argv)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Serve the HTTP API (health, metrics, resyncs, status, runs, orders, webhooks)."""
    import uvicorn

    from s2s.api import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


@cli.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler (one per deployment; a second one started by mistake is harmless).

    Beat only sends the dispatcher and the sweeper every few seconds; the
    schedules themselves are rows, claimed with a compare-and-set, so beat
    keeps no state file and needs no restart when a schedule changes.
    """
    from workers.app import app

    app.start(["beat", "--loglevel", loglevel, "--scheduler", "celery.beat:Scheduler"])


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5555, show_default=True)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
@friendly
def flower(address: str, port: int, flower_args: tuple[str, ...]) -> None:
    """Run Flower against the hub's broker, with task events on.

    Further arguments go to Flower as they are (e.g. --url_prefix=flower).
    Set FLOWER_BASIC_AUTH=user:password in the environment to require a
    login (Flower's API answers only with a login or FLOWER_UNAUTHENTICATED_API).
    """
    import importlib.util

    from workers.app import app
    from workers.ops import broadcasts

    if importlib.util.find_spec("flower") is None:
        raise CliError("Flower is not installed: pip install 's2s-hub[ops]'")
    if not broadcasts():
        raise CliError(
            "Flower needs a broker that carries events (Redis or RabbitMQ); S2S_BROKER_URL is "
            "the embedded SQLite broker: use 's2s status' there"
        )
    if not os.environ.get("FLOWER_BASIC_AUTH", "x").strip():
        # docker-compose passes an unset variable as "": Flower would then
        # demand a login nobody can give.
        del os.environ["FLOWER_BASIC_AUTH"]
    app.start(
        [
            "flower",
            f"--address={address}",
            f"--port={port}",
            "--enable_events=True",
            *flower_args,
        ]
    )


# --------------------------------------------------------------- mappings
@cli.group()
def mappings() -> None:
    """The field maps from each ERP to the hub."""


@mappings.command("show")
@click.argument("erp")
@click.argument("stream")
def mappings_show(erp: str, stream: str) -> None:
    """Print a map as the getting-started page's table (e.g. 'sql products')."""
    from mappings import get_map

    try:
        m = get_map(erp, stream)
    except KeyError as exc:
        raise CliError(str(exc.args[0]) if exc.args else str(exc)) from None
    click.echo(m.render())


# ------------------------------------------------------------------- demo
@cli.command()
@click.option(
    "--products", default=2000, show_default=True, help="Size of the demo ERP's catalogue."
)
@click.option("--keep-worker", is_flag=True, help="Leave the worker running afterwards.")
@friendly
def demo(products: int, keep_worker: bool) -> None:
    """Run the whole hub locally against an emulated ERP, with no set-up."""
    from s2s.demo import run_demo

    sys.exit(run_demo(console, products=products, keep_worker=keep_worker))


def main() -> None:
    cli(prog_name="s2s")


if __name__ == "__main__":
    main()
