"""Retention of run history: old finished runs are pruned, their totals kept.

A thousand sources on a 15-minute schedule write about 96,000 ``sync_runs``
rows a day, with their ``sync_pages`` and ``quarantine`` rows. This module
deletes the ones nobody needs any more, in short batches, and keeps what the
metrics say about them.

**The rule.** A run is pruned when all of these hold:

- it is finished (its status is not ``running``);
- it ended more than ``retention_days`` before ``now``, where "ended" is its
  ``finished_at``, or its ``created_at`` when ``finished_at`` is null;
- it is not among the last ``keep_runs`` runs of its source and stream, by
  id (active runs count among those last runs);
- no ``source_streams.last_run_id`` names it;
- none of its quarantine rows is *current*.

A quarantine row (run R, source S, stream T, record key K) is **current**
while the problem it records may still be the latest word on that record:

1. no later run of S and T quarantined K again (no quarantine row with the
   same source, stream and record key and a run id above R), and
2. the hub's stored record for K — ``products.source_product_code`` for the
   ``products`` stream, ``customers.source_customer_code`` for ``customers``,
   on source S — has not been written by a later run: there is no such
   record, or its ``last_run_id`` is null or at most R. (Other streams keep
   no stored record, so only the first condition applies to them.)

So a record held back in an old run and never fixed keeps that run (and its
quarantine rows, which ``s2s runs --quarantine`` shows) for as long as it is
the last word; once a later run writes the record, or quarantines it again,
the old run may go. A pruned run takes its pages and quarantine rows with
it. Orders, order events, dead letters and webhook deliveries are never
touched here.

**Totals survive pruning.** ``/metrics`` publishes runs and records as
Prometheus counters, which must never go down; recounting every run row on
each scrape also grows with the history. Finished runs are therefore
*folded*: their counts are added once into ``sync_run_totals`` and
``sync_history_fold.through_run_id`` moves past them. A scrape adds the
folded totals to an aggregate of the runs above that mark only, which is
bounded by how often the fold runs (with every prune). Pruning deletes
folded runs only, so a counter never loses what a pruned run counted.

**Short transactions.** Each batch selects at most ``batch_size`` run ids,
deletes their quarantine rows, pages and then the runs with plain
``DELETE ... WHERE ... IN (...)`` statements, and commits; the loop stops
when nothing is left or the time budget is spent (the next prune carries
on). Being prunable only ever changes from "no" to "yes" as newer runs
arrive, so rows selected in a batch are still prunable when it deletes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Engine,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from hub.models import (
    Customer,
    HistoryFold,
    Product,
    Quarantined,
    RunTotal,
    SourceStream,
    SyncPage,
    SyncRun,
    TZDateTime,
)
from hub.runs import ACTIVE, RECORD_OUTCOMES

# Run ids per batch: one short transaction of three DELETEs each.
BATCH_SIZE = 500
# Runs folded into the totals per transaction.
FOLD_CHUNK = 50_000
# A run is folded only this long after it ended: a page task that checked
# the run was active just before it ended may still add its counts (tasks
# are limited to S2S_TASK_TIME_LIMIT, 600 s by default).
FOLD_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Pruned:
    """What one prune deleted; ``complete`` is False when the time budget ran out first."""

    runs: int = 0
    pages: int = 0
    quarantine: int = 0
    complete: bool = True


@dataclass(frozen=True)
class StreamTotal:
    """Runs of one stream and status, with what they counted (folded plus live)."""

    stream: str
    status: str
    runs: int
    outcomes: dict[str, int]


def _ended() -> Any:
    # The same expression as the ix_sync_runs_ended index, so the index serves it.
    return func.coalesce(SyncRun.finished_at, SyncRun.created_at)


def _through(session: Session) -> int:
    """The fold mark; creates its row when the schema was made without migrations."""
    value = session.scalar(select(HistoryFold.through_run_id).where(HistoryFold.id == 1))
    if value is not None:
        return int(value)
    try:
        with session.begin_nested():
            session.execute(insert(HistoryFold).values(id=1, through_run_id=0))
    except IntegrityError:  # created meanwhile by another fold
        return _through(session)
    return 0


def fold_totals(
    engine: Engine, *, now: datetime, grace: timedelta = FOLD_GRACE, chunk: int = FOLD_CHUNK
) -> int:
    """Add finished runs' counts to ``sync_run_totals``; return the new fold mark.

    The mark moves up to just below the lowest run that is still active, or
    ended less than ``grace`` before ``now``, and no further than the newest
    run created before that: every run at or below it is finished and its
    counts final. (The second bound is for ids taken by transactions not yet
    committed, which this fold cannot see: run ids follow creation time, and
    no transaction stays open for ``grace``.) Each chunk is one transaction
    that moves the mark with a compare-and-set first, so two folds running
    at once never add the same runs twice (the loser re-reads the mark).
    Both bounds are read from the runs above the mark only.
    """
    fold = HistoryFold.__table__
    through, target = _fold_target(engine, now - grace)
    if target is None:
        return through
    while True:
        with Session(engine) as s, s.begin():
            through = _through(s)
            upto = min(target, through + chunk)
            if upto <= through:
                return through
            claimed = s.execute(
                update(fold)
                .where(fold.c.id == 1, fold.c.through_run_id == through)
                .values(through_run_id=upto, folded_at=now)
            )
            if cast("CursorResult[Any]", claimed).rowcount != 1:
                continue  # another fold moved the mark: nothing written here, read it again
            _add_runs(s, through, upto)


def _fold_target(engine: Engine, cut: datetime) -> tuple[int, int | None]:
    """The fold mark now, and how far it may move (None: nowhere yet).

    Just below the lowest run still active or ended after ``cut``, and no
    further than the newest run created before ``cut`` (see ``fold_totals``).
    """
    with Session(engine) as s, s.begin():
        through = _through(s)
        blocker = s.scalar(
            select(func.min(SyncRun.id)).where(
                SyncRun.id > through, or_(SyncRun.status == ACTIVE, _ended() >= cut)
            )
        )
        settled = s.scalar(
            select(func.max(SyncRun.id)).where(SyncRun.id > through, SyncRun.created_at < cut)
        )
    if settled is None:
        return through, None
    return through, settled if blocker is None else min(settled, blocker - 1)


def _add_runs(s: Session, through: int, upto: int) -> None:
    """Add the runs above ``through`` up to ``upto`` to the totals, by stream and status.

    Called in the transaction that moved the mark, whose row lock keeps a
    concurrent fold from inserting the same totals row meanwhile.
    """
    totals = RunTotal.__table__
    rows = s.execute(
        select(
            SyncRun.stream,
            SyncRun.status,
            func.count(),
            *(func.coalesce(func.sum(getattr(SyncRun, c)), 0) for c in RECORD_OUTCOMES),
        )
        .where(SyncRun.id > through, SyncRun.id <= upto)
        .group_by(SyncRun.stream, SyncRun.status)
    ).all()
    for stream, status, runs, *counts in rows:
        added = {"runs": int(runs)} | {
            c: int(n) for c, n in zip(RECORD_OUTCOMES, counts, strict=True)
        }
        result = s.execute(
            update(totals)
            .where(totals.c.stream == stream, totals.c.status == status)
            .values({k: totals.c[k] + n for k, n in added.items()})
        )
        if cast("CursorResult[Any]", result).rowcount == 0:
            # Safe from a concurrent insert: the mark's row is locked above.
            s.execute(insert(totals).values(stream=stream, status=status, **added))


def run_totals(session: Session) -> list[StreamTotal]:
    """Runs by stream and status with their summed counters, for ``/metrics``.

    Folded totals plus the runs above the fold mark, read in one statement
    (one snapshot), so a fold committing meanwhile neither doubles nor drops
    a run. The live part holds the runs since the last fold only.
    """
    mark = select(HistoryFold.through_run_id).where(HistoryFold.id == 1).scalar_subquery()
    folded = select(
        RunTotal.stream,
        RunTotal.status,
        RunTotal.runs,
        *(getattr(RunTotal, c) for c in RECORD_OUTCOMES),
    )
    live = (
        select(
            SyncRun.stream,
            SyncRun.status,
            func.count(),
            *(func.coalesce(func.sum(getattr(SyncRun, c)), 0) for c in RECORD_OUTCOMES),
        )
        .where(SyncRun.id > func.coalesce(mark, literal(0)))
        .group_by(SyncRun.stream, SyncRun.status)
    )
    merged: dict[tuple[str, str], list[int]] = {}
    for stream, status, runs, *counts in session.execute(union_all(folded, live)).all():
        row = merged.setdefault((stream, status), [0] * (1 + len(RECORD_OUTCOMES)))
        for i, n in enumerate((runs, *counts)):
            row[i] += int(n)
    return [
        StreamTotal(stream, status, row[0], dict(zip(RECORD_OUTCOMES, row[1:], strict=True)))
        for (stream, status), row in sorted(merged.items())
    ]


def _has_current_quarantine() -> Any:
    """EXISTS: the outer run has a quarantine row that is still current (see the module)."""
    q = aliased(Quarantined, name="q")
    later = aliased(Quarantined, name="q_later")
    quarantined_again = exists().where(
        later.source_id == q.source_id,
        later.stream == q.stream,
        later.record_key == q.record_key,
        later.run_id > q.run_id,
    )
    product_written_later = exists().where(
        Product.source_id == q.source_id,
        Product.source_product_code == q.record_key,
        Product.last_run_id > q.run_id,
    )
    customer_written_later = exists().where(
        Customer.source_id == q.source_id,
        Customer.source_customer_code == q.record_key,
        Customer.last_run_id > q.run_id,
    )
    return exists().where(
        q.run_id == SyncRun.id,
        ~quarantined_again,
        ~((q.stream == "products") & product_written_later),
        ~((q.stream == "customers") & customer_written_later),
    )


def _candidates(
    session: Session,
    *,
    cutoff: datetime,
    keep_runs: int,
    through: int,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[tuple[int, datetime]]:
    """The next prunable runs by (ended, id), after the last batch's position.

    Kept runs are stepped over, not selected again: the next batch starts
    after the last run this one selected.
    """
    newer = aliased(SyncRun, name="newer")
    # The id of the keep_runs-th newest run of the same source and stream:
    # runs below it are outside the kept ones. NULL (so nothing pruned) when
    # the stream has fewer runs than that.
    kept_from = (
        select(newer.id)
        .where(newer.source_id == SyncRun.source_id, newer.stream == SyncRun.stream)
        .order_by(newer.id.desc())
        .offset(keep_runs - 1)
        .limit(1)
        .scalar_subquery()
    )
    ended = _ended()
    query = (
        select(SyncRun.id, ended)
        .where(
            ended < cutoff,
            SyncRun.id <= through,
            SyncRun.status != ACTIVE,
            SyncRun.id < kept_from,
            # NOT IN over the (small) streams table: PostgreSQL hashes it
            # once, where a correlated NOT EXISTS rescanned it per run.
            SyncRun.id.not_in(
                select(SourceStream.last_run_id).where(SourceStream.last_run_id.is_not(None))
            ),
            ~_has_current_quarantine(),
        )
        .order_by(ended, SyncRun.id)
        .limit(limit)
    )
    if after is not None:
        at, run_id = after
        query = query.where(
            tuple_(ended, SyncRun.id) > tuple_(literal(at, TZDateTime()), literal(run_id))
        )
    return [(int(run_id), at) for run_id, at in session.execute(query).all()]


def _delete_runs(session: Session, ids: Sequence[int]) -> tuple[int, int, int]:
    """Delete the runs with their quarantine rows and pages (children first,
    so the foreign keys' cascades find nothing left to do)."""
    conn = session.connection()
    q, p, r = Quarantined.__table__, SyncPage.__table__, SyncRun.__table__
    quarantine = conn.execute(delete(q).where(q.c.run_id.in_(ids))).rowcount
    pages = conn.execute(delete(p).where(p.c.run_id.in_(ids))).rowcount
    runs = conn.execute(delete(r).where(r.c.id.in_(ids))).rowcount
    return runs, pages, quarantine


def prune_history(
    engine: Engine,
    *,
    retention_days: float,
    keep_runs: int,
    now: datetime,
    batch_size: int = BATCH_SIZE,
    budget_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Pruned:
    """Delete the runs the rule (module docstring) lets go, with their pages
    and quarantine rows, in batches of ``batch_size`` runs, one transaction
    each. Folds the totals first: only folded runs are deleted.

    Stops early, with ``complete=False``, once ``budget_seconds`` have passed;
    the next call carries on where this one stopped.
    """
    if retention_days <= 0:
        raise ValueError(f"retention_days must be positive, not {retention_days!r}")
    if keep_runs < 1 or batch_size < 1:
        raise ValueError("keep_runs and batch_size must be at least 1")
    started = clock()
    through = fold_totals(engine, now=now)
    cutoff = now - timedelta(days=retention_days)
    after: tuple[datetime, int] | None = None
    runs = pages = quarantine = 0
    while True:
        with Session(engine) as s, s.begin():
            batch = _candidates(
                s,
                cutoff=cutoff,
                keep_runs=keep_runs,
                through=through,
                after=after,
                limit=batch_size,
            )
            if batch:
                r, p, q = _delete_runs(s, [run_id for run_id, _ in batch])
                runs, pages, quarantine = runs + r, pages + p, quarantine + q
        if len(batch) < batch_size:
            return Pruned(runs, pages, quarantine, complete=True)
        run_id, at = batch[-1]
        after = (at, run_id)
        if budget_seconds is not None and clock() - started >= budget_seconds:
            return Pruned(runs, pages, quarantine, complete=False)
