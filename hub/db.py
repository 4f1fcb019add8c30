"""Database engines, one per process.

Celery's prefork pool forks worker children from a parent; a connection pool
inherited across fork is shared by two processes and corrupts both. Engines
are therefore created lazily and cached per process id, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from hub.settings import get_settings

_engines: dict[tuple[int, str], Engine] = {}
_makers: dict[tuple[int, str], sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers run beside the one writer; busy_timeout makes writers
    # from several worker processes queue instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 60})
        event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    key = (os.getpid(), url)
    eng = _engines.get(key)
    if eng is None:
        eng = _engines[key] = make_engine(url)
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
