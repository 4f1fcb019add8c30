"""What the connectors that read an ERP's database (the SQL template,
SYSPRO) share about building SQLAlchemy engines."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine

# Each driver's own name for its connect timeout.
_CONNECT_TIMEOUT: dict[tuple[str, str], str] = {
    ("sqlite", "pysqlite"): "timeout",
    ("postgresql", "psycopg"): "connect_timeout",
    ("postgresql", "psycopg2"): "connect_timeout",
    ("postgresql", "pg8000"): "timeout",
    ("mysql", "pymysql"): "connect_timeout",
    ("mysql", "mysqldb"): "connect_timeout",
    ("mariadb", "pymysql"): "connect_timeout",
    ("mariadb", "mysqldb"): "connect_timeout",
    ("mysql", "mariadbconnector"): "connect_timeout",
    ("mariadb", "mariadbconnector"): "connect_timeout",
    ("mysql", "mysqlconnector"): "connection_timeout",
    ("mssql", "pymssql"): "login_timeout",
    ("mssql", "pyodbc"): "timeout",
}


def dialect_options(url: URL) -> dict[str, Any]:
    """Engine options that spare each new engine work the hub never needs.

    A worker builds an engine per tenant it serves (and again after
    evicting it, see the workers' connector cache), and SQLAlchemy's
    PostgreSQL drivers look up the ``hstore`` type on an engine's first
    connection: a catalogue query that was a quarter of what connecting cost
    the ERP's server and the worker. ERP reads never use hstore.
    """
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2"):
        return {"use_native_hstore": False}
    return {}


# On PostgreSQL (libpq's drivers): a connection whose peer went silent is
# dead after about 25 s, and the server ends a session of ours left idle in a
# transaction for 30 s. The connectors send a transaction's statements back
# to back, so only a worker cut off mid-transaction (a partition) idles there,
# and without the limit its half-written orders would hold the order table's
# unique index, blocking every other worker's raise, for as long as the ERP's
# server takes to notice (hours by default).
_LIBPQ_NETWORK: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25000,
    # The same limits on the server's end (session settings any user may
    # set): a backend whose client vanished while it was sending results
    # drops the connection after 25 s of unacknowledged data.
    "options": "-c idle_in_transaction_session_timeout=30000 -c tcp_user_timeout=25000 "
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
}


def connect_args(url: URL, seconds: int) -> dict[str, Any]:
    """A connect timeout under each driver's own name for it (and, on
    PostgreSQL, the network limits above).

    Without one a dead server makes a worker wait minutes (the OS's TCP
    timeout) before the retry machinery gets a chance. A setting the URL
    already names is left alone.
    """
    key = (url.get_backend_name(), url.get_driver_name())
    args: dict[str, Any] = {}
    if key in (("postgresql", "psycopg"), ("postgresql", "psycopg2")):
        args.update({k: v for k, v in _LIBPQ_NETWORK.items() if k not in url.query})
    name = _CONNECT_TIMEOUT.get(key)
    if name is not None and name not in url.query:
        args[name] = seconds
    return args


def build_engine(url: URL, connect_seconds: int) -> Engine:
    """An engine with the hub's defaults for reading an ERP's database.

    Connections are checked before use (an ERP's server restarts without
    telling anyone) and recycled before SQL Server or MySQL drops them as
    idle. Raises what ``create_engine`` raises for a driver that is not
    installed or a URL it cannot use; the connector words those.
    """
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "connect_args": connect_args(url, connect_seconds),
    }
    if url.get_backend_name() != "sqlite":
        options["pool_recycle"] = 1800
    options.update(dialect_options(url))
    return create_engine(url, **options)
