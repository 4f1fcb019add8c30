"""A per-source concurrency limit shared by every worker process.

iSync and SYSPRO allow one session per user, and any ERP can be swamped by
many workers at once, so each source has a number of slots. A slot is a
lease that expires: a worker killed while holding one cannot block the
source for longer than the lease.

With a Redis broker the slots live in a Redis sorted set (member: holder
token, score: expiry), taken atomically by a small Lua script. Otherwise
(the embedded default) they are rows in ``source_leases``.

A slot is keyed either by a source's id or by an ERP account
(``Connector.session_key()``): iSync and SYSPRO log an account's earlier
session out at every login, so every source, task and worker using one
account must share one slot, whatever source they run for.

A holder renews its leases while it works (``holding`` runs a heartbeat), so
a lease need only outlive a few missed beats, not the longest call: a worker
killed mid-call frees its ERP account within ``S2S_SLOT_LEASE`` seconds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from connectors.base import Connector
from hub.db import session_scope
from hub.models import SourceLease, utcnow
from hub.settings import get_settings
from workers.repeat import repeating

if TYPE_CHECKING:
    import redis

log = logging.getLogger("s2s.limits")

_ACQUIRE = """
local key, now, expiry, limit, token = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, expiry, token)
  local wanted = math.ceil(expiry - now) + 60
  if redis.call('TTL', key) < wanted then
    redis.call('EXPIRE', key, wanted)
  end
  return 1
end
return 0
"""

# Renew only a lease the token still holds: one that expired and was taken
# by another holder is gone from the set (the taker's ZREMRANGEBYSCORE), and
# must not come back. The set's own expiry is only ever pushed later (as in
# _ACQUIRE): a short lease must not end a longer one's set.
_RENEW = """
local key, now, expiry, token = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if not redis.call('ZSCORE', key, token) then
  return 0
end
redis.call('ZADD', key, 'XX', expiry, token)
local wanted = math.ceil(expiry - now) + 60
if redis.call('TTL', key) < wanted then
  redis.call('EXPIRE', key, wanted)
end
return 1
"""

_redis_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        import redis

        settings = get_settings()
        _redis_client = redis.Redis.from_url(
            settings.broker_url,
            socket_timeout=settings.broker_timeout,
            socket_connect_timeout=settings.broker_timeout,
            socket_keepalive=True,
        )
    return _redis_client


def _uses_redis() -> bool:
    return get_settings().broker_url.startswith(("redis://", "rediss://"))


Key = int | str


def _lease_id(key: Key) -> int:
    """The ``source_leases.source_id`` a key's slots are stored under.

    A source's own slots use its id; an account's use a negative number
    derived from the account key, which no source id can equal.
    """
    if isinstance(key, int):
        return key
    return -int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)


def acquire(key: Key, limit: int, lease_seconds: float) -> str | None:
    """A holder token if a slot was free, else None (the caller waits and retries)."""
    token = uuid.uuid4().hex
    limit = max(int(limit or 1), 1)
    if _uses_redis():
        now = time.time()
        got = _redis().eval(_ACQUIRE, 1, f"s2s:slots:{key}", now, now + lease_seconds, limit, token)
        return token if got == 1 else None
    source_id = _lease_id(key)
    expires = utcnow() + timedelta(seconds=lease_seconds)
    for slot in range(limit):
        with session_scope() as s:
            taken = s.connection().execute(
                update(SourceLease)
                .where(
                    SourceLease.source_id == source_id,
                    SourceLease.slot == slot,
                    SourceLease.expires_at < utcnow(),
                )
                .values(holder=token, expires_at=expires)
            )
            if taken.rowcount == 1:
                return token
        try:
            with session_scope() as s:
                s.add(SourceLease(source_id=source_id, slot=slot, holder=token, expires_at=expires))
            return token
        except IntegrityError:
            continue  # the slot exists and is held: try the next one
    return None


def release(key: Key, token: str) -> None:
    if _uses_redis():
        _redis().zrem(f"s2s:slots:{key}", token)
        return
    source_id = _lease_id(key)
    with session_scope() as s:
        s.execute(
            delete(SourceLease).where(
                SourceLease.source_id == source_id, SourceLease.holder == token
            )
        )


def renew(key: Key, token: str, lease_seconds: float) -> bool:
    """Extend a held lease to ``lease_seconds`` from now; False when the token
    no longer holds a slot (its lease ran out and another holder took it)."""
    if _uses_redis():
        now = time.time()
        got = _redis().eval(_RENEW, 1, f"s2s:slots:{key}", now, now + lease_seconds, token)
        return bool(got == 1)
    source_id = _lease_id(key)
    with session_scope() as s:
        done = s.connection().execute(
            update(SourceLease)
            .where(SourceLease.source_id == source_id, SourceLease.holder == token)
            .values(expires_at=utcnow() + timedelta(seconds=lease_seconds))
        )
        return bool(done.rowcount)


def _renew_all(held: Sequence[tuple[Key, str]], lease_seconds: float) -> None:
    """One heartbeat of a ``holding`` block: renew each of its leases."""
    for key, token in held:
        try:
            if not renew(key, token, lease_seconds):
                # Another holder has the slot now; the block's own errors (a
                # logged-out session) are handled there.
                log.warning("slot lease of %s was lost before renewal", key)
        except Exception as exc:  # a missed beat: the next one may still land in time
            log.warning("slot lease of %s not renewed: %s", key, type(exc).__name__)


@contextmanager
def holding(slots: Sequence[tuple[Key, int]], lease_seconds: float) -> Iterator[bool]:
    """Hold a slot of every ``(key, limit)`` for the block, or none of them.

    Yields False when one was taken (what was acquired is released at once),
    so the caller reschedules its work instead of waiting inside a worker
    slot. Slots are taken in the order given; every caller passes the source
    before the account, so two callers cannot each hold what the other waits
    for. While the block runs the leases are renewed every third of
    ``lease_seconds``, so the lease bounds how long a dead holder blocks the
    slot, not how long the block may take.
    """
    held: list[tuple[Key, str]] = []
    try:
        for key, limit in slots:
            token = acquire(key, limit, lease_seconds)
            if token is None:
                break
            held.append((key, token))
        if len(held) < len(slots):
            yield False
            return
        if not held:  # nothing to hold, nothing to renew
            yield True
            return
        with repeating(
            lease_seconds / 3, lambda: _renew_all(held, lease_seconds), "slot-heartbeat"
        ):
            yield True
    finally:
        for key, token in reversed(held):
            release(key, token)


def session_slots(
    connector: Connector, source_id: int | None, limit: int | None
) -> list[tuple[Key, int]]:
    """The slots a call through ``connector`` needs: its source's (when a limit
    is given) and its ERP account's (when the ERP limits sessions)."""
    slots: list[tuple[Key, int]] = []
    if source_id is not None and limit is not None:
        slots.append((source_id, limit))
    account = connector.session_key()
    if account:
        slots.append((f"account:{account}", max(int(connector.session_limit), 1)))
    return slots


