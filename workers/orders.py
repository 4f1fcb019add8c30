"""Order tasks: route orders to their ERP, raise each exactly once, in batches.

Routing (queue ``orders``): ``route_pending`` takes up to a batch of
received orders, finds the source owning their SKUs with one lookup per
client, checks what each ERP will need, and moves them to ``queued`` in bulk.

Raising (queue ``raise.<kind>``, so one ERP's trouble never holds up
another's orders): ``drain_source`` takes one of the source's concurrency
slots (shared by every worker) once, then claims queued orders a batch at a
time, each with its own lease and attempt count. Any order an earlier
attempt may have reached the ERP with is looked up first (``find_order``);
the rest go to the connector's ``raise_orders`` together (the SQL connector
inserts a batch in one transaction; other ERPs get one call per order).
Outcomes are written back in one transaction per batch: raised, retried
later with backoff and jitter (waiting for a slot is not an attempt), or
dead-lettered with what to fix — each order on its own, so one bad order
never holds back the others.

Why drains instead of one task per order: a burst of thousands of orders
used to be thousands of raise tasks competing for a one-session slot, each
losing task re-queued a second later, with about ten transactions per
order. Intake and routing now only *ask* for a drain of the source; a Redis
marker turns a burst of asks into one task (``limits.request_once``). The
database stays the source of truth: a lost drain only delays orders until
the next ask or the sweeper.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import (
    Connector,
    ConnectorError,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from hub import orders
from hub.db import session_scope
from hub.models import Order, Product, Source, Variant, utcnow
from hub.schemas import load_order
from hub.schemas.scalars import not_unicode, not_unicode_message
from hub.settings import get_settings
from mappings import get_map
from mappings.core import MissingSettingError
from workers import backoff, limits, line_meta
from workers.app import app
from workers.sources import connector_class, connector_for

log = logging.getLogger("s2s.orders")

# Orders claimed per batch: large enough that a burst costs a few statements
# per hundred orders, small enough that a batch is quick to redo after a
# crash and a steady trickle is raised as it arrives (a batch is whatever is
# queued, never waited for).
RAISE_BATCH = 100
ROUTE_BATCH = 200
# How long one drain or routing task keeps going before handing over to a
# fresh task, so that other sources on the same queue get their turn.
TASK_BUDGET = 10.0
# How long an "a task is on its way" marker lives: a task lost with its
# message delays the next ask by at most this much.
MARKER_TTL = 10.0


def raise_queue(kind: str) -> str:
    return f"raise.{kind}"


def _publish(task: Any, args: tuple[Any, ...], **options: Any) -> None:
    try:
        task.apply_async(args=args, **options)
    except Exception as exc:  # broker down: the sweeper re-enqueues from the database
        log.warning("could not enqueue %s%r (%s); the sweeper will retry", task.name, args, exc)


def request_drain(source_id: int, kind: str, delay: float = 0.0, force: bool = False) -> None:
    """Ask for a drain of the source's queued orders, ``delay`` seconds from now.

    Asks made while a drain is already on its way are dropped (it will see
    their orders: it clears the marker before it claims anything).
    """
    if not force:
        if delay > 0:
            if not limits.request_by(f"drain-later:{source_id}", delay):
                return
        elif not limits.request_once(f"drain:{source_id}", MARKER_TTL):
            return
    lease = get_settings().order_lease
    _publish(
        drain_source,
        (source_id,),
        queue=raise_queue(kind),
        countdown=delay,
        # A drain must end before the leases it takes do, or a second worker
        # could claim an order while the first is still talking to the ERP.
        time_limit=max(int(lease * 0.9), 5),
        soft_time_limit=max(int(lease * 0.8), 4),
    )


def request_route(force: bool = False) -> None:
    """Ask for the received orders to be routed (one task for a burst of asks)."""
    if force or limits.request_once("route", MARKER_TTL):
        _publish(route_pending, (), queue="orders")


# Intake's asks for routing, folded: at most one every 20 ms per process
# (a burst's orders wait at most that long more to be routed).
_route_asks = limits.Coalesced(request_route, 0.02)


def enqueue_route(order_id: int) -> None:
    """Route an order (after intake or a replay); the sweeper covers a down broker."""
    request_route()


def submit(
    client_id: int,
    payload: Any,
    *,
    raw: Any = None,
    delivery_id: str | None = None,
    raw_text: str | None = None,
) -> tuple[orders.Intake | None, list[tuple[str, str]]]:
    """Validate and store an order, then ask for routing. The row is committed
    first. ``raw_text``: ``raw``'s JSON text as received (``intake_now``)."""
    order, errors = load_order(payload)
    if order is None:
        return None, errors
    kept = raw if raw is not None else payload
    try:
        result = orders.intake_now(
            client_id, order, raw=kept, delivery_id=delivery_id, raw_text=raw_text
        )
    except UnicodeEncodeError:
        # Validation lets text through whole; only storing it finds a lone
        # surrogate (a stray "\ud800" escape in the JSON sent), and the
        # walk that names its field runs only then.
        field = not_unicode(order) or not_unicode(kept, "raw") or "order"
        return None, [(field, not_unicode_message(field))]
    if result.created and result.order.status == orders.RECEIVED:
        _route_asks.ask()
    return result, []


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

