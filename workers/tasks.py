"""The pipeline's tasks: thin glue between connectors, mappings and the hub.

Per page: fetch_page → map_page, each idempotent. fetch_page reads the page
and keeps only the records whose raw rows changed since the hub last wrote
them; map_page maps, validates and writes those in one transaction (a
page with only a few of them, as on a resync, is written by fetch_page
itself). A task
receives ids, loads what it needs, and checks the page's status before
acting, so a message delivered twice (a redelivery, a sweep, a duplicate
beat) changes nothing the second time. fetch_page also enqueues the next
fetch: keyset paging needs the previous cursor, so fetching is sequential
while mapping and writing of earlier pages proceed in parallel.
(upsert_page finishes pages that an earlier version left mapped.)

The work itself lives outside Celery: the page loop in ``workers.fetching``,
page storage in ``workers.pages``, the dispatcher in ``workers.dispatch``.
The tasks load, call, and turn errors into retries or failed runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from celery import Task
from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, PermanentError, TransientError
from hub import runs
from hub.db import session_scope
from hub.models import Source, SyncPage, SyncRun, utcnow
from hub.settings import get_settings
from hub.store import StoreItem
from workers import backoff
from workers.app import app
from workers.dispatch import dispatch, page_size_of
from workers.fetching import PageLoop
from workers.pages import _map_and_write, _Target, _write, raw_hashes_of, unpack_page
from workers.pipeline import collector_paused

log = logging.getLogger("s2s.sync")

FETCH_MAX_RETRIES = 6


def enqueue(task: Task[Any, Any], *args: Any) -> None:
    """Publish after commit. If the broker is unreachable the database still
    says what is unfinished, and the sweeper re-enqueues it."""
    enqueue_many(task, [args])


def enqueue_many(task: Task[Any, Any], calls: list[tuple[Any, ...]]) -> None:
    """``enqueue`` for many messages of one task, over one broker connection
    (beat's dispatcher starts a thousand runs at once)."""
    if not calls:
        return
    try:
        with app.producer_or_acquire() as producer:
            for args in calls:
                task.apply_async(args=args, producer=producer)
    except Exception as exc:  # broker down: recovered by the sweeper
        what = f"{task.name}{calls[0]!r}" if len(calls) == 1 else f"{len(calls)} {task.name}"
        log.warning(
            "could not enqueue %s (%s: %s); the sweeper will retry",
            what,
            type(exc).__name__,
            exc,
        )


def _changed_rows(s: Session, statement: Update) -> int:
    """Rows an ORM UPDATE changed (it also refreshes the session's objects)."""
    return cast("CursorResult[Any]", s.execute(statement)).rowcount


def _ctx(run: SyncRun, page: int | None = None) -> dict[str, Any]:
    return {
        "run": run.id,
        "source": run.source_id,
        "client": run.client_id,
        "stream": run.stream,
        "page": page,
    }


@app.task(name="s2s.sync.fetch_page", bind=True, max_retries=FETCH_MAX_RETRIES)
def fetch_page(self: Task[Any, Any], run_id: int, seq: int) -> None:
    """Read pages from the ERP, from page ``seq`` on, and keep what changed.

    Each page's rows are grouped by record and hashed as they came from the
    ERP; records whose raw hash is the one stored with them are counted
    unchanged here, without being mapped, validated or written. The others
    are stored on the page row (committed, with its cursor, before anything
    else happens) for ``map_page``, or, when they are a few, written here.
    Fetching is sequential (keyset paging needs the previous cursor), so
    this task goes on to the next page itself for a while, reading each page
    while the one before is stored (``workers.fetching.PageLoop``), then
    enqueues a fetch of the next one; mapping and writing of earlier pages
    run beside it in other processes.
    """
    loop = PageLoop.resume(run_id, seq, to_map=lambda page_id: enqueue(map_page, page_id))
    if loop is None:
        return
    try:
        stop = loop.run()
    except TransientError as exc:
        attempts = self.request.retries + 1
        if attempts > FETCH_MAX_RETRIES:
            _fail(run_id, f"the ERP stayed unreachable after {attempts} attempts: {exc}")
            return
        countdown = exc.retry_after if exc.retry_after else backoff.delay(self.request.retries)
        log.warning("fetch failed, retrying in %.0fs: %s", countdown, exc, extra=loop.context())
        raise self.retry(args=(run_id, loop.seq), countdown=countdown, exc=exc) from None
    except ConnectorError as exc:
        _fail(run_id, _reason(exc))
        return
    if stop.why == "busy":
        fetch_page.apply_async(args=(run_id, stop.seq), countdown=stop.delay)
    elif stop.why == "span":
        enqueue(fetch_page, run_id, stop.seq)


@app.task(name="s2s.sync.map_page", bind=True, max_retries=5)
def map_page(self: Task[Any, Any], page_id: int) -> None:
    """Map a fetched page's changed records, validate them and write them.

    One task and one transaction: the mapped records go straight to the
    store instead of through the page row, and the page is claimed
    (``fetched`` → ``upserted``) in the same transaction that writes the
    records, quarantines the bad ones and adds the run's counts. A redelivered
    message finds the page claimed and does nothing; a worker killed mid-way
    commits nothing, and the page is mapped again.
    """
    try:
        with collector_paused(), session_scope() as s:
            # Core, not the ORM: the page row is read once, for its records.
            pages = SyncPage.__table__
            page = s.execute(
                select(
                    pages.c.status,
                    pages.c.run_id,
                    pages.c.seq,
                    pages.c.records,
                    pages.c.raw_hashes,
                    pages.c.packed,
                ).where(pages.c.id == page_id)
            ).first()
            if page is None or page.status != "fetched":
                return
            run = s.get(SyncRun, page.run_id)
            if run is None or run.status != runs.ACTIVE:
                return
            source = s.get(Source, run.source_id)
            assert source is not None
            seq = page.seq
            if page.packed is not None:
                records, raw_hashes = unpack_page(page.packed)
            else:  # records marshal could not hold, or a page of an earlier version
                records, raw_hashes = page.records or [], page.raw_hashes
            target = _Target.of(run, source)
            if not raw_hashes and target.by_hash:
                # A fresh source's page comes unhashed (``_store_page``):
                # the raw hashes the next fetch compares with are made here.
                raw_hashes = raw_hashes_of(target.kind, target.stream, target.settings, records)
            # Claim the page first: a concurrent duplicate blocks on this row
            # and then finds it already written.
            claimed = _changed_rows(
                s,
                update(SyncPage)
                .where(SyncPage.id == page_id, SyncPage.status == "fetched")
                .values(
                    status="upserted",
                    records=None,
                    raw_hashes=None,
                    packed=None,
                    updated_at=utcnow(),
                ),
            )
            if claimed != 1:
                return
            counts, quarantined = _map_and_write(s, target, page_id, records, raw_hashes)
            added = {"pages_done": 1, "quarantined": quarantined, **counts.as_dict()}
            runs.add_counts(s, run.id, active_only=False, **added)
            # In the same transaction: the run row is locked by the counts
            # above, so of two last pages finishing at once exactly one sees
            # every page done, and a fetch parking meanwhile (fair sharing)
            # waits for this commit, then finds the run below its cap.
            finished = runs.finish_if_done(s, run.id)
            fetch_next = None
            if not finished:
                fetch_next = runs.unpark_fetch(s, run.id, get_settings().run_pages_in_flight)
            ctx = _ctx(run, seq)
            run_id = run.id
    except OperationalError as exc:
        # A dropped database connection: nothing was committed, try again.
        raise self.retry(countdown=backoff.delay(self.request.retries), exc=exc) from None
    if quarantined:
        log.warning("quarantined %d records", quarantined, extra=ctx)
    log.info("upserted %s", counts.as_dict(), extra=ctx)
    if finished:
        log.info("run finished", extra=ctx)
    if fetch_next is not None:
        enqueue(fetch_page, run_id, fetch_next)


def _finish_if_done(run_id: int, ctx: dict[str, Any]) -> None:
    with session_scope() as s:
        if runs.finish_if_done(s, run_id):
            log.info("run finished", extra=ctx)


@app.task(name="s2s.sync.upsert_page", bind=True, max_retries=5)
def upsert_page(self: Task[Any, Any], page_id: int) -> None:
    """Write a page that an earlier version mapped in a task of its own.

    ``map_page`` now maps and writes in one transaction; pages left
    ``mapped`` by that earlier version (a run in flight across an upgrade)
    are finished here, by the sweeper.
    """
    try:
        with session_scope() as s:
            page = s.get(SyncPage, page_id)
            if page is None or page.status != "mapped":
                return
            run = s.get(SyncRun, page.run_id)
            if run is None or run.status != runs.ACTIVE:
                return
            mapped = page.mapped or []
            # Claim the page first: a concurrent duplicate blocks on this row
            # and then finds it already upserted. (The ORM update also
            # refreshes ``page``, hence reading ``mapped`` above.)
            claimed = _changed_rows(
                s,
                update(SyncPage)
                .where(SyncPage.id == page_id, SyncPage.status == "mapped")
                .values(status="upserted", mapped=None, updated_at=utcnow()),
            )
            if claimed != 1:
                return
            source = s.get(Source, run.source_id)
            assert source is not None
            items = [StoreItem(k, a, d, h) for k, a, d, h in mapped]
            counts = _write(s, _Target.of(run, source), items)
            runs.add_counts(s, run.id, active_only=False, pages_done=1, **counts.as_dict())
            ctx = _ctx(run, page.seq)
            run_id = run.id
    except OperationalError as exc:
        # A dropped database connection: nothing was committed, try again.
        raise self.retry(countdown=backoff.delay(self.request.retries), exc=exc) from None
    log.info("upserted %s", counts.as_dict(), extra=ctx)
    _finish_if_done(run_id, ctx)


def _reason(exc: ConnectorError) -> str:
    hint = f" ({exc.hint})" if exc.hint else ""
    kind = "settings" if isinstance(exc, PermanentError) else "error"
    return f"{kind}: {exc.message}{hint}" if kind == "settings" else f"{exc.message}{hint}"


def _fail(run_id: int, reason: str) -> None:
    with session_scope() as s:
        runs.fail_run(s, run_id, reason)
    log.error("run failed: %s", reason, extra={"run": run_id})


@dataclass(frozen=True)
class SyncStart(runs.StartResult):
    """What a resync request did: started a run, found one active, or queued
    itself behind the active one (``queued``) to start when it ends."""

    queued: bool = False


def start_sync(
    source_id: int,
    stream: str,
    *,
    full: bool | None = None,
    since: str | None = None,
    requested_by: str = "cli",
    page_size: int | None = None,
    queue_behind: bool = False,
) -> SyncStart:
    """Start a run (or find the active one) and enqueue its first fetch.

    By default a run is incremental when the stream has a watermark (its ERP
    reports modification times): it reads what changed since then, and the
    connector widens that by its overlap window. ``full=True`` reads
    everything; ``since`` forces a starting point.

    With a run already active the request is refused (the caller is told
    which run), or with ``queue_behind`` it is kept on the stream's row and
    beat's dispatcher starts it once that run has ended. Requests queued
    while one waits merge into it: full wins, the earliest ``since`` wins.
    """
    with session_scope() as s:
        source = s.get(Source, source_id)
        if source is None:
            raise LookupError(f"no source with id {source_id}")
        read_from = since
        if read_from is None and not full:
            read_from = runs.watermark(s, source_id, stream)
        result = runs.start_run(
            s,
            source,
            stream,
            full=read_from is None,
            since=read_from,
            requested_by=requested_by,
            page_size=page_size or page_size_of(source.kind, source.settings),
        )
        queued = not result.created and queue_behind
        if queued:
            runs.queue_resync(
                s, source_id, stream, full=bool(full), since=since, requested_by=requested_by
            )
    if result.created:
        enqueue(fetch_page, result.run.id, 0)
    return SyncStart(result.run, result.created, queued)


@app.task(name="s2s.maintenance.dispatch_due")
def dispatch_due() -> int:
    """Start a run for every stream whose schedule is due, and every resync
    that was queued behind a run which has since ended (``workers.dispatch``).

    Schedules are read from the database at each call, so a changed
    schedule, a pause or a resume takes effect without restarting beat. The
    first fetches are published over one broker connection: a deployment
    whose thousand tenants share a schedule dispatches them in well under a
    second.
    """
    from workers.pushing import dispatch_pushes

    now = utcnow()
    started = dispatch(
        now,
        start_fetches=lambda run_ids: enqueue_many(fetch_page, [(i, 0) for i in run_ids]),
        start_queued=start_sync,
    )
    return started + dispatch_pushes(now)


@app.task(name="s2s.maintenance.sweep")
def sweep() -> int:
    """Re-enqueue what the database says a stalled run still needs.

    Covers lost messages, workers killed mid-task and a broker that lost its
    queues: the page rows say exactly which step each page is at.
    """
    settings = get_settings()
    resumed = 0
    with session_scope() as s:
        stale = runs.stale_runs(s, timedelta(seconds=settings.stale_after))
        plans = [(r.id, runs.resume_plan(s, r)) for r in stale]
        for run_id, _ in plans:
            runs.touch(s, run_id)
    for run_id, plan in plans:
        for page_id in plan.map_pages:
            enqueue(map_page, page_id)
        for page_id in plan.upsert_pages:
            enqueue(upsert_page, page_id)
        if plan.fetch_seq is not None:
            enqueue(fetch_page, run_id, plan.fetch_seq)
        with session_scope() as s:
            runs.finish_if_done(s, run_id)
        resumed += 1
        log.warning("resumed stalled run", extra={"run": run_id})
    from workers.orders import sweep_orders
    from workers.pushing import sweep_pushes

    return resumed + sweep_orders() + sweep_pushes(timedelta(seconds=settings.stale_after))
