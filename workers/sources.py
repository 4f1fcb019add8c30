"""Clients and sources: registration with secrets split off and encrypted,
and the connector for a stored source.

This is glue between the hub (rows, encryption) and the connectors (settings
schemas, which fields are secret), so it lives in workers/.
"""

from __future__ import annotations

import hashlib
import secrets as pysecrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import Connector, SettingsError
from connectors.sql import SqlConnector
from hub import crypto
from hub.models import Client, Source, SourceStream, utcnow

CONNECTORS: dict[str, type[Connector]] = {SqlConnector.kind: SqlConnector}


class SetupError(Exception):
    """A client or source declaration that cannot be applied; the message says why."""


def connector_class(kind: str) -> type[Connector]:
    try:
        return CONNECTORS[kind]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise SetupError(f"unknown source kind {kind!r} (known: {known})") from None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_client(session: Session, code: str) -> Client:
    client = session.scalars(select(Client).where(Client.code == code)).first()
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
    client = session.scalars(select(Client).where(Client.code == code)).first()
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


_cache: dict[tuple[int, str], Connector] = {}


def connector_for(source: Source) -> Connector:
    """A connector for the source, reused within this process while the
    source's settings are unchanged (engines and HTTP pools are costly)."""
    stamp = source.updated_at.isoformat() if source.updated_at else ""
    key = (source.id, stamp)
    conn = _cache.get(key)
    if conn is None:
        for old in [k for k in _cache if k[0] == source.id]:
            _cache.pop(old).close()
        cls = connector_class(source.kind)
        try:
            settings = cls.load_settings(source_settings(source))
        except SettingsError:
            raise
        conn = _cache[key] = cls(settings)
    return conn
