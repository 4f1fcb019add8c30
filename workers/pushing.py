"""The push: a channel's store brought up to date from the client's change feed.

``s2s.push.batch`` is one step of a push run: it takes the channel's slot
(per-store concurrency, as an ERP account's), reads the next products of the
feed after the run's position, decides per product what the store must be
sent (``workers.rendering``), sends it through the channel's connector, and
records the store's answers and the new position in one transaction
(``hub.pushes``); then it hands the run on to the next step, on the kind's
own queue (``push.<kind>``), so one slow store backs up only its kind.

Failures, as elsewhere: a failure of the whole call that may pass (the store
unreachable, 5xx, throttled beyond a call's patience) retries the step on the
workers' retry curve, and fails the run after ``S2S_PUSH_MAX_ATTEMPTS``; a
wrong setting fails the run at once with the setting named. A product the
store refuses is recorded with the store's words and the batch goes on; one
refused for a passing reason holds the position until the step's retries are
spent, then is recorded as refused too, so one product never blocks a store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, PermanentError, TransientError
from connectors.channel import ChannelConnector, Outcome
from hub import pushes
from hub import schedule as schedules
from hub.db import session_scope
from hub.models import Channel, PushRun
from hub.settings import get_settings
from workers import channels as channel_records
from workers import kinds, limits
from workers.app import app
from workers.backoff import delay
from workers.rendering import Decision, decide, ids_of, whole
from workers.repeat import repeating

log = logging.getLogger("s2s.push")

SLOT_WAIT = 5.0
# The feed rows one bulk-planning read takes at a time.
_BULK_READ = 2000


def _touch(run_id: int) -> None:
    """One heartbeat of a push step: the sweeper resumes only runs whose
    worker is gone, even when a throttled batch or a bulk operation takes
    minutes."""
    try:
        with session_scope() as s:
            pushes.touch(s, run_id)
    except Exception as exc:  # a missed beat only risks a resumed duplicate step
        log.warning("push heartbeat failed: %s", exc, extra={"push_run": run_id})


def queue_of(kind: str) -> str:
    return f"push.{kind}"


def connector_class(kind: str) -> type[ChannelConnector]:
    return kinds.channel_connector_class(kind)


def connector_for(channel: Channel) -> ChannelConnector:
    """The channel's connector, with its settings resolved and secrets decrypted."""
    return connector_class(channel.kind)(
        channel_records.resolved_settings(channel), channel_records.secrets_of(channel)
    )


def enqueue(run_id: int, kind: str, countdown: float | None = None) -> None:
    """Publish a step; if the broker is down the sweeper resumes the run."""
    try:
        options: dict[str, Any] = {"queue": queue_of(kind)}
        if countdown:
            options["countdown"] = countdown
        push_batch.apply_async((run_id,), **options)
    except Exception as exc:  # broker down: recovered by the sweeper
        log.warning("could not enqueue push step %s (%s); the sweeper will retry", run_id, exc)


def start_push(
    channel_id: int,
    *,
    full: bool = False,
    retry_refused: bool = False,
    requested_by: str = "cli",
) -> pushes.PushStart:
    """Start a push of the channel (or find the active one) and enqueue its first step."""
    with session_scope() as s:
        channel = s.get(Channel, channel_id)
        if channel is None:
            raise LookupError(f"no channel with id {channel_id}")
        if channel.kind not in kinds.pushing_channel_names():
            raise ValueError(
                f"channel {channel.code!r}: the hub does not push products to "
                f"{channel.kind} stores yet (it takes their orders)"
            )
        if not channel_records.pushes(channel):
            raise ValueError(
                f"channel {channel.code!r} has no store_url: it takes orders only "
                "(set store_url and the store's credentials to push products)"
            )
        result = pushes.start_push(
            s, channel, full=full, retry_refused=retry_refused, requested_by=requested_by
        )
        kind = channel.kind
        s.flush()
        s.expunge(result.run)
    if result.created:
        enqueue(result.run.id, kind)
    return result


# ------------------------------------------------------------------ a step


@dataclass(frozen=True)
class _Loaded:
    run_id: int
    channel_id: int
    kind: str
    settings: dict[str, Any]
    position: int
    target: int
    full: bool
    retry_refused: bool
    attempts: int


def _load(run_id: int) -> tuple[_Loaded, ChannelConnector] | None:
    with session_scope() as s:
        run = s.get(PushRun, run_id)
        if run is None or run.status != pushes.ACTIVE:
            return None
        channel = s.get(Channel, run.channel_id)
        assert channel is not None
        loaded = _Loaded(
            run.id,
            channel.id,
            channel.kind,
            channel_records.resolved_settings(channel),
            int(run.position),
            int(run.target),
            run.full,
            run.retry_refused,
            int(run.attempts),
        )
        return loaded, connector_for(channel)


