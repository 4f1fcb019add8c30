"""The hub's tables.

The database is the source of truth: every sync run, fetched page, product,
customer and quarantined record is a row, and the broker only carries ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JsonType = JSON().with_variant(JSONB(), "postgresql")
# A stored record's document (``products.data``, ``customers.data``): kept as
# the text the store wrote (PostgreSQL's ``json``), not parsed into JSONB.
# Nothing queries inside it or compares it in SQL (the hashes beside it say
# what changed), and JSONB's parse was about half of PostgreSQL's work in
# COPYing a page of products (100,000 documents: 0.9 s of its CPU against
# 0.5 s as json; reading them back 0.37 s against 0.1 s): migration 0016.
DocumentType = JSON()
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Each model maps one Table (never a join or a select): saying so lets the
    # batch statements, insert(Model.__table__) and the like, type-check.
    __table__: ClassVar[Table]

    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType}


class TZDateTime(TypeDecorator[datetime]):
    """UTC-aware datetimes on every backend: SQLite stores them naive, so
    values are normalised to UTC on the way in and tagged UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    api_token_hash: Mapped[str | None] = mapped_column(String(128))
    # Per channel (shopify, woocommerce, ...): plain settings such as the
    # add-order status, and encrypted secrets such as webhook signing keys.
    channel_settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    channel_secrets: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("client_id", "code", name="uq_sources_client_code"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    secrets: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)


