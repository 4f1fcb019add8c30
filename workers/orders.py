"""Order tasks: route each order to its ERP, raise it exactly once.

route_order (queue ``orders``) picks the source that owns the ordered SKUs,
checks what the ERP will need, and hands the order to raise_order on that
ERP type's own queue (``raise.<kind>``), so one ERP's trouble never holds up
another's orders.

raise_order takes one of the source's concurrency slots (shared by every
worker), claims the order with a lease, and — if any earlier attempt may
have reached the ERP — asks the ERP whether the order is already there
before sending it again. Transient failures come back later with backoff
and jitter; waiting for a slot does not count as an attempt. Permanent
failures and exhausted retries become dead letters with what to fix.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from connectors.base import (
    ConnectorError,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from hub import orders
from hub.db import session_scope
from hub.models import Order, Product, Source, Variant
from hub.schemas import load_order
from hub.settings import get_settings
from mappings import get_map
from mappings.core import MissingSettingError
from workers import limits
from workers.app import app
from workers.sources import connector_class, connector_for

log = logging.getLogger("s2s.orders")


def raise_queue(kind: str) -> str:
    return f"raise.{kind}"


def _publish(task: Any, args: tuple[Any, ...], **options: Any) -> None:
    try:
        task.apply_async(args=args, **options)
    except Exception as exc:  # broker down: the sweeper re-enqueues from the database
        log.warning("could not enqueue %s%r (%s); the sweeper will retry", task.name, args, exc)


def enqueue_raise(order_id: int, kind: str, countdown: float = 0.0) -> None:
    lease = get_settings().order_lease
    _publish(
        raise_order,
        (order_id,),
        queue=raise_queue(kind),
        countdown=countdown,
        # A raise must end before its lease does, or a second worker could
        # claim the order while the first is still talking to the ERP.
        time_limit=max(int(lease * 0.9), 5),
        soft_time_limit=max(int(lease * 0.8), 4),
    )


def submit(
    client_id: int, payload: Any, *, raw: Any = None, delivery_id: str | None = None
) -> tuple[orders.Intake | None, list[tuple[str, str]]]:
    """Validate and store an order, then route it. The row is committed first."""
    order, errors = load_order(payload)
    if order is None:
        return None, errors
    with session_scope() as s:
        result = orders.intake(
            s,
            client_id=client_id,
            order=order,
            raw=raw if raw is not None else payload,
            delivery_id=delivery_id,
        )
    if result.created and result.order.status == orders.RECEIVED:
        enqueue_route(result.order.id)
    return result, []


def enqueue_route(order_id: int) -> None:
    """Route an order (after intake or a replay); the sweeper covers a down broker."""
    _publish(route_order, (order_id,))


def _dead(order_id: int, *, stage: str, error_class: str, message: str, fix: str) -> None:
    if "replay" not in fix:
        fix = f"{fix}, then replay"
    with session_scope() as s:
        letter = orders.dead_letter(
            s, order_id, stage=stage, error_class=error_class, message=message, fix=fix
        )
    if letter is not None:
        log.warning("dead letter %s: %s", error_class, message, extra={"order": order_id})


@app.task(name="s2s.orders.route_order")
def route_order(order_id: int) -> None:
    with session_scope() as s:
        order = s.get(Order, order_id)
        if order is None or order.status != orders.RECEIVED:
            return
        lines = order.order.get("line_items") or []
        skus = [str(li.get("sku") or "").strip() for li in lines]
        blank = [i + 1 for i, sku in enumerate(skus) if not sku]
        if blank:
            s.rollback()
            _dead(
                order_id,
                stage="route",
                error_class="invalid_order",
                message=f"line {blank[0]} has no SKU",
                fix="give every line a SKU on the channel, then replay",
            )
            return
        owners: dict[str, set[int]] = {}
        for sku, source_id in s.execute(
            select(Variant.sku, Variant.source_id)
            .join(Product, Product.id == Variant.product_id)
            .where(
                Variant.client_id == order.client_id,
                Variant.sku.in_(set(skus)),
                Product.deleted_at.is_(None),
            )
        ):
            owners.setdefault(sku, set()).add(source_id)
        unknown = sorted({sku for sku in skus if sku not in owners})
        sources = {sid for ids in owners.values() for sid in ids}
        names = {
            src.id: src.code for src in s.scalars(select(Source).where(Source.id.in_(sources)))
        }
        problem: tuple[str, str, str] | None = None
        source: Source | None = None
        if unknown:
            problem = (
                "unknown_sku",
                f"no source of this client has SKU {', '.join(unknown)}",
                "sync the product from its ERP (s2s resync) or correct the SKU, then replay",
            )
        elif len(sources) > 1:
            held = {sid: sorted(k for k, v in owners.items() if sid in v) for sid in sources}
            per = ", ".join(
                f"{names.get(sid, sid)}: {', '.join(held[sid])}" for sid in sorted(held)
            )
            problem = (
                "mixed_sources",
                f"the order's SKUs belong to more than one ERP ({per})",
                "an ERP document cannot hold another ERP's stock: raise one order per ERP "
                "on the channel and discard this one",
            )
        if problem is None:
            source = s.get(Source, next(iter(sources)))
            assert source is not None
            problem = _check_payload(order.order, source)
        if problem is not None:
            s.rollback()
            _dead(
                order_id, stage="route", error_class=problem[0], message=problem[1], fix=problem[2]
            )
            return
        assert source is not None
        if not orders.routed(
            s, order_id, source.id, f"routed to source {source.code} ({source.kind})"
        ):
            return
        kind = source.kind
    enqueue_raise(order_id, kind)


def _check_payload(order: dict[str, Any], source: Source) -> tuple[str, str, str] | None:
    """Build the ERP document now, so that a missing setting or a value the
    ERP's map cannot take dead-letters the order at routing, with a fix that
    names the setting or the field, before any slot or attempt is spent."""
    try:
        get_map(source.kind, "orders").apply(order, source.settings or {})
    except MissingSettingError as exc:
        return (
            "missing_setting",
            f"source {source.code}: {exc}",
            f"set {exc.setting} on source {source.code}, then replay",
        )
    except ValueError as exc:
        return ("invalid_order", str(exc), "correct the order on the channel, then replay")
    return None


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter, capped well below the visibility timeout."""
    base = get_settings().retry_base
    ceiling = min(300.0, base * (2**attempt))
    return random.uniform(ceiling / 2, ceiling)


