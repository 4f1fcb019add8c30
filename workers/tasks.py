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
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, Page, PermanentError, TransientError
from hub import runs
from hub import schedule as hub_schedule
from hub.db import session_scope
from hub.models import Quarantined, Source, SourceStream, SyncPage, SyncRun, utcnow
from hub.settings import get_settings
from hub.store import UPSERTS, Counts, StoreItem, stored_raw_hashes
from workers import limits
from workers.app import app
from workers.pipeline import map_records, raw_groups, raw_hasher
from workers.sources import connector_class, connector_for

log = logging.getLogger("s2s.sync")

FETCH_MAX_RETRIES = 6


def backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter, capped well below the visibility timeout."""
    return random.uniform(0, min(cap, base * (2**attempt)))


def _slot_lease(connector: Any, ceiling: float) -> float:
    """How long an ERP account's slot is held for one page read.

    Long enough for a read with its own retries (an iSync re-login and the
    call again: a few of the connector's timeouts), short enough that a
    worker killed mid-read frees the account in minutes rather than after
    the whole task time limit.
    """
    timeout = (getattr(connector, "settings", None) or {}).get("timeout") or 30.0
    return min(ceiling, max(60.0, 4 * float(timeout)))


def enqueue(task: Task, *args: Any) -> None:
    """Publish after commit. If the broker is unreachable the database still
    says what is unfinished, and the sweeper re-enqueues it."""
    enqueue_many(task, [args])


def enqueue_many(task: Task, calls: list[tuple[Any, ...]]) -> None:
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


def page_size_of(source_settings: dict[str, Any] | None) -> int:
    """The page size a source's runs read with: its own, or the hub's default."""
    return int((source_settings or {}).get("page_size") or get_settings().page_size)


def _ctx(run: SyncRun, page: int | None = None) -> dict[str, Any]:
    return {
        "run": run.id,
        "source": run.source_id,
        "client": run.client_id,
        "stream": run.stream,
        "page": page,
    }


# How long one fetch task may go on reading consecutive pages, as a share of
# the task time limit: reading on in the same task saves a broker round
# trip and the task's set-up per page on the run's one sequential path,
# while a task still ends long before its time limit (and hands the run on
# to a fresh message) so a worker is never held by one run for long.
FETCH_SPAN_SHARE = 0.05

# A fetched page whose records still to map are at most this share of the
# page is mapped and written by the fetch task itself. On a resync most
# pages hold a handful of changed, ignored or faulty records; handing each
# such page to map_page would cost a message, a task and a transaction per
# page on the run's sequential path, for a millisecond of mapping. A full
# sync's pages (everything new) still go to map_page, in parallel, except the
# run's last page: nothing of the run is left to overlap with its mapping,
# so a message, a task, a transaction and the records' round trip through
# the page row would buy nothing. (A small tenant's whole run is one page.)
INLINE_SHARE = 0.1


@app.task(name="s2s.sync.fetch_page", bind=True, max_retries=FETCH_MAX_RETRIES)
def fetch_page(self: Task, run_id: int, seq: int) -> None:
    """Read pages from the ERP, from page ``seq`` on, and keep what changed.

    Each page's rows are grouped by record and hashed as they came from the
    ERP; records whose raw hash is the one stored with them are counted
    unchanged here, without being mapped, validated or written. The others
    are stored on the page row (committed, with its cursor, before anything
    else happens) for ``map_page``, or, when they are a few, written here
    (``_store_page``). Fetching is sequential (keyset paging needs the
    previous cursor), so this task goes on to the next page itself for a
    while, reading each page while the one before is stored, then enqueues a
    fetch of the next one; mapping and writing of earlier pages run beside
    it in other processes.
    """
    with session_scope() as s:
        # The run, its source and whether this page is stored, in one round trip.
        found = s.execute(
            select(
                SyncRun,
                Source,
                select(SyncPage.id)
                .where(SyncPage.run_id == run_id, SyncPage.seq == seq)
                .exists()
                .label("stored"),
            )
            .join(Source, Source.id == SyncRun.source_id)
            .where(SyncRun.id == run_id)
        ).first()
        if found is None or found[0].status != runs.ACTIVE:
            return
        run, source, stored_already = found
        if stored_already:
            return  # already fetched: a duplicate message
        cursor = None
        if seq > 0:
            prev = s.execute(
                select(SyncPage.cursor_out).where(
                    SyncPage.run_id == run_id, SyncPage.seq == seq - 1
                )
            ).first()
            if prev is None:
                return  # out of order: the sweeper will fetch in sequence
            cursor = prev[0]
            if cursor is None:
                # The page before was the run's last: nothing is left to
                # read (a None cursor here would read from the start again).
                return
        since = datetime.fromisoformat(run.since) if run.since else None
        connector = connector_for(source)
        target = _Target.of(run, source)
        # Incremental reads of ERPs that return only changed variant lines
        # are merged into the stored product (see hub.store): their rows do
        # not describe a whole record, so they are never skipped by hash.
        by_hash = target.stream in UPSERTS and not target.merge_variants
        base_ctx = _ctx(run)
        # A fetch handed on by a map task (or the sweeper) starts with pages in flight.
        in_flight = runs.pages_in_flight(s, run_id) if seq > 0 else 0
    settings_ = get_settings()
    until = time.monotonic() + settings_.task_time_limit * FETCH_SPAN_SHARE
    slots = limits.session_slots(connector, None, None)
    lease = _slot_lease(connector, settings_.task_time_limit)

    def read(at: Any) -> tuple[Page, int | None] | None:
        """One page from the ERP, under the account's slot (None: the slot is
        taken), and how many queries it cost where the connector counts them."""
        with limits.holding(slots, lease) as held:
            if not held:
                return None
            before = getattr(connector, "queries", None)
            got = connector.read(target.stream, at, target.page_size, since)
            after = getattr(connector, "queries", None)
            spent = after - before if isinstance(before, int) and isinstance(after, int) else None
            return got, spent

    # One read runs ahead: as soon as a page's cursor is known the next page
    # is read in a second thread, while this one hashes and stores the page
    # (the ERP query and the hub's writes wait on different servers). Reads
    # stay sequential, one at a time, as keyset paging and one-session ERPs
    # require; a read-ahead whose page is not wanted is simply dropped.
    ahead_read: Future[tuple[Page, int | None] | None] | None = None
    # Fair sharing: at most ``cap`` of this run's pages wait for map_page at
    # once, so a large full sync never fills the map queue ahead of other
    # tenants' runs. ``in_flight`` is the count as of the last page this task
    # stored for map_page (map tasks only ever lower it meanwhile).
    cap = settings_.run_pages_in_flight
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2s-read-ahead") as ahead:
        while True:
            ctx = {**base_ctx, "page": seq}
            try:
                got = ahead_read.result() if ahead_read is not None else read(cursor)
            except TransientError as exc:
                attempts = self.request.retries + 1
                if attempts > self.max_retries:
                    _fail(run_id, f"the ERP stayed unreachable after {attempts} attempts: {exc}")
                    return
                countdown = exc.retry_after if exc.retry_after else backoff(self.request.retries)
                log.warning("fetch failed, retrying in %.0fs: %s", countdown, exc, extra=ctx)
                raise self.retry(args=(run_id, seq), countdown=countdown, exc=exc) from None
            except ConnectorError as exc:
                _fail(run_id, _reason(exc))
                return
            ahead_read = None
            if got is None:
                # The ERP account is in use by another task (iSync and SYSPRO
                # allow one session): come back shortly, without an attempt.
                fetch_page.apply_async(args=(run_id, seq), countdown=random.uniform(0.2, 1.5))
                return
            page, spent = got
            last = page.next_cursor is None
            in_time = time.monotonic() < until
            if not last and in_time and in_flight + 1 < cap:
                # Read the next page while this one is hashed and stored
                # (even if this one goes to map_page, the run stays below
                # its cap of pages in flight).
                ahead_read = ahead.submit(read, page.next_cursor)
            stored = _store_page(target, by_hash, connector, seq, cursor, page)
            if stored is None:
                return  # the run ended meanwhile, or another delivery stored the page
            if spent is not None:
                # Connectors that read a database count their queries: a page must
                # cost a bounded number of them, whatever its size (see SYSPRO).
                log.info("fetched %d records in %d queries", len(page.records), spent, extra=ctx)
            else:
                log.info("fetched %d records", len(page.records), extra=ctx)
            if stored.written is not None:
                if stored.quarantined:
                    log.warning("quarantined %d records", stored.quarantined, extra=ctx)
                log.info("upserted %s", stored.written.as_dict(), extra=ctx)
            elif stored.to_map:
                enqueue(map_page, stored.page_id)
            else:
                log.info("unchanged since the last sync: %d records", stored.unchanged, extra=ctx)
            if stored.finished:
                log.info("run finished", extra=ctx)
            if last:
                return
            cursor, seq = page.next_cursor, seq + 1
            if stored.in_flight is not None:
                in_flight = stored.in_flight
            if ahead_read is not None:
                continue
            if not in_time:  # this task's share of time is spent
                enqueue(fetch_page, run_id, seq)
                return
            if in_flight >= cap:
                if _parked(run_id, cap, ctx):
                    return  # the map task that frees enough places fetches on
                # Handed back to itself: map tasks brought it down meanwhile.
                in_flight = runs.resume_at(cap)


def _parked(run_id: int, cap: int, ctx: dict[str, Any]) -> bool:
    """Park the run's fetch at its cap of pages in flight; False when, by the
    time the park is committed, map tasks have brought the run down to
    ``runs.resume_at(cap)``: the caller then goes on fetching itself."""
    with session_scope() as s:
        if not runs.park_fetch(s, run_id):
            return True  # the run ended: nothing to fetch
    with session_scope() as s:
        if runs.unpark_fetch(s, run_id, cap) is not None:
            return False
    log.info("fetch waits: %d pages of this run are queued for mapping", cap, extra=ctx)
    return True


@dataclass(frozen=True)
class _StoredPage:
    """What storing a fetched page did, for the fetch task's log and next step."""

    page_id: int
    to_map: bool  # left ``fetched`` for map_page
    unchanged: int
    written: Counts | None  # the counts when its changed records were written here
    quarantined: int
    finished: bool
    # The run's pages waiting for map_page once this one was stored (counted
    # only when this page went to map_page; otherwise None).
    in_flight: int | None = None


