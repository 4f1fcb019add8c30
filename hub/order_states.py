"""An order's states and its history rows: what intake and every transition share.

Kept apart from `hub.orders` so that intake (`hub.intake`) and the
transitions can both write events without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from sqlalchemy import JSON, TextClause, bindparam, insert, text
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
        {"order_id": oid, "status": status, "message": message[:2000]}
        for oid, status, message in rows
    ]
    if not values:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(OrderEvent), [{**v, "at": now} for v in values])
        return
    # One statement of two parameters whatever the batch, instead of
    # psycopg's pipelined executemany (a Bind and Execute built in Python
    # for every row): about a third of the worker's CPU an event. Rows are
    # numbered so that their ids follow the batch's order.
    session.execute(_events_pg(), {"events": values, "at": now})


@lru_cache(maxsize=1)
def _events_pg() -> TextClause:
    """``events``' INSERT on PostgreSQL: the batch as one JSON array."""
    return text(
        f"INSERT INTO {OrderEvent.__table__.name} (order_id, status, message, at) "
        "SELECT e.order_id, e.status, e.message, :at FROM ROWS FROM "
        "(json_to_recordset(:events) AS (order_id bigint, status varchar, message text)) "
        "WITH ORDINALITY AS e(order_id, status, message, n) ORDER BY e.n"
    ).bindparams(
        bindparam("events", type_=JSON), bindparam("at", type_=OrderEvent.__table__.c.at.type)
    )