Problem = tuple[str, str, str]  # error class, message, fix


@app.task(name="s2s.orders.route_order")
def route_order(order_id: int) -> None:
    """Route an order (replays and older messages name one): routes every
    received order, this one included, in batches."""
    _route_all()


@app.task(name="s2s.orders.route_pending")
def route_pending() -> None:
    """Route the received orders, a batch at a time."""
    _route_all()


def _route_all() -> None:
    limits.started("route")
    deadline = time.monotonic() + TASK_BUDGET
    while _route_batch(ROUTE_BATCH) == ROUTE_BATCH:
        if time.monotonic() > deadline:
            request_route()
            return


def _route_batch(limit: int) -> int:
    """Route up to ``limit`` received orders in one transaction; how many were taken."""
    letters: list[tuple[int, Problem]] = []
    drains: dict[int, str] = {}
    with session_scope() as s:
        batch = orders.receivable(s, limit)
        if not batch:
            return 0
        problems, skus_of, wanted = _skus_of(batch)
        owners = _owners(s, wanted)
        all_sources = {sid for ids in owners.values() for sid in ids}
        sources = {
            src.id: src for src in s.scalars(select(Source).where(Source.id.in_(all_sources)))
        }
        plan: dict[int, list[Order]] = {}
        for order in batch:
            if order.id in problems:
                continue
            problem, source_id = _route_one(order, skus_of[order.id], owners, sources)
            if problem is not None:
                problems[order.id] = problem
            else:
                assert source_id is not None
                plan.setdefault(source_id, []).append(order)
        for source_id, planned in plan.items():
            found = _check_payloads(s, sources[source_id], planned)
            problems.update(found)
            ids = [order.id for order in planned if order.id not in found]
            source = sources[source_id]
            message = f"routed to source {source.code} ({source.kind})"
            if orders.routed_many(s, source_id, ids, message):
                drains[source_id] = source.kind
        for order_id, (error_class, message, fix) in problems.items():
            if "replay" not in fix:
                fix = f"{fix}, then replay"
            letter = orders.dead_letter(
                s, order_id, stage="route", error_class=error_class, message=message, fix=fix
            )
            if letter is not None:
                letters.append((order_id, (error_class, message, fix)))
        taken = len(batch)
    for order_id, (error_class, message, _) in letters:
        log.warning("dead letter %s: %s", error_class, message, extra={"order": order_id})
    for source_id, kind in drains.items():
        request_drain(source_id, kind)
    return taken


def _skus_of(
    batch: Sequence[Order],
) -> tuple[dict[int, Problem], dict[int, list[str]], dict[int, set[str]]]:
    """Each order's SKUs (or why it has none to route by), and the SKUs
    wanted per client: one lookup per client finds their sources."""
    problems: dict[int, Problem] = {}
    skus_of: dict[int, list[str]] = {}
    wanted: dict[int, set[str]] = {}
    for order in batch:
        lines = order.order.get("line_items") or []
        skus = [str(li.get("sku") or "").strip() for li in lines]
        blank = [i + 1 for i, sku in enumerate(skus) if not sku]
        if blank:
            problems[order.id] = (
                "invalid_order",
                f"line {blank[0]} has no SKU",
                "give every line a SKU on the channel, then replay",
            )
            continue
        skus_of[order.id] = skus
        wanted.setdefault(order.client_id, set()).update(skus)
    return problems, skus_of, wanted


def _owners(s: Session, wanted: dict[int, set[str]]) -> dict[tuple[int, str], set[int]]:
    """The sources holding each (client, SKU) among live products."""
    owners: dict[tuple[int, str], set[int]] = {}
    for client_id, skus in wanted.items():
        for sku, source_id in s.execute(
            select(Variant.sku, Variant.source_id)
            .join(Product, Product.id == Variant.product_id)
            .where(
                Variant.client_id == client_id,
                Variant.sku.in_(sorted(skus)),
                Product.deleted_at.is_(None),
            )
        ):
            owners.setdefault((client_id, sku), set()).add(source_id)
    return owners


