"""What the API's handlers share: the error body, the client's token, a
webhook's secret, the request's JSON body and a ``limit`` parameter.

Kept apart from ``s2s.api`` so that the handler modules (``s2s.api``,
``s2s.api_push``) each stay small and import these without a cycle.
Functions here that read the database are called in the threadpool.

A token checked against the database, and a channel's webhook secret read
from it, are kept for ``S2S_TOKEN_CACHE_SECONDS`` (30 s): a client posting
orders then costs one database session per order (the intake's), and the
check of a token seen recently costs no thread and no round trip. The price
is that a token changed or removed in the database, a client removed, or a
webhook secret replaced keeps opening the door for up to that long in each
API process. A new webhook secret works within a second: a signature that
fails against a kept secret is checked against the database's again, at most
once a second per client and channel, so unsigned junk sent to a webhook URL
costs no database read.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from hub import queries
from hub.db import session_scope
from hub.models import Client
from hub.settings import get_settings
from workers.sources import channel_secret, channel_settings, hash_token

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

# Entries kept per cache; beyond it the least recently used is dropped, and
# its next request reads the database as every request did before.
CACHE_ENTRIES = 4096
# A kept webhook whose secret refused a signature is read again at most this
# often (seconds).
REREAD_AFTER = 1.0


class Recent(Generic[K, V]):
    """Values that live a few seconds, at most ``size`` of them, the least
    recently used dropped first. Shared by the event loop and the threadpool,
    hence the lock (held for a dictionary operation, never across I/O)."""

    def __init__(self, size: int = CACHE_ENTRIES) -> None:
        self.size = size
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: K, value: V, life: float) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + life, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# Keyed by the hub's database, the client's code and the token's SHA-256
# (never the token itself); the value is the client as read (detached from
# its session, shared by requests that only read it).
verified_tokens: Recent[tuple[str, str, str], Client] = Recent()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def let_in(request: Request, client: Client | None) -> Client | JSONResponse:
    """The URL's client if the request carries its own token: 404 for an
    unknown client, 401 for a missing token or another's."""
    if client is None:
        return error(404, f"no client {request.path_params['client']!r}")
    if not token_matches(request, client):
        return error(401, "missing or wrong bearer token for this client")
    return client


async def authorise(request: Request) -> Client | JSONResponse:
    """``authorised_client`` for an async handler: a token verified within
    ``S2S_TOKEN_CACHE_SECONDS`` is answered here on the event loop (a hash
    and a lookup), any other goes to the threadpool and the database."""
    key = _token_key(request)
    hit = verified_tokens.get(key) if key else None
    if hit is not None:
        return hit
    return await run_in_threadpool(authorised_client, request)


def authorised_client(request: Request) -> Client | JSONResponse:
    """The URL's client if the request carries its token (``let_in``);
    reads the database unless the token was verified within the cache's life."""
    key = _token_key(request)
    hit = verified_tokens.get(key) if key else None
    if hit is not None:
        return hit
    with session_scope() as s:
        found = let_in(request, queries.client_by_code(s, request.path_params["client"]))
    if key and isinstance(found, Client):
        verified_tokens.put(key, found, get_settings().token_cache_seconds)
    return found


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def _token_key(request: Request) -> tuple[str, str, str] | None:
    token = _bearer(request)
    if not token:
        return None
    return (get_settings().database_url, request.path_params["client"], hash_token(token))


def token_matches(request: Request, client: Client) -> bool:
    token = _bearer(request)
    return bool(
        token
        and client.api_token_hash
        and hmac.compare_digest(hash_token(token), client.api_token_hash)
    )


@dataclass(frozen=True)
class Webhook:
    """What a channel's webhook needs of its client: the id to store the
    order under, the signing secret and the channel's plain settings."""

    client_id: int
    secret: str | None = field(repr=False)
    settings: dict[str, Any]
    read_at: float  # time.monotonic() of the database read
    cached: bool = False


