"""Order intake: a validated canonical order stored once, however often it arrives.

Channels deliver a webhook more than once, and a client may post the same
order twice; the order's key (client, channel, channel order code) and the
delivery id make each repeat return the first row instead of a second one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db import get_engine, session_scope
from hub.models import Order, OrderEvent, WebhookDelivery, utcnow
from hub.order_states import RECEIVED, STORED, event


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
    row, message = _new_row(client_id, order, raw)
    if delivery_id:
        delivered = _delivered(session, client_id, row.channel, delivery_id)
        if delivered is not None:
            return Intake(delivered, False, True)
    if not _insert(session, row, message):
        return _repeat(session, row, delivery_id)
    _note_delivery(session, client_id, row.channel, delivery_id, row.id)
    return Intake(row, True)


def intake_now(
    client_id: int,
    order: dict[str, Any],
    raw: Any = None,
    delivery_id: str | None = None,
    url: str | None = None,
    raw_text: str | None = None,
) -> Intake:
    """``intake`` in its own transaction, committed when this returns.

    On PostgreSQL a new order is one statement on an autocommit connection:
    the delivery-id check, the order, its first event and the delivery's
    record together, so an order posted over HTTP costs one round trip
    instead of BEGIN, a SELECT, an INSERT, a savepoint's three and a COMMIT,
    and no ORM unit of work (building and flushing those cost the webhook
    about twice the plain API's CPU per order). Only a repeat (the order's
    key already taken, the delivery not recorded) takes the ``intake`` path
    in a session, which finds the existing row and notes the delivery.

    ``raw_text``: ``raw`` as the JSON text it was parsed from (a webhook's
    body), stored as sent instead of encoded again; the caller vouches that
    it parses to ``raw``.
    """
    engine = get_engine(url)
    if engine.dialect.name != "postgresql":
        with session_scope(url) as s:
            return intake(s, client_id=client_id, order=order, raw=raw, delivery_id=delivery_id)
    row, message = _new_row(client_id, order, raw)
    seen_id, new_id = _insert_once(engine, row, message, delivery_id, raw_text)
    if new_id is not None:
        row.id = new_id
        return Intake(row, True)
    with session_scope(url) as s:
        if seen_id is not None:
            delivered = s.get(Order, seen_id)
            if delivered is not None:
                return Intake(delivered, False, True)
        return _repeat(s, row, delivery_id)


def _new_row(client_id: int, order: dict[str, Any], raw: Any) -> tuple[Order, str]:
    """The order's row as intake stores it, and its first event's message."""
    status = RECEIVED if order.get("instruction", "add_order") == "add_order" else STORED
    instruction = str(order.get("instruction") or "add_order")
    message = "received" if status == RECEIVED else f"stored only: instruction is {instruction}"
    now = utcnow()
    row = Order(
        client_id=client_id,
        channel=str(order.get("channel") or "api"),
        channel_order_code=str(order["channel_order_code"]),
        instruction=instruction,
        status=status,
        order=order,
        raw=raw,
        attempts=0,
        reached_erp=False,
        created_at=now,
        updated_at=now,
    )
    return row, message


def _repeat(session: Session, row: Order, delivery_id: str | None) -> Intake:
    """The order already stored under ``row``'s key, with this delivery noted."""
    existing = session.scalars(
        select(Order).where(
            Order.client_id == row.client_id,
            Order.channel == row.channel,
            Order.channel_order_code == row.channel_order_code,
        )
    ).one()
    _note_delivery(session, row.client_id, row.channel, delivery_id, existing.id)
    return Intake(existing, False)


def _delivered(session: Session, client_id: int, channel: str, delivery_id: str) -> Order | None:
    """The order a webhook delivery already brought in, if this id was seen."""
    seen = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.client_id == client_id,
            WebhookDelivery.channel == channel,
            WebhookDelivery.delivery_id == delivery_id,
        )
    ).first()
    if seen is None or seen.order_id is None:
        return None
    return session.get(Order, seen.order_id)


def _insert(session: Session, row: Order, message: str) -> bool:
    """Insert the order with its first event; False when its key is already taken.

    One statement on PostgreSQL; elsewhere (SQLite in tests) a savepoint,
    whose IntegrityError is the repeat.
    """
    if session.get_bind().dialect.name == "postgresql":
        return _insert_pg(session, row, message)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    event(session, row.id, row.status, message)
    return True


_INTAKE_COLUMNS = (
    "client_id",
    "channel",
    "channel_order_code",
    "instruction",
    "status",
    "order",
    "raw",
    "attempts",
    "reached_erp",
    "created_at",
    "updated_at",
)