@app.task(name="s2s.orders.raise_order")
def raise_order(order_id: int) -> None:
    settings = get_settings()
    with session_scope() as s:
        order = s.get(Order, order_id)
        if order is None or order.status not in (orders.QUEUED, orders.RAISING):
            return
        source = s.get(Source, order.source_id)
        if source is None:
            return
    try:
        slots = limits.session_slots(connector_for(source), source.id, source.concurrency)
    except ConnectorError:
        slots = [(source.id, source.concurrency)]  # _attempt reports the settings error
    with limits.holding(slots, settings.order_lease) as held:
        if not held:
            # Waiting for a slot is not a failed attempt.
            enqueue_raise(order_id, source.kind, countdown=random.uniform(0.2, 1.5))
            return
        with session_scope() as s:
            claim = orders.claim(s, order_id, timedelta(seconds=settings.order_lease))
        if claim.ok:
            _attempt(order, source, claim.previous_attempts, claim.ask_erp_first)


def _attempt(order: Order, source: Source, previous_attempts: int, ask_first: bool) -> None:
    ctx = {"order": order.id, "client": order.client_id, "source": source.id}
    attempt = previous_attempts + 1
    try:
        connector = connector_for(source)
        document = None
        if ask_first:
            # An earlier attempt may have reached the ERP before failing
            # (a timeout after commit, a worker killed mid-call): ask first.
            document = connector.find_order(order.channel_order_code)
        found = document is not None
        if document is None:
            payload = get_map(source.kind, "orders").apply(order.order, source.settings or {})
            document = connector.raise_order(payload)
    except TransientError as exc:
        limit = connector_class(source.kind).max_raise_attempts or get_settings().order_max_attempts
        if attempt >= limit:
            _dead(
                order.id,
                stage="raise",
                error_class="retries_exhausted",
                message=f"after {attempt} attempts: {exc.message}",
                fix="check that the ERP is up and reachable, then replay",
            )
            return
        delay = exc.retry_after if exc.retry_after else backoff(previous_attempts)
        with session_scope() as s:
            moved = orders.retry_later(s, order.id, exc.message, delay)
        if moved:
            log.warning("transient failure, retry in %.1fs: %s", delay, exc.message, extra=ctx)
            enqueue_raise(order.id, source.kind, countdown=delay)
        return
    except SettingsError as exc:
        _dead(
            order.id,
            stage="raise",
            error_class="settings",
            message=exc.message,
            fix=exc.hint or "correct the source settings",
        )
        return
    except RejectedError as exc:
        _dead(
            order.id,
            stage="raise",
            error_class="rejected",
            message=exc.message,
            fix=exc.hint or "correct the data the ERP refused",
        )
        return
    except PermanentError as exc:
        _dead(
            order.id,
            stage="raise",
            error_class=type(exc).__name__,
            message=exc.message,
            fix=exc.hint or "see the message",
        )
        return
    except MissingSettingError as exc:  # the settings changed since routing
        _dead(
            order.id,
            stage="raise",
            error_class="missing_setting",
            message=f"source {source.code}: {exc}",
            fix=f"set {exc.setting} on source {source.code}, then replay",
        )
        return
    except ValueError as exc:  # the order map cannot take a value of the order
        _dead(
            order.id,
            stage="raise",
            error_class="invalid_order",
            message=str(exc),
            fix="correct the order on the channel, then replay",
        )
        return
    with session_scope() as s:
        orders.raised(s, order.id, str(document), found=found)
    log.info("raised as %s", document, extra=ctx)


def sweep_orders() -> int:
    """Push again every order the database says is unfinished and stale."""
    settings = get_settings()
    with session_scope() as s:
        stale = orders.unfinished(s, timedelta(seconds=settings.order_stale_after))
        kinds = {}
        for order_id, status in stale:
            if status != orders.RECEIVED:
                order = s.get(Order, order_id)
                source = s.get(Source, order.source_id) if order and order.source_id else None
                kinds[order_id] = source.kind if source else None
    for order_id, status in stale:
        if status == orders.RECEIVED:
            enqueue_route(order_id)
        elif kinds.get(order_id):
            enqueue_raise(order_id, kinds[order_id])
    if stale:
        log.warning("swept %d unfinished orders", len(stale))
    return len(stale)