# Keyed by the hub's database, the client's code and the channel.
webhooks: Recent[tuple[str, str, str], Webhook] = Recent()


async def webhook_of(code: str, channel: str) -> Webhook | None:
    """The client's webhook for ``channel`` (None: no such client): kept
    ``S2S_TOKEN_CACHE_SECONDS``, else read in the threadpool in one session."""
    hit = webhooks.get((get_settings().database_url, code, channel))
    return hit if hit is not None else await run_in_threadpool(_read_webhook, code, channel)


def _read_webhook(code: str, channel: str) -> Webhook | None:
    settings = get_settings()
    with session_scope() as s:
        client = queries.client_by_code(s, code)
        if client is None:
            return None
        found = Webhook(
            client.id,
            channel_secret(client, channel),
            channel_settings(client, channel),
            time.monotonic(),
        )
    webhooks.put(
        (settings.database_url, code, channel),
        replace(found, cached=True),
        settings.token_cache_seconds,
    )
    return found


# A body larger than this is checked, parsed and transformed in the
# threadpool: an HMAC over a megabyte, its JSON and a channel's transform
# (about 50 ms for a 4,000-line Shopify order) would otherwise hold every
# other request on the event loop. Small bodies cost less than the hop.
OFF_LOOP_BYTES = 64 * 1024


async def off_loop(size: int, work: Callable[[], T]) -> T:
    """``work()`` on the event loop for a small body, in the threadpool for a large one."""
    if size > OFF_LOOP_BYTES:
        return await run_in_threadpool(work)
    return work()


async def webhook_signed(
    code: str, channel: str, hook: Webhook, signed_by: Callable[[str], bool], size: int = 0
) -> Webhook | JSONResponse:
    """``hook`` if the delivery is signed with its secret (``signed_by``
    checks the raw body, of ``size`` bytes, against one); 401 if not. A kept
    secret that fails is read again from the database, at most every
    ``REREAD_AFTER`` seconds, so a secret just replaced works within that."""

    async def signs(secret: str | None) -> bool:
        return bool(secret) and await off_loop(size, lambda: signed_by(str(secret)))

    if await signs(hook.secret):
        return hook
    if hook.cached and time.monotonic() - hook.read_at >= REREAD_AFTER:
        fresh = await run_in_threadpool(_read_webhook, code, channel)
        if fresh is None:
            return error(404, f"no client {code!r}")
        hook = fresh
        if await signs(hook.secret):
            return hook
    if not hook.secret:
        return error(401, f"client {code!r} has no {channel} webhook secret set")
    return error(401, "the webhook signature does not match")


def stored_text(body: bytes) -> str | None:
    """A JSON body that parsed, as the text the database may store as it was
    sent (no second encoding of the parsed value): UTF-8 without a byte-order
    mark, which is what channels send; None for anything else (the parsed
    value is then stored through ``kept_value``). A NUL byte cannot be in
    UTF-8 JSON that parsed: such a body was UTF-16 or UTF-32, which the
    parser also reads. An escaped NUL or surrogate (``\\u0000``,
    ``\\ud83d``) is left to ``kept_value`` too: JSONB refuses the first and
    a surrogate that pairs with nothing."""
    if body.startswith(b"\xef\xbb\xbf") or b"\x00" in body:
        return None
    if b"\\u" in body and (b"\\u0000" in body or b"\\ud" in body.lower()):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def json_body(raw: bytes) -> Any | JSONResponse:
    """The parsed body, or a 400 saying why not: never a 500 for what a caller sent."""
    try:
        return json.loads(raw)
    except RecursionError:
        return error(400, "the body is not valid JSON: it is nested too deeply")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        return error(400, f"the body is not valid JSON: {reason}{where}")


def query_limit(request: Request) -> int | JSONResponse:
    raw = request.query_params.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        return error(400, f"limit must be a whole number from 1 to 1000, not {raw!r}")
    return limit
