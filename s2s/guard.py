"""The API's door guard: body size, overload and each client's intake rate.

One ASGI middleware in front of every route, so that a refusal costs the
hub nothing and stores nothing:

- **413** for a body over ``S2S_MAX_BODY_BYTES``: at once when the declared
  Content-Length is over it, without reading a byte of the body; for a
  chunked body, counted as it arrives and refused the moment it passes the
  limit. The body is read here, before a request takes a database
  connection, so a slow upload never holds one; the handlers get it replayed.
  No more than the limit of any body is ever held (uvicorn reads the rest of
  a refused body off the socket and drops it, so the connection stays usable
  and the client can read its 413).
- **503 with Retry-After** when the hub cannot keep up: every request must
  take one of a fixed number of places (the database pool's capacity: a
  request admitted finds a free connection, so it never waits on the pool's
  own 30 s timeout) within ``S2S_API_QUEUE_TIMEOUT``. The place is taken
  before the handler runs, so a 503 is only ever answered before any
  transaction began: a request refused this way stored nothing and is safe
  to resend (and a resend of a stored order is the same order anyway: the
  orders' unique key, ``hub.intake``).
- **429 with Retry-After** for a client over ``S2S_CLIENT_RATE_LIMIT``
  (orders per second, with a burst of ``S2S_CLIENT_RATE_BURST``), counting
  only the requests that store: POSTs of orders and webhooks, keyed by the
  client code in the path. A request is charged only when the hub accepted
  it (a 2xx answer), so a flood of unsigned junk at a client's webhook URL
  cannot spend that client's rate; requests already in flight when the rate
  runs out may pass it by their number (at most the admitted places). The
  state lives in the broker's Redis when the broker is Redis, so every API
  process (``--workers``, more machines) shares one rate per client; in the
  process otherwise (each process then allows the rate on its own). If that
  Redis cannot be reached the process's own count stands in, and intake goes
  on.

The limits are refusals, never waits: an answer comes within about the
queue timeout plus the request's own work, inside the 5 s a channel waits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio.to_thread
from sqlalchemy.pool import QueuePool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.db import get_engine
from hub.settings import Settings, get_settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("s2s.guard")

# The routes that store an order: the client code is the path's last
# parameter (``s2s.api.create_app``), whatever prefix a proxy's root path adds.
_INTAKE: Final = (
    re.compile(r"/api/v1/clients/([^/]+)/orders$"),
    re.compile(r"/webhooks/[^/]+/([^/]+)$"),
)
# The rate limiter's Redis: answers come in well under a millisecond, so a
# slow one is treated as down rather than let requests wait on it; while it
# is down (for this long after a failure) the process's own count is used.
_REDIS_TIMEOUT: Final = 0.5
_REDIS_CONNECTIONS: Final = 16
_REDIS_RETRY_AFTER: Final = 5.0
_REFUSALS_LOGGED_EVERY: Final = 10.0


def intake_client(scope: Scope) -> str | None:
    """The client code of a request that would store an order, else None."""
    if scope.get("method") != "POST":
        return None
    for pattern in _INTAKE:
        found = pattern.search(scope.get("path", ""))
        if found:
            return found.group(1)
    return None


class _TooLarge(Exception):
    """The body passed the limit while it was being read."""


class _Gone(Exception):
    """The client went away before its body was read."""


async def _read_body(receive: Receive, limit: int) -> list[Message]:
    """The request's body messages, never more than ``limit`` bytes in all."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        size += len(message.get("body", b""))
        if size > limit:
            raise _TooLarge
        messages.append(message)
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands the body read already, then the real one
    (which then reports the client's disconnect)."""
    pending = deque(messages)

    async def replayed() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replayed


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number; -1 when it is not one."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


async def _answer(
    send: Send, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _retry_after(seconds: float) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"retry-after", str(max(1, math.ceil(seconds))).encode()),)


class _Tally:
    """Counts refusals and logs them at most every few seconds: a flood
    must not become a flood of log lines."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.logged_at = time.monotonic()

    def note(self, status: int) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        now = time.monotonic()
        if now - self.logged_at >= _REFUSALS_LOGGED_EVERY:
            shown = ", ".join(f"{n} x {s}" for s, n in sorted(self.counts.items()))
            log.warning("API refused requests in the last %.0f s: %s", now - self.logged_at, shown)
            self.counts, self.logged_at = {}, now


class LocalRates:
    """Each client's rate in this process: the generic cell rate algorithm,
    one "theoretical arrival time" per client that has been charged."""

    def __init__(self, rate: float, burst: int) -> None:
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self.due: dict[str, float] = {}

    async def wait(self, client: str) -> float:
        """Seconds until the client may store again; 0 when it may now."""
        now = time.monotonic()
        return max(0.0, self.due.get(client, now) - self.tolerance - now)

    async def charge(self, client: str) -> None:
        now = time.monotonic()
        self.due[client] = max(self.due.get(client, now), now) + self.interval


# The same algorithm in Redis, on Redis's clock (every API process shares
# it), in microseconds. The key lives until its arrival time has passed.
_WAIT_LUA: Final = """
local due = tonumber(redis.call('GET', KEYS[1]))
if not due then return 0 end
local t = redis.call('TIME')
local wait = due - tonumber(ARGV[1]) - (tonumber(t[1]) * 1000000 + tonumber(t[2]))
if wait > 0 then return wait end
return 0
"""
_CHARGE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local due = tonumber(redis.call('GET', KEYS[1])) or now
if due < now then due = now end
due = due + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', due), 'PX', math.ceil((due - now) / 1000) + 1000)
return 1
"""