@app.task(name="s2s.push.batch", bind=True)
def push_batch(self: Task[Any, Any], run_id: int) -> None:
    """One step of a push run (see the module's docstring)."""
    found = _load(run_id)
    if found is None:
        return
    run, connector = found
    ctx = {"push_run": run_id, "channel": run.channel_id}
    slots = [(f"channel:{run.channel_id}", int(run.settings.get("concurrency") or 1))]
    beat_every = max(get_settings().stale_after / 3, 1.0)
    # The slot is renewed while the step works (limits.holding's heartbeat),
    # so a killed worker frees its store within S2S_SLOT_LEASE.
    with connector, limits.holding(slots, get_settings().slot_lease) as held:
        if not held:
            enqueue(run_id, run.kind, countdown=SLOT_WAIT)
            return
        try:
            with repeating(beat_every, lambda: _touch(run_id), "push-heartbeat"):
                more = _step(run, connector)
        except PermanentError as exc:
            _end(run_id, f"settings: {_words(exc)}", ctx)
            return
        except TransientError as exc:
            _retry_or_fail(run, exc, ctx)
            return
    if more is None:
        return
    if more:
        enqueue(run_id, run.kind)
    else:
        _end(run_id, None, ctx)


def _words(exc: ConnectorError) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


def _retry_or_fail(run: _Loaded, exc: TransientError, ctx: dict[str, Any]) -> None:
    with session_scope() as s:
        attempts = pushes.count_attempt(s, run.run_id)
    if attempts >= get_settings().push_max_attempts:
        _end(run.run_id, f"gave up after {attempts} attempts: {_words(exc)}", ctx)
        return
    wait = max(exc.retry_after or 0.0, delay(attempts - 1))
    log.warning("push step failed, retrying in %.1fs: %s", wait, _words(exc), extra=ctx)
    enqueue(run.run_id, run.kind, countdown=wait)


def _end(run_id: int, error: str | None, ctx: dict[str, Any]) -> None:
    with session_scope() as s:
        ended = pushes.finish(s, run_id, error)
    if ended and error:
        log.error("push failed: %s", error, extra=ctx)
    elif ended:
        log.info("push finished", extra=ctx)


def _step(run: _Loaded, connector: ChannelConnector) -> bool | None:
    """Push the next products; True when more remain, None when the step
    was retried or the run ended here."""
    if run.retry_refused:
        _retry_refused(run, connector)
        return True
    with session_scope() as s:
        channel = s.get(Channel, run.channel_id)
        assert channel is not None
        threshold = connector.bulk_threshold
        bulk = (
            threshold is not None
            and run.position == 0
            and pushes.bound_count(s, run.channel_id) == 0
            and pushes.waiting(s, channel.client_id, run.position, run.target) >= threshold
        )
        limit = _BULK_READ if bulk else connector.batch_size
        plan = _plan(s, channel, run, limit, read_all=bulk)
    if plan.rows == 0:
        return False
    items = [d.item for d in plan.decisions if d.item is not None]
    outcomes: list[Outcome] = []
    if items:
        outcomes = connector.push_bulk(items) if bulk else connector.push(items)
    final = run.attempts + 1 >= get_settings().push_max_attempts
    held = _record(run, plan, outcomes, final=final)
    if held:
        exc = TransientError(f"the store could not take {held} now; the step is retried")
        _retry_or_fail(run, exc, {"push_run": run.run_id, "channel": run.channel_id})
        return None
    return True


@dataclass(frozen=True)
class _Plan:
    rows: int
    decisions: list[Decision]
    seqs: list[int]


def _plan(s: Session, channel: Channel, run: _Loaded, limit: int, *, read_all: bool) -> _Plan:
    decisions: list[Decision] = []
    seqs: list[int] = []
    after = run.position
    while True:
        rows = pushes.feed_rows(s, channel, after, run.target, limit)
        for row in rows:
            decisions.append(
                decide(row.product, row.source_code, row.bound, run.settings, force=run.full)
            )
            seqs.append(int(row.product.change_seq or 0))
        if not read_all or len(rows) < limit:
            break
        after = seqs[-1]
    return _Plan(len(decisions), decisions, seqs)


