"""The load generator of ``bench.http_intake``: what a channel sends, and how fast.

It runs in a process of its own (the bench starts it with ``spawn``), so
that its own work (making bodies, signing, the HTTP client) is not charged
to the hub, and the hub's processes are loaded only over sockets. One
process with ``asyncio``: each of N keep-alive connections sends its next
order when the previous is answered (a closed loop), as N channel workers
would. Bodies, signatures and the request bytes are made before the clock
starts.

The HTTP/1.1 client is our own, on ``asyncio`` streams: it writes the
request bytes and reads the status line, the headers and a body framed by
Content-Length (or chunks, or the connection's close), and connects again
when an answer says ``Connection: close`` or a request failed. On this
2-core machine a general client costs too much: with one shared
``httpx.AsyncClient`` the generator used more CPU than the API it loaded
from 32 connections on, and measured 100-200 orders/s where this client
measures 450-550 of the same API. ``--client httpx`` keeps that client for
comparison.
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
from urllib.parse import urlsplit

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


# The buyer of every bench order, in Shopify's address shape.
_ADDRESS: dict[str, Any] = {
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
_SHOPIFY_ID = 820_982_911_946_154_508


def _lines(skus: list[str]) -> list[dict[str, Any]]:
    """An order's lines as both the Shopify body and its API twin carry them."""
    return [
        {"sku": sku, "title": f"Item {sku}", "quantity": 1 + i % 3, "price": 100 + i}
        for i, sku in enumerate(skus)
    ]


def shopify_body(number: int, skus: list[str]) -> dict[str, Any]:
    """An ``orders/create`` body as Shopify's webhook reference shows it (paid, 1-3 lines)."""
    return {
        "id": _SHOPIFY_ID + number,
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
        "billing_address": _ADDRESS,
        "shipping_address": _ADDRESS,
        "line_items": [
            {
                "id": number * 10 + i,
                "sku": line["sku"],
                "title": line["title"],
                "quantity": line["quantity"],
                "price": f"{line['price']}.00",
                "total_discount": "0.00",
                "tax_lines": [],
            }
            for i, line in enumerate(_lines(skus))
        ],
        "shipping_lines": [{"title": "Courier", "price": "95.00", "tax_lines": []}],
    }


def twin_order(number: int, skus: list[str]) -> dict[str, Any]:
    """The canonical order a channel would post to the order API for the same
    sale as ``shopify_body(number, skus)``: the same buyer, both addresses,
    lines and the channel's facts as meta, written out in the API's shape.

    Why: the bench's plain API order (``bench.run._order_payload``) carries
    one short address, so it stores about a third of what a Shopify order
    does; the ``api-same`` points post this one instead, so that the webhook
    is compared with the API on the same order and the difference is the
    door's (signature, transform, the body kept, the delivery id).
    """
    address = {**_ADDRESS, "address2": None}
    return {
        "channel": "api",
        "channel_order_code": order_code("api-same", number),
        "instruction": "add_order",
        "ordered_date": "2026-11-22T10:00:00+02:00",
        "notes": None,
        "customer": {
            "channel_customer_code": "1",
            "first_name": "Lerato",
            "last_name": "Dlamini",
            "email": "buyer@example.com",
        },
        "billing_address": address,
        "shipping_address": address,
        "line_items": [
            {
                "sku": line["sku"],
                "title": line["title"],
                "qty": line["quantity"],
                "price": float(line["price"]),
                "total_discount": 0.0,
                "tax_lines": [],
            }
            for line in _lines(skus)
        ],
        "shipping_lines": [{"title": "Courier", "price": 95.0, "tax_lines": []}],
        "total_discount": 0.0,
        "meta": [
            {"key": "channel_order_id", "value": str(_SHOPIFY_ID + number)},
            {"key": "channel_status", "value": "paid"},
            {"key": "currency", "value": "ZAR"},
            {"key": "taxes_included", "value": "false"},
        ],
    }


# Each endpoint's code prefix, so that a run's orders never collide.
_CODE_PREFIX = {"api": "A", "api-same": "S"}


def order_code(endpoint: str, number: int) -> str:
    """The channel_order_code the hub stores: API orders ``A…`` (``S…`` for
    the twins), Shopify's its ``name``."""
    prefix = _CODE_PREFIX.get(endpoint)
    return f"{prefix}{number:07d}" if prefix else f"#{number}"


