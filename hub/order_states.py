"""An order's states and its history rows: what intake and every transition share.

Kept apart from `hub.orders` so that intake (`hub.intake`) and the
transitions can both write events without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert
from sqlalchemy.orm import Session

from hub.models import OrderEvent, utcnow

RECEIVED = "received"
STORED = "stored"
QUEUED = "queued"
RAISING = "raising"
RAISED = "raised"
DEAD = "dead"
DISCARDED = "discarded"
UNFINISHED = (RECEIVED, QUEUED, RAISING)


def event(session: Session, order_id: int, status: str, message: str = "") -> None:
    """One history row, added to the session with the change it records."""
    session.add(OrderEvent(order_id=order_id, status=status, message=message[:2000]))


def events(session: Session, rows: Iterable[tuple[int, str, str]]) -> None:
    """Write many ``(order_id, status, message)`` events in one statement.

    A batch of orders moves together; one INSERT for all of its history
    rows instead of one flush per order is most of what batching saves.
    """
    now = utcnow()
    values = [
        {"order_id": oid, "status": status, "message": message[:2000], "at": now}
        for oid, status, message in rows
    ]
    if values:
        session.execute(insert(OrderEvent), values)
