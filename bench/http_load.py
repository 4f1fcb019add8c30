"""The load generator of ``bench.http_intake``: what a channel sends, and how fast.

It runs in a process of its own (the bench starts it with ``spawn``), so
that its own work (making bodies, signing, the HTTP client) is not charged
to the hub, and the hub's processes are loaded only over sockets. One
process with ``asyncio`` and ``httpx.AsyncClient``: each of N keep-alive
connections sends its next order when the previous is answered (a closed
loop), as N channel workers would. Bodies and signatures are made before
the clock starts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.run import _order_payload, _percentile

# Shopify waits this long for a webhook's answer, then counts a failure.
CHANNEL_WAIT_S = 5.0


@dataclass(frozen=True)
class Door:
    """What a channel knows of the hub: where it is and its credentials."""

    base: str
    client: str
    token: str
    secret: str


# One request as the load generator saw it: code, status (0: no answer),
# seconds, the transport error's name or "", whether answered as a duplicate.
Sample = tuple[str, int, float, str, bool]


def shopify_body(number: int, skus: list[str]) -> dict[str, Any]:
    """An ``orders/create`` body as Shopify's webhook reference shows it (paid, 1-3 lines)."""
    address = {
        "first_name": "Lerato",
        "last_name": "Dlamini",
        "address1": "12 Long Street",
        "address2": "",
        "city": "Cape Town",
        "province": "Western Cape",
        "province_code": "WC",
        "zip": "8001",
        "country": "South Africa",
        "country_code": "ZA",
        "phone": None,
        "company": None,
    }
    return {
        "id": 820_982_911_946_154_508 + number,
        "name": f"#{number}",
        "order_number": number,
        "created_at": "2026-11-22T10:00:00+02:00",
        "financial_status": "paid",
        "taxes_included": False,
        "currency": "ZAR",
        "note": None,
        "email": "buyer@example.com",
        "total_discounts": "0.00",
        "customer": {"id": 1, "first_name": "Lerato", "last_name": "Dlamini"},
        "billing_address": address,
        "shipping_address": address,
        "line_items": [
            {
                "id": number * 10 + i,
                "sku": sku,
                "title": f"Item {sku}",
                "quantity": 1 + i % 3,
                "price": f"{100 + i}.00",
                "total_discount": "0.00",
                "tax_lines": [],
            }
            for i, sku in enumerate(skus)
        ],
        "shipping_lines": [{"title": "Courier", "price": "95.00", "tax_lines": []}],
    }


def order_code(endpoint: str, number: int) -> str:
    """The channel_order_code the hub stores: API orders ``A…``, Shopify's its ``name``."""
    return f"A{number:07d}" if endpoint == "api" else f"#{number}"


def build_requests(
    door: Door, endpoint: str, first: int, count: int, skus: list[str]
) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(code, path, raw body, headers) for orders ``first`` .. ``first + count - 1``."""
    made = []
    for number in range(first, first + count):
        lines = [skus[(number * 7 + j) % len(skus)] for j in range(1 + number % 3)]
        code = order_code(endpoint, number)
        if endpoint == "api":
            body = json.dumps(_order_payload(code, lines)).encode()
            path = f"/api/v1/clients/{door.client}/orders"
            headers = {"Authorization": f"Bearer {door.token}"}
        else:
            body = json.dumps(shopify_body(number, lines)).encode()
            path = f"/webhooks/shopify/{door.client}"
            digest = hmac.new(door.secret.encode(), body, hashlib.sha256).digest()
            headers = {
                "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Shop-Domain": "bench.myshopify.com",
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            }
        made.append((code, path, body, {"Content-Type": "application/json", **headers}))
    return made


async def _drive(
    base: str, requests: list[tuple[str, str, bytes, dict[str, str]]], lanes: int, timeout: float
) -> tuple[list[Sample], float]:
    """``lanes`` connections, each posting the next request once answered."""
    import httpx

    limits = httpx.Limits(max_connections=lanes, max_keepalive_connections=lanes)
    pending = iter(requests)
    samples: list[Sample] = []

    async def lane(http: httpx.AsyncClient) -> None:
        for code, path, body, headers in pending:
            t0 = time.perf_counter()
            try:
                answer = await http.post(path, content=body, headers=headers)
                seconds = time.perf_counter() - t0
                duplicate = answer.status_code == 200 and bool(answer.json().get("duplicate"))
                samples.append((code, answer.status_code, seconds, "", duplicate))
            except httpx.HTTPError as exc:
                samples.append((code, 0, time.perf_counter() - t0, type(exc).__name__, False))

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(lane(http) for _ in range(lanes)))
        return samples, time.perf_counter() - t0


def drive(
    door: Door,
    endpoint: str,
    first: int,
    count: int,
    skus: list[str],
    lanes: int,
    timeout: float,
) -> dict[str, Any]:
    """One point, run in the load generator's process: samples, wall and CPU seconds."""
    requests = build_requests(door, endpoint, first, count, skus)
    cpu = time.process_time()
    samples, wall = asyncio.run(_drive(door.base, requests, lanes, timeout))
    return {"samples": samples, "wall": wall, "cpu": time.process_time() - cpu}


def warm_generator() -> int:
    """Import httpx in the generator's process before any clock starts."""
    import httpx  # noqa: F401

    return os.getpid()


def figures(samples: list[Sample], wall: float) -> dict[str, Any]:
    """orders/s, latency in ms, answers by status, answers slower than a channel waits."""
    latencies = [s[2] for s in samples]
    ok = sum(1 for s in samples if 200 <= s[1] < 300)
    other = Counter(str(s[1]) if s[1] else s[3] for s in samples if not 200 <= s[1] < 300)
    return {
        "orders": len(samples),
        "accepted": ok,
        "seconds": round(wall, 3),
        "per_s": round(ok / wall, 1) if wall > 0 else 0.0,
        "p50_ms": round(_percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "over_5s": sum(1 for x in latencies if x > CHANNEL_WAIT_S),
        "duplicate_answers": sum(1 for s in samples if s[4]),
        "non_2xx": dict(sorted(other.items())),
    }
