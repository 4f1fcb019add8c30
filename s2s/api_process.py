"""The API as ``s2s api`` serves it: one process's database pool and thread
limit sized together (``S2S_API_DB_POOL``), in every process uvicorn starts.

Every blocking call a handler makes (the database, the broker) runs in
anyio's thread pool, which allows 40 threads by default, while an engine's
pool kept 5 connections and opened up to 5 more for a moment. At 32
concurrent requests most threads waited for a connection, and the extra
connections were opened and closed again, burst after burst: throughput fell
as concurrency rose. Here the process gets as many threads as connections
and keeps them all open, so a thread never waits for a connection, and a
request beyond that waits for a thread (``s2s.guard`` answers one that waits
too long) instead of holding a thread that waits.

``uvicorn --workers N`` starts each process by importing ``create_served_app``
afresh (a spawned interpreter, not a fork), so each sizes its own pool here.
"""

from __future__ import annotations

import gc

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.db import use_pool
from hub.logs import configure
from hub.settings import get_settings
from s2s.api import create_app


class ThreadLimit:
    """Sets anyio's thread limit of the event loop serving ``app`` (the limit
    belongs to the loop, which exists only once the server runs)."""

    def __init__(self, app: ASGIApp, threads: int) -> None:
        self.app = app
        self.threads = threads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        if limiter.total_tokens != self.threads:
            limiter.total_tokens = self.threads
        await self.app(scope, receive, send)


def create_served_app() -> ASGIApp:
    """The API with this process's pool and thread limit set, and the hub's
    log format (a spawned process does not inherit the command's)."""
    settings = get_settings()
    configure(
        settings.log_format, "WARNING" if settings.log_level == "INFO" else settings.log_level
    )
    use_pool(settings.api_db_pool)
    app = ThreadLimit(create_app(), settings.api_db_pool)
    freeze_imports()
    return app


def freeze_imports() -> None:
    """Move everything alive now (modules, classes, the app) out of the
    garbage collector's sight.

    Importing the hub leaves about 100,000 tracked objects that live as long
    as the process; each full collection walked all of them while every
    request waited (86-120 ms measured, longer than the rest of a request's
    answer at the 99th percentile under 32 concurrent connections). Frozen, a
    full collection walks only what requests made since (``gc.freeze``: the
    objects stay alive and are never freed, which is what they would be).
    """
    gc.collect()
    gc.freeze()