def request_once(name: str, ttl_seconds: float) -> bool:
    """True when the caller should send the task named ``name``, False when
    one is already on its way (sent less than ``ttl_seconds`` ago and not
    yet started).

    This is how thousands of orders arriving in a burst become one
    "drain this source" task instead of thousands of tasks that each find
    their order already handled. The task calls ``started(name)`` before it
    looks at the database, so anything committed before a caller got False
    is seen by that task. The marker expires, so a task lost with its
    message (a flushed Redis, a killed worker) only delays the next one by
    ``ttl_seconds``; the sweeper covers the rest. Without Redis (the
    embedded broker) there is no marker and every caller sends.
    """
    if not _uses_redis():
        return True
    try:
        return bool(_redis().set(f"s2s:once:{name}", 1, nx=True, px=int(ttl_seconds * 1000)))
    except Exception:  # Redis down: sending (and failing to) is what the caller handles
        return True


def request_by(name: str, seconds: float) -> bool:
    """Like ``request_once`` for a task sent with a countdown: True unless one
    is already due within ``seconds`` (a later one does not stand in for a
    sooner one). The marker lives until the task is due."""
    if not _uses_redis():
        return True
    key = f"s2s:once:{name}"
    wanted = max(int(seconds * 1000), 1)
    try:
        due_in = _redis().pttl(key)
        if 0 <= due_in <= wanted:
            return False
        _redis().set(key, 1, px=wanted)
    except Exception:  # Redis down: sending (and failing to) is what the caller handles
        return True
    return True


def started(name: str) -> None:
    """The task behind ``request_once(name)`` has started: later callers send again."""
    if not _uses_redis():
        return
    try:
        _redis().delete(f"s2s:once:{name}")
    except Exception:  # the marker expires on its own
        return


def reset_client() -> None:
    """Forget the Redis client (tests change the broker URL)."""
    global _redis_client
    _redis_client = None


class Coalesced:
    """Calls ``fn`` for a stream of asks at most once per ``interval`` seconds
    per process: the first ask calls at once, asks within the interval are
    folded into one call at its end (a timer thread).

    Every ask is followed by a call that starts after it, so a caller that
    commits before asking is still seen by whatever the call starts (the
    guarantee ``request_once`` gives), at most ``interval`` later. Intake
    asks for routing once per order: at a thousand orders a second that was
    a Redis round trip each, a twentieth of the API process's CPU.
    """

    def __init__(self, fn: Callable[[], None], interval: float) -> None:
        self._fn = fn
        self._interval = interval
        self._lock = threading.Lock()
        self._last = -interval
        self._pending = False

    def ask(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._pending:
                return
            wait = self._last + self._interval - now
            if wait > 0:
                self._pending = True
                threading.Timer(wait, self._trailing).start()
                return
            self._last = now
        self._fn()

    def _trailing(self) -> None:
        with self._lock:
            self._pending = False
            self._last = time.monotonic()
        self._fn()
