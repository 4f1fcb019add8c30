"""Clients and sources: registration with secrets split off and encrypted,
and the connector for a stored source.

This is glue between the hub (rows, encryption) and the connectors (settings
schemas, which fields are secret), so it lives in workers/.
"""

from __future__ import annotations

import hashlib
import logging
import secrets as pysecrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from connectors.base import Connector
from hub import crypto, queries
from hub.db import session_scope
from hub.models import Channel, Client, Source, SourceStream, utcnow
from hub.settings import get_settings
from workers import channels as channel_records
from workers import kinds

log = logging.getLogger("s2s.sources")


class SetupError(Exception):
    """A client or source declaration that cannot be applied; the message says why."""


def connector_class(kind: str) -> type[Connector]:
    """The kind's connector class, imported the first time a source of that kind
    is used, so that a process imports only the connectors it serves."""
    try:
        return kinds.connector_class(kind)
    except kinds.UnknownKind as exc:
        raise SetupError(str(exc)) from None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_client(session: Session, code: str) -> Client:
    client = queries.client_by_code(session, code)
    if client is None:
        raise SetupError(f"no client {code!r} (add it with 's2s client add {code}')")
    return client


def get_source(session: Session, client_code: str, source_code: str) -> Source:
    client = get_client(session, client_code)
    source = session.scalars(
        select(Source).where(Source.client_id == client.id, Source.code == source_code)
    ).first()
    if source is None:
        raise SetupError(f"client {client_code!r} has no source {source_code!r}")
    return source


def upsert_client(
    session: Session, code: str, name: str | None = None
) -> tuple[Client, str | None]:
    """Create or rename a client. A new client gets an API token, shown once."""
    client = queries.client_by_code(session, code)
    token = None
    if client is None:
        token = pysecrets.token_urlsafe(24)
        client = Client(code=code, name=name or code, api_token_hash=hash_token(token))
        session.add(client)
        session.flush()
    elif name:
        client.name = name
    return client, token


def upsert_source(
    session: Session,
    client: Client,
    code: str,
    kind: str,
    settings: dict[str, Any],
    *,
    name: str | None = None,
    schedules: dict[str, int | None] | None = None,
    enabled: bool = True,
) -> Source:
    """Validate settings with the connector's schema, encrypt the secret ones, store.

    ``schedules`` maps stream → interval in seconds (None: on demand only).
    """
    cls = connector_class(kind)
    loaded = cls.load_settings(settings)  # raises SettingsError naming the field
    secret_names = cls.secret_fields()
    plain = {k: v for k, v in loaded.items() if k not in secret_names}
    hidden = {k: v for k, v in loaded.items() if k in secret_names and v not in (None, "")}
    source = session.scalars(
        select(Source).where(Source.client_id == client.id, Source.code == code)
    ).first()
    if source is None:
        source = Source(client_id=client.id, code=code, kind=kind, name=name or code)
        session.add(source)
    elif source.kind != kind:
        raise SetupError(f"source {code!r} is a {source.kind} source, not {kind}")
    source.name = name or source.name
    source.settings = plain
    source.secrets = crypto.encrypt(hidden)
    source.enabled = enabled
    source.updated_at = utcnow()
    session.flush()
    for stream in sorted(cls.streams):
        interval = (schedules or {}).get(stream)
        row = session.scalars(
            select(SourceStream).where(
                SourceStream.source_id == source.id, SourceStream.stream == stream
            )
        ).first()
        if row is None:
            row = SourceStream(source_id=source.id, stream=stream)
            session.add(row)
        if schedules is not None:
            row.interval_seconds = interval
            row.next_due_at = utcnow() + timedelta(seconds=interval) if interval else None
    session.flush()
    return source


def source_settings(source: Source) -> dict[str, Any]:
    """The full settings, secrets included: only ever handed to a connector."""
    return {**(source.settings or {}), **crypto.decrypt(source.secrets)}


def public_settings(source: Source) -> dict[str, Any]:
    """Settings safe to print: secret fields shown as set or not, never their value."""
    cls = connector_class(source.kind)
    shown: dict[str, Any] = dict(source.settings or {})
    stored = crypto.decrypt(source.secrets)
    for name in sorted(cls.secret_fields()):
        shown[name] = "(set)" if stored.get(name) else "(not set)"
    return shown