def _record(run: _Loaded, plan: _Plan, outcomes: Sequence[Outcome], *, final: bool) -> str | None:
    """Write the outcomes and the new position; the first product held back
    for a passing refusal (None: none held), which stops the position."""
    by_key = {o.key: o for o in outcomes}
    confirmed: list[pushes.Confirmed] = []
    refused: list[pushes.Refused] = []
    counts = dict.fromkeys(pushes.COUNTS, 0)
    position: int | None = None
    held: str | None = None
    for decision, seq in zip(plan.decisions, plan.seqs, strict=True):
        outcome = by_key.get(decision.key) if decision.item is not None else None
        if outcome is not None and not outcome.confirmed and not outcome.permanent and not final:
            held = held or f"{decision.key} ({outcome.error})"
        elif outcome is not None and outcome.confirmed and outcome.bound is not None:
            assert decision.item is not None and decision.product_hash is not None
            confirmed.append(
                pushes.Confirmed(
                    decision.product_id,
                    decision.key,
                    outcome.bound.product_id,
                    ids_of(outcome.bound),
                    decision.product_hash,
                    decision.stock_hash,
                    decision.item.listing.status,
                )
            )
            counts[decision.outcome] += 1
        elif outcome is not None or decision.error is not None:
            error = decision.error or (outcome.error if outcome else None) or "refused"
            hashed = (
                whole(decision.product_hash, decision.stock_hash)
                if decision.product_hash and decision.stock_hash
                else ""
            )
            refused.append(pushes.Refused(decision.product_id, decision.key, error, hashed))
            counts["refused"] += 1
        elif decision.item is None:
            counts[decision.outcome] += 1
        else:
            held = held or f"{decision.key} (no answer from the store)"
        if held is None:
            position = seq
            counts["considered"] += 1
    with session_scope() as s:
        pushes.record(s, run.channel_id, confirmed, refused)
        pushes.advance(s, run.run_id, run.channel_id, position, counts)
        if held is None:
            pushes.reset_attempts(s, run.run_id)
    return held


def _retry_refused(run: _Loaded, connector: ChannelConnector) -> None:
    """Send every product the store refused once more, then go on with the feed."""
    after = 0
    while True:
        with session_scope() as s:
            channel = s.get(Channel, run.channel_id)
            assert channel is not None
            rows = pushes.refused_rows(s, channel, after, connector.batch_size)
            ids = [r.bound.id for r in rows if r.bound is not None]
            decisions = [
                decide(r.product, r.source_code, r.bound, run.settings, retry_refused=True)
                for r in rows
            ]
        if not rows:
            break
        after = max(ids)
        items = [d.item for d in decisions if d.item is not None]
        outcomes = connector.push(items) if items else []
        plan = _Plan(len(decisions), decisions, [0] * len(decisions))
        _record(run, plan, outcomes, final=True)
    with session_scope() as s:
        pushes.refused_retried(s, run.run_id)


# --------------------------------------------------------------- schedule


def dispatch_pushes(now: datetime) -> int:
    """Start the pushes that are due: on a channel's schedule, or after a
    sync changed the client's products and the debounce has passed."""
    started = 0
    with session_scope() as s:
        due = pushes.due_channels(s, now, timedelta(seconds=get_settings().push_debounce))
        plans: list[tuple[int, str]] = []
        for channel in due:
            if not channel_records.pushes(channel):
                channel.next_push_at = None
                channel.push_wanted_at = None
                continue
            settings = channel_records.resolved_settings(channel)
            scheduled = channel.next_push_at is not None and channel.next_push_at <= now
            if scheduled:
                channel.next_push_at = schedules.parse(settings["schedule"]).next_due(now)
            plans.append((channel.id, "schedule" if scheduled else "sync"))
    for channel_id, by in plans:
        try:
            if start_push(channel_id, requested_by=by).created:
                started += 1
        except (LookupError, ValueError) as exc:
            log.warning("push not started: %s", exc, extra={"channel": channel_id})
    return started


def sweep_pushes(older_than: timedelta) -> int:
    """Resume push runs whose steps stopped (lost messages, killed workers)."""
    with session_scope() as s:
        stale = pushes.stale_runs(s, older_than)
        kinds: list[tuple[int, str]] = []
        for run_id in stale:
            pushes.touch(s, run_id)
            run = s.get(PushRun, run_id)
            channel = s.get(Channel, run.channel_id) if run else None
            if channel is not None:
                kinds.append((run_id, channel.kind))
    for run_id, kind in kinds:
        enqueue(run_id, kind)
        log.warning("resumed stalled push", extra={"push_run": run_id})
    return len(kinds)


def channel_summary(row: Channel, s: Session) -> dict[str, Any]:
    """Per channel for ``s2s status`` and the API: feed lag, last push, refusals."""
    last = pushes.last_run(s, row)
    return {
        "channel": row.code,
        "kind": row.kind,
        "pushes": channel_records.pushes(row),
        "paused": row.paused,
        "waiting": pushes.lag(s, row),
        "refused": pushes.refused_count(s, row.id),
        "next_push_at": row.next_push_at.isoformat() if row.next_push_at else None,
        "last_push": pushes.run_view(last) if last else None,
    }
