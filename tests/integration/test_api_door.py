"""The API's door on real PostgreSQL and Redis: a token or a webhook secret
checked recently costs no database round trip, one that changed stops
working within its cache life, the process's threads match its database
connections, and ``s2s api --workers 2`` serves from two processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.pool import QueuePool
from starlette.testclient import TestClient

from connectors.shopify.intake import sign as sign_shopify
from hub.db import get_engine, session_scope
from hub.models import Client, Order
from hub.settings import get_settings
from s2s import api_parts
from s2s.api import create_app
from s2s.api_process import ThreadLimit, create_served_app
from tests.conftest import ROOT, Hub, wait_for
from tests.integration.test_api_orders import shopify_payload
from tests.integration.test_orders_e2e import canonical
from workers.sources import hash_token, set_channels, upsert_client

pytestmark = [pytest.mark.services]

TOKEN = "acme-door-token-0001"
ORDERS = "/api/v1/clients/acme/orders"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Trace:
    """The statements the hub's engine ran and the connections it handed out."""

    statements: list[str] = field(default_factory=list)
    checkouts: int = 0

    def reset(self) -> None:
        self.statements.clear()
        self.checkouts = 0

    def read_clients(self) -> bool:
        return any(re.search(r"\bFROM clients\b", s) for s in self.statements)


@pytest.fixture
def door(pg_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """Client ``acme`` with a known token and a Shopify webhook secret; the
    caches empty and a tracer on the engine."""
    monkeypatch.setenv("S2S_TOKEN_CACHE_SECONDS", "1")
    get_settings.cache_clear()
    api_parts.verified_tokens.clear()
    api_parts.webhooks.clear()
    with session_scope() as s:
        acme, _ = upsert_client(s, "acme")
        acme.api_token_hash = hash_token(TOKEN)
        set_channels(s, acme, {"shopify": {"secret": "first-secret"}})
    trace = Trace()
    engine = get_engine()

    def on_statement(*args: Any) -> None:
        trace.statements.append(str(args[2]))

    def on_checkout(*_: Any) -> None:
        trace.checkouts += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "checkout", on_checkout)
    yield trace
    event.remove(engine, "before_cursor_execute", on_statement)
    event.remove(engine, "checkout", on_checkout)
    get_settings.cache_clear()


def test_a_token_seen_recently_costs_no_database_round_trip(door: Trace) -> None:
    api = TestClient(create_app())
    first = api.post(ORDERS, headers=AUTH, json=canonical("D1", ["SKU-1"]))
    assert first.status_code == 201, first.text
    assert door.read_clients(), door.statements  # the first sight reads the client

    door.reset()
    second = api.post(ORDERS, headers=AUTH, json=canonical("D2", ["SKU-1"]))
    assert second.status_code == 201, second.text
    # The intake's own transaction only: one connection, no look at clients.
    assert not door.read_clients(), door.statements
    assert door.checkouts == 1, door.statements

    door.reset()
    status = api.get(f"{ORDERS}/{second.json()['order']}", headers=AUTH)
    assert status.status_code == 200 and status.json()["channel_order_code"] == "D2"
    assert not door.read_clients() and door.checkouts == 1, door.statements

    # A wrong token is never taken from the cache: it is checked and refused.
    door.reset()
    wrong = api.post(ORDERS, headers={"Authorization": "Bearer nope"}, json=canonical("D3", []))
    assert wrong.status_code == 401 and door.read_clients()
    # The cache holds the token's hash, never the token.
    assert all(TOKEN not in key for key in api_parts.verified_tokens._items)


def test_a_changed_token_stops_working_within_the_cache_life(door: Trace) -> None:
    api = TestClient(create_app())
    assert api.post(ORDERS, headers=AUTH, json=canonical("R1", ["SKU-1"])).status_code == 201
    with session_scope() as s:
        s.query(Client).filter_by(code="acme").one().api_token_hash = hash_token("new-token")
    # Within the life (1 s here, S2S_TOKEN_CACHE_SECONDS) the old token still opens ...
    assert api.post(ORDERS, headers=AUTH, json=canonical("R2", ["SKU-1"])).status_code == 201
    # ... the new one works at once (it was never cached) ...
    new = {"Authorization": "Bearer new-token"}
    assert api.post(ORDERS, headers=new, json=canonical("R3", ["SKU-1"])).status_code == 201
    time.sleep(1.2)
    # ... and after it the old one is refused, storing nothing.
    refused = api.post(ORDERS, headers=AUTH, json=canonical("R4", ["SKU-1"]))
    assert refused.status_code == 401, refused.text
    with session_scope() as s:
        assert s.query(Order).filter_by(channel_order_code="R4").first() is None


