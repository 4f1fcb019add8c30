"""Push runs and the binder: what the hub knows of each channel's store.

A push brings one channel's store up to date with the client's catalogue by
reading the client's change feed (``hub.catalogue``) from the channel's own
cursor. The rows here are what makes that safe to interrupt anywhere:

- one active run per channel, refused by the database (``lock_key``);
- the run's ``position`` on the feed moves only past products the store
  confirmed or refused for good, in the same transaction that records their
  outcome, so a run resumed after a killed worker starts at the first
  product whose outcome is not recorded;
- ``channel_products`` (the binder) keeps per product the store's ids and
  the hash of the listing it confirmed: a product whose listing hashes the
  same is not sent again, and a product sent again after a lost answer is
  upserted by its key in the store, never created twice.

The module knows rows, not stores: rendering a product for a channel and
speaking to the store are ``workers.pushing``'s and the connectors'.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.models import Channel, ChannelProduct, Product, PushRun, Source, utcnow

ACTIVE = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
COUNTS = (
    "considered",
    "created",
    "updated",
    "stock",
    "archived",
    "unchanged",
    "skipped",
    "refused",
)


def lock_key(channel_id: int) -> str:
    return f"push:{channel_id}"


@dataclass(frozen=True)
class PushStart:
    """What a push request did: started ``run``, or found it already active."""

    run: PushRun
    created: bool


def feed_end(session: Session, client_id: int) -> int:
    """The client's last product change number (0: no product yet)."""
    value = session.scalar(
        select(func.max(Product.change_seq)).where(Product.client_id == client_id)
    )
    return int(value or 0)