class Channel(Base):
    """A client's sales channel (a Shopify or WooCommerce store).

    ``code`` names it in the webhook path ``/webhooks/{code}/{client}`` and
    defaults to the kind. ``settings`` is plain and printable; ``secrets`` is
    one Fernet token (``hub.crypto``) of the channel's secret settings, as a
    source's secrets are.
    """

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("client_id", "code", name="uq_channels_client_code"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    secrets: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    # The push (``hub.pushes``): how far along the client's change feed the
    # store has been brought (every product at or below it is confirmed or
    # refused for good); when beat next pushes on the schedule; since when a
    # sync's changes wait for a push (a debounce, cleared when one starts).
    push_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    next_push_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    push_wanted_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    last_push_run_id: Mapped[int | None] = mapped_column(IdType)


class PushRun(Base):
    """One push of a client's catalogue to one channel (``hub.pushes``).

    ``position`` is the change number the run has brought the store to;
    ``target`` the feed's last number when the run started: a run ends
    there, and later changes wait for the next run.
    """

    __tablename__ = "push_runs"
    __table_args__ = (Index("ix_push_runs_channel", "channel_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    # Non-null only while the run is active; unique, so the database itself
    # refuses a second active push of one channel.
    lock_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    retry_refused: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by: Mapped[str] = mapped_column(String(32), default="schedule")
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    target: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    considered: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    archived: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class ChannelProduct(Base):
    """What a channel's store holds of one hub product (the binder).

    ``ids`` are the store's ids of the product, its variants and their stock
    records, and the quantities last set; ``product_hash`` / ``stock_hash``
    hash the listing the store last confirmed (without and with stock), so
    an unchanged product is not sent again. A refusal keeps the store's
    words and the hash of what was refused: the same listing is not sent
    again until it changes, or ``s2s push --retry-refused``.
    """

    __tablename__ = "channel_products"
    __table_args__ = (
        UniqueConstraint("channel_id", "product_id", name="uq_channel_products"),
        Index("ix_channel_products_refused", "channel_id", "refused_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(400))
    store_id: Mapped[str | None] = mapped_column(String(255))
    ids: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str | None] = mapped_column(String(16))
    product_hash: Mapped[str | None] = mapped_column(String(64))
    stock_hash: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    refused_hash: Mapped[str | None] = mapped_column(String(64))
    refused_at: Mapped[datetime | None] = mapped_column(TZDateTime())


class SourceStream(Base):
    """A stream of one source with its schedule and incremental watermark.

    The schedule is an interval or a cron expression (``hub.schedule``);
    ``next_due_at`` is the compare-and-set token beat's dispatcher claims, so
    two beats start each due run once. A resync asked for while a run is
    active may wait here (``queued_*``) and starts when that run has ended.
    """

    __tablename__ = "source_streams"
    __table_args__ = (UniqueConstraint("source_id", "stream", name="uq_source_streams"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(32))
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    cron: Mapped[str | None] = mapped_column(String(120))
    next_due_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    queued_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    queued_full: Mapped[bool | None] = mapped_column(Boolean)
    queued_since: Mapped[str | None] = mapped_column(String(64))
    queued_by: Mapped[str | None] = mapped_column(String(32))
    watermark: Mapped[str | None] = mapped_column(String(64))
    last_run_id: Mapped[int | None] = mapped_column(IdType)


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (
        Index("ix_sync_runs_source_stream", "source_id", "stream", "id"),
        # When a run ended, for retention's scan of old runs (hub.retention
        # queries this exact expression).
        Index("ix_sync_runs_ended", text("coalesce(finished_at, created_at)"), "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    # Non-null only while the run is active; unique, so the database itself
    # refuses a second active run of one source and stream.
    lock_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    full: Mapped[bool] = mapped_column(Boolean, default=True)
    # The source held no record of the stream when the run began (migration
    # 0015): its fetch leaves hashing to the map tasks.
    fresh: Mapped[bool] = mapped_column(Boolean, default=False)
    since: Mapped[str | None] = mapped_column(String(64))
    # The highest modification stamp seen in this run's pages; becomes the
    # stream's watermark when the run succeeds (ERPs with a modified column).
    high_water: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(32), default="schedule")
    page_size: Mapped[int] = mapped_column(Integer, default=500)
    pages_total: Mapped[int | None] = mapped_column(Integer)
    pages_done: Mapped[int] = mapped_column(Integer, default=0)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    # Delete / inactive rows for records the hub never stored (hub.store.Counts
    # says what each count means).
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    ignored: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    # Set while the run's fetch waits for its pages to be mapped (the run has
    # ``S2S_RUN_PAGES_IN_FLIGHT`` pages queued for map_page): the map task
    # that brings it down to half the cap clears it and hands the fetch on.
    fetch_parked_at: Mapped[datetime | None] = mapped_column(TZDateTime())


class RunTotal(Base):
    """What folded runs counted, per stream and final status (for ``/metrics``)."""

    __tablename__ = "sync_run_totals"

    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger, default=0)
    fetched: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    ignored: Mapped[int] = mapped_column(BigInteger, default=0)
    quarantined: Mapped[int] = mapped_column(BigInteger, default=0)


class HistoryFold(Base):
    """One row (id 1): every run with an id up to ``through_run_id`` is in the totals."""

    __tablename__ = "sync_history_fold"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    through_run_id: Mapped[int] = mapped_column(BigInteger, default=0)
    folded_at: Mapped[datetime | None] = mapped_column(TZDateTime())


class SyncPage(Base):
    """One fetched page: its changed raw records until they are written, then done.

    (``mapped`` holds a page's mapped records between two tasks only for
    pages stored by versions that mapped and wrote in separate tasks.)
    """

    __tablename__ = "sync_pages"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_sync_pages_run_seq"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="fetched")
    cursor_in: Mapped[Any] = mapped_column(JsonType, nullable=True)
    cursor_out: Mapped[Any] = mapped_column(JsonType, nullable=True)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    # The raw records still to be mapped: only those of records whose raw
    # rows changed since the hub last wrote them (see ``raw_hash`` below).
    records: Mapped[Any] = mapped_column(JsonType, nullable=True)
    # {record key: raw hash} of ``records``, computed once at fetch from the
    # rows as the ERP sent them, so that the hash written with each record
    # is the one the next fetch will compare against.
    raw_hashes: Mapped[Any] = mapped_column(JsonType, nullable=True)
    # ``records`` and ``raw_hashes`` packed together (``workers.pages``), in
    # their place whenever the records are plain values, as they usually are.
    packed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    mapped: Mapped[Any] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("source_id", "source_product_code", name="uq_products_source_code"),
        Index("ix_products_change", "client_id", "change_seq"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # The source's client, kept for lookups by client; no foreign key of its
    # own (the source's cascades from its client: migration 0013).
    client_id: Mapped[int] = mapped_column(IdType)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    source_product_code: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    hash: Mapped[str] = mapped_column(String(64))
    # The hash of the ERP's raw rows this record was last mapped from (with
    # the map's version and the source's settings); a fetch that finds the
    # same raw hash skips mapping the record at all. Null when unknown.
    raw_hash: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(DocumentType)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    last_run_id: Mapped[int | None] = mapped_column(IdType)
    # The client's change number of the row's last write, in commit order
    # (``hub.catalogue``): what the change feed pages by.
    change_seq: Mapped[int | None] = mapped_column(BigInteger)


class Variant(Base):
    """A product's variants, denormalised for routing orders by SKU."""

    __tablename__ = "variants"
    __table_args__ = (
        Index("ix_variants_client_sku", "client_id", "sku"),
        Index("ix_variants_product", "product_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(IdType)
    source_id: Mapped[int] = mapped_column(IdType)
    source_variant_code: Mapped[str] = mapped_column(String(255))
    sku: Mapped[str] = mapped_column(String(255))
    qty: Mapped[int | None] = mapped_column(Integer)
    price: Mapped[float | None] = mapped_column(Float)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("source_id", "source_customer_code", name="uq_customers_source_code"),
        Index("ix_customers_change", "client_id", "change_seq"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # As Product.client_id: the source's client, no foreign key of its own.
    client_id: Mapped[int] = mapped_column(IdType)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    source_customer_code: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    hash: Mapped[str] = mapped_column(String(64))
    # The hash of the ERP's raw rows this record was last mapped from (with
    # the map's version and the source's settings); a fetch that finds the
    # same raw hash skips mapping the record at all. Null when unknown.
    raw_hash: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(DocumentType)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    last_run_id: Mapped[int | None] = mapped_column(IdType)
    # The client's change number of the row's last write, in commit order
    # (``hub.catalogue``): what the change feed pages by.
    change_seq: Mapped[int | None] = mapped_column(BigInteger)


class ChangeCounter(Base):
    """The last change number given to a client's stream (``hub.catalogue``).

    Its row lock, taken by the write that draws numbers and held to commit,
    is what makes the numbers of one client follow commit order.
    """

    __tablename__ = "change_counters"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Quarantined(Base):
    """A record that could not be mapped, with the field at fault and why."""

    __tablename__ = "quarantine"
    __table_args__ = (
        Index("ix_quarantine_run", "run_id"),
        # Was this record quarantined again by a later run? (hub.retention)
        Index("ix_quarantine_record", "source_id", "stream", "record_key", "run_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    page_id: Mapped[int] = mapped_column(IdType)
    client_id: Mapped[int] = mapped_column(IdType)
    source_id: Mapped[int] = mapped_column(IdType)
    stream: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    raw: Mapped[Any] = mapped_column(JsonType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class Order(Base):
    """A channel's order: committed at intake, before any 2xx answer.

    Unique per client, channel and order code, so a webhook delivered three
    times, or an order submitted twice, is one row and is raised once.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint(
            "client_id", "channel", "channel_order_code", name="uq_orders_channel_code"
        ),
        Index("ix_orders_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    channel_order_code: Mapped[str] = mapped_column(String(64))
    instruction: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int | None] = mapped_column(IdType)
    order: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # The body as the channel sent it, kept for the record: nothing the hub
    # does with an order reads it, so loading an order leaves it behind (a
    # Shopify body is two to three times the canonical order; routing and
    # raising parsed it for every order).
    raw: Mapped[Any] = mapped_column(JsonType, nullable=True, deferred=True)
    document_number: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set by the first raise attempt and never cleared (not even by a
    # replay): from then on the ERP may hold the order, so every further
    # attempt asks the ERP before sending.
    reached_erp: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_until: Mapped[datetime | None] = mapped_column(TZDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    raised_at: Mapped[datetime | None] = mapped_column(TZDateTime())


class OrderEvent(Base):
    """An order's state history, for ``s2s orders show``."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")


class DeadLetter(Base):
    """An order that cannot go further without a person: why, what to fix, replay."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_client_status", "client_id", "status"),
        Index("ix_dead_letters_order", "order_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(IdType)
    source_id: Mapped[int | None] = mapped_column(IdType)
    stage: Mapped[str] = mapped_column(String(16))
    error_class: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    resolution: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """Channel delivery ids already accepted: a redelivery is answered, not stored."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("client_id", "channel", "delivery_id", name="uq_webhook_delivery"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    client_id: Mapped[int] = mapped_column(IdType)
    channel: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[int | None] = mapped_column(IdType)
    received_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class SourceLease(Base):
    """A slot of a source's concurrency limit, held until it expires.

    Used when the broker is not Redis (the embedded default); with Redis the
    same limit lives in a Redis sorted set.
    """

    __tablename__ = "source_leases"
    __table_args__ = (UniqueConstraint("source_id", "slot", name="uq_source_leases"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    source_id: Mapped[int] = mapped_column(IdType)
    slot: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(TZDateTime())


class ConsoleUser(Base):
    """A person who signs in to the operations console (``hub.users``).

    An operator (``client_id`` null) sees every client; a client user sees
    only the client named. Only an argon2 hash of the password is kept.
    """

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    # Set by signing out: every session signed in before it ends (``hub.users.stamp``).
    signed_out_at: Mapped[datetime | None] = mapped_column(TZDateTime())


class ConsoleLoginFailure(Base):
    """A failed console sign-in, kept for the login rate limit's window only.

    ``key`` is ``user:<name>`` or ``ip:<address>``: one row per key and
    failure, so the limit holds across every API process sharing the database.
    """

    __tablename__ = "console_login_failures"
    __table_args__ = (Index("ix_console_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
