"""The API's guard (``s2s.guard``): 413 for a body over the limit, 503 with
Retry-After when the database cannot keep up, 429 for a client over its
intake rate. Where uvicorn's own behaviour matters (chunked bodies, real
concurrency, memory) the API runs as ``s2s api`` in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from connectors.shopify.intake import sign as sign_shopify
from hub.db import session_scope
from hub.models import Order, OrderEvent
from hub.settings import get_settings
from s2s.api import create_app
from s2s.guard import Guard
from tests.conftest import PG_PORT, ROOT, Hub
from tests.faults import TcpProxy, free_port
from tests.integration.test_api_orders import shopify_payload
from tests.integration.test_orders_e2e import canonical
from workers.sources import set_channels, upsert_client

pytestmark = [pytest.mark.services, pytest.mark.slow]

LIMIT = 1024 * 1024  # S2S_MAX_BODY_BYTES's default
HUGE = 300 * 1024 * 1024
SHOPIFY_SECRET = "shpss_guard_secret"
WOO_SECRET = "wc_guard_secret"


@dataclass
class Clients:
    tokens: dict[str, str]

    def auth(self, code: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[code]}"}


def _clients() -> Clients:
    tokens = {}
    with session_scope() as s:
        for code in ("acme", "other"):
            client, token = upsert_client(s, code)
            assert token
            tokens[code] = token
            set_channels(
                s,
                client,
                {"shopify": {"secret": SHOPIFY_SECRET}, "woocommerce": {"secret": WOO_SECRET}},
            )
    return Clients(tokens)


def _order(code: str) -> dict[str, Any]:
    return canonical(code, ["GUARD-1"])


def _stored() -> dict[str, int]:
    """Each stored order's code with the number of its events."""
    with session_scope() as s:
        rows = s.execute(
            sql_select(Order.channel_order_code, func.count(OrderEvent.id))
            .outerjoin(OrderEvent, OrderEvent.order_id == Order.id)
            .group_by(Order.id)
        ).all()
    codes = [code for code, _ in rows]
    assert len(codes) == len(set(codes)), "an order stored twice"
    return {code: events for code, events in rows}


# --------------------------------------------------------------------------
# `s2s api` in its own process
# --------------------------------------------------------------------------


@dataclass
class Api:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start_api(hub: Hub, **env: str) -> Api:
    port = free_port()
    log = (hub.var_dir / f"api-{port}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**hub.env, **env},
        cwd=ROOT,
        start_new_session=True,
    )
    hub.workers.append(proc)  # the hub's teardown ends it
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (hub.var_dir / f"api-{port}.log").read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).status_code == 200:
                return Api(proc, port)
        time.sleep(0.2)
    raise AssertionError(f"s2s api did not answer on port {port}")


def _memory(pid: int) -> dict[str, int]:
    """The process's resident memory now and at its peak, in kB."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"the connection closed before an answer: {data!r}"
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        more = sock.recv(65536)
        assert more, "the connection closed in the middle of the answer"
        body += more
    return int(lines[0].split()[1]), headers, body


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _declared_only(api: Api, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Headers declaring a huge body, and not one byte of it: the answer
    must come anyway, at once."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(_head(path, {**headers, "Content-Length": str(HUGE)}))
        status, answer_headers, body = _read_answer(sock)
    assert json.loads(body)["error"].startswith("the request body is larger")
    return status, answer_headers


@dataclass
class Streamed:
    status: int
    body: bytes
    answered_after: int | None  # bytes sent when the answer could first be read
    elapsed: float


def _stream_chunked(
    api: Api, path: str, headers: dict[str, str], body: bytes | None = None, total: int = 0
) -> Streamed:
    """POST ``body`` (or ``total`` bytes of filler) chunked, without a
    Content-Length, watching for an answer after every chunk."""
    chunk = 64 * 1024
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", api.port), timeout=60) as sock:
        sock.sendall(_head(path, {**headers, "Transfer-Encoding": "chunked"}))
        sent, answered_after = 0, None
        filler = b"%x\r\n" % chunk + b" " * chunk + b"\r\n"
        size = len(body) if body is not None else total
        while sent < size:
            if body is not None:
                part = body[sent : sent + chunk]
                sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
                sent += len(part)
            else:
                sock.sendall(filler)
                sent += chunk
            if answered_after is None and select.select([sock], [], [], 0)[0]:
                answered_after = sent
        sock.sendall(b"0\r\n\r\n")
        status, _, answer = _read_answer(sock)
    return Streamed(status, answer, answered_after, time.monotonic() - started)


def _padded(order: dict[str, Any], size: int) -> bytes:
    """The order's JSON followed by spaces up to exactly ``size`` bytes (still valid JSON)."""
    raw = json.dumps(order).encode()
    return raw + b" " * (size - len(raw))