class _RunEnded(Exception):
    """The run is no longer active: the page's transaction is rolled back."""


def _added(written: Counts | None, unchanged: int) -> dict[str, int]:
    """A page's counts for the run: what was written here, and what was
    counted unchanged by raw hash."""
    counts = written.as_dict() if written is not None else {}
    counts["unchanged"] = counts.get("unchanged", 0) + unchanged
    return counts


def _store_page(
    target: _Target, by_hash: bool, connector: Any, seq: int, cursor: Any, page: Page
) -> _StoredPage | None:
    """Store one fetched page in one transaction; None if the run is no longer
    active or another delivery of the same fetch stored the page first.

    Records whose raw rows hash as before are counted unchanged. The rest go
    on the page row for map_page, unless they are few (a resync: see
    ``INLINE_SHARE``) or this is the run's last page; then they are mapped
    and written here, in the same transaction as the page row, so the page
    is done when this commits.
    """
    run_id, last = target.run_id, page.next_cursor is None
    try:
        with session_scope() as s:
            todo, hashes, unchanged = page.records, {}, 0
            if by_hash:
                todo, hashes, unchanged = _changed(
                    s, target.kind, target.stream, target.source_id, target.settings, page.records
                )
            inline = (
                bool(todo) and by_hash and (last or len(todo) <= target.page_size * INLINE_SHARE)
            )
            table = SyncPage.__table__
            now = utcnow()
            page_id = s.connection().scalar(
                insert(table)
                .values(
                    run_id=run_id,
                    seq=seq,
                    status="fetched" if todo and not inline else "upserted",
                    cursor_in=cursor,
                    cursor_out=page.next_cursor,
                    record_count=len(page.records),
                    records=None if inline else todo or None,
                    raw_hashes=None if inline else hashes or None,
                    created_at=now,
                    updated_at=now,
                )
                .returning(table.c.id)
            )
            assert page_id is not None
            written, quarantined, in_flight = None, 0, None
            if todo and not inline:
                in_flight = runs.pages_in_flight(s, run_id)
            if inline:
                written, quarantined = _map_and_write(s, target, page_id, todo, hashes)
            # Last, so that the run's row stays locked only until the commit.
            if not runs.add_counts(
                s,
                run_id,
                active_only=True,
                # Only now, at the last page, is the run's page total known.
                pages_total=seq + 1 if last else None,
                fetched=len(page.records),
                pages_done=0 if todo and not inline else 1,
                quarantined=quarantined,
                **_added(written, unchanged),
            ):
                raise _RunEnded  # failed or cancelled meanwhile: roll back
            high_water = getattr(connector, "high_water", None)
            if high_water is not None:
                runs.raise_high_water(s, run_id, high_water(page.records))
            finished = False
            if last:
                # Only now can every page have landed.
                finished = (not todo or inline) and runs.finish_if_done(s, run_id)
    except (IntegrityError, _RunEnded):
        return None  # another delivery stored the page first, or the run ended
    return _StoredPage(
        page_id, bool(todo) and not inline, unchanged, written, quarantined, finished, in_flight
    )