def _route_one(
    order: Order,
    skus: list[str],
    owners: dict[tuple[int, str], set[int]],
    sources: dict[int, Source],
) -> tuple[Problem | None, int | None]:
    """The source an order goes to, or why it cannot go anywhere."""
    held = {sku: owners.get((order.client_id, sku), set()) for sku in skus}
    unknown = sorted({sku for sku, ids in held.items() if not ids})
    if unknown:
        return (
            "unknown_sku",
            f"no source of this client has SKU {', '.join(unknown)}",
            "sync the product from its ERP (s2s resync) or correct the SKU, then replay",
        ), None
    candidates = {sid for ids in held.values() for sid in ids}
    if len(candidates) > 1:
        per_source = {
            sid: sorted(sku for sku, ids in held.items() if sid in ids) for sid in candidates
        }
        names = {sid: sources[sid].code if sid in sources else sid for sid in candidates}
        per = ", ".join(f"{names[sid]}: {', '.join(per_source[sid])}" for sid in sorted(per_source))
        return (
            "mixed_sources",
            f"the order's SKUs belong to more than one ERP ({per})",
            "an ERP document cannot hold another ERP's stock: raise one order per ERP "
            "on the channel and discard this one",
        ), None
    return None, next(iter(candidates))


def _check_payloads(s: Session, source: Source, planned: Sequence[Order]) -> dict[int, Problem]:
    """Build each order's ERP document now, so that a missing setting or a
    value the ERP's map cannot take dead-letters the order at routing, with a
    fix that names the setting or the field, before any slot or attempt is
    spent. What the map quotes of the variants is read once for the batch."""
    settings = source.settings or {}
    problems: dict[int, Problem] = {}
    try:
        order_map = get_map(source.kind, "orders")
        keys = order_map.line_meta_keys(settings)
        prepared = line_meta.attach(s, source.id, keys, [o.order for o in planned])
    except ValueError as exc:
        return {order.id: _refusal(exc, source) for order in planned}
    for order, payload in zip(planned, prepared, strict=True):
        try:
            order_map.apply(payload, settings)
        except ValueError as exc:
            problems[order.id] = _refusal(exc, source)
    return problems


def _refusal(exc: ValueError, source: Source) -> Problem:
    if isinstance(exc, MissingSettingError):
        return (
            "missing_setting",
            str(exc),
            f"set {exc.setting} on source {source.code}, then replay",
        )
    return _invalid(exc)


def _invalid(exc: ValueError) -> Problem:
    """An order the map cannot take. A map's error may name its own class
    and fix (iSync's SKU without a synced stock line id: resync, not edit)."""
    return (
        str(getattr(exc, "error_class", "invalid_order")),
        str(exc),
        str(getattr(exc, "fix", None) or "correct the order on the channel, then replay"),
    )


# --------------------------------------------------------------------------
# Raising
# --------------------------------------------------------------------------


@app.task(name="s2s.orders.drain_source")
def drain_source(source_id: int) -> None:
    """Raise the source's queued orders, a batch at a time, under one slot."""
    _drain(source_id)


@app.task(name="s2s.orders.raise_order")
def raise_order(order_id: int) -> None:
    """Raise an order (older messages name one): drains the order's source."""
    with session_scope() as s:
        order = s.get(Order, order_id)
        if order is None or order.status not in (orders.QUEUED, orders.RAISING):
            return
        source_id = order.source_id
    if source_id is not None:
        _drain(source_id)


def _drain(source_id: int) -> None:
    settings = get_settings()
    limits.started(f"drain:{source_id}")
    with session_scope() as s:
        source = s.get(Source, source_id)
        if source is None:
            return
    connector: Connector | None = None
    unusable: ConnectorError | None = None
    try:
        connector = connector_for(source)
        slots = limits.session_slots(connector, source.id, source.concurrency)
    except ConnectorError as exc:  # the settings cannot make a connector: dead-letter the batch
        unusable = exc
        slots = [(source.id, source.concurrency)]
    lease = timedelta(seconds=settings.order_lease)
    # Stop claiming well before the orders' lease (and the task's time limit)
    # runs out; the batch under way still has the rest of its lease. The
    # slots are renewed while the drain works, so their lease is short.
    deadline = time.monotonic() + min(TASK_BUDGET, settings.order_lease * 0.5)
    handed_over = False
    with limits.holding(slots, settings.slot_lease) as held:
        if not held:
            # Another drain (or an ERP session) holds the slot; it looks for
            # orders again when it lets go, and this ask comes back anyway.
            # Waiting for a slot is not a failed attempt.
            request_drain(source_id, source.kind, delay=random.uniform(0.2, 1.0))
            return
        while True:
            with session_scope() as s:
                batch = orders.claim_batch(s, source_id, RAISE_BATCH, lease)
            if not batch:
                break
            _raise_batch(source, connector, unusable, batch)
            if time.monotonic() > deadline:
                handed_over = True
                break
    if handed_over:
        request_drain(source_id, source.kind)
        return
    # Orders queued while the slot was held by this drain may have had their
    # asks dropped by a drain that could not get the slot: look once more.
    with session_scope() as s:
        due, later = orders.pending(s, source_id)
    if due:
        request_drain(source_id, source.kind)
    elif later is not None:
        wait = (later - utcnow()).total_seconds()
        request_drain(source_id, source.kind, delay=max(wait, 0.05))


