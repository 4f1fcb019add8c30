"""A per-source concurrency limit shared by every worker process.

iSync and SYSPRO allow one session per user, and any ERP can be swamped by
many workers at once, so each source has a number of slots. A slot is a
lease that expires: a worker killed while holding one cannot block the
source for longer than the lease.

With a Redis broker the slots live in a Redis sorted set (member: holder
token, score: expiry), taken atomically by a small Lua script. Otherwise
(the embedded default) they are rows in ``source_leases``.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from hub.db import session_scope
from hub.models import SourceLease, utcnow
from hub.settings import get_settings

_ACQUIRE = """
local key, now, expiry, limit, token = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, expiry, token)
  redis.call('EXPIRE', key, math.ceil(expiry - now) + 60)
  return 1
end
return 0
"""

_redis_client = None


def _redis():  # type: ignore[no-untyped-def]
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(get_settings().broker_url)
    return _redis_client


def _uses_redis() -> bool:
    return get_settings().broker_url.startswith(("redis://", "rediss://"))


def acquire(source_id: int, limit: int, lease_seconds: float) -> str | None:
    """A holder token if a slot was free, else None (the caller waits and retries)."""
    token = uuid.uuid4().hex
    limit = max(int(limit or 1), 1)
    if _uses_redis():
        now = time.time()
        got = _redis().eval(
            _ACQUIRE, 1, f"s2s:slots:{source_id}", now, now + lease_seconds, limit, token
        )
        return token if got == 1 else None
    expires = utcnow() + timedelta(seconds=lease_seconds)
    for slot in range(limit):
        with session_scope() as s:
            taken = s.execute(
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


def release(source_id: int, token: str) -> None:
    if _uses_redis():
        _redis().zrem(f"s2s:slots:{source_id}", token)
        return
    with session_scope() as s:
        s.execute(
            delete(SourceLease).where(
                SourceLease.source_id == source_id, SourceLease.holder == token
            )
        )


def reset_client() -> None:
    """Forget the Redis client (tests change the broker URL)."""
    global _redis_client
    _redis_client = None
