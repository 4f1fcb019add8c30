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

Orders are raised in batches per source (``claim_batch``): one statement
claims up to N claimable orders, each keeps its own attempt count, lease and
ask-the-ERP-first flag, and the outcomes are written back in bulk
(``settle``), each order by its own conditional transition. On a ``queued``
order, ``lease_until`` is the time before which it may not be claimed again
(its retry backoff); on a ``raising`` order it is the attempt's lease.

Intake lives in `hub.intake` and the states in `hub.order_states`; both are
imported from here as well, where the life of an order is told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    case,
    column,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import TableValuedAlias

from hub.intake import Intake, intake, intake_now
from hub.models import DeadLetter, Order, utcnow
from hub.order_states import (
    DEAD,
    DISCARDED,
    QUEUED,
    RAISED,
    RAISING,
    RECEIVED,
    STORED,
    UNFINISHED,
    event,
    events,
)

__all__ = [
    "DEAD",
    "DISCARDED",
    "QUEUED",
    "RAISED",
    "RAISING",
    "RECEIVED",
    "STORED",
    "UNFINISHED",
    "Claim",
    "Claimed",
    "Intake",
    "ReplayError",
    "claim",
    "claim_batch",
    "claimable",
    "dead_letter",
    "discard",
    "event",
    "events",
    "give_back",
    "intake",
    "intake_now",
    "pending",
    "raised",
    "raised_many",
    "receivable",
    "replay",
    "retry_later",
    "retry_many",
    "routed",
    "routed_many",
    "unfinished",
]