def start_push(
    session: Session,
    channel: Channel,
    *,
    full: bool = False,
    retry_refused: bool = False,
    requested_by: str = "cli",
) -> PushStart:
    """Start a push of ``channel`` or return the one already active.

    A full push reads the feed from its start and sends every product again
    whatever the store confirmed (the store is re-made from the hub); any
    other push reads from the channel's cursor and sends what changed.
    """
    now = utcnow()
    run = PushRun(
        client_id=channel.client_id,
        channel_id=channel.id,
        status=ACTIVE,
        lock_key=lock_key(channel.id),
        full=full,
        retry_refused=retry_refused,
        requested_by=requested_by,
        position=0 if full else int(channel.push_cursor or 0),
        target=feed_end(session, channel.client_id),
        attempts=0,
        created_at=now,
        heartbeat_at=now,
        **dict.fromkeys(COUNTS, 0),
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        active = session.scalars(
            select(PushRun).where(PushRun.lock_key == lock_key(channel.id))
        ).one()
        return PushStart(active, False)
    channel.push_wanted_at = None
    channel.last_push_run_id = run.id
    return PushStart(run, True)


@dataclass(frozen=True)
class FeedRow:
    """One product of the feed with what the binder holds of it."""

    product: Product
    source_code: str
    bound: ChannelProduct | None


def feed_rows(
    session: Session, channel: Channel, after: int, upto: int, limit: int
) -> list[FeedRow]:
    """Up to ``limit`` of the client's products changed after ``after`` and
    at most ``upto``, in change order, each with its binder row."""
    rows = session.execute(
        select(Product, Source.code, ChannelProduct)
        .join(Source, Source.id == Product.source_id)
        .outerjoin(
            ChannelProduct,
            (ChannelProduct.product_id == Product.id) & (ChannelProduct.channel_id == channel.id),
        )
        .where(
            Product.client_id == channel.client_id,
            Product.change_seq > after,
            Product.change_seq <= upto,
        )
        .order_by(Product.change_seq)
        .limit(limit)
    ).all()
    return [FeedRow(p, code, bound) for p, code, bound in rows]


def refused_rows(session: Session, channel: Channel, after_id: int, limit: int) -> list[FeedRow]:
    """Products the store refused, by binder id after ``after_id`` (for
    ``--retry-refused``)."""
    rows = session.execute(
        select(Product, Source.code, ChannelProduct)
        .join(ChannelProduct, ChannelProduct.product_id == Product.id)
        .join(Source, Source.id == Product.source_id)
        .where(
            ChannelProduct.channel_id == channel.id,
            ChannelProduct.refused_at.is_not(None),
            ChannelProduct.id > after_id,
        )
        .order_by(ChannelProduct.id)
        .limit(limit)
    ).all()
    return [FeedRow(p, code, bound) for p, code, bound in rows]


@dataclass(frozen=True)
class Confirmed:
    product_id: int
    key: str
    store_id: str | None
    ids: dict[str, Any]
    product_hash: str | None
    stock_hash: str | None
    status: str


@dataclass(frozen=True)
class Refused:
    product_id: int
    key: str
    error: str
    refused_hash: str


def record(
    session: Session, channel_id: int, confirmed: Sequence[Confirmed], refused: Sequence[Refused]
) -> None:
    """Write the store's outcomes into the binder (insert or update per product)."""
    now = utcnow()
    wanted = [c.product_id for c in confirmed] + [r.product_id for r in refused]
    existing = {
        row.product_id: row
        for row in session.scalars(
            select(ChannelProduct).where(
                ChannelProduct.channel_id == channel_id, ChannelProduct.product_id.in_(wanted)
            )
        )
    }

    def row_for(product_id: int, key: str) -> ChannelProduct:
        row = existing.get(product_id)
        if row is None:
            row = ChannelProduct(channel_id=channel_id, product_id=product_id, key=key, ids={})
            session.add(row)
            existing[product_id] = row
        return row

    for c in confirmed:
        row = row_for(c.product_id, c.key)
        row.store_id, row.ids, row.status = c.store_id, c.ids, c.status
        row.product_hash, row.stock_hash, row.confirmed_at = c.product_hash, c.stock_hash, now
        row.error = row.refused_hash = row.refused_at = None
    for r in refused:
        row = row_for(r.product_id, r.key)
        row.error, row.refused_hash, row.refused_at = r.error[:4000], r.refused_hash, now
    session.flush()


def advance(
    session: Session, run_id: int, channel_id: int, position: int | None, counts: dict[str, int]
) -> None:
    """Add to the run's counts and move it (and its channel's cursor) forward
    to ``position``, never back; in the caller's transaction, with the
    binder's writes, so a position never runs ahead of recorded outcomes."""
    table = PushRun.__table__
    values: dict[str, Any] = {name: table.c[name] + n for name, n in counts.items() if n}
    values["heartbeat_at"] = utcnow()
    session.execute(update(table).where(table.c.id == run_id).values(**values))
    if position is None:
        return
    session.execute(
        update(table)
        .where(table.c.id == run_id, table.c.position < position)
        .values(position=position)
    )
    channels = Channel.__table__
    session.execute(
        update(channels)
        .where(channels.c.id == channel_id, channels.c.push_cursor < position)
        .values(push_cursor=position)
    )


def count_attempt(session: Session, run_id: int) -> int:
    """One more attempt at the run's current batch; returns how many so far."""
    table = PushRun.__table__
    return int(
        session.execute(
            update(table)
            .where(table.c.id == run_id)
            .values(attempts=table.c.attempts + 1, heartbeat_at=utcnow())
            .returning(table.c.attempts)
        ).scalar_one()
    )


def reset_attempts(session: Session, run_id: int) -> None:
    session.execute(update(PushRun).where(PushRun.id == run_id).values(attempts=0))


def finish(session: Session, run_id: int, error: str | None = None) -> bool:
    """End the run, succeeded or (with ``error``) failed; True for the one
    caller that ended it."""
    now = utcnow()
    result = session.execute(
        update(PushRun)
        .where(PushRun.id == run_id, PushRun.status == ACTIVE)
        .values(
            status=FAILED if error else SUCCEEDED,
            lock_key=None,
            error=error[:4000] if error else None,
            finished_at=now,
            heartbeat_at=now,
        )
    )
    return cast("CursorResult[Any]", result).rowcount == 1


def touch(session: Session, run_id: int) -> None:
    session.execute(update(PushRun).where(PushRun.id == run_id).values(heartbeat_at=utcnow()))


def stale_runs(session: Session, older_than: timedelta) -> list[int]:
    cutoff = utcnow() - older_than
    return list(
        session.scalars(
            select(PushRun.id).where(PushRun.status == ACTIVE, PushRun.heartbeat_at < cutoff)
        )
    )


def want_push(session: Session, client_id: int, when: datetime | None = None) -> int:
    """Note that the client's products changed: each of its channels that
    pushes gets a push once the debounce has passed. The first stamp is
    kept, so a stream of syncs cannot postpone the push forever."""
    channels = Channel.__table__
    result = session.execute(
        update(channels)
        .where(channels.c.client_id == client_id, channels.c.push_wanted_at.is_(None))
        .values(push_wanted_at=when or utcnow())
    )
    return cast("CursorResult[Any]", result).rowcount


def due_channels(session: Session, now: datetime, debounce: timedelta) -> list[Channel]:
    """Channels whose schedule is due or whose wanted push has waited out
    the debounce, not paused and without an active push."""
    active = select(PushRun.channel_id).where(PushRun.status == ACTIVE)
    return list(
        session.scalars(
            select(Channel)
            .where(
                Channel.paused.is_(False),
                Channel.id.not_in(active),
                (Channel.next_push_at <= now) | (Channel.push_wanted_at <= now - debounce),
            )
            .order_by(Channel.id)
        )
    )


def waiting(session: Session, client_id: int, after: int, upto: int | None = None) -> int:
    """The client's products changed after change number ``after`` (and at
    most ``upto``): what a push from there has still to go through."""
    query = (
        select(func.count())
        .select_from(Product)
        .where(Product.client_id == client_id, Product.change_seq > after)
    )
    if upto is not None:
        query = query.where(Product.change_seq <= upto)
    return int(session.scalar(query) or 0)


def lag(session: Session, channel: Channel) -> int:
    """Products changed since the store was last brought up to date."""
    return waiting(session, channel.client_id, int(channel.push_cursor or 0))


def refused_retried(session: Session, run_id: int) -> None:
    """The run's ``--retry-refused`` pass is done: it goes on with the feed."""
    session.execute(update(PushRun).where(PushRun.id == run_id).values(retry_refused=False))


def refused_count(session: Session, channel_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(ChannelProduct)
            .where(ChannelProduct.channel_id == channel_id, ChannelProduct.refused_at.is_not(None))
        )
        or 0
    )


