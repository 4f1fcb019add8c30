"""The API's channel URLs: a channel's push state, the products its store
refused, and starting a push (``workers.pushing.start_push``).

Authenticated as every client URL is (``s2s.api_parts``); the channel is
found in the same session as the client, in the threadpool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from hub import pushes, queries
from hub.db import session_scope
from hub.models import Channel, Client
from s2s.api_parts import error, json_body, let_in, query_limit
from s2s.openapi_push import RECENT_PUSHES
from workers import channels as channel_records
from workers.pushing import channel_summary, start_push

PUSH_FLAGS = ("full", "retry_refused")
T = TypeVar("T")


def _authorised_channel(request: Request, s: Session) -> tuple[Client, Channel] | JSONResponse:
    """The URL's client (authenticated by its own token) and one of its
    channels; looked up only once the token matched, so another client's
    token learns nothing of which channels exist."""
    client = let_in(request, queries.client_by_code(s, request.path_params["client"]))
    if isinstance(client, JSONResponse):
        return client
    code = request.path_params["channel"]
    row = channel_records.get_channel(s, client, code)
    if row is None:
        return error(404, f"client {client.code!r} has no channel {code!r}")
    return client, row


async def _on_channel(
    request: Request, work: Callable[[Session, Client, Channel], T]
) -> T | JSONResponse:
    """``work`` on the URL's channel, in one session in the threadpool."""

    def run() -> T | JSONResponse:
        with session_scope() as s:
            found = _authorised_channel(request, s)
            return found if isinstance(found, JSONResponse) else work(s, *found)

    return await run_in_threadpool(run)


async def channel(request: Request) -> JSONResponse:
    """The channel's push state (as ``s2s status`` shows it) and its latest runs."""

    def load(s: Session, _: Client, row: Channel) -> JSONResponse:
        recent = pushes.runs_of(s, row, RECENT_PUSHES)
        return JSONResponse(
            {
                **channel_summary(row, s),
                "recent_pushes": [pushes.run_view(r) for r in recent],
            }
        )

    return await _on_channel(request, load)


async def channel_problems(request: Request) -> JSONResponse:
    """Products the channel's store refused, with the store's words."""
    limit = query_limit(request)
    if isinstance(limit, JSONResponse):
        return limit

    def load(s: Session, _: Client, row: Channel) -> JSONResponse:
        return JSONResponse({"problems": pushes.problems(s, row, limit)})

    return await _on_channel(request, load)


@dataclass(frozen=True)
class _Push:
    full: bool
    retry_refused: bool


async def _push_request(request: Request) -> _Push | JSONResponse:
    """The body's flags, or a 400 naming what is wrong with them; an unknown
    key is refused, so a misspelt flag never starts a push it did not ask for."""
    body: Any = {}
    raw = await request.body()
    if raw:
        body = json_body(raw)
        if isinstance(body, JSONResponse):
            return body
        if not isinstance(body, dict):
            return error(400, 'the body must be a JSON object such as {"full": true}')
    unknown = sorted(str(k) for k in set(body) - set(PUSH_FLAGS))
    if unknown:
        known = ", ".join(repr(f) for f in PUSH_FLAGS)
        return error(400, f"unknown key {', '.join(map(repr, unknown))} (known: {known})")
    for flag in PUSH_FLAGS:
        if not isinstance(body.get(flag, False), bool):
            return error(400, f"{flag!r} must be true or false")
    return _Push(bool(body.get("full")), bool(body.get("retry_refused")))


async def push(request: Request) -> JSONResponse:
    """Start a push of the channel: 202 when started, 200 naming the push
    already running, 409 for a channel that takes orders only."""
    found = await _on_channel(request, lambda _s, client, row: (client.code, row.code, row.id))
    if isinstance(found, JSONResponse):
        return found
    client_code, code, channel_id = found
    asked = await _push_request(request)
    if isinstance(asked, JSONResponse):
        return asked
    try:
        result = await run_in_threadpool(
            lambda: start_push(
                channel_id, full=asked.full, retry_refused=asked.retry_refused, requested_by="api"
            )
        )
    except ValueError as exc:
        return error(409, str(exc))
    except LookupError:  # removed since it was looked up
        return error(404, f"client {client_code!r} has no channel {code!r}")
    run = result.run.id
    if result.created:
        message, status = f"push {run} of {client_code}/{code} started", 202
    else:
        message = f"push {run} of {client_code}/{code} is already running; not starting another"
        status = 200
    return JSONResponse(
        {"push": run, "started": result.created, "message": message}, status_code=status
    )