@pytest.fixture
def served(pg_hub: Hub) -> Iterator[tuple[Api, Clients]]:
    clients = _clients()
    yield _start_api(pg_hub), clients


def _intake_doors(clients: Clients) -> list[tuple[str, dict[str, str]]]:
    """The order API (with the client's token) and both webhooks (unsigned)."""
    return [
        ("/api/v1/clients/acme/orders", clients.auth("acme")),
        ("/webhooks/shopify/acme", {"X-Shopify-Webhook-Id": "big"}),
        ("/webhooks/woocommerce/acme", {"X-WC-Webhook-Delivery-ID": "big"}),
    ]


def test_a_declared_oversized_body_is_refused_before_it_is_sent(
    served: tuple[Api, Clients],
) -> None:
    api, clients = served
    for path, headers in _intake_doors(clients):
        started = time.monotonic()
        status, answer_headers = _declared_only(api, path, headers)
        assert status == 413, path
        assert time.monotonic() - started < 2.0, path
        assert answer_headers["content-type"] == "application/json"
    assert _stored() == {}


def test_a_chunked_oversized_body_is_refused_as_it_passes_the_limit_in_constant_memory(
    served: tuple[Api, Clients],
) -> None:
    api, clients = served
    # Warm the process (imports, the pool, the token) with one order of
    # nearly the limit, sent chunked: a body under the limit is taken.
    near = _stream_chunked(
        api, "/api/v1/clients/acme/orders", clients.auth("acme"), _padded(_order("N1"), LIMIT)
    )
    assert near.status == 201, near.body
    idle = _memory(api.proc.pid)
    for path, headers in _intake_doors(clients):
        streamed = _stream_chunked(api, path, headers, total=HUGE)
        assert streamed.status == 413, (path, streamed.body)
        # The answer came while the body was still coming, not at its end
        # (what was sent by then also sat in the sockets' buffers).
        assert streamed.answered_after is not None, path
        assert streamed.answered_after < 64 * 1024 * 1024, (path, streamed.answered_after)
        after = _memory(api.proc.pid)
        grew = {k: after[k] - idle[k] for k in after}
        print(path, f"{HUGE >> 20} MB in {streamed.elapsed:.1f} s; memory grew (kB): {grew}")
        assert grew["VmHWM"] < 8 * 1024, (path, idle, after)
    assert _stored() == {"N1": 1}


