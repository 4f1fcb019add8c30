"""What the hub changes of kombu's transports: the embedded broker (kombu's
SQLAlchemy transport, tuned for SQLite) and one guard on the Redis transport.

Kombu hands every transport option straight to ``create_engine``, so the
stock transport can take neither a polling interval nor SQLite's busy
timeout; and without that timeout, several worker processes polling one
SQLite file fail with "database is locked". This subclass keeps kombu's
behaviour and adds those two things. It is registered under the ``sqla``
alias, so ``sqla+sqlite:///...`` URLs use it.

The Redis transport's subclass (registered under ``redis`` and ``rediss``)
answers a command on a channel whose connection kombu has already closed
with Redis's own ConnectionError instead of an AttributeError. A task that
finishes while the worker is re-establishing a lost broker connection acks
its message on such a channel; the AttributeError out of kombu's
``_connparams`` ("'NoneType' object has no attribute 'hostname'") was not
among the errors the worker treats as a lost connection, so it stopped the
worker ("Unrecoverable error"), seen in the Redis-cut test. As a connection
error the ack is logged as failed and the message, unacknowledged, is
delivered again after the visibility timeout to a task that is idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as _redis
from kombu.transport.sqlalchemy import Channel as _Channel
from kombu.transport.sqlalchemy import Transport as _Transport
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import create_engine, event

_ENGINE_OPTIONS = ("pool_size", "max_overflow", "pool_recycle", "pool_pre_ping", "echo")


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Channel(_Channel):
    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        assert conninfo is not None, "a channel is opened on a connection"
        transport_options = conninfo.transport_options or {}
        options = {k: v for k, v in transport_options.items() if k in _ENGINE_OPTIONS}
        url = str(conninfo.hostname or "")
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 60}, **options)
            event.listen(engine, "connect", _pragmas)
            return engine
        return create_engine(url, **options)


class Transport(_Transport):
    Channel = Channel


class RedisChannel(_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError(
                "the broker connection was closed while this channel was in use"
            )
        return super()._connparams(asynchronous)  # type: ignore[misc]


class RedisTransport(_redis.Transport):
    Channel = RedisChannel


def register() -> None:
    TRANSPORT_ALIASES["sqla"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["sqlalchemy"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["redis"] = f"{__name__}:RedisTransport"
    TRANSPORT_ALIASES["rediss"] = f"{__name__}:RedisTransport"
