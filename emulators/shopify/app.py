"""The HTTP side: the Admin GraphQL endpoint, staged uploads, bulk results, faults.

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``
is parsed, validated and executed by graphql-core; every answer carries
``extensions.cost`` from :mod:`.cost`. ``POST /_staged/upload`` takes a
staged upload as a multipart form (the target's parameters, then ``file``),
``GET /_bulk/{id}.jsonl`` serves a bulk operation's results, ``GET|POST
/_faults`` shows and sets faults by hand.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email import policy as email_policy
from email.parser import BytesParser
from typing import Any

from graphql import (
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from emulators.serving import DROP_KEY as _DROP_KEY
from emulators.serving import DroppableApp

from . import resolvers
from .cost import SINGLE_QUERY_MAX_COST, CostBucket, CostCalculator
from .schema import ERA_2025_10, ERA_2026_01, ERA_2026_04, era
from .store import Store, user_error

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"


class ConnectionDropped(Exception):
    """Raised where the server cannot drop the connection itself (e.g. TestClient)."""


class Faults:
    """Faults a test switches on, and counts of what arrived; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fail_next = 0
        self.fail_status = 503
        self.throttle_next = 0
        self.drop_after_commit = 0
        # The next bulk mutation operations FAIL (INTERNAL_SERVER_ERROR) half-way,
        # their partial results at partialDataUrl.
        self.fail_bulk = 0
        self.refuse_skus: dict[str, str] = {}
        self.requests = 0
        self.mutations: Counter[str] = Counter()
        self.throttled = 0
        self.throttle_episodes = 0
        self.dropped = 0
        self._in_episode = False

    def refuse_sku(self, sku: str, message: str = "Product could not be saved") -> None:
        """productSet of a product with this SKU answers this userError (nothing changes)."""
        with self._lock:
            self.refuse_skus[sku] = message

    def _take(self, name: str) -> bool:
        with self._lock:
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return True
            return False

    def _throttled(self) -> None:
        with self._lock:
            self.throttled += 1
            if not self._in_episode:
                self.throttle_episodes += 1
            self._in_episode = True

    def _served(self) -> None:
        with self._lock:
            self._in_episode = False

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "fail_next": self.fail_next,
                "fail_status": self.fail_status,
                "throttle_next": self.throttle_next,
                "drop_after_commit": self.drop_after_commit,
                "fail_bulk": self.fail_bulk,
                "refuse_skus": dict(self.refuse_skus),
                "requests": self.requests,
                "mutations": dict(self.mutations),
                "throttled": self.throttled,
                "throttle_episodes": self.throttle_episodes,
                "dropped": self.dropped,
            }

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a ``POST /_faults`` body (keys as in :meth:`snapshot`)."""
        with self._lock:
            for key in (
                "fail_next",
                "fail_status",
                "throttle_next",
                "drop_after_commit",
                "fail_bulk",
            ):
                if key in spec:
                    setattr(self, key, int(spec[key]))
            self.refuse_skus.update(spec.get("refuse_skus") or {})


@dataclass
class BulkOperation:
    id: int
    mutation: str
    status: str = "CREATED"
    lines: list[str] = field(default_factory=list)
    polls_left: int = 1
    failing: bool = False


class Shop:
    """The server's state beside the store: faults, uploads, bulk operations."""

    def __init__(self, store: Store, faults: Faults, bucket: CostBucket) -> None:
        self.store = store
        self.faults = faults
        self.bucket = bucket
        self.schemas = {e: resolvers.build(e) for e in (ERA_2025_10, ERA_2026_01, ERA_2026_04)}
        self.schema = self.schemas[ERA_2025_10]
        self.uploads: dict[str, bytes] = {}
        self.bulk: dict[int, BulkOperation] = {}
        self.bulk_running_polls = 1
        # Shopify processes a bulk file's lines in no set order; False here
        # writes the results shuffled, as a client must expect (True: in order).
        self.bulk_in_order = True

    def refused_sku(self, data: dict[str, Any]) -> dict[str, Any] | None:
        for i, variant in enumerate(data.get("variants") or []):
            sku = variant.get("sku") or (variant.get("inventoryItem") or {}).get("sku")
            message = self.faults.refuse_skus.get(sku or "")
            if message is not None:
                return user_error(["input", "variants", str(i), "sku"], message, "INVALID_VARIANT")
        return None

    def staged_uploads(self, inputs: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
        targets = []
        for item in inputs:
            key = f"tmp/emulated-shop/bulk/{uuid.uuid4()}/{item['filename']}"
            params = [
                {"name": "Content-Type", "value": item["mimeType"]},
                {"name": "success_action_status", "value": "201"},
                {"name": "acl", "value": "private"},
                {"name": "key", "value": key},
            ]
            targets.append(
                {"url": f"{base_url}/_staged/upload", "resourceUrl": None, "parameters": params}
            )
        return {"stagedTargets": targets, "userErrors": []}

    def run_bulk(self, mutation: str, path: str, ctx: resolvers.Context) -> dict[str, Any]:
        """Run ``mutation`` once per uploaded JSONL line (its variables); results kept as JSONL."""
        if path not in self.uploads:
            return _bulk_refused(
                "stagedUploadPath",
                "NO_SUCH_FILE",
                "The JSONL file could not be found. Try uploading the file again, and check that"
                " you've entered the URL correctly for the stagedUploadPath mutation argument.",
            )
        schema = self.schemas[ctx.schema_era]
        if any(op.status in ("CREATED", "RUNNING") for op in self.bulk.values()):
            return _bulk_refused(
                None,
                "OPERATION_IN_PROGRESS",
                "A bulk mutation operation for this app and shop is already in progress.",
            )
        try:
            document = parse(mutation)
        except GraphQLError as exc:
            return _bulk_refused(
                "mutation", "INVALID_MUTATION", f"Failed to parse the mutation - {exc.message}"
            )
        operation = get_operation_ast(document)
        if (
            operation is None
            or operation.operation != OperationType.MUTATION
            or validate(schema, document)
        ):
            return _bulk_refused(
                "mutation",
                "INVALID_MUTATION",
                "Invalid mutation - only one mutation is allowed per bulk operation.",
            )
        op = BulkOperation(self.store.new_id(), mutation, polls_left=self.bulk_running_polls)
        op.failing = self.faults._take("fail_bulk")
        numbered = [
            (n, raw)
            for n, raw in enumerate(self.uploads[path].decode().splitlines())
            if raw.strip()
        ]
        if op.failing:
            numbered = numbered[: len(numbered) // 2]
        if not self.bulk_in_order:
            random.Random(op.id).shuffle(numbered)
        for number, raw in numbered:
            variables = json.loads(raw)
            inner = resolvers.Context(self.store, ctx.base_url, self, schema_era=ctx.schema_era)
            result = execute_sync(schema, document, variable_values=variables, context_value=inner)
            self.faults.mutations.update(inner.mutated)
            line: dict[str, Any] = {"data": result.data}
            if result.errors:
                line["errors"] = [e.formatted for e in result.errors]
            line["__lineNumber"] = number
            op.lines.append(json.dumps(line))
        self.bulk[op.id] = op
        return {"bulkOperation": self._view(op, ctx.base_url), "userErrors": []}

    def _view(self, op: BulkOperation, base_url: str) -> dict[str, Any]:
        done = op.status in ("COMPLETED", "FAILED")
        failed = op.status == "FAILED"
        results = f"{base_url}/_bulk/{op.id}.jsonl"
        return {
            "__typename": "BulkOperation",
            "id": f"gid://shopify/BulkOperation/{op.id}",
            "status": op.status,
            "type": "MUTATION",
            "errorCode": "INTERNAL_SERVER_ERROR" if failed else None,
            "createdAt": "2026-01-01T00:00:00Z",
            "completedAt": "2026-01-01T00:00:01Z" if done else None,
            "objectCount": str(len(op.lines) if done else 0),
            "rootObjectCount": str(len(op.lines) if done else 0),
            "fileSize": str(len(self.results(op.id) or b"")) if done else None,
            "url": results if done and not failed else None,
            "partialDataUrl": results if failed and op.lines else None,
            "query": op.mutation,
        }

    def _poll(self, op: BulkOperation) -> None:
        """Each look at an operation moves it on: CREATED, RUNNING, then COMPLETED (or FAILED)."""
        if op.status == "CREATED":
            op.status = "RUNNING"
        if op.status == "RUNNING":
            if op.polls_left <= 0:
                op.status = "FAILED" if op.failing else "COMPLETED"
            op.polls_left -= 1

    def bulk_view(self, number: int, base_url: str = "") -> dict[str, Any] | None:
        op = self.bulk.get(number)
        if op is None:
            return None
        self._poll(op)
        return self._view(op, base_url or self.base_url)

    def current_bulk(self, kind: str) -> dict[str, Any] | None:
        if kind != "MUTATION" or not self.bulk:
            return None
        return self.bulk_view(max(self.bulk))

    def results(self, number: int) -> bytes | None:
        op = self.bulk.get(number)
        if op is None or op.status not in ("COMPLETED", "FAILED"):
            return None
        return ("\n".join(op.lines) + "\n").encode() if op.lines else b""

    base_url = ""


def _bulk_refused(path: str | None, code: str, message: str) -> dict[str, Any]:
    return {
        "bulkOperation": None,
        "userErrors": [{"field": [path] if path else None, "message": message, "code": code}],
    }


# ---------------------------------------------------------------- requests


def _cost_extension(shop: Shop, requested: int, actual: int | None) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": shop.bucket.status(),
        }
    }