def _move(session: Session, order_id: int, frm: tuple[str, ...], **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    result = session.execute(
        update(Order).where(Order.id == order_id, Order.status.in_(frm)).values(**values)
    )
    return cast("CursorResult[Any]", result).rowcount == 1


def routed(session: Session, order_id: int, source_id: int, message: str) -> bool:
    if _move(session, order_id, (RECEIVED,), status=QUEUED, source_id=source_id, lease_until=None):
        event(session, order_id, QUEUED, message)
        return True
    return False


@dataclass(frozen=True)
class Claim:
    ok: bool
    previous_attempts: int = 0
    ask_erp_first: bool = False


def claimable(now: datetime) -> ColumnElement[bool]:
    """Orders a raise attempt may take: queued and past any backoff, or
    raising under a lease that has run out (its worker died or hung)."""
    return or_(
        (Order.status == QUEUED) & (Order.lease_until.is_(None) | (Order.lease_until <= now)),
        (Order.status == RAISING) & (Order.lease_until < now),
    )


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
        .where(Order.id == order_id, Order.attempts == previous, claimable(now))
        .values(
            status=RAISING,
            attempts=previous + 1,
            reached_erp=True,
            lease_until=now + lease,
            updated_at=now,
        )
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        return Claim(False)
    event(session, order_id, RAISING, f"attempt {previous + 1}")
    return Claim(True, previous, ask_first)


@dataclass(frozen=True)
class Claimed:
    """One order taken for a raise attempt as part of a batch.

    ``attempt`` is this attempt's number (the row's ``attempts`` after the
    claim): every later transition of the order checks it, so an attempt
    whose lease ran out and was taken over can no longer settle the order.
    """

    id: int
    client_id: int
    channel_order_code: str
    order: dict[str, Any]
    attempt: int
    ask_erp_first: bool
    reached_before: bool

    @property
    def previous_attempts(self) -> int:
        return self.attempt - 1


def claim_batch(session: Session, source_id: int, limit: int, lease: timedelta) -> list[Claimed]:
    """Take up to ``limit`` claimable orders of one source for one raise attempt each.

    The rows are locked with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so two
    workers draining the same source take disjoint batches instead of
    waiting on each other; the UPDATE repeats the claimable condition, so on
    a database without row locks (SQLite) a row another worker took in
    between is simply not returned. Every order keeps its own attempt count
    and lease, and asks the ERP first when an earlier attempt may have
    reached it, exactly as ``claim`` does for one order.
    """
    now = utcnow()
    rows = session.execute(
        select(Order.id, Order.attempts, Order.reached_erp)
        .where(Order.source_id == source_id, claimable(now))
        .order_by(Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return []
    before = {r.id: (r.attempts, bool(r.reached_erp)) for r in rows}
    won = session.execute(
        update(Order)
        .where(Order.id.in_(list(before)), claimable(now))
        .values(
            status=RAISING,
            attempts=Order.attempts + 1,
            reached_erp=True,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(Order.id, Order.attempts, Order.client_id, Order.channel_order_code, Order.order)
        .execution_options(synchronize_session=False)
    ).all()
    claimed = []
    for row in sorted(won, key=lambda r: r.id):
        attempts, reached = before[row.id]
        claimed.append(
            Claimed(
                id=row.id,
                client_id=row.client_id,
                channel_order_code=row.channel_order_code,
                order=row.order,
                attempt=row.attempts,
                # Another attempt slipped in between the two statements
                # (possible only without row locks): it may have reached the ERP.
                ask_erp_first=reached or row.attempts != attempts + 1,
                reached_before=reached,
            )
        )
    events(session, ((c.id, RAISING, f"attempt {c.attempt} (batch)") for c in claimed))
    return claimed


def _mine(claims: Sequence[tuple[int, int]]) -> ColumnElement[bool]:
    """Rows still held by the attempts given as ``(order_id, attempt)``."""
    attempts = dict(claims)
    return and_(
        Order.id.in_(list(attempts)),
        Order.status == RAISING,
        Order.attempts == case(attempts, value=Order.id),
    )


def raised_many(session: Session, done: Sequence[tuple[int, int, str, bool]]) -> list[int]:
    """Mark many orders raised in one statement: ``(order_id, attempt, document, found)``.

    Only orders still held by that attempt move; the ids that moved are
    returned (their events are written here too).
    """
    if not done:
        return []
    now = utcnow()
    held: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        batch = _done_pg(done)
        held = and_(
            Order.id == batch.c.id, Order.status == RAISING, Order.attempts == batch.c.attempt
        )
        number: Any = batch.c.document
    else:
        held = _mine([(oid, attempt) for oid, attempt, _, _ in done])
        number = case({oid: str(doc) for oid, _, doc, _ in done}, value=Order.id)
    moved = set(
        session.scalars(
            update(Order)
            .where(held)
            .values(
                status=RAISED,
                document_number=number,
                raised_at=now,
                lease_until=None,
                updated_at=now,
            )
            .returning(Order.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    events(
        session,
        (
            (oid, RAISED, f"{'found already in the ERP as' if found else 'raised as'} {document}")
            for oid, _, document, found in done
            if oid in moved
        ),
    )
    return sorted(moved)


def _done_pg(done: Sequence[tuple[int, int, str, bool]]) -> TableValuedAlias:
    """``raised_many``'s batch on PostgreSQL, as one JSON parameter joined as
    a record set (``done``: id, attempt, document).

    The portable form binds five values an order (the IN list and two CASEs),
    so every batch size is a new statement text that psycopg parses anew
    (it caches only statements of up to 50 parameters): a twentieth of the
    worker's CPU under an order flood. Joined to the batch as a record set,
    the statement is one text with a few parameters whatever the batch.
    """
    rows = [{"id": oid, "attempt": a, "document": str(d)} for oid, a, d, _ in done]
    return (
        func.json_to_recordset(bindparam("done", rows, type_=JSON))
        .table_valued(
            column("id", BigInteger), column("attempt", Integer), column("document", String)
        )
        .render_derived(name="done", with_types=True)
    )


def retry_many(session: Session, failed: Sequence[tuple[int, int, str, float]]) -> list[int]:
    """Back to ``queued`` with a backoff each: ``(order_id, attempt, error, delay)``.

    Rare (an ERP outage), so one conditional UPDATE per order is fine.
    """
    moved = []
    now = utcnow()
    for oid, attempt, error, delay in failed:
        result = session.execute(
            update(Order)
            .where(_mine([(oid, attempt)]))
            .values(
                status=QUEUED,
                lease_until=now + timedelta(seconds=delay),
                last_error=error,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if cast("CursorResult[Any]", result).rowcount == 1:
            event(session, oid, QUEUED, f"transient: {error}; retry in {delay:.0f}s")
            moved.append(oid)
    return moved


def give_back(
    session: Session, unsent: Sequence[tuple[int, int, bool]], delay: float, reason: str
) -> list[int]:
    """Return orders that were claimed but never sent: ``(order_id, attempt, reached_before)``.

    An earlier order of the batch met a transient failure, so the connector
    stopped before these: the attempt is handed back (count and
    ``reached_erp`` as they were), and they wait ``delay`` like the order
    that failed, since the ERP is likely still in trouble.
    """
    moved = []
    now = utcnow()
    for oid, attempt, reached_before in unsent:
        result = session.execute(
            update(Order)
            .where(_mine([(oid, attempt)]))
            .values(
                status=QUEUED,
                attempts=attempt - 1,
                reached_erp=reached_before,
                lease_until=now + timedelta(seconds=delay),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if cast("CursorResult[Any]", result).rowcount == 1:
            event(session, oid, QUEUED, f"not sent: {reason}; retry in {delay:.0f}s")
            moved.append(oid)
    return moved


def pending(session: Session, source_id: int) -> tuple[bool, datetime | None]:
    """Whether a source has an order claimable now, and else when the next
    backoff ends: what a drain checks after letting the source's slot go."""
    now = utcnow()
    due = session.scalar(
        select(Order.id).where(Order.source_id == source_id, claimable(now)).limit(1)
    )
    if due is not None:
        return True, None
    later = session.scalar(
        select(func.min(Order.lease_until)).where(
            Order.source_id == source_id, Order.status == QUEUED, Order.lease_until > now
        )
    )
    return False, later


def receivable(session: Session, limit: int) -> list[Order]:
    """Up to ``limit`` received orders to route, locked (skipping rows another
    router holds) until the caller's transaction ends."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.status == RECEIVED)
            .order_by(Order.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )


def routed_many(
    session: Session, source_id: int, order_ids: Sequence[int], message: str
) -> list[int]:
    """``received`` → ``queued`` for many orders of one source, in one statement."""
    if not order_ids:
        return []
    now = utcnow()
    moved = list(
        session.scalars(
            update(Order)
            .where(Order.id.in_(list(order_ids)), Order.status == RECEIVED)
            .values(status=QUEUED, source_id=source_id, lease_until=None, updated_at=now)
            .returning(Order.id)
            .execution_options(synchronize_session=False)
        ).all()
    )
    events(session, ((oid, QUEUED, message) for oid in moved))
    return moved


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
    """Back to ``queued``, not to be claimed for ``delay`` seconds (its backoff)."""
    not_before = utcnow() + timedelta(seconds=delay)
    if _move(
        session, order_id, (RAISING,), status=QUEUED, lease_until=not_before, last_error=error
    ):
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
    if cast("CursorResult[Any]", result).rowcount != 1:
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
            Order.updated_at < cutoff, or_(Order.status == RECEIVED, claimable(now))
        )
    ).all()
    return [(r.id, r.status) for r in rows]
