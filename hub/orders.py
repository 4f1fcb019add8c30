"""Orders: intake, states, leases and dead letters.

States:

    received ──route──► queued ──claim──► raising ──► raised
        │                 ▲                  │
        │                 └── transient ─────┤
        ├──► stored (instruction is not add_order: kept, never raised)
        └──► dead ◄── permanent / retries exhausted / cannot route
              │
              ├── replay ──► received (routed again, with today's settings and products)
              └── discard ─► discarded (the dead letter stays, as the audit record)

Every transition is a conditional UPDATE on the current state, so two
workers holding the same message cannot both act: one wins, the other finds
the state already moved on. ``raising`` carries a lease; a worker that dies
mid-raise leaves an expired lease, and the next attempt first asks the ERP
whether the order already landed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.models import DeadLetter, Order, OrderEvent, WebhookDelivery, utcnow

RECEIVED = "received"
STORED = "stored"
QUEUED = "queued"
RAISING = "raising"
RAISED = "raised"
DEAD = "dead"
DISCARDED = "discarded"
UNFINISHED = (RECEIVED, QUEUED, RAISING)


def event(session: Session, order_id: int, status: str, message: str = "") -> None:
    session.add(OrderEvent(order_id=order_id, status=status, message=message[:2000]))


@dataclass(frozen=True)
class Intake:
    order: Order
    created: bool
    duplicate_delivery: bool = False


def intake(
    session: Session,
    *,
    client_id: int,
    order: dict[str, Any],
    raw: Any = None,
    delivery_id: str | None = None,
) -> Intake:
    """Store a validated canonical order once; a repeat returns the first row.

    The caller commits before answering the channel, so an order that was
    acknowledged is never lost.
    """
    channel = str(order.get("channel") or "api")
    code = str(order["channel_order_code"])
    if delivery_id:
        seen = session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.client_id == client_id,
                WebhookDelivery.channel == channel,
                WebhookDelivery.delivery_id == delivery_id,
            )
        ).first()
        if seen is not None and seen.order_id is not None:
            existing = session.get(Order, seen.order_id)
            if existing is not None:
                return Intake(existing, False, True)
    status = RECEIVED if order.get("instruction", "add_order") == "add_order" else STORED
    row = Order(
        client_id=client_id,
        channel=channel,
        channel_order_code=code,
        instruction=str(order.get("instruction") or "add_order"),
        status=status,
        order=order,
        raw=raw,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = session.scalars(
            select(Order).where(
                Order.client_id == client_id,
                Order.channel == channel,
                Order.channel_order_code == code,
            )
        ).one()
        _note_delivery(session, client_id, channel, delivery_id, existing.id)
        return Intake(existing, False)
    message = "received" if status == RECEIVED else f"stored only: instruction is {row.instruction}"
    event(session, row.id, status, message)
    _note_delivery(session, client_id, channel, delivery_id, row.id)
    return Intake(row, True)


def _note_delivery(
    session: Session, client_id: int, channel: str, delivery_id: str | None, order_id: int
) -> None:
    if not delivery_id:
        return
    try:
        with session.begin_nested():
            session.add(
                WebhookDelivery(
                    client_id=client_id, channel=channel, delivery_id=delivery_id, order_id=order_id
                )
            )
    except IntegrityError:
        pass  # the same delivery id raced in: the first one recorded it


def _move(session: Session, order_id: int, frm: tuple[str, ...], **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(Order).where(Order.id == order_id, Order.status.in_(frm)).values(**values)
    )
    return result.rowcount == 1


def routed(session: Session, order_id: int, source_id: int, message: str) -> bool:
    if _move(session, order_id, (RECEIVED,), status=QUEUED, source_id=source_id):
        event(session, order_id, QUEUED, message)
        return True
    return False


@dataclass(frozen=True)
class Claim:
    ok: bool
    previous_attempts: int = 0
    ask_erp_first: bool = False


def claim(session: Session, order_id: int, lease: timedelta) -> Claim:
    """Take the order for one raise attempt: queued, or raising with an expired lease."""
    now = utcnow()
    order = session.get(Order, order_id)
    if order is None:
        return Claim(False)
    previous = order.attempts
    ask_first = bool(order.reached_erp)
    result = session.execute(
        update(Order)
        .where(
            Order.id == order_id,
            Order.attempts == previous,
            or_(
                Order.status == QUEUED,
                (Order.status == RAISING) & (Order.lease_until < now),
            ),
        )
        .values(
            status=RAISING,
            attempts=previous + 1,
            reached_erp=True,
            lease_until=now + lease,
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        return Claim(False)
    event(session, order_id, RAISING, f"attempt {previous + 1}")
    return Claim(True, previous, ask_first)


def raised(session: Session, order_id: int, document_number: str, found: bool = False) -> bool:
    now = utcnow()
    if _move(
        session,
        order_id,
        (RAISING,),
        status=RAISED,
        document_number=document_number,
        raised_at=now,
        lease_until=None,
    ):
        how = "found already in the ERP as" if found else "raised as"
        event(session, order_id, RAISED, f"{how} {document_number}")
        return True
    return False


def retry_later(session: Session, order_id: int, error: str, delay: float) -> bool:
    if _move(session, order_id, (RAISING,), status=QUEUED, lease_until=None, last_error=error):
        event(session, order_id, QUEUED, f"transient: {error}; retry in {delay:.0f}s")
        return True
    return False


def dead_letter(
    session: Session,
    order_id: int,
    *,
    stage: str,
    error_class: str,
    message: str,
    fix: str,
    source_id: int | None = None,
) -> DeadLetter | None:
    order = session.get(Order, order_id)
    if order is None:
        return None
    if not _move(
        session,
        order_id,
        (RECEIVED, QUEUED, RAISING),
        status=DEAD,
        lease_until=None,
        last_error=message,
    ):
        return None
    letter = DeadLetter(
        order_id=order_id,
        client_id=order.client_id,
        source_id=source_id or order.source_id,
        stage=stage,
        error_class=error_class,
        message=message[:4000],
        fix=fix,
        attempts=order.attempts,
    )
    session.add(letter)
    event(session, order_id, DEAD, f"{error_class}: {message}")
    session.flush()
    return letter


class ReplayError(Exception):
    """A dead letter that cannot be replayed or discarded; the message says why."""


def _resolve_letter(session: Session, letter_id: int, status: str, note: str) -> DeadLetter:
    """Close an open dead letter, once: a conditional UPDATE, so a replay and a
    discard racing on the same letter cannot both succeed."""
    result = session.execute(
        update(DeadLetter)
        .where(DeadLetter.id == letter_id, DeadLetter.status == "open")
        .values(status=status, resolved_at=utcnow(), resolution=note or status)
    )
    letter = session.get(DeadLetter, letter_id)
    if letter is None:
        raise ReplayError(f"no dead letter {letter_id}")
    if result.rowcount != 1:
        raise ReplayError(f"dead letter {letter_id} was already {letter.status}")
    return letter


def replay(session: Session, letter_id: int, note: str = "") -> Order:
    """Send the order through routing again (with today's settings and products).

    The attempt count starts again; ``reached_erp`` stays, so the next raise
    still asks the ERP first whether an earlier attempt already landed.
    """
    letter = _resolve_letter(session, letter_id, "replayed", note)
    if not _move(session, letter.order_id, (DEAD,), status=RECEIVED, source_id=None, attempts=0):
        raise ReplayError(f"order of dead letter {letter_id} is no longer dead")
    event(session, letter.order_id, RECEIVED, f"replayed from dead letter {letter_id}")
    order = session.get(Order, letter.order_id)
    assert order is not None
    return order


def discard(session: Session, letter_id: int, note: str) -> None:
    letter = _resolve_letter(session, letter_id, "discarded", note)
    if not _move(session, letter.order_id, (DEAD,), status=DISCARDED):
        raise ReplayError(f"order of dead letter {letter_id} is no longer dead")
    event(session, letter.order_id, DISCARDED, f"discarded: {letter.resolution}")


def unfinished(session: Session, older_than: timedelta) -> list[tuple[int, str]]:
    """Orders the sweeper should push again: (id, status)."""
    now = utcnow()
    cutoff: datetime = now - older_than
    rows = session.execute(
        select(Order.id, Order.status).where(
            Order.updated_at < cutoff,
            or_(
                Order.status.in_((RECEIVED, QUEUED)),
                (Order.status == RAISING) & (Order.lease_until < now),
            ),
        )
    ).all()
    return [(r.id, r.status) for r in rows]