def _refused(shop: Shop, requested: int) -> dict[str, Any] | None:
    """The answer when the query costs too much or the bucket cannot pay for it."""
    if requested > SINGLE_QUERY_MAX_COST:
        message = (
            f"Query cost is {requested}, which exceeds the single query max cost limit"
            f" ({SINGLE_QUERY_MAX_COST})."
        )
        return {
            "errors": [
                {
                    "message": message,
                    "extensions": {
                        "code": "MAX_COST_EXCEEDED",
                        "cost": requested,
                        "maxCost": SINGLE_QUERY_MAX_COST,
                    },
                }
            ],
            "extensions": _cost_extension(shop, requested, None),
        }
    if shop.faults._take("throttle_next") or not shop.bucket.take(requested):
        shop.faults._throttled()
        throttled = {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
        return {"errors": [throttled], "extensions": _cost_extension(shop, requested, None)}
    return None


def _graphql(
    shop: Shop, body: Any, base_url: str, version: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """Run one request body against the schema of the URL's API ``version``;
    the answer and the mutations that took effect."""
    schema_era = era(version)
    schema = shop.schemas[schema_era]
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return {"errors": [{"message": "Parameter Missing or Invalid"}]}, []
    try:
        document = parse(body["query"])
    except GraphQLError as exc:
        return {"errors": [exc.formatted]}, []
    errors = validate(schema, document)
    if errors:
        return {"errors": [e.formatted for e in errors]}, []
    operation = get_operation_ast(document, body.get("operationName"))
    if not isinstance(operation, OperationDefinitionNode):
        return {"errors": [{"message": "An operation name is required"}]}, []
    variables = body.get("variables") or {}
    calculator = CostCalculator(schema, document, operation, variables)
    requested = calculator.requested()
    refusal = _refused(shop, requested)
    if refusal is not None:
        return refusal, []
    shop.faults._served()
    ctx = resolvers.Context(shop.store, base_url, shop, schema_era=schema_era)
    result = execute_sync(
        schema,
        document,
        variable_values=variables,
        operation_name=body.get("operationName"),
        context_value=ctx,
    )
    actual = calculator.actual(result.data)
    shop.bucket.refund(max(0, requested - actual))
    answer: dict[str, Any] = {}
    if result.errors:
        answer["errors"] = [e.formatted for e in result.errors]
    answer["data"] = result.data
    answer["extensions"] = _cost_extension(shop, requested, actual)
    return answer, ctx.mutated


class ShopifyApp(DroppableApp):
    """The Starlette app, with the server's own ``send`` kept for dropping a connection."""


def _shop(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


def _form_parts(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name (stdlib parser, no extra package)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=email_policy.HTTP).parsebytes(head + body)
    parts: dict[str, bytes] = {}
    if not message.is_multipart():
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts[name] = payload
    return parts


async def _upload_view(request: Request) -> Response:
    """A staged upload: the target's parameters as form fields, then ``file``."""
    content_type = request.headers.get("content-type", "")
    form = _form_parts(content_type, await request.body()) if "multipart/" in content_type else {}
    if "key" not in form or "file" not in form:
        return PlainTextResponse(
            "<Error><Code>InvalidArgument</Code></Error>",
            status_code=400,
            media_type="application/xml",
        )
    key = form["key"].decode()
    _shop(request).uploads[key] = form["file"]
    xml = f"<PostResponse><Key>{key}</Key></PostResponse>"
    return PlainTextResponse(xml, status_code=201, media_type="application/xml")


async def _results_view(request: Request) -> Response:
    number = int(request.path_params["number"])
    data = _shop(request).results(number)
    if data is None:
        return PlainTextResponse("Not Found", status_code=404)
    return Response(data, media_type="application/jsonl")


def create_app(shop: Shop, *, access_token: str) -> ShopifyApp:
    async def graphql_view(request: Request) -> Response:
        if request.headers.get("x-shopify-access-token") != access_token:
            return JSONResponse({"errors": INVALID_TOKEN}, status_code=401)
        shop.faults.requests += 1
        if shop.faults._take("fail_next"):
            return JSONResponse(
                {"errors": "Internal Server Error"}, status_code=shop.faults.fail_status
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"errors": "Parameter Missing or Invalid"}, status_code=400)
        base_url = str(request.base_url).rstrip("/")
        shop.base_url = base_url
        with shop.store.lock:
            answer, mutated = _graphql(shop, body, base_url, request.path_params["version"])
        shop.faults.mutations.update(mutated)
        if mutated and shop.faults._take("drop_after_commit"):
            shop.faults.dropped += 1
            close = request.scope.get(_DROP_KEY)
            if close is None or not await close():
                raise ConnectionDropped("the mutation was applied; no answer is sent")
            return Response(status_code=500)
        return JSONResponse(answer)

    async def faults_view(request: Request) -> Response:
        if request.method == "POST":
            shop.faults.configure(await request.json())
        return JSONResponse(shop.faults.snapshot())

    app = ShopifyApp(
        routes=[
            Route("/admin/api/{version}/graphql.json", graphql_view, methods=["POST"]),
            Route("/_staged/upload", _upload_view, methods=["POST"]),
            Route("/_bulk/{number:int}.jsonl", _results_view, methods=["GET"]),
            Route("/_faults", faults_view, methods=["GET", "POST"]),
        ]
    )
    app.state.shop = shop
    return app