def _changed(
    session: Session,
    kind: str,
    stream: str,
    source_id: int,
    settings: dict[str, Any],
    records: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, str], int]:
    """The page's rows still to map, their records' raw hashes, and how many
    records were skipped as unchanged (one SELECT of stored raw hashes)."""
    if stream not in UPSERTS or not records:
        return records, {}, 0
    groups, unkeyed = raw_groups(kind, stream, records, settings)
    hash_of = raw_hasher(kind, stream, settings)
    hashes = {key: hash_of(rows) for key, rows in groups.items()}
    stored = stored_raw_hashes(session, stream, source_id, list(groups))
    todo: list[dict[str, Any]] = []
    kept: dict[str, str] = {}
    unchanged = 0
    for key, rows in groups.items():
        digest = hashes[key]
        if digest is not None and stored.get(key) == digest:
            unchanged += 1
            continue
        todo.extend(rows)  # type: ignore[arg-type]
        if digest is not None:
            kept[key] = digest
    if todo or unkeyed:
        # Keep the ERP's order: mapping groups variant rows in first-seen order.
        wanted = {id(r) for r in todo} | {id(r) for r in unkeyed}
        todo = [r for r in records if id(r) in wanted]
    return todo, kept, unchanged


@app.task(name="s2s.sync.map_page", bind=True, max_retries=5)
def map_page(self: Task, page_id: int) -> None:
    """Map a fetched page's changed records, validate them and write them.

    One task and one transaction: the mapped records go straight to the
    store instead of through the page row, and the page is claimed
    (``fetched`` → ``upserted``) in the same transaction that writes the
    records, quarantines the bad ones and adds the run's counts. A redelivered
    message finds the page claimed and does nothing; a worker killed mid-way
    commits nothing, and the page is mapped again.
    """
    try:
        with session_scope() as s:
            page = s.get(SyncPage, page_id)
            if page is None or page.status != "fetched":
                return
            run = s.get(SyncRun, page.run_id)
            if run is None or run.status != runs.ACTIVE:
                return
            source = s.get(Source, run.source_id)
            assert source is not None
            records, raw_hashes, seq = page.records or [], page.raw_hashes, page.seq
            # Claim the page first: a concurrent duplicate blocks on this row
            # and then finds it already written.
            claimed = s.execute(
                update(SyncPage)
                .where(SyncPage.id == page_id, SyncPage.status == "fetched")
                .values(status="upserted", records=None, raw_hashes=None, updated_at=utcnow())
            )
            if claimed.rowcount != 1:
                return
            counts, quarantined = _map_and_write(
                s, _Target.of(run, source), page_id, records, raw_hashes
            )
            runs.add_counts(s, run.id, pages_done=1, quarantined=quarantined, **counts.as_dict())
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
        raise self.retry(countdown=backoff(self.request.retries), exc=exc) from None
    if quarantined:
        log.warning("quarantined %d records", quarantined, extra=ctx)
    log.info("upserted %s", counts.as_dict(), extra=ctx)
    if finished:
        log.info("run finished", extra=ctx)
    if fetch_next is not None:
        enqueue(fetch_page, run_id, fetch_next)


