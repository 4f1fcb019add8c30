"""What the operator's tools ask of the hub's database: one function per question.

The CLI, the HTTP API and the metrics scrape ask many of the same things
(a client by its code, a source's recent runs, each stream's last run, an
order's history, the dead letters); each question is answered here once, so
the three cannot drift apart in what they count or how they order it, and
``s2s/`` holds no queries of its own. Only reads: what changes the hub
lives beside the rules it follows (``hub.runs``, ``hub.orders``,
``hub.schedule``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, aliased

from hub.db import get_engine
from hub.models import (
    Channel,
    ChannelProduct,
    Client,
    DeadLetter,
    Order,
    OrderEvent,
    Product,
    PushRun,
    Quarantined,
    Source,
    SourceStream,
    SyncRun,
)


def ping() -> None:
    """One round trip to the hub's database; raises when it does not answer."""
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


# ------------------------------------------------------------- clients
def client_by_code(session: Session, code: str) -> Client | None:
    """The client a URL, a command line or a webhook names."""
    return session.scalars(select(Client).where(Client.code == code)).first()


def client_and_source(
    session: Session, client_code: str, source_code: str
) -> tuple[Client, Source | None] | None:
    """A client and one of its sources in one query (None: no such client).

    One query for both: a resync is the request a thousand tenants' tools
    may send at once.
    """
    found = session.execute(
        select(Client, Source)
        .outerjoin(Source, (Source.client_id == Client.id) & (Source.code == source_code))
        .where(Client.code == client_code)
    ).first()
    return None if found is None else (found[0], found[1])


def clients_with_sources(session: Session) -> list[tuple[Client, list[Source]]]:
    """Every client by code, each with its sources by code."""
    sources: dict[int, list[Source]] = {}
    for src in session.scalars(select(Source).order_by(Source.code)):
        sources.setdefault(src.client_id, []).append(src)
    return [
        (c, sources.get(c.id, [])) for c in session.scalars(select(Client).order_by(Client.code))
    ]


def secret_holders(session: Session) -> tuple[list[Client], list[Source]]:
    """Every row that may hold encrypted secrets: clients (channel secrets)
    and sources, each by id, for a key rotation."""
    clients = list(session.scalars(select(Client).order_by(Client.id)))
    sources = list(session.scalars(select(Source).order_by(Source.id)))
    return clients, sources


# ---------------------------------------------------------------- runs
def recent_runs(session: Session, source_id: int, limit: int) -> list[SyncRun]:
    """A source's latest runs, newest first."""
    return list(
        session.scalars(
            select(SyncRun)
            .where(SyncRun.source_id == source_id)
            .order_by(SyncRun.id.desc())
            .limit(limit)
        )
    )


def quarantined_in(session: Session, run_id: int, limit: int | None = None) -> list[Quarantined]:
    """The records a run held back, in the order it met them."""
    query = select(Quarantined).where(Quarantined.run_id == run_id).order_by(Quarantined.id)
    return list(session.scalars(query if limit is None else query.limit(limit)))


@dataclass(frozen=True)
class StreamStatus:
    """One stream of one source, with the last run of it (None: never run)."""

    client_code: str
    source: Source
    stream: SourceStream
    last_run: SyncRun | None


def stream_statuses(session: Session, client_id: int | None = None) -> list[StreamStatus]:
    """Every stream (of one client's sources, or of all) with its last run,
    by client, source and stream, in one query.

    The last run is the stream's newest by id, running or not: each is one
    backward step along the ``(source_id, stream, id)`` index.
    """
    newest = aliased(SyncRun)
    last_id = (
        select(func.max(newest.id))
        .where(newest.source_id == SourceStream.source_id, newest.stream == SourceStream.stream)
        .scalar_subquery()
    )
    query = (
        select(Client.code, Source, SourceStream, SyncRun)
        .join(Source, Source.client_id == Client.id)
        .join(SourceStream, SourceStream.source_id == Source.id)
        .outerjoin(SyncRun, SyncRun.id == last_id)
        .order_by(Client.code, Source.code, SourceStream.stream)
    )
    if client_id is not None:
        query = query.where(Client.id == client_id)
    return [StreamStatus(*row) for row in session.execute(query).all()]


def stream_flags(session: Session) -> tuple[int, int]:
    """How many streams are paused, and how many hold a queued resync."""
    paused, queued = session.execute(
        select(
            func.count().filter(SourceStream.paused.is_(True)),
            func.count().filter(SourceStream.queued_at.is_not(None)),
        )
    ).one()
    return int(paused), int(queued)


# -------------------------------------------------------------- orders
def orders_listing(
    session: Session, *, client_id: int | None, status: str | None, limit: int
) -> list[tuple[Order, str, str | None]]:
    """The newest orders with their client's and source's codes."""
    query = (
        select(Order, Client.code, Source.code)
        .join(Client, Client.id == Order.client_id)
        .outerjoin(Source, Source.id == Order.source_id)
        .order_by(Order.id.desc())
        .limit(limit)
    )
    if client_id is not None:
        query = query.where(Order.client_id == client_id)
    if status:
        query = query.where(Order.status == status)
    return [(order, ccode, scode) for order, ccode, scode in session.execute(query)]


