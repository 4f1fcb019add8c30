"""The embedded broker: kombu's SQLAlchemy transport, tuned for SQLite.

Kombu hands every transport option straight to ``create_engine``, so the
stock transport can take neither a polling interval nor SQLite's busy
timeout; and without that timeout, several worker processes polling one
SQLite file fail with "database is locked". This subclass keeps kombu's
behaviour and adds those two things. It is registered under the ``sqla``
alias, so ``sqla+sqlite:///...`` URLs use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as _Channel
from kombu.transport.sqlalchemy import Transport as _Transport
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


def register() -> None:
    TRANSPORT_ALIASES["sqla"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["sqlalchemy"] = f"{__name__}:Transport"
