"""What the connectors that read an ERP's database (the SQL template,
SYSPRO) share about building SQLAlchemy engines."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL


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
