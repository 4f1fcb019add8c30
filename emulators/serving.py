"""Serving an emulator's app on a local port from a background thread.

Tests and the demo run the IQ Retail, iSync and SYSPRO emulators inside
their own process, so the hub's workers (separate processes) reach them over
real HTTP. The socket is bound before the thread starts, so a free port is
taken without a race, and the block begins only once the app answers its
``/_faults`` endpoint (every emulator has one).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send


@contextmanager
def in_thread(
    app: Any,
    *,
    title: str,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    lifespan: Literal["auto", "on", "off"] = "on",
) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http="h11", lifespan=lifespan, log_level="warning", access_log=False, ws="none"
    )
    server = uvicorn.Server(config)
    name = title.lower().replace(" ", "-") + "-emulator"
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    base_url = f"http://{host}:{bound}"
    try:
        _wait_until_up(base_url, server, thread, startup_timeout, title)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_until_up(
    base_url: str, server: uvicorn.Server, thread: threading.Thread, timeout: float, title: str
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"the {title} emulator stopped while starting")
        if server.started:
            try:
                if httpx.get(f"{base_url}/_faults", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"the {title} emulator did not answer within {timeout} s")


# Where a request finds how to drop its own connection (``DroppableApp``).
DROP_KEY = "emulator.close_connection"


async def close_connection(send: Send) -> bool:
    """Close the client's connection without a response; False if impossible here.

    ASGI cannot abort a connection, so this reaches uvicorn's request cycle
    through the ``send`` it handed to the app and closes the transport, then
    waits until uvicorn noticed, so the response still returned goes nowhere.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None or not hasattr(cycle, "disconnected"):
        return False
    transport.close()
    for _ in range(200):
        if cycle.disconnected:
            break
        await asyncio.sleep(0.005)
    return True


class DroppableApp(Starlette):
    """A Starlette app whose requests can drop their connection after the
    work is done (the fault "the answer was lost after the server committed"):
    ``await request.scope[DROP_KEY]()``, False when served without uvicorn."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[DROP_KEY] = lambda: close_connection(send)
        await super().__call__(scope, receive, send)