def test_the_limit_is_exact_with_or_without_a_content_length(
    served: tuple[Api, Clients],
) -> None:
    api, clients = served
    path, auth = "/api/v1/clients/acme/orders", clients.auth("acme")
    exact = httpx.post(api.url + path, headers=auth, content=_padded(_order("E1"), LIMIT))
    assert exact.status_code == 201, exact.text
    over = httpx.post(api.url + path, headers=auth, content=_padded(_order("E2"), LIMIT + 1))
    assert over.status_code == 413
    assert "1048576 bytes, S2S_MAX_BODY_BYTES" in over.json()["error"]
    chunked_over = _stream_chunked(api, path, auth, _padded(_order("E3"), LIMIT + 1))
    assert chunked_over.status == 413
    # The connection stays usable after a refusal, and a signed webhook under
    # the limit is taken.
    body = json.dumps(shopify_payload(4001, "GUARD-1")).encode()
    signed = httpx.post(
        api.url + "/webhooks/shopify/acme",
        content=body,
        headers={"X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET)},
    )
    assert signed.status_code == 201, signed.text
    assert set(_stored()) == {"E1", signed.json()["channel_order_code"]}


# --------------------------------------------------------------------------
# A slow database: 503 with Retry-After, nothing half-stored, resent once
# --------------------------------------------------------------------------


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    assert parts.port == PG_PORT
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{PG_PORT}", f":{port}")))


@dataclass
class Answer:
    code: str
    status: int
    seconds: float
    retry_after: str | None


async def _flood(api: Api, auth: dict[str, str], codes: list[str]) -> list[Answer]:
    limits = httpx.Limits(max_connections=len(codes))
    async with httpx.AsyncClient(base_url=api.url, limits=limits, timeout=30) as http:

        async def one(code: str) -> Answer:
            started = time.monotonic()
            answer = await http.post("/api/v1/clients/acme/orders", headers=auth, json=_order(code))
            seconds = time.monotonic() - started
            return Answer(code, answer.status_code, seconds, answer.headers.get("retry-after"))

        return list(await asyncio.gather(*(one(code) for code in codes)))


def test_a_slow_database_gets_quick_503s_that_stored_nothing_and_resend_once(
    pg_hub: Hub,
) -> None:
    clients = _clients()
    proxy = TcpProxy(PG_PORT).start()
    try:
        queue_timeout = 1.0
        api = _start_api(
            pg_hub,
            S2S_DATABASE_URL=_through(pg_hub.env["S2S_DATABASE_URL"], proxy.port),
            S2S_API_QUEUE_TIMEOUT=str(queue_timeout),
            S2S_API_DB_POOL="8",
        )
        auth = clients.auth("acme")
        warm = httpx.post(f"{api.url}/api/v1/clients/acme/orders", headers=auth, json=_order("W"))
        assert warm.status_code == 201
        # Every answer of the database now takes 0.3 s more: an order's few
        # round trips hold a connection for a second or two, and a flood of
        # 48 waits for 8 connections.
        proxy.delay = 0.3
        codes = [f"F{i:03d}" for i in range(48)]
        answers = asyncio.run(_flood(api, auth, codes))
        by_status: dict[int, list[Answer]] = {}
        for answer in answers:
            by_status.setdefault(answer.status, []).append(answer)
        print({s: (len(a), round(max(x.seconds for x in a), 2)) for s, a in by_status.items()})
        assert set(by_status) == {201, 503}, by_status.keys()
        for refused in by_status[503]:
            assert refused.seconds < queue_timeout + 0.75, refused
            assert refused.retry_after == "1", refused
        assert max(a.seconds for a in answers) < 5.0, "an answer took longer than a channel waits"
        # Each 201 is stored whole (the order with its first event); each 503
        # stored nothing.
        assert _stored() == {"W": 1, **{a.code: 1 for a in by_status[201]}}

        proxy.delay = 0.0
        resent = asyncio.run(_flood(api, auth, codes))
        accepted = {a.code for a in by_status[201]}
        for answer in resent:
            assert answer.status == (200 if answer.code in accepted else 201), answer
        assert _stored() == {code: 1 for code in ["W", *codes]}
    finally:
        proxy.stop()


# --------------------------------------------------------------------------
# Each client's intake rate
# --------------------------------------------------------------------------


@pytest.fixture(params=["redis", "in-process"])
def rated(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Clients]]:
    """A hub whose clients may store 0.5 orders a second, 3 at once: on
    PostgreSQL with the broker's Redis keeping the rate, or on the embedded
    hub (no Redis) counting in the process."""
    request.getfixturevalue("pg_hub" if request.param == "redis" else "embedded_hub")
    monkeypatch.setenv("S2S_CLIENT_RATE_LIMIT", "0.5")
    monkeypatch.setenv("S2S_CLIENT_RATE_BURST", "3")
    get_settings.cache_clear()
    yield request.param, _clients()
    get_settings.cache_clear()