def _insert_pg(session: Session, row: Order, message: str) -> bool:
    """Insert the order and its first event in one statement (PostgreSQL),
    inside the session's transaction: ``_once_pg`` with no delivery id. Sets
    ``row.id`` (the row stays outside the session, like a detached one) and
    says whether it was new."""
    driver = session.connection().connection.driver_connection
    _, new_id = _execute_once(driver, row, message, None)
    if new_id is None:
        return False
    row.id = new_id
    return True


# Each column's PostgreSQL type, cast in the statement: the driver is then
# free to send every value as it likes, and the statement is one text.
_PG_TYPES = {
    "client_id": "bigint",
    "channel": "varchar",
    "channel_order_code": "varchar",
    "instruction": "varchar",
    "status": "varchar",
    "order": "jsonb",
    "raw": "jsonb",
    "attempts": "integer",
    "reached_erp": "boolean",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}


@lru_cache(maxsize=1)
def _once_pg() -> str:
    """The intake statement: the order and its first event, and a webhook
    delivery in the same statement: no
    order when the delivery id was seen (its order id is returned instead),
    and the delivery recorded with the new order.

    Driver-level SQL (psycopg's named placeholders), run on the driver's
    cursor: at a thousand orders a second SQLAlchemy's parameter processing
    and result set-up were a fifth of the API process's CPU.
    """
    orders_table, events_table = Order.__table__.name, OrderEvent.__table__.name
    deliveries = WebhookDelivery.__table__.name
    names = ", ".join(f'"{name}"' for name in _INTAKE_COLUMNS)
    values = ", ".join(f"%(o_{name})s::{_PG_TYPES[name]}" for name in _INTAKE_COLUMNS)
    return (
        f"WITH seen AS (SELECT order_id FROM {deliveries} "
        "WHERE client_id = %(o_client_id)s::bigint AND channel = %(o_channel)s::varchar "
        "AND delivery_id = %(d_id)s::varchar AND order_id IS NOT NULL), "
        f"new_order AS (INSERT INTO {orders_table} ({names}) SELECT {values} "
        "WHERE NOT EXISTS (SELECT 1 FROM seen) "
        "ON CONFLICT ON CONSTRAINT uq_orders_channel_code DO NOTHING RETURNING id), "
        f"new_event AS (INSERT INTO {events_table} (order_id, at, status, message) "
        "SELECT id, %(e_at)s::timestamptz, %(e_status)s::varchar, %(e_message)s::text "
        "FROM new_order), "
        f"new_delivery AS (INSERT INTO {deliveries} "
        "(client_id, channel, delivery_id, order_id, received_at) "
        "SELECT %(o_client_id)s::bigint, %(o_channel)s::varchar, %(d_id)s::varchar, id, "
        "%(e_at)s::timestamptz FROM new_order WHERE %(d_id)s::varchar IS NOT NULL "
        "ON CONFLICT ON CONSTRAINT uq_webhook_delivery DO NOTHING) "
        "SELECT (SELECT order_id FROM seen LIMIT 1), (SELECT id FROM new_order)"
    )


def _insert_once(
    engine: Engine, row: Order, message: str, delivery_id: str | None, raw_text: str | None
) -> tuple[int | None, int | None]:
    """Run ``_once_pg`` alone in autocommit: (the order id a seen delivery
    brought, the new order's id); both None when the order's key was taken."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        driver = conn.connection.driver_connection
        return _execute_once(driver, row, message, delivery_id, raw_text)


def _dumps(value: Any) -> str:
    """JSON text for a JSONB parameter, non-ASCII left as it is: text UTF-8
    cannot encode (a lone surrogate from a stray ``\\ud800`` escape) then
    fails here, as UnicodeEncodeError, before anything is sent, instead of
    as an escape the database refuses with the statement."""
    return json.dumps(value, ensure_ascii=False)


def _execute_once(
    driver: Any, row: Order, message: str, delivery_id: str | None, raw_text: str | None = None
) -> tuple[int | None, int | None]:
    """``_once_pg`` on a psycopg connection, on its own cursor.

    JSON values are dumped as SQLAlchemy's JSON type dumps them (``json.dumps``;
    None as JSON null), so a row stored here reads back as one stored
    through the ORM; ``raw_text`` (see ``intake_now``) goes as it is.
    """
    assert driver is not None
    params: dict[str, Any] = {f"o_{name}": getattr(row, name) for name in _INTAKE_COLUMNS}
    params["o_order"] = Jsonb(row.order, dumps=_dumps)
    params["o_raw"] = raw_text if raw_text is not None else Jsonb(row.raw, dumps=_dumps)
    params.update(
        e_at=row.created_at, e_status=row.status, e_message=message[:2000], d_id=delivery_id
    )
    with driver.cursor() as cursor:
        cursor.execute(_once_pg(), params)
        found = cursor.fetchone()
    assert found is not None
    return found[0], found[1]


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
