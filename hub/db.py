"""Database engines, one per process.

Celery's prefork pool forks worker children from a parent; a connection pool
inherited across fork is shared by two processes and corrupts both. Engines
are therefore created lazily and cached per process id, never at import.
PostgreSQL connections are pinged before use only after they sat idle
(``PING_AFTER_IDLE``), not at every checkout.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from hub.settings import get_settings

_engines: dict[tuple[int, str], Engine] = {}
_makers: dict[tuple[int, str], sessionmaker[Session]] = {}

# Each engine's pool: connections kept, and more opened for a while when
# all are in use. A worker process runs one task at a time, so the workers'
# default is plenty; the API sizes its own (``use_pool``).
POOL_SIZE: Final = 5
POOL_OVERFLOW: Final = 5
_pool: dict[int, tuple[int, int]] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers run beside the one writer; busy_timeout makes writers
    # from several worker processes queue instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


# libpq's limits for a database across a network: a connection attempt gives
# up after 10 s, and a connection whose peer went silent (a partition: no
# reset, no close) is declared dead after about 25 s instead of the system's
# two hours, so a worker's task ends with an error well inside its time limit
# and the sweeper hands its work to a worker that can reach the database.
_PG_NETWORK: Final = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25000,
}


# The same limits on the server's end of the connection (session settings
# any user may set): a backend whose client vanished while it was sending
# (results it cannot deliver, so not "idle" and not ended by the idle limit)
# drops the connection after 25 s of unacknowledged data, and with it the
# transaction and its row locks.
SERVER_SIDE_NETWORK: Final = (
    "-c tcp_user_timeout=25000 -c tcp_keepalives_idle=10 "
    "-c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
)


def _pg_network(url: str) -> dict[str, object]:
    """libpq's network limits, and the server's limit on a transaction left
    idle (unless the URL sets its own ``options``)."""
    args: dict[str, object] = dict(_PG_NETWORK)
    if "options" not in make_url(url).query:
        ms = int(get_settings().db_idle_transaction_timeout * 1000)
        args["options"] = f"-c idle_in_transaction_session_timeout={ms} {SERVER_SIDE_NETWORK}"
    return args


def make_engine(url: str, pool_size: int = POOL_SIZE, max_overflow: int = POOL_OVERFLOW) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 60})
        event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    eng = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args=_pg_network(url) if url.startswith(("postgresql", "postgres")) else {},
    )
    event.listen(eng, "checkout", _ping_if_idle)
    event.listen(eng, "checkin", _note_checkin)
    return eng


# A pooled connection unused for this many seconds is pinged before use.
# pool_pre_ping pinged on every checkout: one extra round trip per
# transaction, which an order's intake (a transaction of its own) and every
# batch paid. A connection that was in use a moment ago is almost never the
# one a restarted server or an idle-killing firewall has cut; if it was,
# the statement fails as a disconnect, SQLAlchemy drops the pool's
# connections, and the task or request fails once (tasks are retried by the
# sweeper; channels retry webhooks). Connections are also recycled after
# half an hour, before server-side idle timeouts.
PING_AFTER_IDLE = 30.0


def _note_checkin(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
    record.info["s2s_idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_conn, record, _proxy) -> None:  # type: ignore[no-untyped-def]
    since = record.info.get("s2s_idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE:
        return
    try:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("SELECT 1")
        finally:
            cur.close()
        if not getattr(dbapi_conn, "autocommit", True):
            dbapi_conn.rollback()  # end the transaction the ping opened
    except Exception as exc:
        # The pool discards this connection and checks out a fresh one.
        raise DisconnectionError(str(exc)) from exc


def use_pool(size: int, overflow: int = 0) -> None:
    """This process's engines keep ``size`` connections and open at most
    ``overflow`` more (engines already made are dropped, so the next use
    makes one so sized).

    The API calls it at start with its thread limit: as many connections as
    threads that may hold one, none opened and closed per burst (an overflow
    connection is closed when it is handed back to a full pool, and a new
    PostgreSQL connection costs a process on the server).
    """
    dispose_all()
    _pool[os.getpid()] = (size, overflow)


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    pid = os.getpid()
    eng = _engines.get((pid, url))
    if eng is None:
        size, overflow = _pool.get(pid, (POOL_SIZE, POOL_OVERFLOW))
        eng = _engines[(pid, url)] = make_engine(url, size, overflow)
    return eng


def sessionmaker_for(url: str | None = None) -> sessionmaker[Session]:
    url = url or get_settings().database_url
    key = (os.getpid(), url)
    maker = _makers.get(key)
    if maker is None:
        maker = _makers[key] = sessionmaker(get_engine(url), expire_on_commit=False)
    return maker


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = sessionmaker_for(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_all() -> None:
    """Drop this process's engines (after settings change in tests)."""
    pid = os.getpid()
    for key in [k for k in _engines if k[0] == pid]:
        _engines.pop(key).dispose()
        _makers.pop(key, None)
