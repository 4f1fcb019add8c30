"""Beat's dispatcher: start the runs whose schedule is due, and the resyncs
queued behind runs that have since ended.

Kept apart from Celery (the ``s2s.maintenance.dispatch_due`` task only calls
``dispatch``), so that what it starts, and how often it would start it, can
be tested without a broker: the task hands in how to publish first fetches
and how to start a queued resync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.orm import Session

from hub import runs
from hub import schedule as hub_schedule
from hub.db import session_scope
from hub.settings import get_settings
from workers.sources import connector_class

log = logging.getLogger("s2s.sync")

# Due streams claimed and started per transaction by beat's dispatcher: few
# enough that the rows it locks are released quickly, many enough that a
# thousand streams falling due in one minute cost a handful of transactions.
DISPATCH_BATCH = 250


def page_size_of(kind: str, source_settings: dict[str, Any] | None) -> int:
    """The page size a source's runs read with: its own, else the hub's
    (``S2S_PAGE_SIZE``, when set), else its connector's default
    (``Connector.default_page_size``: a SQL query returns 2,000 rows as
    cheaply as 500, an ERP's HTTP API may not)."""
    own = (source_settings or {}).get("page_size") or get_settings().page_size
    return int(own) if own else connector_class(kind).default_page_size


class QueuedStart(Protocol):
    """How a queued resync is started: ``workers.tasks.start_sync``'s shape,
    answering with whether it created a run."""

    def __call__(
        self,
        source_id: int,
        stream: str,
        *,
        full: bool | None,
        since: str | None,
        requested_by: str,
        queue_behind: bool,
    ) -> runs.StartResult: ...


def dispatch(
    now: datetime,
    *,
    start_fetches: Callable[[list[int]], None],
    start_queued: QueuedStart,
    batch: int = DISPATCH_BATCH,
) -> int:
    """Start every due schedule's run and every queued resync that may start
    now; how many runs were started.

    Each due row is claimed with a compare-and-set on ``next_due_at`` (and a
    queued resync on ``queued_at``), so two beats started by mistake still
    start each due run once. Due rows are claimed and their runs inserted
    ``batch`` a transaction, and ``start_fetches`` gets every new run's id
    at once (one broker connection for a thousand first fetches).
    """
    with session_scope() as s:
        due = runs.due_streams(s, now)
        active = runs.active_lock_keys(s)
        waiting = runs.queued_resyncs(s, active)
    started_ids: list[int] = []
    for at in range(0, len(due), batch):
        with session_scope() as s:
            requests = [_claim(s, row, now, active) for row in due[at : at + batch]]
            started_ids.extend(runs.start_runs(s, [r for r in requests if r is not None]))
    start_fetches(started_ids)
    return len(started_ids) + sum(_start_waiting(row, start_queued) for row in waiting)


def _claim(s: Session, row: Row[Any], now: datetime, active: set[str]) -> runs.RunRequest | None:
    """Claim a due stream (move its next due time on) and say which run to
    start; None when another dispatcher claimed it, its schedule cannot be
    read, or its previous run is still active (that time is skipped)."""
    schedule = hub_schedule.Schedule(every=row.interval_seconds, cron=row.cron)
    try:
        next_due = schedule.next_due(now)
    except hub_schedule.ScheduleError as exc:
        log.error("schedule of stream %s cannot be read: %s", row.stream, exc)
        return None
    if not runs.claim_due(s, row.id, row.next_due_at, next_due):
        return None  # another beat's dispatcher took it
    if runs.lock_key(row.source_id, row.stream) in active:
        log.info(
            "schedule due but a run is still active; next at %s",
            next_due,
            extra={"source": row.source_id, "stream": row.stream},
        )
        return None
    # As start_sync: incremental from the watermark when there is one.
    return runs.RunRequest(
        client_id=row.client_id,
        source_id=row.source_id,
        stream=row.stream,
        full=row.watermark is None,
        since=row.watermark,
        requested_by="schedule",
        page_size=page_size_of(row.kind, row.settings),
    )


def _start_waiting(row: Row[Any], start_queued: QueuedStart) -> int:
    """Start a queued resync once (1 if it started a run): if a run started
    meanwhile, the request queues itself behind that one again."""
    with session_scope() as s:
        if not runs.claim_queued(s, row.id, row.queued_at):
            return 0
    result = start_queued(
        row.source_id,
        row.stream,
        full=bool(row.queued_full) or None,
        since=row.queued_since,
        requested_by=row.queued_by or "queued",
        queue_behind=True,
    )
    return int(result.created)