def _deliver(api: TestClient, number: int, secret: str) -> httpx.Response:
    body = json.dumps(shopify_payload(number, "SKU-1")).encode()
    return api.post(
        "/webhooks/shopify/acme",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": sign_shopify(body, secret),
            "X-Shopify-Webhook-Id": f"delivery-{number}",
        },
    )


def _replace_secret(secret: str) -> None:
    with session_scope() as s:
        acme = s.query(Client).filter_by(code="acme").one()
        set_channels(s, acme, {"shopify": {"secret": secret}})


def test_a_webhook_takes_one_session_and_a_new_secret_works_within_a_second(
    door: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2S_TOKEN_CACHE_SECONDS", "4")
    get_settings.cache_clear()
    monkeypatch.setattr(api_parts, "REREAD_AFTER", 1.5)
    api = TestClient(create_app())
    assert _deliver(api, 2001, "first-secret").status_code == 201
    door.reset()
    second = _deliver(api, 2002, "first-secret")
    assert second.status_code == 201, second.text
    # The intake's transaction only (the delivery id is looked up in it).
    assert door.checkouts == 1 and not door.read_clients(), door.statements

    # Junk signatures, the secret read moments ago: refused without a database read.
    door.reset()
    assert {_deliver(api, 2100 + n, "junk").status_code for n in range(3)} == {401}
    assert door.checkouts == 0, door.statements

    # A secret replaced in the hub: a delivery signed with it, once the kept
    # secret is older than REREAD_AFTER, has it read again and passes ...
    _replace_secret("second-secret")
    time.sleep(1.6)
    assert _deliver(api, 2003, "second-secret").status_code == 201
    # ... and the replaced one is refused from then on.
    refused = _deliver(api, 2004, "first-secret")
    assert refused.status_code == 401 and "does not match" in refused.text

    # Replaced again with no delivery signed by the new one: the old secret
    # opens for at most the cache's life (4 s here).
    _replace_secret("third-secret")
    assert _deliver(api, 2005, "second-secret").status_code == 201
    time.sleep(4.2)
    assert _deliver(api, 2006, "second-secret").status_code == 401
    assert _deliver(api, 2007, "third-secret").status_code == 201


def test_the_api_process_has_as_many_threads_as_connections(
    pg_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2S_API_DB_POOL", "7")
    get_settings.cache_clear()
    try:
        served = create_served_app()
        pool = get_engine().pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool._max_overflow) == (7, 0)
        assert isinstance(served, ThreadLimit) and served.threads == 7

        async def limit_while_serving() -> float:
            async def noop(*_: Any) -> None:
                return None

            await ThreadLimit(noop, 7)({"type": "lifespan"}, noop, noop)
            return anyio.to_thread.current_default_thread_limiter().total_tokens

        assert anyio.run(limit_while_serving) == 7
        # And it answers as the API does.
        assert TestClient(served).get("/health").json()["database"] == "ok"
    finally:
        from hub.db import dispose_all, use_pool

        use_pool(5, 5)  # this test process's default again
        dispose_all()
        get_settings.cache_clear()


# ------------------------------------------------------------ --workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _sockets(pid: int, port: int, state: str) -> int:
    """How many TCP sockets on local ``port`` in ``state`` (``0A`` listening,
    ``01`` established) process ``pid`` holds, from /proc."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] == state and cols[9] in inodes:
                count += 1
    return count


def _healthy(base: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{base}/health", timeout=5).status_code == 200
    return False


def test_api_workers_2_answers_from_two_processes(pg_hub: Hub) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (pg_hub.var_dir / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s.cli", "api", "--port", str(port), "--workers", "2"],
        env=pg_hub.env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: proc.poll() is None and _healthy(base), timeout=60, what="the API")

        def serving() -> list[int]:
            found = [c for c in _children(proc.pid) if _sockets(c, port, "0A")]
            return found if len(found) == 2 else []

        workers = wait_for(serving, timeout=60, what="two API processes listening")
        answered: set[int] = set()
        for _ in range(30):
            clients = [httpx.Client(base_url=base, timeout=10) for _ in range(8)]
            try:
                for client in clients:
                    answer = client.get("/health")
                    assert answer.status_code == 200 and answer.json()["status"] == "ok"
                # Each kept-alive connection is held by the process that answered on it.
                answered |= {pid for pid in workers if _sockets(pid, port, "01")}
            finally:
                for client in clients:
                    client.close()
            if answered == set(workers):
                break
        assert answered == set(workers), (workers, answered, pg_hub.logs()[-2000:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # SIGTERM to the supervisor stops its workers too.
    assert proc.returncode == 0, pg_hub.logs()[-2000:]
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), timeout=10)