@dataclass
class _Outcomes:
    """What became of each order of a batch, written back in one transaction."""

    raised: list[tuple[int, int, str, bool]]
    retry: list[tuple[int, int, str, float]]
    unsent: list[tuple[int, int, bool]]
    dead: list[tuple[int, str, str, str]]


def _raise_batch(
    source: Source,
    connector: Connector | None,
    unusable: ConnectorError | None,
    batch: Sequence[orders.Claimed],
) -> None:
    """Ask first where needed, send the rest together, settle every order."""
    if connector is None:
        assert unusable is not None
        found: dict[int, str] = {}
        errors: dict[int, BaseException] = {c.id: unusable for c in batch}
        sent_now: set[int] = set()
    else:
        found, errors, sent_now = _send(source, connector, batch)
    outcomes, stop_delay = _outcomes(source, batch, found, errors, sent_now)
    _settle(source, outcomes, stop_delay or get_settings().retry_base)


def _send(
    source: Source, connector: Connector, batch: Sequence[orders.Claimed]
) -> tuple[dict[int, str], dict[int, BaseException], set[int]]:
    """Ask the ERP about orders an earlier attempt may have raised, send the
    others in one ``raise_orders`` call. Returns the document of each order
    raised or found, the error each failed order met, and which were sent."""
    found: dict[int, str] = {}
    errors: dict[int, BaseException] = {}
    payloads: list[tuple[orders.Claimed, dict[str, Any]]] = []
    order_map = get_map(source.kind, "orders")
    settings = source.settings or {}
    prepared = [c.order for c in batch]
    try:
        if keys := order_map.line_meta_keys(settings):  # what the map quotes of the variants
            with session_scope() as s:
                prepared = line_meta.attach(s, source.id, keys, prepared)
    except ValueError as exc:  # a setting the map cannot read: every order of the batch
        return found, {c.id: exc for c in batch}, set()
    for claimed, order in zip(batch, prepared, strict=True):
        try:
            if claimed.ask_erp_first:
                # An earlier attempt may have reached the ERP before
                # failing (a timeout after commit, a worker killed
                # mid-batch): ask before sending again.
                document = connector.find_order(
                    claimed.channel_order_code, channel=claimed.order.get("channel") or None
                )
                if document is not None:
                    found[claimed.id] = str(document)
                    continue
            payloads.append((claimed, order_map.apply(order, settings)))
        except (ConnectorError, ValueError) as exc:
            errors[claimed.id] = exc
    if payloads:
        try:
            results = connector.raise_orders([p for _, p in payloads])
        except ConnectorError as exc:  # the whole batch: a lost connection, a bad setting
            results = [exc] * len(payloads)
        if len(results) != len(payloads):
            raise RuntimeError(
                f"{type(connector).__name__}.raise_orders gave {len(results)} outcomes "
                f"for {len(payloads)} orders"
            )
        for (claimed, _), result in zip(payloads, results, strict=True):
            if isinstance(result, BaseException):
                errors[claimed.id] = result
            elif result is not None:
                found[claimed.id] = str(result)  # raised now; 'found' set below
    return found, errors, {c.id for c, _ in payloads}


