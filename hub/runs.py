"""Sync runs: start one per source and stream, count pages in, finish once.

The rule "one active run per client × source × stream" lives in the database:
an active run holds ``lock_key``, a unique column that is cleared when the
run ends. Two resyncs that race both try to insert; one wins, the other is
told which run is already active. No lock with a timeout is involved, so a
dead worker cannot leave a phantom lock behind — only a run row, which the
sweeper finds by its stale heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Row, Table, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import pushes
from hub.models import Customer, Product, Source, SourceStream, SyncPage, SyncRun, utcnow

ACTIVE = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"


def lock_key(source_id: int, stream: str) -> str:
    return f"{source_id}:{stream}"


@dataclass(frozen=True)
class StartResult:
    run: SyncRun
    created: bool


def start_run(
    session: Session,
    source: Source,
    stream: str,
    *,
    full: bool = True,
    since: str | None = None,
    requested_by: str = "schedule",
    page_size: int = 500,
) -> StartResult:
    """Create the active run for a source's stream, or return the one already active."""
    request = RunRequest(source.client_id, source.id, stream, full, since, requested_by, page_size)
    rows = _run_rows(session, [request])
    created = _insert_rows(session, rows)
    if created:
        # Not loaded back: the caller has every value the row holds.
        return StartResult(SyncRun(id=created[0], **rows[0]), True)
    active = select(SyncRun).where(SyncRun.lock_key == lock_key(source.id, stream))
    existing = session.scalars(active).first()
    if existing is None:
        # The other run ended between our insert and this read: try once more.
        return start_run(
            session,
            source,
            stream,
            full=full,
            since=since,
            requested_by=requested_by,
            page_size=page_size,
        )
    return StartResult(existing, False)


@dataclass(frozen=True)
class RunRequest:
    """One run to start, as beat's dispatcher asks for many at once."""

    client_id: int
    source_id: int
    stream: str
    full: bool
    since: str | None
    requested_by: str
    page_size: int


def start_runs(session: Session, requests: list[RunRequest]) -> list[int]:
    """Start many runs in the caller's transaction; returns the ids of those
    created (a request whose stream has an active run starts nothing).

    One multi-row INSERT: dispatching a thousand streams that fall due in
    the same minute must cost a statement, not a thousand transactions.
    """
    return _insert_rows(session, _run_rows(session, requests))


def _run_rows(session: Session, requests: list[RunRequest]) -> list[dict[str, Any]]:
    """The rows of new runs, ``fresh`` included (``_holding``)."""
    now = utcnow()
    held = _holding(session, requests)
    return [
        {**_run_row(r, now), "fresh": (r.source_id, r.stream) not in held and r.stream in _STORED}
        for r in requests
    ]


def _run_row(request: RunRequest, now: datetime) -> dict[str, Any]:
    return {
        "client_id": request.client_id,
        "source_id": request.source_id,
        "stream": request.stream,
        "status": ACTIVE,
        "lock_key": lock_key(request.source_id, request.stream),
        "full": request.full,
        "since": request.since,
        "requested_by": request.requested_by[:32],
        "page_size": request.page_size,
        "created_at": now,
        "heartbeat_at": now,
    }


