"""The HTTP API: health, metrics, on-demand resyncs and pushes, status and history, per client.

Each client authenticates with its own bearer token (issued by
``s2s client add``, stored only as a hash), and can see and act on its own
sources and channels only: a token for one client is refused on another's
URLs. Every database read runs in the threadpool, never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from connectors.intake import ChannelPayloadError
from hub import catalogue, queries, schedule
from hub.db import session_scope
from hub.models import Client, Order, Source, SyncRun
from hub.schemas.scalars import kept_value
from s2s import actions, api_push
from s2s.api_parts import (
    authorise,
    error,
    json_body,
    let_in,
    off_loop,
    query_limit,
    stored_text,
    webhook_of,
    webhook_signed,
)
from s2s.console.app import create_console
from s2s.guard import Guard
from s2s.metrics import CONTENT_TYPE, collect
from s2s.openapi import openapi_json
from workers import channels as channel_records
from workers import kinds
from workers.ops import queue_depths, workers_online
from workers.orders import submit
from workers.pushing import channel_summary
from workers.sources import connector_class, unsupported_stream
from workers.tasks import SyncStart, start_sync

STREAMS = ("products", "customers")


def _health_checks() -> dict[str, str]:
    """The database's and the broker's answers; blocking, so in the threadpool."""
    checks: dict[str, str] = {}
    try:
        queries.ping()
        checks["database"] = "ok"
    except Exception as exc:  # report, do not raise: this is the health probe
        checks["database"] = f"unreachable: {type(exc).__name__}"
    depths = queue_depths(timeout=2.0)
    checks["broker"] = "ok" if any(v is not None for v in depths.values()) else "unreachable"
    return checks


async def health(_: Request) -> JSONResponse:
    checks = await run_in_threadpool(_health_checks)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503
    )


def _run_json(run: SyncRun) -> dict[str, Any]:
    """A run with every count (``hub.runs.RECORD_OUTCOMES``; their meanings
    in ``hub.store.Counts``), as the OpenAPI document's run schema lists them."""
    return {
        "id": run.id,
        "stream": run.stream,
        "status": run.status,
        "requested_by": run.requested_by,
        "fetched": run.fetched,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "deleted": run.deleted,
        "skipped": run.skipped,
        "ignored": run.ignored,
        "quarantined": run.quarantined,
        "pages_done": run.pages_done,
        "pages_total": run.pages_total,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def _authorised_source(request: Request) -> tuple[Client, Source] | JSONResponse:
    """The URL's client (authenticated by its own token) and one of its sources."""
    code, source_code = request.path_params["client"], request.path_params["source"]
    with session_scope() as s:
        found = queries.client_and_source(s, code, source_code)
    client = let_in(request, found[0] if found else None)
    if isinstance(client, JSONResponse):
        return client
    source = found[1] if found else None
    if source is None:
        return error(404, f"client {client.code!r} has no source {source_code!r}")
    return client, source


@dataclass(frozen=True)
class _Resync:
    """What a resync request asks for, once its body has been checked."""

    stream: str
    full: bool
    since: str | None
    queue: bool


async def _resync_request(request: Request, source: Source) -> _Resync | JSONResponse:
    """The body's stream, flags and time, or a 4xx saying what is wrong with them."""
    body: dict[str, Any] = {}
    raw = await request.body()
    if raw:
        parsed = json_body(raw)
        if isinstance(parsed, JSONResponse):
            return parsed
        body = parsed
        if not isinstance(body, dict):
            return error(400, 'the body must be a JSON object such as {"stream": "products"}')
    stream = body.get("stream", "products")
    cls = connector_class(source.kind)
    if stream not in cls.streams:
        return error(422, unsupported_stream(cls, stream))
    for flag in ("full", "queue"):
        if not isinstance(body.get(flag, False), bool):
            return error(400, f"{flag!r} must be true or false")
    since = body.get("since")
    if since is not None:
        try:
            since = actions.parse_since(str(since), "'since'")
        except actions.ActionError as exc:
            return error(400, str(exc))
    return _Resync(stream, bool(body.get("full")), since, bool(body.get("queue", False)))


def _resync_answer(result: SyncStart) -> JSONResponse:
    """202 when a run started or was queued behind the active one, 200 when refused."""
    if result.created:
        message, status = f"run {result.run.id} started", 202
    elif result.queued:
        message = (
            f"run {result.run.id} is active for this stream; this resync is queued and "
            "starts when it ends"
        )
        status = 202
    else:
        message = (
            f"run {result.run.id} is already active for this stream; not starting another "
            '(send "queue": true to run one after it)'
        )
        status = 200
    return JSONResponse(
        {
            "run": result.run.id,
            "started": result.created,
            "queued": result.queued,
            "message": message,
        },
        status_code=status,
    )


async def resync(request: Request) -> JSONResponse:
    found = await run_in_threadpool(_authorised_source, request)
    if isinstance(found, JSONResponse):
        return found
    _, source = found
    asked = await _resync_request(request, source)
    if isinstance(asked, JSONResponse):
        return asked
    result = await run_in_threadpool(
        lambda: start_sync(
            source.id,
            asked.stream,
            requested_by="api",
            full=asked.full or None,
            since=asked.since,
            queue_behind=asked.queue,
        )
    )
    return _resync_answer(result)


async def client_status(request: Request) -> JSONResponse:
    """The client's sources: per stream the schedule, pause, next due time,
    a queued resync, and the last run with its counts and progress; and per
    channel the push's state (``workers.pushing.channel_summary``)."""
    client = await authorise(request)
    if isinstance(client, JSONResponse):
        return client

    def load() -> JSONResponse:
        with session_scope() as s:
            out = [
                {
                    "source": row.source.code,
                    "kind": row.source.kind,
                    "stream": row.stream.stream,
                    "enabled": row.source.enabled,
                    "schedule": schedule.of(row.stream).describe(),
                    "paused": row.stream.paused,
                    "next_due_at": (
                        row.stream.next_due_at.isoformat() if row.stream.next_due_at else None
                    ),
                    "resync_queued": row.stream.queued_at is not None,
                    "last_run": _run_json(row.last_run) if row.last_run else None,
                }
                for row in queries.stream_statuses(s, client.id)
            ]
            shown = [channel_summary(row, s) for row in channel_records.list_channels(s, client)]
        return JSONResponse({"client": client.code, "streams": out, "channels": shown})

    return await run_in_threadpool(load)


async def metrics(_: Request) -> Response:
    """Prometheus scrape: aggregates only, no client names (see s2s.metrics)."""

    def load() -> str:
        depths = queue_depths(timeout=2.0)
        workers = workers_online(timeout=1.0)
        with session_scope() as s:
            return collect(s, depths, workers)

    return Response(await run_in_threadpool(load), media_type=CONTENT_TYPE)


async def runs(request: Request) -> JSONResponse:
    found = await run_in_threadpool(_authorised_source, request)
    if isinstance(found, JSONResponse):
        return found
    _, source = found
    try:
        limit = min(max(int(request.query_params.get("limit", "20")), 1), 200)
    except ValueError:
        return error(400, "limit must be a whole number")

    def load() -> JSONResponse:
        with session_scope() as s:
            rows = queries.recent_runs(s, source.id, limit)
            return JSONResponse({"runs": [_run_json(r) for r in rows]})

    return await run_in_threadpool(load)


def _stored(result: Any) -> JSONResponse:
    order = result.order
    body = {
        "order": order.id,
        "channel_order_code": order.channel_order_code,
        "status": order.status,
        "duplicate": not result.created,
    }
    return JSONResponse(body, status_code=201 if result.created else 200)


def _invalid(errors: list[tuple[str, str]]) -> JSONResponse:
    return JSONResponse(
        {
            "error": "the order is not valid: "
            + "; ".join(f"{field}: {message}" for field, message in errors[:5]),
            "errors": [{"field": f, "message": m} for f, m in errors],
        },
        status_code=422,
    )


async def submit_order(request: Request) -> JSONResponse:
    """Intake of a canonical order. The row is committed before the answer."""
    client = await authorise(request)
    if isinstance(client, JSONResponse):
        return client
    raw = await request.body()
    payload = await off_loop(len(raw), lambda: json_body(raw))
    if isinstance(payload, JSONResponse):
        return payload
    if isinstance(payload, dict):
        payload.setdefault("channel", "api")

    result, errors = await run_in_threadpool(submit, client.id, payload)
    if result is None:
        return _invalid(errors)
    return _stored(result)


async def order_status(request: Request) -> JSONResponse:
    client = await authorise(request)
    if isinstance(client, JSONResponse):
        return client

    def load() -> JSONResponse:
        with session_scope() as s:
            order = s.get(Order, int(request.path_params["order_id"]))
            if order is None or order.client_id != client.id:
                return error(404, "no such order for this client")
            history = queries.order_history(s, order.id)
            return JSONResponse(
                {
                    "order": order.id,
                    "channel": order.channel,
                    "channel_order_code": order.channel_order_code,
                    "status": order.status,
                    "document_number": order.document_number,
                    "attempts": order.attempts,
                    "last_error": order.last_error,
                    "history": [
                        {"at": e.at.isoformat(), "status": e.status, "message": e.message}
                        for e in history
                    ],
                }
            )

    return await run_in_threadpool(load)


async def webhook(request: Request) -> JSONResponse:
    """A channel's order webhook: signature first, then store once, then route.

    The signature is checked against the raw bytes with the client's own
    secret, so a delivery signed for one client cannot create an order for
    another, and a bad signature stores nothing.
    """
    channel = request.path_params["channel"]
    if channel not in kinds.channel_names():
        return error(404, f"no webhook for channel {channel!r}")
    intake = kinds.channel_intake(channel)
    code = request.path_params["client"]
    hook = await webhook_of(code, channel)
    if hook is None:
        return error(404, f"no client {code!r}")
    raw = await request.body()
    if intake.is_ping(raw):
        # A channel's ping when a webhook is created: unsigned, holds no
        # order, stores nothing.
        return JSONResponse({"ping": "ok"})
    signature = request.headers.get(intake.SIGNATURE_HEADER)
    signed = await webhook_signed(
        code, channel, hook, lambda secret: intake.verify(raw, signature, secret), len(raw)
    )
    if isinstance(signed, JSONResponse):
        return signed
    status = signed.settings.get("add_order_status") or intake.DEFAULT_ADD_ORDER_STATUS

    def read() -> tuple[Any, Any] | JSONResponse:
        payload = json_body(raw)
        if isinstance(payload, JSONResponse):
            return payload
        try:
            return payload, intake.order(payload, add_order_status=status)
        except ChannelPayloadError as exc:
            return error(422, f"the {channel} order cannot be read: {exc}")

    outcome = await off_loop(len(raw), read)
    if isinstance(outcome, JSONResponse):
        return outcome
    payload, order = outcome
    delivery = request.headers.get(intake.DELIVERY_HEADER)
    text = stored_text(raw)
    # The body is kept for the record: a value JSONB cannot hold (a NUL, a
    # lone surrogate) in a field the order does not use must not refuse it.
    kept = payload if text is not None else kept_value(payload)
    result, errors = await run_in_threadpool(
        lambda: submit(signed.client_id, order, raw=kept, delivery_id=delivery, raw_text=text)
    )
    if result is None:
        return _invalid(errors)
    return _stored(result)


async def _feed(request: Request, stream: str) -> JSONResponse:
    """The change feed of the client's ``stream`` (``hub.catalogue.feed``):
    each change once, in commit order, deletions as tombstones."""
    client = await authorise(request)
    if isinstance(client, JSONResponse):
        return client
    limit = query_limit(request)
    if isinstance(limit, JSONResponse):
        return limit
    after = request.query_params.get("after") or None

    def load() -> JSONResponse:
        try:
            with session_scope() as s:
                return JSONResponse(catalogue.feed(s, client.id, stream, after, limit))
        except catalogue.CursorError as exc:
            return error(400, str(exc))

    return await run_in_threadpool(load)


async def _record(request: Request, stream: str, key: str) -> JSONResponse:
    client = await authorise(request)
    if isinstance(client, JSONResponse):
        return client
    code = request.path_params[key]

    def load() -> dict[str, Any] | None:
        with session_scope() as s:
            return catalogue.one(s, client.id, stream, code)

    found = await run_in_threadpool(load)
    if found is None:
        return error(404, f"client {client.code!r} has no {stream[:-1]} {code!r}")
    return JSONResponse(found)


async def products(request: Request) -> JSONResponse:
    return await _feed(request, "products")


async def product(request: Request) -> JSONResponse:
    """A product by its code or the SKU of any of its variants."""
    return await _record(request, "products", "sku")


async def customers(request: Request) -> JSONResponse:
    return await _feed(request, "customers")


async def customer(request: Request) -> JSONResponse:
    return await _record(request, "customers", "code")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", metrics),
            Route("/openapi.json", openapi_json),
            Route("/api/v1/clients/{client}/status", client_status),
            Route("/api/v1/clients/{client}/sources/{source}/resync", resync, methods=["POST"]),
            Route("/api/v1/clients/{client}/sources/{source}/runs", runs),
            Route("/api/v1/clients/{client}/orders", submit_order, methods=["POST"]),
            Route("/api/v1/clients/{client}/orders/{order_id:int}", order_status),
            Route("/api/v1/clients/{client}/products", products),
            Route("/api/v1/clients/{client}/products/{sku}", product),
            Route("/api/v1/clients/{client}/customers", customers),
            Route("/api/v1/clients/{client}/customers/{code}", customer),
            Route("/api/v1/clients/{client}/channels/{channel}", api_push.channel),
            Route(
                "/api/v1/clients/{client}/channels/{channel}/push", api_push.push, methods=["POST"]
            ),
            Route(
                "/api/v1/clients/{client}/channels/{channel}/problems", api_push.channel_problems
            ),
            Route("/webhooks/{channel}/{client}", webhook, methods=["POST"]),
            # The operations console: its own sessions and CSRF (s2s.console).
            Mount("/console", app=create_console()),
        ],
        # Body size, overload and client rate: refused before any handler runs.
        middleware=[Middleware(Guard)],
    )