def _post_order(api: TestClient, clients: Clients, client: str, code: str) -> httpx.Response:
    return api.post(
        f"/api/v1/clients/{client}/orders", headers=clients.auth(client), json=_order(code)
    )


def test_a_client_over_its_rate_gets_429_while_others_are_taken(
    rated: tuple[str, Clients],
) -> None:
    where, clients = rated
    with TestClient(create_app()) as api, TestClient(create_app()) as second_process:
        taken = [_post_order(api, clients, "acme", f"A{i}") for i in range(3)]
        assert [a.status_code for a in taken] == [201, 201, 201]
        over = _post_order(api, clients, "acme", "A3")
        assert over.status_code == 429
        assert over.headers["retry-after"] in ("1", "2")
        assert "client 'acme' is over its intake rate" in over.json()["error"]
        # A webhook stores too, and counts against the same rate.
        body = json.dumps(shopify_payload(5001, "GUARD-1")).encode()
        hook = api.post(
            "/webhooks/shopify/acme",
            content=body,
            headers={"X-Shopify-Hmac-Sha256": sign_shopify(body, SHOPIFY_SECRET)},
        )
        assert hook.status_code == 429

        # Unsigned junk at another client's webhook is refused (401) and
        # does not spend that client's rate: its orders are all taken.
        for _ in range(5):
            junk = api.post("/webhooks/shopify/other", content=b"{}")
            assert junk.status_code == 401
        others = [_post_order(api, clients, "other", f"O{i}") for i in range(3)]
        assert [a.status_code for a in others] == [201, 201, 201]

        # Another API process: with Redis it shares the rate; alone it counts its own.
        elsewhere = _post_order(second_process, clients, "acme", "A4")
        assert elsewhere.status_code == (429 if where == "redis" else 201)

        assert set(_stored()) == {"A0", "A1", "A2", "O0", "O1", "O2"} | (
            set() if where == "redis" else {"A4"}
        )
        # Refused orders stored nothing and are taken when resent in time.
        time.sleep(int(over.headers["retry-after"]) + 0.1)
        assert _post_order(api, clients, "acme", "A3").status_code == 201
        assert "A3" in _stored()


# --------------------------------------------------------------------------
# The middleware on its own: what it pulls from the client, and bad headers
# --------------------------------------------------------------------------


async def _call(guard: Guard, scope: Scope, receive: Receive) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    return sent


def _scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/clients/acme/orders",
        "headers": headers,
        "query_string": b"",
    }


def test_the_guard_stops_reading_at_the_limit_and_never_calls_the_handler(
    embedded_hub: Hub,
) -> None:
    called: list[Scope] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    settings = replace(get_settings(), max_body_bytes=1000)
    guard = Guard(handler, settings)
    pulled: list[int] = []

    async def endless() -> Message:
        pulled.append(300)
        return {"type": "http.request", "body": b"x" * 300, "more_body": True}

    sent = asyncio.run(_call(guard, _scope([]), endless))
    assert sent[0]["status"] == 413
    assert len(pulled) == 4, "the fourth 300 bytes passed 1000: nothing more was read"
    assert called == []

    async def unused() -> Message:
        raise AssertionError("the body was read")

    declared = asyncio.run(_call(guard, _scope([(b"content-length", b"1001")]), unused))
    assert declared[0]["status"] == 413
    bad = asyncio.run(_call(guard, _scope([(b"content-length", b"12x")]), unused))
    assert bad[0]["status"] == 400
    assert json.loads(bad[1]["body"]) == {"error": "Content-Length must be a whole number of bytes"}
    assert called == []


def test_the_guard_hands_the_body_it_read_to_the_handler(embedded_hub: Hub) -> None:
    seen: list[Message] = []

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            seen.append(message)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    parts = iter([b"ab", b"cd", b""])

    async def receive() -> Message:
        part = next(parts)
        return {"type": "http.request", "body": part, "more_body": bool(part)}

    sent = asyncio.run(_call(Guard(handler), _scope([]), receive))
    assert sent[0]["status"] == 204
    assert b"".join(m["body"] for m in seen) == b"abcd"