class ConnectorCache:
    """The connectors of one process, least recently used first, at most ``limit``.

    Building a connector is cheap, but its engine's compiled statements and
    a read's connection are worth keeping for the length of a task (a fetch
    reads many pages). Between tasks nothing is held open (see
    ``release_used``), and beyond ``limit`` sources the least recently used
    connector is closed and dropped, so that a worker that has served a
    thousand tenants holds what one that served ``limit`` holds: no idle
    database connection, HTTP socket or session per tenant.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[int, tuple[str, Connector]] = OrderedDict()
        self._used: dict[int, Connector] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._items

    def get(self, source: Source, limit: int) -> Connector:
        stamp = source.updated_at.isoformat() if source.updated_at else ""
        held = self._items.get(source.id)
        if held is not None and held[0] == stamp:
            self._items.move_to_end(source.id)
            conn = held[1]
        else:
            if held is not None:  # the source's settings changed: a new connector
                self._drop(source.id)
            # Validated once, by the connector itself (SettingsError names the field).
            conn = connector_class(source.kind)(source_settings(source))
            self._items[source.id] = (stamp, conn)
            while len(self._items) > limit:
                self._drop(next(iter(self._items)))
        self._used[source.id] = conn
        return conn

    def _drop(self, source_id: int) -> None:
        _, conn = self._items.pop(source_id)
        self._used.pop(source_id, None)
        _quietly(conn.close, conn)

    def release_used(self) -> int:
        """Let go of the connections of every connector used since the last call.

        Called when a task ends: an ERP connection, HTTP keep-alive socket or
        session is then held only while a task needs it.
        """
        used, self._used = list(self._used.values()), {}
        for conn in used:
            _quietly(conn.release, conn)
        return len(used)

    def clear(self) -> None:
        for source_id in list(self._items):
            self._drop(source_id)


def _quietly(action: Callable[[], None], conn: Connector) -> None:
    """Closing is best effort: a connection the ERP already dropped must not
    fail the task that merely finished with it."""
    try:
        action()
    except Exception as exc:  # logged, never raised
        log.warning("closing %s connections failed: %s", conn.title, type(exc).__name__)


_cache = ConnectorCache()


def connector_for(source: Source) -> Connector:
    """A connector for the source, reused within this process while the
    source's settings are unchanged and it stays among the
    ``S2S_CONNECTOR_CACHE`` most recently used ones."""
    return _cache.get(source, get_settings().connector_cache)


def release_connectors() -> int:
    """Close the connections the finished task's connectors hold (see ConnectorCache)."""
    return _cache.release_used()


# ------------------------------------------------------------------ channels
# Channels whose webhooks the hub verifies are records (``hub.models.Channel``,
# ``workers.channels``): plain settings apart from the encrypted secrets. These
# functions keep the client-level interface the webhook handler and the CLI
# use. The client's own ``channel_settings`` / ``channel_secrets`` columns are
# still written alongside (the intake part only) until every reader has moved
# to the records (``s2s client list``, ``s2s keys rotate``); nothing reads them
# back here.
KNOWN_CHANNELS: tuple[str, ...] = channel_records.KINDS


def set_channels(session: Session, client: Client, channels: dict[str, Any]) -> list[str]:
    """Declare some of a client's channels; returns the names set, in the order given.

    ``channels`` maps a channel code (by default its kind) to its settings:
    ``{"secret": ..., "add_order_status": ...}`` and the push settings of
    ``workers.channels``; ``kind`` names the kind when the code is another
    name. Each named channel's plain settings are replaced by what is declared
    (see ``workers.channels.check``). Everything is checked before anything
    changes, so a bad entry leaves the client as it was. Error messages name
    the client, channel and setting, never a secret's value.
    """
    if not isinstance(channels, dict):
        raise SetupError(
            f"client {client.code!r}: channels must map a channel name to its settings"
        )
    checked: list[channel_records.Declared] = []
    for name, spec in channels.items():
        kind = str(name)
        if isinstance(spec, dict) and "kind" in spec:
            spec = dict(spec)
            kind = str(spec.pop("kind"))
        try:
            checked.append(channel_records.check(session, client, str(name), kind, spec))
        except channel_records.ChannelError as exc:
            raise SetupError(str(exc)) from None
    for declared in checked:
        channel_records.store(session, client, declared)
    _mirror_on_client(client, checked)
    session.flush()
    return list(channels)


def _mirror_on_client(client: Client, checked: list[channel_records.Declared]) -> None:
    """The intake part on the client's legacy columns (see the note above)."""
    secrets_out = crypto.decrypt(client.channel_secrets)
    settings_out = {k: dict(v or {}) for k, v in (client.channel_settings or {}).items()}
    for declared in checked:
        secrets_out[declared.code] = declared.secrets["secret"]
        status = declared.settings.get("add_order_status")
        settings_out[declared.code] = {"add_order_status": status} if status else {}
    client.channel_secrets = crypto.encrypt(secrets_out)
    # A new dict object: the JSON column only notices assignment, not mutation.
    client.channel_settings = settings_out


def _channel_row(client: Client, channel: str) -> Channel | None:
    """The client's channel row, read in the client's own session when it has one.

    A client detached from its session (the webhook handler looks the client
    up and closes the session) is read in a short session of its own; the row
    comes back detached with its columns loaded.
    """
    session = object_session(client)
    if session is not None:
        return channel_records.get_channel(session, client, channel)
    with session_scope() as own:
        row = channel_records.get_channel(own, client, channel)
        if row is not None:
            own.expunge(row)
        return row


def channel_secret(client: Client, channel: str) -> str | None:
    """The channel's webhook signing secret: only ever handed to signature checks."""
    row = _channel_row(client, channel)
    value = channel_records.secrets_of(row).get("secret") if row is not None else None
    return str(value) if value else None


def channel_settings(client: Client, channel: str) -> dict[str, Any]:
    """The channel's plain settings as declared (e.g. ``add_order_status``); safe to print."""
    row = _channel_row(client, channel)
    return dict(row.settings or {}) if row is not None else {}


def unsupported_stream(cls: type[Connector], stream: str) -> str:
    """The plain answer when an ERP cannot sync a stream (nothing is enqueued)."""
    message = (
        f"{cls.title} does not support syncing {stream}; it syncs {', '.join(sorted(cls.streams))}"
    )
    if stream == "customers":
        message += (
            ". Customers for this client are imported manually (a CSV import in the "
            "client console) instead"
        )
    return message
