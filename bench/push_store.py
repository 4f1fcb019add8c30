"""The push benchmark's emulated Shopify store and what its answers said,
and a push as every phase runs one (Shopify's and WooCommerce's alike).

The costs are read from the store's own answers (``extensions.cost``), by a
wrapper around the emulator's app, so the benchmark's figures never rest on
the connector's bookkeeping.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.run import SEED

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


# --------------------------------------------------------------------------
# A push as the benchmark runs it
# --------------------------------------------------------------------------


@dataclass
class PushResult:
    """One push as the benchmark saw it: wall time and the run row's counts."""

    seconds: float
    run_row_seconds: float
    status: str
    counts: dict[str, int]
    error: str | None
    problems: dict[str, int] = field(default_factory=dict)


def run_push(channel_id: int, timeout: float = 3600) -> PushResult:
    """Start a push the way ``s2s push`` does and poll its row until it ends."""
    from hub import pushes
    from hub.db import session_scope
    from hub.models import Channel, PushRun
    from workers.pushing import start_push

    t0 = time.perf_counter()
    started = start_push(channel_id, requested_by="bench")
    if not started.created:
        raise RuntimeError(f"push {started.run.id} was already active")
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as s:
            run = s.get(PushRun, started.run.id)
            assert run is not None
            if run.status != pushes.ACTIVE:
                seconds = time.perf_counter() - t0
                channel = s.get(Channel, channel_id)
                assert channel is not None and run.finished_at is not None
                found = pushes.problems(s, channel, limit=1_000_000)
                return PushResult(
                    seconds,
                    (run.finished_at - run.created_at).total_seconds(),
                    run.status,
                    {name: int(getattr(run, name)) for name in pushes.COUNTS},
                    run.error,
                    dict(Counter(str(p["error"]) for p in found)),
                )
        if time.monotonic() > deadline:
            raise RuntimeError(f"push {started.run.id} still running after {timeout:.0f}s")
        time.sleep(0.05)


def checked(result: PushResult, what: str) -> PushResult:
    if result.status != "succeeded":
        raise RuntimeError(f"the {what} ended {result.status}: {result.error}")
    return result


def changed_products(products: int, skus: list[str]) -> set[str]:
    """The product codes holding the changed SKUs (from the seed's rows)."""
    from emulators import sql_erp

    prod_of = {r["SKU"]: r["Prod"] for r in sql_erp.generate_rows(products, SEED)}
    return {prod_of[sku] for sku in skus}