def order_history(session: Session, order_id: int) -> list[OrderEvent]:
    """An order's state changes, oldest first."""
    return list(
        session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        )
    )


def orders_by_state(session: Session) -> list[tuple[str, int]]:
    return [
        (state, n)
        for state, n in session.execute(
            select(Order.status, func.count()).group_by(Order.status)
        ).all()
    ]


# -------------------------------------------------------- dead letters
def letters_of_order(session: Session, order_id: int) -> list[DeadLetter]:
    return list(
        session.scalars(
            select(DeadLetter).where(DeadLetter.order_id == order_id).order_by(DeadLetter.id)
        )
    )


def dead_letters(
    session: Session, *, client_id: int | None, open_only: bool
) -> list[tuple[DeadLetter, Order, str]]:
    """Dead letters oldest first, each with its order and its client's code."""
    query = (
        select(DeadLetter, Order, Client.code)
        .join(Order, Order.id == DeadLetter.order_id)
        .join(Client, Client.id == DeadLetter.client_id)
        .order_by(DeadLetter.id)
    )
    if client_id is not None:
        query = query.where(DeadLetter.client_id == client_id)
    if open_only:
        query = query.where(DeadLetter.status == "open")
    return [(letter, order, ccode) for letter, order, ccode in session.execute(query)]


def open_letter_ids(session: Session, client_id: int) -> tuple[int, ...]:
    """A client's open dead letters, oldest first (what a replay of them all takes)."""
    return tuple(
        session.scalars(
            select(DeadLetter.id)
            .where(DeadLetter.client_id == client_id, DeadLetter.status == "open")
            .order_by(DeadLetter.id)
        )
    )


def open_letters(session: Session) -> tuple[int, datetime | None]:
    """How many dead letters are open, and when the oldest was written."""
    count, oldest = session.execute(
        select(func.count(), func.min(DeadLetter.created_at)).where(DeadLetter.status == "open")
    ).one()
    return int(count), oldest


def open_letters_by_client(session: Session, client_id: int | None = None) -> dict[str, int]:
    """Open dead letters per client code (clients with none are left out)."""
    query = (
        select(Client.code, func.count())
        .join(DeadLetter, DeadLetter.client_id == Client.id)
        .where(DeadLetter.status == "open")
        .group_by(Client.code)
    )
    if client_id is not None:
        query = query.where(Client.id == client_id)
    return {code: int(n) for code, n in session.execute(query).all()}


def letters_by_status(session: Session) -> list[tuple[str, int]]:
    return [
        (status, n)
        for status, n in session.execute(
            select(DeadLetter.status, func.count()).group_by(DeadLetter.status)
        ).all()
    ]


def channels_with_clients(session: Session, client_id: int | None = None) -> list[Any]:
    """(client code, channel) pairs by client then channel code."""
    query = (
        select(Client.code, Channel)
        .join(Channel, Channel.client_id == Client.id)
        .order_by(Client.code, Channel.code)
    )
    if client_id is not None:
        query = query.where(Client.id == client_id)
    return [tuple(row) for row in session.execute(query).all()]


@dataclass(frozen=True)
class PushStats:
    """Aggregates of the push for ``/metrics``, by channel kind."""

    runs: dict[tuple[str, str], int]
    products: dict[tuple[str, str], int]
    lag: dict[str, int]
    refused: dict[str, int]


_PUSH_OUTCOMES = ("created", "updated", "stock", "archived", "unchanged", "skipped", "refused")


def push_stats(session: Session) -> PushStats:
    """Runs by kind and status, products by kind and outcome, the feed lag and
    the refusals waiting, summed over each kind's channels."""
    runs: dict[tuple[str, str], int] = {}
    products: dict[tuple[str, str], int] = {}
    sums = [func.coalesce(func.sum(getattr(PushRun, o)), 0) for o in _PUSH_OUTCOMES]
    for kind, status, count, *totals in session.execute(
        select(Channel.kind, PushRun.status, func.count(), *sums)
        .join(Channel, Channel.id == PushRun.channel_id)
        .group_by(Channel.kind, PushRun.status)
    ):
        runs[(kind, status)] = int(count)
        for outcome, n in zip(_PUSH_OUTCOMES, totals, strict=True):
            products[(kind, outcome)] = products.get((kind, outcome), 0) + int(n)
    pushing = Channel.settings["store_url"].as_string().is_not(None)
    kinds = session.scalars(select(Channel.kind).where(pushing).distinct())
    lag: dict[str, int] = dict.fromkeys(kinds, 0)
    refused: dict[str, int] = dict(lag)
    for kind, n in session.execute(
        select(Channel.kind, func.count(Product.id))
        .join(Product, Product.client_id == Channel.client_id)
        .where(Product.change_seq > Channel.push_cursor, pushing)
        .group_by(Channel.kind)
    ):
        lag[kind] = int(n)
    for kind, n in session.execute(
        select(Channel.kind, func.count(ChannelProduct.id))
        .join(ChannelProduct, ChannelProduct.channel_id == Channel.id)
        .where(ChannelProduct.refused_at.is_not(None))
        .group_by(Channel.kind)
    ):
        refused[kind] = int(n)
    return PushStats(runs, products, lag, refused)