@dataclass(frozen=True)
class _Target:
    """What mapping and writing a page need of its run and source, read once
    (so the fetch task can write a page after its session has closed)."""

    run_id: int
    client_id: int
    source_id: int
    stream: str
    page_size: int
    kind: str
    settings: dict[str, Any]
    # Incremental reads of ERPs that return only changed variant lines are
    # merged into the stored product (see hub.store).
    merge_variants: bool

    @classmethod
    def of(cls, run: SyncRun, source: Source) -> _Target:
        return cls(
            run_id=run.id,
            client_id=run.client_id,
            source_id=run.source_id,
            stream=run.stream,
            page_size=run.page_size,
            kind=source.kind,
            settings=dict(source.settings or {}),
            merge_variants=bool(
                run.stream == "products"
                and run.since
                and connector_class(source.kind).partial_incremental
            ),
        )


def _map_and_write(
    s: Session,
    target: _Target,
    page_id: int,
    records: list[dict[str, Any]],
    raw_hashes: dict[str, str] | None,
) -> tuple[Counts, int]:
    """Map, validate and write a page's records in the caller's transaction;
    quarantine the ones that fail. Returns the write's counts and how many
    were quarantined."""
    items, errors = map_records(target.kind, target.stream, records, target.settings, raw_hashes)
    if errors:
        s.add_all(
            Quarantined(
                run_id=target.run_id,
                page_id=page_id,
                client_id=target.client_id,
                source_id=target.source_id,
                stream=target.stream,
                record_key=str(e["key"])[:255],
                field=str(e["field"])[:255],
                message=e["message"],
                raw=e.get("raw"),
            )
            for e in errors
        )
    return _write(s, target, items), len(errors)


