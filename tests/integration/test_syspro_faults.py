"""SYSPRO under faults, end to end: every order lands in SorMaster exactly once.

Real worker processes on PostgreSQL and Redis; the company database in
PostgreSQL and e.net served over HTTP by the emulator, which misbehaves as
a SYSPRO site does: HTTP 5xx from IIS, an ``ERROR:`` sentence with HTTP 200
(a licence limit, a session e.net dropped), the connection closed after the
Post committed the order, and a raise worker SIGKILLed while its Post is at
e.net. The orders come from two channels of one client that share order
numbers, under ``po_number: "{channel}-{channel_order_code}"``, so the test
also shows that neither channel's order is taken for the other's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from emulators import syspro
from hub.db import session_scope
from hub.models import DeadLetter, Order, Product, SyncRun
from tests.conftest import Hub, wait_for
from tests.integration.test_faults_pipeline import hub_factory as hub_factory
from tests.integration.test_orders_e2e import canonical
from workers.orders import submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.faults]

OPERATOR_PASSWORD = "syspro-Fault-Op-31"
CHANNELS = ("shopify", "woocommerce")


@pytest.fixture
def company(postgres_db: Any) -> Iterator[Any]:
    url = postgres_db("s2s_syspro")
    syspro.seed(url, stock=300, price_codes=2, warehouses=2, customers=20, seed=9)
    with syspro.serve(url, operator_password=OPERATOR_PASSWORD) as server:
        yield server


def _source(server: Any, timeout: float = 5.0) -> tuple[int, int]:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "syspro",
            "syspro",
            {
                "database_url": server.url,
                "operator": "ADMIN",
                "operator_password": OPERATOR_PASSWORD,
                "company_id": "EDU1",
                "enet_url": server.enet_url,
                "default_customer_code": syspro.generate_customers(20, 9)[0]["Customer"],
                "order_warehouse": "WH01",
                "po_number": "{channel}-{channel_order_code}",
                "page_size": 300,
                "timeout": timeout,
            },
        )
        return client.id, source.id


def _synced(hub: Hub, source_id: int) -> list[str]:
    """Sync the products (orders are routed by SKU) and return some stock codes."""
    hub.start_worker(queues="maintenance,fetch,map,upsert,orders", concurrency=2, name="base")
    run_id = start_sync(source_id, "products", requested_by="test").run.id

    def finished() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run.status != "running" else None

    run = wait_for(finished, timeout=120, what="the products sync")
    assert run.status == "succeeded", run.error
    with session_scope() as s:
        return list(
            s.scalars(
                select(Product.source_product_code)
                .where(Product.deleted_at.is_(None))
                .order_by(Product.source_product_code)
                .limit(60)
            )
        )


def _submit(client_id: int, numbers: list[str], skus: list[str]) -> list[tuple[str, str]]:
    """Each number from both channels: the same order number twice, two orders."""
    submitted = []
    for n, number in enumerate(numbers):
        for c, channel in enumerate(CHANNELS):
            order = canonical(number, skus[(2 * n + c) % len(skus) : (2 * n + c) % len(skus) + 2])
            order["channel"] = channel
            result, errors = submit(client_id, order)
            assert result is not None, errors
            submitted.append((channel, number))
    return submitted


def _raised() -> int:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(Order).where(Order.status == "raised")) or 0
        )


def _assert_once(server: Any, submitted: list[tuple[str, str]]) -> None:
    """SorMaster holds each order once, under its channel's reference, with the hub's number."""
    counts = syspro.order_counts(server.url)
    assert counts.headers == counts.orders == len(submitted), counts
    in_syspro = {o["CustomerPoNumber"]: o["SalesOrder"] for o in syspro.read_orders(server.url)}
    assert set(in_syspro) == {f"{channel}-{number}" for channel, number in submitted}
    with session_scope() as s:
        rows = s.execute(select(Order.channel, Order.channel_order_code, Order.document_number))
        hub = {f"{channel}-{code}": document for channel, code, document in rows}
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
    assert hub == in_syspro


def test_enet_5xx_error_answers_and_a_dropped_answer_raise_each_order_once(
    hub_factory: Callable[..., Hub], company: Any
) -> None:
    hub = hub_factory()
    client_id, source_id = _source(company)
    skus = _synced(hub, source_id)
    hub.start_beat()
    faults = company.faults
    faults.fail_next(3, 503)  # IIS: the application pool is recycling
    faults.error_next(1, "ERROR: Licence limit reached", "Transaction/Post")
    faults.error_next(1, "ERROR: Session is not logged on", "Transaction/Post")
    faults.drop_after_commit_next(2)  # committed in SorMaster, the answer never sent
    hub.start_worker(queues="raise.syspro", concurrency=1, name="raise1")
    submitted = _submit(client_id, [f"{1001 + n}" for n in range(8)], skus)

    wait_for(lambda: _raised() == len(submitted), timeout=180, what="16 orders raised")
    injected = faults.injected()
    assert injected == {"fail": 3, "error": 2, "drop": 2}, injected
    _assert_once(company, submitted)
    with session_scope() as s:
        assert s.scalar(select(func.max(Order.attempts))) >= 2
    assert OPERATOR_PASSWORD not in hub.logs()


def test_a_worker_killed_while_its_post_is_at_enet_raises_each_order_once(
    hub_factory: Callable[..., Hub], company: Any
) -> None:
    hub = hub_factory()
    client_id, source_id = _source(company)
    skus = _synced(hub, source_id)
    hub.start_beat()
    raiser = hub.start_worker(queues="raise.syspro", concurrency=1, name="raise1")
    company.faults.latency = 0.4  # every e.net call is on the wire for a while
    submitted = _submit(client_id, [f"K{n:03d}" for n in range(10)], skus)
    posts = "Transaction/Post"

    def post_in_flight() -> bool:
        # e.net has taken some orders, and a Post has arrived that the hub
        # has not recorded as raised: the kill lands on a Post at e.net.
        return company.faults.count(posts) >= 3 and company.faults.count(posts) > _raised()

    wait_for(post_in_flight, timeout=120, interval=0.02, what="a Post at e.net")
    hub.kill(raiser)
    assert _raised() < len(submitted)
    in_syspro_at_kill = syspro.order_counts(company.url).headers
    company.faults.latency = 0.0
    hub.start_worker(queues="raise.syspro", concurrency=1, name="raise2")
    wait_for(lambda: _raised() == len(submitted), timeout=180, what="20 orders raised")
    _assert_once(company, submitted)
    assert in_syspro_at_kill >= 1