def build_requests(
    door: Door, endpoint: str, first: int, count: int, skus: list[str]
) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(code, path, raw body, headers) for orders ``first`` .. ``first + count - 1``."""
    made = []
    for number in range(first, first + count):
        lines = [skus[(number * 7 + j) % len(skus)] for j in range(1 + number % 3)]
        code = order_code(endpoint, number)
        if endpoint in _CODE_PREFIX:
            order = _order_payload(code, lines) if endpoint == "api" else twin_order(number, lines)
            body = json.dumps(order).encode()
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


# --------------------------------------------------------------------------
# The client: HTTP/1.1 over asyncio streams
# --------------------------------------------------------------------------


class BadAnswer(Exception):
    """An answer that is not HTTP/1.x as RFC 9112 frames it."""


@dataclass(frozen=True)
class Origin:
    """Where the lanes connect, and the Host header they send."""

    host: str
    port: int

    @classmethod
    def of(cls, base: str) -> Origin:
        parts = urlsplit(base)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load generator speaks plain http only; base URL {base!r}")
        return cls(parts.hostname, parts.port or 80)


def encode(origin: Origin, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST as bytes on the wire (made before the clock starts)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {origin.host}:{origin.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1), trailers skipped."""
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadAnswer(f"bad chunk size line {size_line[:40]!r}") from None
        if size == 0:
            break
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise BadAnswer("a chunk not followed by CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return b"".join(parts)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server keeps the connection) of one answer.

    The body is framed by Content-Length, by chunks, or by the connection's
    close (RFC 9112 §6.3); 1xx answers before the final one are skipped.
    """
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise BadAnswer(f"bad status line {status_line[:60]!r}")
        status = int(rest[:3])
        if status >= 200:
            break
    fields: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise BadAnswer(f"bad header line {line[:60]!r}")
        fields[name.strip().lower()] = value.strip()
    connection = fields.get("connection", "").lower()
    keep = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if status in (204, 304):
        return status, b"", keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, await _chunked(reader), keep
    if "content-length" in fields:
        length = fields["content-length"]
        if not length.isdigit():
            raise BadAnswer(f"bad Content-Length {length[:20]!r}")
        return status, await reader.readexactly(int(length)), keep
    return status, await reader.read(), False


class Connection:
    """One keep-alive connection: a request is written once the previous
    answer is read; a new connection when the server closed the last one or
    it failed."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request, read its answer; (status, body)."""
        if self.reader is None or self.writer is None or self.reader.at_eof():
            self.close()
            self.reader, self.writer = await asyncio.open_connection(
                self.origin.host, self.origin.port
            )
        self.writer.write(request)
        await self.writer.drain()
        status, body, keep = await read_answer(self.reader)
        if not keep:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# Failures of one request at the socket or framing level: recorded by name.
TRANSPORT_ERRORS = (OSError, EOFError, asyncio.LimitOverrunError, BadAnswer)


def _sample(code: str, status: int, body: bytes, seconds: float) -> Sample:
    duplicate = status == 200 and bool(json.loads(body).get("duplicate"))
    return (code, status, seconds, "", duplicate)


async def _drive_raw(
    origin: Origin, requests: list[tuple[str, bytes]], lanes: int, timeout: float
) -> tuple[list[Sample], float]:
    """``lanes`` connections of our own, each posting the next request once answered."""
    pending = iter(requests)
    samples: list[Sample] = []

    async def lane() -> None:
        conn = Connection(origin)
        try:
            for code, request in pending:
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        status, body = await conn.exchange(request)
                except TRANSPORT_ERRORS as exc:
                    conn.close()
                    samples.append((code, 0, time.perf_counter() - t0, type(exc).__name__, False))
                    continue
                samples.append(_sample(code, status, body, time.perf_counter() - t0))
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    return samples, time.perf_counter() - t0


async def _drive_httpx(
    base: str, requests: list[tuple[str, str, bytes, dict[str, str]]], lanes: int, timeout: float
) -> tuple[list[Sample], float]:
    """The same closed loop through one shared ``httpx.AsyncClient`` (``--client
    httpx``): for comparison only, as httpx costs more CPU than the API it loads
    from about 32 connections on."""
    import httpx

    limits = httpx.Limits(max_connections=lanes, max_keepalive_connections=lanes)
    pending = iter(requests)
    samples: list[Sample] = []

    async def lane(http: httpx.AsyncClient) -> None:
        for code, path, body, headers in pending:
            t0 = time.perf_counter()
            try:
                answer = await http.post(path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                samples.append((code, 0, time.perf_counter() - t0, type(exc).__name__, False))
                continue
            samples.append(
                _sample(code, answer.status_code, answer.content, time.perf_counter() - t0)
            )

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
    client: str = "raw",
) -> dict[str, Any]:
    """One point, run in the load generator's process: samples, wall and CPU seconds.

    Requests are made (bodies signed, and for our client encoded to bytes)
    before the CPU and wall clocks start.
    """
    requests = build_requests(door, endpoint, first, count, skus)
    if client == "httpx":
        cpu = time.process_time()
        samples, wall = asyncio.run(_drive_httpx(door.base, requests, lanes, timeout))
    elif client == "raw":
        origin = Origin.of(door.base)
        wire = [
            (code, encode(origin, path, body, headers)) for code, path, body, headers in requests
        ]
        cpu = time.process_time()
        samples, wall = asyncio.run(_drive_raw(origin, wire, lanes, timeout))
    else:
        raise ValueError(f"unknown load generator client {client!r}: raw or httpx")
    return {"samples": samples, "wall": wall, "cpu": time.process_time() - cpu}


def warm_generator(client: str) -> int:
    """Import the client's modules in the generator's process before any clock starts."""
    if client == "httpx":
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
