"""SYSPRO through real workers: a drain's batch of orders takes one e.net session.

PostgreSQL, Redis and worker processes; the company database in PostgreSQL
and e.net served over HTTP by the emulator, which counts its calls. The
test holds the source's slot while each round of five orders queues up, so
that one drain claims all five as one batch when it is let go; then it
counts the e.net calls that batch made. Rounds two and three end the
session, then drop the connection, after the second Post of the batch:
the session is opened again and every order is in SorMaster once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from emulators import syspro
from hub import orders as order_states
from hub.db import session_scope
from hub.models import DeadLetter, Order, Product, SyncRun
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import canonical
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers import limits
from workers.orders import submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

OPERATOR_PASSWORD = "syspro-Batch-Op-17"
POST = "Transaction/Post"


@pytest.fixture
def company(postgres_db: Any) -> Iterator[Any]:
    url = postgres_db("s2s_syspro")
    summary = syspro.seed(url, stock=200, price_codes=2, warehouses=2, customers=10, seed=4)
    with syspro.serve(url, operator_password=OPERATOR_PASSWORD) as server:
        server.summary = summary
        yield server


def _synced_source(hub: Hub, server: Any) -> tuple[int, int, list[str]]:
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
                "default_customer_code": "CASH01",
                "order_warehouse": "WH01",
                "timeout": 5,
            },
        )
        client_id, source_id = client.id, source.id
    hub.start_worker(concurrency=2)
    run_id = start_sync(source_id, "products", requested_by="test").run.id

    def finished() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run.status != "running" else None

    run = wait_for(finished, timeout=120, what="the products sync")
    assert run.status == "succeeded", run.error
    with session_scope() as s:
        skus = list(
            s.scalars(
                select(Product.source_product_code)
                .where(Product.deleted_at.is_(None))
                .order_by(Product.source_product_code)
                .limit(30)
            )
        )
    return client_id, source_id, skus


def _count(status: str) -> int:
    with session_scope() as s:
        query = select(func.count()).select_from(Order).where(Order.status == status)
        return s.scalar(query) or 0


def _round(
    server: Any, client_id: int, source_id: int, codes: list[str], skus: list[str]
) -> dict[str, int]:
    """Queue ``codes`` behind the source's slot, let one drain raise them all;
    the e.net calls that took."""
    limits.reset_client()
    held = wait_for(lambda: limits.acquire(source_id, 1, 120), timeout=60, what="the source's slot")
    raised_before = _count(order_states.RAISED)
    try:
        for n, code in enumerate(codes):
            result, errors = submit(client_id, canonical(code, skus[2 * n : 2 * n + 2]))
            assert result is not None and result.created, errors
        wait_for(
            lambda: _count(order_states.QUEUED) == len(codes), timeout=60, what="orders queued"
        )
        before = server.faults.counts()
    finally:
        limits.release(source_id, held)
    wait_for(
        lambda: _count(order_states.RAISED) == raised_before + len(codes),
        timeout=120,
        what=f"{len(codes)} orders raised",
    )
    after = server.faults.counts()
    return {call: after.get(call, 0) - before.get(call, 0) for call in ("Logon", POST, "Logoff")}


def test_a_batch_takes_one_session_which_is_opened_again_when_it_dies(
    orders_hub: Hub, company: Any
) -> None:
    client_id, source_id, skus = _synced_source(orders_hub, company)

    plain = [f"B1-{n}" for n in range(5)]
    assert _round(company, client_id, source_id, plain, skus) == {
        "Logon": 1,
        POST: 5,
        "Logoff": 1,
    }

    company.faults.expire_session_next(1, after=2)
    expired = [f"B2-{n}" for n in range(5)]
    calls = _round(company, client_id, source_id, expired, skus[10:])
    assert company.faults.injected() == {"expire": 1}
    assert calls == {"Logon": 2, POST: 6, "Logoff": 1}, calls

    company.faults.drop_after_commit_next(1, after=2)
    dropped = [f"B3-{n}" for n in range(5)]
    calls = _round(company, client_id, source_id, dropped, skus[20:])
    assert company.faults.injected() == {"expire": 1, "drop": 1}
    assert calls == {"Logon": 2, POST: 5, "Logoff": 2}, calls  # the third was found, not resent

    in_syspro = syspro.read_orders(company.url)
    numbers = [o["CustomerPoNumber"] for o in in_syspro]
    assert sorted(numbers) == sorted(plain + expired + dropped), "every order in SorMaster once"
    by_po = {o["CustomerPoNumber"]: o["SalesOrder"] for o in in_syspro}
    with session_scope() as s:
        hub = dict(s.execute(select(Order.channel_order_code, Order.document_number)).all())
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
        attempts = set(s.scalars(select(Order.attempts)))
    assert hub == by_po
    assert attempts == {1}, "no order needed a second attempt"
    assert OPERATOR_PASSWORD not in orders_hub.logs()


def test_check_counts_what_will_sync_and_records_no_order(orders_hub: Hub, company: Any) -> None:
    """``s2s check`` on a source whose company database is PostgreSQL."""
    _synced_source(orders_hub, company)
    before = company.faults.counts()
    check = orders_hub.run_cli("check", "acme", "syspro")
    assert check.returncode == 0, check.stderr
    active, stock = company.summary.active, company.summary.stock
    assert 0 < active < stock
    assert f"{active} of {stock} stock codes will sync as products" in check.stdout
    assert f"the other {stock - active} are read as Delete" in check.stdout
    assert "SORTOI validated a test order (customer CASH01" in check.stdout
    assert syspro.order_counts(company.url).headers == 0
    after = company.faults.counts()
    assert {c: after.get(c, 0) - before.get(c, 0) for c in after} == {
        "Logon": 1,
        POST: 1,
        "Logoff": 1,
    }
    assert OPERATOR_PASSWORD not in check.stdout + check.stderr