# The dialects whose INSERT takes ON CONFLICT DO NOTHING with RETURNING.
_UPSERT_INSERTS: dict[str, Callable[[Table], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def _insert_rows(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert active runs, skipping streams that have one; the new runs' ids.

    The unique lock key decides: on PostgreSQL and SQLite one ``INSERT ...
    ON CONFLICT (lock_key) DO NOTHING RETURNING id`` for all of them (no
    savepoint around a statement that may fail); elsewhere one savepoint
    per run.
    """
    if not rows:
        return []
    table = SyncRun.__table__
    upsert = _UPSERT_INSERTS.get(session.get_bind().dialect.name)
    if upsert is not None:
        statement = (
            upsert(table)
            .on_conflict_do_nothing(index_elements=[table.c.lock_key])
            .returning(table.c.id)
        )
        return [int(i) for i in session.connection().execute(statement, rows).scalars()]
    created = []
    for row in rows:
        try:
            with session.begin_nested():
                created.append(
                    int(
                        session.connection()
                        .execute(insert(table).values(**row).returning(table.c.id))
                        .scalar_one()
                    )
                )
        except IntegrityError:
            continue
    return created


# The streams the hub stores records of, by the model that holds them.
_STORED: dict[str, type[Product] | type[Customer]] = {"products": Product, "customers": Customer}


def _holding(session: Session, requests: list[RunRequest]) -> set[tuple[int, str]]:
    """(source, stream) of the requests whose source holds a stored record
    of the stream: one index probe per source and stream, in a statement
    per stream (a dispatch starts hundreds of runs at once)."""
    held: set[tuple[int, str]] = set()
    for stream, model in _STORED.items():
        ids = sorted({r.source_id for r in requests if r.stream == stream})
        if not ids:
            continue
        found = session.scalars(
            select(Source.id).where(
                Source.id.in_(ids), select(model.id).where(model.source_id == Source.id).exists()
            )
        )
        held.update((source_id, stream) for source_id in found)
    return held


def touch(session: Session, run_id: int) -> None:
    session.execute(update(SyncRun).where(SyncRun.id == run_id).values(heartbeat_at=utcnow()))


# What a run counts of its records, in the order status tables show them,
# and its counters (the outcomes and the pages done): named once here for
# the run's updates, the metrics, retention's totals and the benchmark.
# ``fetched`` counts raw rows as read (an ERP may send a product as several
# rows); ``quarantined`` the records rejected by mapping or validation; the
# others are records, as ``hub.store.Counts`` says.
RECORD_OUTCOMES: tuple[str, ...] = (
    "fetched",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "skipped",
    "ignored",
    "quarantined",
)
COUNTERS: tuple[str, ...] = (*RECORD_OUTCOMES, "pages_done")


def add_counts(
    session: Session,
    run_id: int,
    *,
    active_only: bool = False,
    pages_total: int | None = None,
    **counts: int,
) -> bool:
    """Add to a run's counters in one atomic UPDATE (safe with parallel workers).

    With ``active_only`` nothing is added unless the run is still active, and
    the answer says which. The statement is a Core one on the table, not an
    ORM bulk update: it runs for every page, and the ORM's bookkeeping cost
    more than the database's work.
    """
    unknown = set(counts) - set(COUNTERS)
    if unknown:
        raise ValueError(f"not a run counter: {', '.join(sorted(unknown))}")
    table = SyncRun.__table__
    values: dict[str, Any] = {name: table.c[name] + n for name, n in counts.items() if n}
    values["heartbeat_at"] = utcnow()
    if pages_total is not None:  # the last page is known: in the same statement
        values["pages_total"] = pages_total
    statement = update(table).where(table.c.id == run_id)
    if active_only:
        statement = statement.where(table.c.status == ACTIVE)
    result = session.connection().execute(statement.values(values))
    return bool(result.rowcount == 1)


def _in_flight(run_id: int) -> Any:
    """How many of the run's pages are stored for map_page and not yet written."""
    return select(func.count()).where(SyncPage.run_id == run_id, SyncPage.status == "fetched")


def pages_in_flight(session: Session, run_id: int) -> int:
    """The run's pages stored for map_page and not yet written."""
    return int(session.scalar(_in_flight(run_id)) or 0)


def park_fetch(session: Session, run_id: int) -> bool:
    """Note that the run's fetch stopped because ``pages_in_flight`` reached the cap.

    Whoever then finds the run down to ``resume_at(cap)`` (``unpark_fetch``,
    called by every map_page and by the fetch itself after parking) hands the
    fetch on.
    """
    table = SyncRun.__table__
    result = session.connection().execute(
        update(table)
        .where(table.c.id == run_id, table.c.status == ACTIVE)
        .values(fetch_parked_at=utcnow())
    )
    return bool(result.rowcount == 1)


def resume_at(cap: int) -> int:
    """Pages in flight at which a parked fetch is handed on: half the cap, so
    that each hand-over fetches several pages, not one task per page."""
    return cap // 2


def unpark_fetch(session: Session, run_id: int, cap: int) -> int | None:
    """Take the run's parked fetch once the run is down to ``resume_at(cap)``
    pages in flight; returns the page to fetch next, or None when the fetch
    is not parked, the run has more pages in flight or is no longer active.

    One conditional UPDATE, so that of the fetch re-checking after it parked
    and the map tasks finishing pages, exactly one takes the fetch. A map
    task calls this after its counts' UPDATE has locked the run row: a fetch
    parking meanwhile waits for that transaction, then counts its page done.
    """
    table = SyncRun.__table__
    waiting = _in_flight(run_id).scalar_subquery()
    result = session.connection().execute(
        update(table)
        .where(
            table.c.id == run_id,
            table.c.status == ACTIVE,
            table.c.fetch_parked_at.is_not(None),
            # A fetch resumed meanwhile by the sweeper may have read the last
            # page: then nothing is left to hand on.
            table.c.pages_total.is_(None),
            waiting <= resume_at(cap),
        )
        .values(fetch_parked_at=None)
    )
    if result.rowcount != 1:
        return None
    last = session.scalar(select(func.max(SyncPage.seq)).where(SyncPage.run_id == run_id))
    return 0 if last is None else int(last) + 1


def _note_last_run(
    session: Session,
    run_id: int,
    source_id: int,
    stream: str,
    high_water: str | None = None,
    *,
    succeeded: bool = False,
) -> None:
    streams = SourceStream.__table__
    where = (streams.c.source_id == source_id, streams.c.stream == stream)
    conn = session.connection()
    conn.execute(update(streams).where(*where).values(last_run_id=run_id))
    if succeeded and high_water:
        # Only a run that landed every page may move the watermark forward.
        conn.execute(
            update(streams)
            .where(
                *where,
                (streams.c.watermark.is_(None)) | (streams.c.watermark < high_water),
            )
            .values(watermark=high_water)
        )


def raise_high_water(session: Session, run_id: int, value: str | None) -> None:
    if value:
        session.execute(
            update(SyncRun)
            .where(
                SyncRun.id == run_id,
                (SyncRun.high_water.is_(None)) | (SyncRun.high_water < value),
            )
            .values(high_water=value)
        )


def finish_if_done(session: Session, run_id: int) -> bool:
    """Mark the run succeeded if every page has landed. Returns True only for
    the one caller that made the change, so follow-up work happens once.

    Core statements (with RETURNING), not the ORM: this runs at the end of
    every run, and with many small tenants the ORM's loads were a good part
    of a run's cost.
    """
    now = utcnow()
    table = SyncRun.__table__
    done = (
        session.connection()
        .execute(
            update(table)
            .where(
                and_(
                    table.c.id == run_id,
                    table.c.status == ACTIVE,
                    table.c.pages_total.is_not(None),
                    table.c.pages_done >= table.c.pages_total,
                )
            )
            .values(status=SUCCEEDED, lock_key=None, finished_at=now, heartbeat_at=now)
            .returning(
                table.c.client_id,
                table.c.source_id,
                table.c.stream,
                table.c.high_water,
                table.c.created + table.c.updated + table.c.deleted,
            )
        )
        .first()
    )
    if done is None:
        return False
    _note_last_run(session, run_id, done.source_id, done.stream, done.high_water, succeeded=True)
    if done.stream == "products" and done[4]:
        # The client's channels get a push once the debounce has passed.
        pushes.want_push(session, done.client_id, now)
    return True


def fail_run(session: Session, run_id: int, error: str) -> bool:
    now = utcnow()
    table = SyncRun.__table__
    done = (
        session.connection()
        .execute(
            update(table)
            .where(table.c.id == run_id, table.c.status == ACTIVE)
            .values(
                status=FAILED, lock_key=None, error=error[:4000], finished_at=now, heartbeat_at=now
            )
            .returning(table.c.source_id, table.c.stream)
        )
        .first()
    )
    if done is None:
        return False
    _note_last_run(session, run_id, done.source_id, done.stream)
    return True


def cancel_run(session: Session, run_id: int, reason: str) -> bool:
    now = utcnow()
    result = session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, SyncRun.status == ACTIVE)
        .values(status=CANCELLED, lock_key=None, error=reason, finished_at=now)
    )
    return cast("CursorResult[Any]", result).rowcount == 1


def stale_runs(session: Session, older_than: timedelta) -> list[SyncRun]:
    cutoff: datetime = utcnow() - older_than
    return list(
        session.scalars(
            select(SyncRun).where(SyncRun.status == ACTIVE, SyncRun.heartbeat_at < cutoff)
        )
    )


@dataclass(frozen=True)
class Resume:
    """What a stalled run still needs, read from its page rows."""

    fetch_seq: int | None
    map_pages: list[int]
    upsert_pages: list[int]


def resume_plan(session: Session, run: SyncRun) -> Resume:
    pages = session.execute(
        select(SyncPage.id, SyncPage.seq, SyncPage.status, SyncPage.cursor_out)
        .where(SyncPage.run_id == run.id)
        .order_by(SyncPage.seq)
    ).all()
    map_pages = [p.id for p in pages if p.status == "fetched"]
    upsert_pages = [p.id for p in pages if p.status == "mapped"]
    fetch_seq: int | None = None
    if run.pages_total is None:
        fetch_seq = 0 if not pages else pages[-1].seq + 1
    return Resume(fetch_seq, map_pages, upsert_pages)


def page_count(session: Session, run_id: int) -> int:
    return session.scalar(select(func.count()).where(SyncPage.run_id == run_id)) or 0


# --------------------------------------------------------------------------
# Schedules and queued resyncs: what beat's dispatcher and a queued resync read
# --------------------------------------------------------------------------


def watermark(session: Session, source_id: int, stream: str) -> str | None:
    """The stream's watermark: where an incremental run reads from (None: read all)."""
    return session.scalar(
        select(SourceStream.watermark).where(
            SourceStream.source_id == source_id, SourceStream.stream == stream
        )
    )


def queue_resync(
    session: Session,
    source_id: int,
    stream: str,
    *,
    full: bool,
    since: str | None,
    requested_by: str,
) -> None:
    """Keep a resync request on the stream's row, for the dispatcher to start
    once the stream's active run has ended. Requests queued while one waits
    merge into it: full wins, the earliest ``since`` wins (and a request
    without one reads from the watermark, which reads more)."""
    row = session.scalars(
        select(SourceStream).where(
            SourceStream.source_id == source_id, SourceStream.stream == stream
        )
    ).first()
    if row is None:
        row = SourceStream(source_id=source_id, stream=stream)
        session.add(row)
    if row.queued_at is None:
        row.queued_full, row.queued_since = full, since
    else:
        row.queued_full = bool(row.queued_full or full)
        if row.queued_since and since:
            row.queued_since = min(row.queued_since, since)
        else:
            row.queued_since = None  # one of them reads from the watermark
    row.queued_at = utcnow()
    row.queued_by = requested_by[:32]


def due_streams(session: Session, now: datetime) -> list[Row[Any]]:
    """The enabled, unpaused, scheduled streams due at ``now``, earliest first,
    with what starting their runs needs (client, watermark, source settings)."""
    return list(
        session.execute(
            select(
                SourceStream.id,
                SourceStream.source_id,
                SourceStream.stream,
                SourceStream.next_due_at,
                SourceStream.interval_seconds,
                SourceStream.cron,
                SourceStream.watermark,
                Source.client_id,
                Source.kind,
                Source.settings,
            )
            .join(Source, Source.id == SourceStream.source_id)
            .where(
                Source.enabled.is_(True),
                SourceStream.paused.is_(False),
                (SourceStream.interval_seconds.is_not(None)) | (SourceStream.cron.is_not(None)),
                SourceStream.next_due_at <= now,
            )
            .order_by(SourceStream.next_due_at, SourceStream.id)
        ).all()
    )


def active_lock_keys(session: Session) -> set[str]:
    """The lock keys of every active run (see ``lock_key``)."""
    return set(session.scalars(select(SyncRun.lock_key).where(SyncRun.lock_key.is_not(None))))


def queued_resyncs(session: Session, active: set[str]) -> list[Row[Any]]:
    """Resyncs queued on streams whose run (by ``active``'s lock keys) has ended."""
    rows = session.execute(
        select(
            SourceStream.id,
            SourceStream.source_id,
            SourceStream.stream,
            SourceStream.queued_at,
            SourceStream.queued_full,
            SourceStream.queued_since,
            SourceStream.queued_by,
        ).where(SourceStream.queued_at.is_not(None))
    ).all()
    return [row for row in rows if lock_key(row.source_id, row.stream) not in active]


def claim_due(
    session: Session, stream_id: int, due_at: datetime, next_due: datetime | None
) -> bool:
    """Move a due stream's ``next_due_at`` on, if it still says ``due_at``: of
    two dispatchers (two beats started by mistake) exactly one claims it.
    A Core statement: the ORM's bookkeeping cost more, a thousand at a time."""
    streams = SourceStream.__table__
    claimed = session.connection().execute(
        update(streams)
        .where(streams.c.id == stream_id, streams.c.next_due_at == due_at)
        .values(next_due_at=next_due)
    )
    return bool(claimed.rowcount == 1)


def claim_queued(session: Session, stream_id: int, queued_at: datetime) -> bool:
    """Take a queued resync off its stream's row, if it is still the one read."""
    streams = SourceStream.__table__
    claimed = session.connection().execute(
        update(streams)
        .where(streams.c.id == stream_id, streams.c.queued_at == queued_at)
        .values(queued_at=None, queued_full=None, queued_since=None, queued_by=None)
    )
    return bool(claimed.rowcount == 1)