def _write(s: Session, target: _Target, items: list[StoreItem]) -> Counts:
    """Write a page's items with the stream's upsert."""
    extra: dict[str, Any] = {"merge_variants": True} if target.merge_variants else {}
    return UPSERTS[target.stream](
        s,
        client_id=target.client_id,
        source_id=target.source_id,
        run_id=target.run_id,
        items=items,
        **extra,
    )


def _finish_if_done(run_id: int, ctx: dict[str, Any]) -> None:
    with session_scope() as s:
        if runs.finish_if_done(s, run_id):
            log.info("run finished", extra=ctx)


@app.task(name="s2s.sync.upsert_page", bind=True, max_retries=5)
def upsert_page(self: Task, page_id: int) -> None:
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
            claimed = s.execute(
                update(SyncPage)
                .where(SyncPage.id == page_id, SyncPage.status == "mapped")
                .values(status="upserted", mapped=None, updated_at=utcnow())
            )
            if claimed.rowcount != 1:
                return
            source = s.get(Source, run.source_id)
            assert source is not None
            items = [StoreItem(k, a, d, h) for k, a, d, h in mapped]
            counts = _write(s, _Target.of(run, source), items)
            runs.add_counts(s, run.id, pages_done=1, **counts.as_dict())
            ctx = _ctx(run, page.seq)
            run_id = run.id
    except OperationalError as exc:
        # A dropped database connection: nothing was committed, try again.
        raise self.retry(countdown=backoff(self.request.retries), exc=exc) from None
    log.info("upserted %s", counts.as_dict(), extra=ctx)
    _finish_if_done(run_id, ctx)


def _reason(exc: ConnectorError) -> str:
    hint = f" ({exc.hint})" if getattr(exc, "hint", None) else ""
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
        explicit_since = since
        if since is None and not full:
            since = s.scalar(
                select(SourceStream.watermark).where(
                    SourceStream.source_id == source_id, SourceStream.stream == stream
                )
            )
        is_full = since is None
        size = page_size or page_size_of(source.settings)
        result = runs.start_run(
            s, source, stream, full=is_full, since=since, requested_by=requested_by, page_size=size
        )
        queued = False
        if not result.created and queue_behind:
            row = s.scalars(
                select(SourceStream).where(
                    SourceStream.source_id == source_id, SourceStream.stream == stream
                )
            ).first()
            if row is None:
                row = SourceStream(source_id=source_id, stream=stream)
                s.add(row)
            if row.queued_at is None:
                row.queued_full, row.queued_since = bool(full), explicit_since
            else:
                row.queued_full = bool(row.queued_full or full)
                if row.queued_since and explicit_since:
                    row.queued_since = min(row.queued_since, explicit_since)
                else:
                    row.queued_since = None  # one of them reads from the watermark
            row.queued_at = utcnow()
            row.queued_by = requested_by[:32]
            queued = True
    if result.created:
        enqueue(fetch_page, result.run.id, 0)
    return SyncStart(result.run, result.created, queued)