def _outcomes(
    source: Source,
    batch: Sequence[orders.Claimed],
    found: dict[int, str],
    errors: dict[int, BaseException],
    sent_now: set[int],
) -> tuple[_Outcomes, float]:
    """What becomes of each order of the batch, and the longest retry delay
    (the orders not sent wait as long: the ERP is likely down)."""
    asked = {c.id for c in batch if c.ask_erp_first}
    outcomes = _Outcomes([], [], [], [])
    stop_delay = 0.0
    max_attempts = connector_class(source.kind).max_raise_attempts
    limit = max_attempts or get_settings().order_max_attempts
    for claimed in batch:
        if claimed.id in found:
            was_there = claimed.id in asked and claimed.id not in sent_now
            outcomes.raised.append((claimed.id, claimed.attempt, found[claimed.id], was_there))
            continue
        exc = errors.get(claimed.id)
        if exc is None:
            # Not sent (an earlier order met a transient failure).
            outcomes.unsent.append((claimed.id, claimed.attempt, claimed.reached_before))
            continue
        if isinstance(exc, TransientError):
            if claimed.attempt >= limit:
                outcomes.dead.append(
                    (
                        claimed.id,
                        "retries_exhausted",
                        f"after {claimed.attempt} attempts: {exc.message}",
                        "check that the ERP is up and reachable, then replay",
                    )
                )
                continue
            delay = exc.retry_after if exc.retry_after else backoff.delay(claimed.previous_attempts)
            stop_delay = max(stop_delay, delay)
            outcomes.retry.append((claimed.id, claimed.attempt, exc.message, delay))
            continue
        outcomes.dead.append((claimed.id, *_dead_letter_for(exc, source)))
    return outcomes, stop_delay


def _dead_letter_for(exc: BaseException, source: Source) -> tuple[str, str, str]:
    """(error class, message, fix) for an order that retrying cannot help."""
    if isinstance(exc, SettingsError):
        return "settings", exc.message, exc.hint or "correct the source settings"
    if isinstance(exc, RejectedError):
        return "rejected", exc.message, exc.hint or "correct the data the ERP refused"
    if isinstance(exc, PermanentError):
        return type(exc).__name__, exc.message, exc.hint or "see the message"
    if isinstance(exc, MissingSettingError):  # the settings changed since routing
        return (
            "missing_setting",
            f"source {source.code}: {exc}",
            f"set {exc.setting} on source {source.code}, then replay",
        )
    if isinstance(exc, ValueError):  # the order map cannot take a value of the order
        return _invalid(exc)
    # A bug in a connector: its message may say anything, so only its type
    # goes into the dead letter (the worker log has the traceback).
    log.error("connector failure while raising", exc_info=exc, extra={"source": source.id})
    return (
        "internal_error",
        f"the {source.kind} connector failed with {type(exc).__name__}",
        "report this to the hub's developers (the worker log has the details)",
    )


def _settle(source: Source, outcomes: _Outcomes, unsent_delay: float) -> None:
    """Write a batch's outcomes in one transaction, each order by its own
    conditional transition (an attempt that lost its lease changes nothing)."""
    letters: list[tuple[int, str, str]] = []
    with session_scope() as s:
        moved = orders.raised_many(s, outcomes.raised)
        retried = orders.retry_many(s, outcomes.retry)
        orders.give_back(
            s,
            outcomes.unsent,
            unsent_delay,
            "an earlier order of its batch met a transient failure",
        )
        for order_id, error_class, message, fix in outcomes.dead:
            if "replay" not in fix:
                fix = f"{fix}, then replay"
            letter = orders.dead_letter(
                s, order_id, stage="raise", error_class=error_class, message=message, fix=fix
            )
            if letter is not None:
                letters.append((order_id, error_class, message))
    documents = {oid: (document, was_there) for oid, _, document, was_there in outcomes.raised}
    for order_id in moved:
        document, was_there = documents[order_id]
        how = "found already in the ERP as" if was_there else "raised as"
        log.info("%s %s", how, document, extra={"order": order_id, "source": source.id})
    delays = {oid: (error, delay) for oid, _, error, delay in outcomes.retry}
    for order_id in retried:
        error, delay = delays[order_id]
        log.warning(
            "transient failure, retry in %.1fs: %s",
            delay,
            error,
            extra={"order": order_id, "source": source.id},
        )
    for order_id, error_class, message in letters:
        log.warning("dead letter %s: %s", error_class, message, extra={"order": order_id})


def sweep_orders() -> int:
    """Push again every order the database says is unfinished and stale."""
    settings = get_settings()
    with session_scope() as s:
        stale = orders.unfinished(s, timedelta(seconds=settings.order_stale_after))
        ids = [order_id for order_id, status in stale if status != orders.RECEIVED]
        drains: dict[int, str] = {}
        if ids:
            for source_id, kind in s.execute(
                select(Source.id, Source.kind)
                .join(Order, Order.source_id == Source.id)
                .where(Order.id.in_(ids))
                .distinct()
            ):
                drains[source_id] = kind
    if any(status == orders.RECEIVED for _, status in stale):
        request_route(force=True)
    for source_id, kind in drains.items():
        request_drain(source_id, kind, force=True)
    if stale:
        log.warning("swept %d unfinished orders", len(stale))
    return len(stale)
