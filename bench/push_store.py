"""The emulated store of the push benchmark, and what its answers said.

The costs are read from the store's own answers (``extensions.cost``), by a
wrapper around the emulator's app, so the benchmark's figures never rest on
the connector's bookkeeping.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

TOKEN = "shpat_bench_" + uuid.uuid4().hex[:12]


@dataclass
class Answer:
    """One GraphQL answer of the emulated store, as the connector received it."""

    at: float
    seconds: float
    roots: list[str]
    requested: float | None
    actual: float | None
    available: float | None
    throttled: bool


class CostLog:
    """An ASGI wrapper around the emulator's app that keeps every GraphQL
    answer's root fields and ``extensions.cost``: the costs as the store
    states them, without trusting the client's bookkeeping."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers: list[Answer] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).endswith("/graphql.json"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        t0 = time.perf_counter()

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        self._record(b"".join(chunks), t0)

    def _record(self, body: bytes, t0: float) -> None:
        try:
            answer = json.loads(body)
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        cost = (answer.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        errors = answer.get("errors") or []
        throttled = isinstance(errors, list) and any(
            isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
            for e in errors
        )
        now = time.perf_counter()
        with self._lock:
            self.answers.append(
                Answer(
                    now,
                    now - t0,
                    sorted((answer.get("data") or {}).keys()),
                    cost.get("requestedQueryCost"),
                    cost.get("actualQueryCost"),
                    status.get("currentlyAvailable"),
                    throttled,
                )
            )

    def since(self, mark: int) -> list[Answer]:
        with self._lock:
            return list(self.answers[mark:])

    def mark(self) -> int:
        with self._lock:
            return len(self.answers)


@dataclass
class Store:
    """A served emulated store and the log of its answers."""

    server: Any
    log: CostLog

    def mutations(self, name: str | None = None) -> int:
        return int(self.server.mutations(name))

    @property
    def bulk_operations(self) -> int:
        return len(self.server.shop.bulk)


@contextmanager
def served_store() -> Iterator[Store]:
    """The Shopify emulator with its default cost limits, its app wrapped in
    a :class:`CostLog` (``emulators.shopify.serve`` does the same, unwrapped)."""
    from emulators import serving
    from emulators.shopify import CostBucket, Faults, RunningServer, Shop, create_app
    from emulators.shopify import Store as ShopStore

    shop = Shop(ShopStore(), Faults(), CostBucket())
    log = CostLog(create_app(shop, access_token=TOKEN))
    with serving.in_thread(log, title="Shopify", lifespan="off") as base_url:
        shop.base_url = base_url
        yield Store(RunningServer(base_url=base_url, access_token=TOKEN, shop=shop), log)
