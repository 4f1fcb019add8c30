"""The fetch loop: a run's pages read from its ERP, one read running ahead.

``PageLoop`` is what the ``s2s.sync.fetch_page`` task runs, kept apart from
Celery so that tests drive it with an in-memory connector and a real hub
database. It reads pages from a position of a run, holds the ERP account's
slot around each read, stores each page (``workers.pages``), hands pages
with much to map to ``to_map``, and says why it stopped: the run's last
page was read, the run ended, its time share is spent (fetch on), the run
has enough pages in flight (parked), or the ERP account is busy (fetch
again shortly). ERP errors leave ``run`` as they came; the task turns a
transient one into a retry at ``loop.seq`` and any other into a failed run.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from connectors.base import Connector, Page
from hub import runs
from hub.db import session_scope
from hub.models import Source, SyncPage, SyncRun
from hub.settings import get_settings
from workers import limits
from workers.pages import _store_page, _StoredPage, _Target
from workers.sources import connector_for

log = logging.getLogger("s2s.sync")

# How long one fetch task may go on reading consecutive pages, as a share of
# the task time limit: reading on in the same task saves a broker round
# trip and the task's set-up per page on the run's one sequential path,
# while a task still ends long before its time limit (and hands the run on
# to a fresh message) so a worker is never held by one run for long.
FETCH_SPAN_SHARE = 0.05

# A read: the page and the queries it cost (None: not counted), or None
# when the ERP account's slot was taken.
Read = tuple[Page, int | None] | None
Store = Callable[[_Target, Connector | None, int, Any, Page], _StoredPage | None]


@dataclass(frozen=True)
class Position:
    """Where a fetch picks a run up: its target, the page to read and the
    cursor to read it from, read in one session."""

    target: _Target
    source: Source  # detached: what the connector is built from
    seq: int
    cursor: Any
    since: datetime | None
    # Pages of the run waiting for map_page (a fetch handed on by a map
    # task, or by the sweeper, starts with pages in flight).
    in_flight: int


def position(run_id: int, seq: int) -> Position | None:
    """Where to read page ``seq`` of the run from; None when there is nothing
    to do: the run is not active, the page is stored (a duplicate message),
    the page before is not (out of order: the sweeper fetches in sequence)
    or the page before was the run's last."""
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
        if found is None or found[0].status != runs.ACTIVE or found[2]:
            return None
        run, source = found[0], found[1]
        cursor = None
        if seq > 0:
            prev = s.execute(
                select(SyncPage.cursor_out).where(
                    SyncPage.run_id == run_id, SyncPage.seq == seq - 1
                )
            ).first()
            # A None cursor before this page marks the run's last page: read
            # on and it would start from the beginning again.
            if prev is None or prev[0] is None:
                return None
            cursor = prev[0]
        return Position(
            target=_Target.of(run, source),
            source=source,
            seq=seq,
            cursor=cursor,
            since=datetime.fromisoformat(run.since) if run.since else None,
            in_flight=runs.pages_in_flight(s, run_id) if seq > 0 else 0,
        )


@dataclass(frozen=True)
class Stop:
    """Why the loop stopped, and the page the run goes on from.

    ``last``: the run's last page was read. ``ended``: the run ended
    meanwhile, or another delivery stored the page. ``span``: the task's
    share of time is spent; fetch ``seq`` now. ``parked``: the run has its
    cap of pages in flight; the map task that frees enough places fetches
    on. ``busy``: the ERP account is in use (iSync and SYSPRO allow one
    session); fetch ``seq`` again after ``delay`` seconds, without spending
    an attempt.
    """

    why: Literal["last", "ended", "span", "parked", "busy"]
    seq: int
    delay: float = 0.0