# Due streams claimed and started per transaction by beat's dispatcher: few
# enough that the rows it locks are released quickly, many enough that a
# thousand streams falling due in one minute cost a handful of transactions.
DISPATCH_BATCH = 250


@app.task(name="s2s.maintenance.dispatch_due")
def dispatch_due() -> int:
    """Start a run for every stream whose schedule is due, and every resync
    that was queued behind a run which has since ended.

    Schedules are read from the database at each call, so a changed
    schedule, a pause or a resume takes effect without restarting beat.
    Each due row is claimed with a compare-and-set on ``next_due_at`` (and a
    queued resync on ``queued_at``), so two beats started by mistake, each
    sending this task, still start each due run once. Due rows are claimed
    and their runs inserted in batches (``DISPATCH_BATCH`` a transaction),
    and the first fetches are published over one broker connection: a
    deployment whose thousand tenants share a schedule dispatches them in
    well under a second.
    """
    now = utcnow()
    with session_scope() as s:
        due = s.execute(
            select(
                SourceStream.id,
                SourceStream.source_id,
                SourceStream.stream,
                SourceStream.next_due_at,
                SourceStream.interval_seconds,
                SourceStream.cron,
                SourceStream.watermark,
                Source.client_id,
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
        active = {
            key for key in s.scalars(select(SyncRun.lock_key).where(SyncRun.lock_key.is_not(None)))
        }
        waiting = [
            row
            for row in s.execute(
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
            if runs.lock_key(row.source_id, row.stream) not in active
        ]
    started_ids: list[int] = []
    streams = SourceStream.__table__  # Core statements: the ORM's bookkeeping cost more
    for at in range(0, len(due), DISPATCH_BATCH):
        requests: list[runs.RunRequest] = []
        with session_scope() as s:
            for row in due[at : at + DISPATCH_BATCH]:
                schedule = hub_schedule.Schedule(every=row.interval_seconds, cron=row.cron)
                try:
                    next_due = schedule.next_due(now)
                except hub_schedule.ScheduleError as exc:
                    log.error("schedule of stream %s cannot be read: %s", row.stream, exc)
                    continue
                claimed = s.connection().execute(
                    update(streams)
                    .where(streams.c.id == row.id, streams.c.next_due_at == row.next_due_at)
                    .values(next_due_at=next_due)
                )
                if claimed.rowcount != 1:
                    continue  # another beat's dispatcher took it
                if runs.lock_key(row.source_id, row.stream) in active:
                    log.info(
                        "schedule due but a run is still active; next at %s",
                        next_due,
                        extra={"source": row.source_id, "stream": row.stream},
                    )
                    continue
                # As start_sync: incremental from the watermark when there is one.
                requests.append(
                    runs.RunRequest(
                        client_id=row.client_id,
                        source_id=row.source_id,
                        stream=row.stream,
                        full=row.watermark is None,
                        since=row.watermark,
                        requested_by="schedule",
                        page_size=page_size_of(row.settings),
                    )
                )
            started_ids.extend(runs.start_runs(s, requests))
    enqueue_many(fetch_page, [(run_id, 0) for run_id in started_ids])
    started = len(started_ids)
    for row in waiting:
        with session_scope() as s:
            claimed = s.execute(
                update(SourceStream)
                .where(SourceStream.id == row.id, SourceStream.queued_at == row.queued_at)
                .values(queued_at=None, queued_full=None, queued_since=None, queued_by=None)
            )
        if claimed.rowcount == 1:
            result = start_sync(
                row.source_id,
                row.stream,
                full=bool(row.queued_full) or None,
                since=row.queued_since,
                requested_by=row.queued_by or "queued",
                queue_behind=True,  # a run started meanwhile: wait behind it again
            )
            started += int(result.created)
    return started


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

    return resumed + sweep_orders()