def problems(session: Session, channel: Channel, limit: int = 100) -> list[dict[str, Any]]:
    """Products the store refused, newest first, with the store's words."""
    rows = session.execute(
        select(ChannelProduct, Product.source_product_code, Source.code)
        .join(Product, Product.id == ChannelProduct.product_id)
        .join(Source, Source.id == Product.source_id)
        .where(ChannelProduct.channel_id == channel.id, ChannelProduct.refused_at.is_not(None))
        .order_by(ChannelProduct.refused_at.desc(), ChannelProduct.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "source": source,
            "code": code,
            "key": row.key,
            "refused_at": row.refused_at.isoformat() if row.refused_at else None,
            "error": row.error,
            "in_store": row.store_id is not None,
        }
        for row, code, source in rows
    ]


def last_run(session: Session, channel: Channel) -> PushRun | None:
    if channel.last_push_run_id is None:
        return None
    return session.get(PushRun, channel.last_push_run_id)


def run_view(run: PushRun) -> dict[str, Any]:
    """A run as the CLI, the API and ``s2s status`` show it."""
    return {
        "id": run.id,
        "status": run.status,
        "full": run.full,
        "requested_by": run.requested_by,
        "position": run.position,
        "target": run.target,
        **{name: getattr(run, name) for name in COUNTS},
        "error": run.error,
        "started_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def runs_of(session: Session, channel: Channel, limit: int = 20) -> list[PushRun]:
    return list(
        session.scalars(
            select(PushRun)
            .where(PushRun.channel_id == channel.id)
            .order_by(PushRun.id.desc())
            .limit(limit)
        )
    )


def bound_count(session: Session, channel_id: int, product_ids: Iterable[int] | None = None) -> int:
    query = (
        select(func.count())
        .select_from(ChannelProduct)
        .where(ChannelProduct.channel_id == channel_id, ChannelProduct.store_id.is_not(None))
    )
    if product_ids is not None:
        query = query.where(ChannelProduct.product_id.in_(list(product_ids)))
    return int(session.scalar(query) or 0)