class PageLoop:
    """Read, store and hand on a run's pages from a ``Position``.

    One read runs ahead: as soon as a page's cursor is known the next page
    is read in a second thread, while this one hashes and stores the page
    (the ERP query and the hub's writes wait on different servers). Reads
    stay sequential, one at a time, as keyset paging and one-session ERPs
    require; a read-ahead whose page is not wanted is simply dropped.

    Fair sharing: at most ``run_pages_in_flight`` of the run's pages wait for
    map_page at once, so a large full sync never fills the map queue ahead
    of other tenants' runs.
    """

    def __init__(
        self,
        start: Position,
        connector: Connector,
        *,
        to_map: Callable[[int], None],
        store: Store = _store_page,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = get_settings()
        self.target, self.connector, self.since = start.target, connector, start.since
        self.seq, self.cursor, self.in_flight = start.seq, start.cursor, start.in_flight
        self.cap = settings.run_pages_in_flight
        self._to_map, self._store, self._clock = to_map, store, clock
        self._until = clock() + settings.task_time_limit * FETCH_SPAN_SHARE
        self._slots = limits.session_slots(connector, None, None)
        # Renewed while a read runs (limits.holding): a read with its own
        # retries may take longer than this, a killed worker frees it sooner.
        self._lease = settings.slot_lease
        self._ahead: Future[Read] | None = None

    @classmethod
    def resume(
        cls,
        run_id: int,
        seq: int,
        *,
        to_map: Callable[[int], None],
        connector_of: Callable[[Source], Connector] = connector_for,
        **options: Any,
    ) -> PageLoop | None:
        """The loop for page ``seq`` of the run, or None if it has nothing to do."""
        start = position(run_id, seq)
        if start is None:
            return None
        return cls(start, connector_of(start.source), to_map=to_map, **options)

    def run(self) -> Stop:
        """Read and store pages until there is a reason to stop."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2s-read-ahead") as pool:
            while True:
                ahead, self._ahead = self._ahead, None
                got = ahead.result() if ahead is not None else self._read(self.cursor)
                if got is None:
                    return Stop("busy", self.seq, delay=random.uniform(0.2, 1.5))
                stop = self._take(pool, *got)
                if stop is not None:
                    return stop

    def _read(self, cursor: Any) -> Read:
        """One page from the ERP, under the account's slot (None: the slot is
        taken), and how many queries it cost where the connector counts them."""
        with limits.holding(self._slots, self._lease) as held:
            if not held:
                return None
            before = self.connector.queries
            page = self.connector.read(
                self.target.stream, cursor, self.target.page_size, self.since
            )
            after = self.connector.queries
            return page, (after - before if before is not None and after is not None else None)

    def _take(self, pool: ThreadPoolExecutor, page: Page, spent: int | None) -> Stop | None:
        """Store a page just read and move on to the next one; a ``Stop`` when
        this page is where the task ends."""
        last, ctx = page.next_cursor is None, self.context()
        in_time = self._clock() < self._until
        if not last and in_time and self.in_flight + 1 < self.cap:
            # Read the next page while this one is hashed and stored (even if
            # this one goes to map_page, the run stays below its cap).
            self._ahead = pool.submit(self._read, page.next_cursor)
        stored = self._store(self.target, self.connector, self.seq, self.cursor, page)
        if stored is None:
            return Stop("ended", self.seq)
        self._report(page, spent, stored, ctx)
        if last:
            return Stop("last", self.seq)
        self.cursor, self.seq = page.next_cursor, self.seq + 1
        if stored.in_flight is not None:
            self.in_flight = stored.in_flight
        if self._ahead is not None:
            return None
        if not in_time:
            return Stop("span", self.seq)
        if self.in_flight >= self.cap:
            if self._parked(ctx):
                return Stop("parked", self.seq)
            # Handed back to itself: map tasks brought it down meanwhile.
            self.in_flight = runs.resume_at(self.cap)
        return None

    def _report(
        self, page: Page, spent: int | None, stored: _StoredPage, ctx: dict[str, Any]
    ) -> None:
        """Log what became of a page, and hand it to map_page if it needs mapping."""
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
            self._to_map(stored.page_id)
        else:
            log.info("unchanged since the last sync: %d records", stored.unchanged, extra=ctx)
        if stored.finished:
            log.info("run finished", extra=ctx)

    def _parked(self, ctx: dict[str, Any]) -> bool:
        """Park the run's fetch at its cap of pages in flight; False when, by
        the time the park is committed, map tasks have brought the run down
        to ``runs.resume_at(cap)``: the loop then goes on fetching itself."""
        run_id = self.target.run_id
        with session_scope() as s:
            if not runs.park_fetch(s, run_id):
                return True  # the run ended: nothing to fetch
        with session_scope() as s:
            if runs.unpark_fetch(s, run_id, self.cap) is not None:
                return False
        log.info("fetch waits: %d pages of this run are queued for mapping", self.cap, extra=ctx)
        return True

    def context(self) -> dict[str, Any]:
        """The log context of the page being read or stored."""
        t = self.target
        return {
            "run": t.run_id,
            "source": t.source_id,
            "client": t.client_id,
            "stream": t.stream,
            "page": self.seq,
        }