class RedisRates:
    """Each client's rate shared by every API process through Redis; the
    process's own count (``fallback``) while Redis cannot be reached."""

    def __init__(self, url: str, rate: float, burst: int) -> None:
        self.url = url
        self.fallback = LocalRates(rate, burst)
        self.interval_us = round(1_000_000 / rate)
        self.tolerance_us = (burst - 1) * self.interval_us
        self.down_until = 0.0
        # redis.asyncio's connections belong to the event loop that made them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            from redis.asyncio import BlockingConnectionPool, Redis

            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=_REDIS_CONNECTIONS,
                timeout=_REDIS_TIMEOUT,
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
            )
            client = self._clients[loop] = Redis(connection_pool=pool)
        return client

    async def _run(self, lua: str, client: str, arg: int) -> int | None:
        """The script's answer, or None when Redis failed (then down a while)."""
        if time.monotonic() < self.down_until:
            return None
        try:
            return int(await self._client().eval(lua, 1, f"s2s:rate:{client}", arg))
        except Exception as exc:  # any Redis trouble: intake must go on
            self.down_until = time.monotonic() + _REDIS_RETRY_AFTER
            log.warning(
                "client rate limit: Redis unreachable (%s); this process counts alone for %.0f s",
                type(exc).__name__,
                _REDIS_RETRY_AFTER,
            )
            return None

    async def wait(self, client: str) -> float:
        micros = await self._run(_WAIT_LUA, client, self.tolerance_us)
        if micros is None:
            return await self.fallback.wait(client)
        return micros / 1_000_000

    async def charge(self, client: str) -> None:
        await self.fallback.charge(client)
        await self._run(_CHARGE_LUA, client, self.interval_us)


Rates = LocalRates | RedisRates


def rates_for(settings: Settings) -> Rates | None:
    """The client rate limiter the settings ask for, kept where the broker is."""
    rate = settings.client_rate_limit
    if rate is None:
        return None
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisRates(settings.broker_url, rate, settings.client_rate_burst)
    return LocalRates(rate, settings.client_rate_burst)


def admitted_places() -> int:
    """How many requests may be in the handlers at once: the database pool's
    capacity (each request holds at most one connection at a time), and no
    more than the threadpool's threads, which run every database call."""
    threads = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
    pool = get_engine().pool
    if isinstance(pool, QueuePool) and pool._max_overflow >= 0:
        return max(1, min(pool.size() + pool._max_overflow, threads))
    return threads


@dataclass(frozen=True)
class _Refusal:
    status: int
    message: str
    retry_after: float | None = None


class Guard:
    """ASGI middleware: the limits above, in the order cheapest first."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        self.app = app
        self.settings = settings or get_settings()
        self.rates = rates_for(self.settings)
        self.tally = _Tally()
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    def _gate(self) -> asyncio.Semaphore:
        """The admitted places, one set per event loop (a semaphore belongs to one)."""
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(admitted_places())
        return gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = intake_client(scope) if self.rates is not None else None
        refused = await self._before_body(scope, client)
        body = None if refused else await self._body(receive)
        if isinstance(body, _Refusal):
            refused, body = body, None
        if refused is not None:
            self.tally.note(refused.status)
            extra = () if refused.retry_after is None else _retry_after(refused.retry_after)
            await _answer(send, refused.status, refused.message, extra)
        elif body is not None:  # None: the client went away, nobody to answer
            await self._admit(scope, _replay(body, receive), send, client)

    async def _body(self, receive: Receive) -> list[Message] | _Refusal | None:
        """The body's messages; a 413 once it passes the limit; None if the
        client went away first."""
        try:
            return await _read_body(receive, self.settings.max_body_bytes)
        except _Gone:
            return None
        except _TooLarge:
            return self._too_large()

    async def _before_body(self, scope: Scope, client: str | None) -> _Refusal | None:
        """A refusal decided from the headers and path alone, or None."""
        declared = _declared_length(scope)
        if declared is not None and declared < 0:
            return _Refusal(400, "Content-Length must be a whole number of bytes")
        if declared is not None and declared > self.settings.max_body_bytes:
            return self._too_large()
        if client is not None and self.rates is not None:
            wait = await self.rates.wait(client)
            if wait > 0:
                return _Refusal(
                    429,
                    f"client {client!r} is over its intake rate ("
                    f"{self.settings.client_rate_limit:g} orders per second, "
                    "S2S_CLIENT_RATE_LIMIT); nothing was stored: "
                    f"send it again in {max(1, math.ceil(wait))} s",
                    wait,
                )
        return None

    def _too_large(self) -> _Refusal:
        return _Refusal(
            413,
            f"the request body is larger than the hub takes "
            f"({self.settings.max_body_bytes} bytes, S2S_MAX_BODY_BYTES)",
        )

    async def _admit(self, scope: Scope, receive: Receive, send: Send, client: str | None) -> None:
        """Run the handler once a place is free; 503 when none frees in time."""
        gate = self._gate()
        timeout = self.settings.api_queue_timeout
        try:
            async with asyncio.timeout(timeout):
                await gate.acquire()
        except TimeoutError:
            self.tally.note(503)
            await _answer(
                send,
                503,
                "the hub is busy and cannot take this request now; nothing was stored: "
                f"send it again in {max(1, math.ceil(timeout))} s",
                _retry_after(timeout),
            )
            return
        try:
            await self.app(scope, receive, self._charging(send, client))
        finally:
            gate.release()

    def _charging(self, send: Send, client: str | None) -> Send:
        """``send``, charging the client's rate when the hub accepts its order
        (before the answer leaves, so the client's next request sees it)."""
        rates = self.rates
        if client is None or rates is None:
            return send

        async def charged(message: Message) -> None:
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                await rates.charge(client)
            await send(message)

        return charged
