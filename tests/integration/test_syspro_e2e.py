"""SYSPRO end to end: the company database in PostgreSQL, e.net over HTTP.

Real worker processes, PostgreSQL and Redis. The emulated company database
holds SYSPRO's stock, price, warehouse and customer tables; the emulated
e.net service imports SORTOI documents into SorMaster and SorDetail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from emulators import syspro
from hub.db import session_scope
from hub.models import Customer, DeadLetter, Order, Product, SyncRun
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import canonical
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers.orders import submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

OPERATOR_PASSWORD = "syspro-Op-Secret-8"
STOCK = 50_000
PAGE = 1000
TIERS = {"A": "retail", "B": "wholesale", "C": "trade"}


def _company(postgres_db: Any, stock: int) -> Iterator[Any]:
    url = postgres_db("s2s_syspro")
    summary = syspro.seed(url, stock=stock, price_codes=3, warehouses=3, customers=300, seed=6)
    with syspro.serve(url, operator_password=OPERATOR_PASSWORD) as server:
        server.summary = summary
        yield server


@pytest.fixture
def company(postgres_db: Any) -> Iterator[Any]:
    yield from _company(postgres_db, STOCK)


@pytest.fixture
def small_company(postgres_db: Any) -> Iterator[Any]:
    yield from _company(postgres_db, 500)


def _source(server: Any, password: str = OPERATOR_PASSWORD) -> tuple[int, int]:
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
                "operator_password": password,
                "company_id": "EDU1",
                "enet_url": server.enet_url,
                "price_codes": TIERS,
                "sales_rep": "001",
                "order_type": "00",
                "default_customer_code": "CASH01",
                "order_warehouse": "WH01",
                "page_size": PAGE,
            },
        )
        return client.id, source.id


def _run(source_id: int, stream: str = "products") -> SyncRun:
    run_id = start_sync(source_id, stream, requested_by="test").run.id

    def done() -> SyncRun | None:
        with session_scope() as s:
            r = s.get(SyncRun, run_id)
            return r if r.status != "running" else None

    return wait_for(done, timeout=600, what=f"run {run_id}")


def test_50000_stock_codes_sync_with_three_queries_a_page(orders_hub: Hub, company: Any) -> None:
    _, source_id = _source(company)
    orders_hub.start_worker(concurrency=2)
    run = _run(source_id)
    assert run.status == "succeeded", run.error
    assert run.fetched == STOCK
    assert run.created == company.summary.active and run.quarantined == 0
    # Every page of the run cost three queries whatever its size, as the worker logged.
    spent = [int(n) for n in re.findall(r"fetched \d+ records in (\d+) queries", orders_hub.logs())]
    assert len(spent) == STOCK // PAGE + 1  # the last page is empty: one query finds that
    assert spent.count(3) == STOCK // PAGE and max(spent) == 3

    rows = syspro.generate_stock(STOCK, 6, 3, 3)
    sample = next(m for m in rows.master[1234:] if m["UserField1"] == "Y")
    code = sample["StockCode"]
    prices = {p["PriceCode"]: p["SellingPrice"] for p in rows.prices if p["StockCode"] == code}
    stores = {
        w["Warehouse"]: w["QtyOnHand"] - w["QtyAllocated"]
        for w in rows.warehouses
        if w["StockCode"] == code
    }
    with session_scope() as s:
        product = s.scalars(select(Product).where(Product.source_product_code == code)).one()
    (variant,) = product.data["variants"]
    assert product.data["title"] == sample["Description"]
    assert variant["sku"] == code and variant["inventory_management"] is True
    assert {t["tier"]: t["price"] for t in variant["price_tiers"]} == pytest.approx(
        {TIERS[c]: p for c, p in prices.items()}
    )
    assert {a["description"]: a["qty"] for a in variant["qty_availability"]} == stores
    assert variant["qty"] == sum(stores.values())


def test_customers_sync_with_name_as_first_and_last_name(
    orders_hub: Hub, small_company: Any
) -> None:
    _, source_id = _source(small_company)
    orders_hub.start_worker(concurrency=2)
    run = _run(source_id, "customers")
    assert run.status == "succeeded", run.error
    expected = {c["Customer"]: c for c in syspro.generate_customers(300, 6)}
    assert run.created == len(expected)
    with session_scope() as s:
        stored = {c.source_customer_code: c.data for c in s.scalars(select(Customer))}
    assert set(stored) == set(expected)
    for code, account in expected.items():
        data = stored[code]
        assert data["first_name"] == data["last_name"] == account["Name"]
        assert data["email"] == account["Email"]
        assert {"key": "channels", "value": "trade"} in data["meta"]


def test_sortoi_orders_once_line_errors_and_bad_password(
    orders_hub: Hub, small_company: Any
) -> None:
    company = small_company
    client_id, source_id = _source(company)
    orders_hub.start_worker(concurrency=2)
    assert _run(source_id).status == "succeeded"
    with session_scope() as s:
        skus = list(
            s.scalars(
                select(Product.source_product_code)
                .where(Product.deleted_at.is_(None))
                .order_by(Product.id)
                .limit(40)
            )
        )

    company.faults.drop_after_commit_next(1)
    codes = [f"#{5000 + n}" for n in range(15)]
    for n, code in enumerate(codes):
        result, errors = submit(client_id, canonical(code, skus[2 * n : 2 * n + 2]))
        assert result is not None, errors

    def raised() -> bool:
        with session_scope() as s:
            n = s.scalar(select(func.count()).select_from(Order).where(Order.status == "raised"))
            return n == len(codes)

    wait_for(raised, timeout=180, what="15 orders raised")
    counts = syspro.order_counts(company.url)
    assert counts.headers == counts.orders == len(codes)  # the dropped one was found, not resent
    in_syspro = {o["CustomerPoNumber"]: o for o in syspro.read_orders(company.url)}
    with session_scope() as s:
        for code, document in s.execute(select(Order.channel_order_code, Order.document_number)):
            assert in_syspro[code]["SalesOrder"] == document

    # A stock code SYSPRO no longer holds: dead-lettered with its ErrorDescription.
    engine = create_engine(company.url)
    with engine.begin() as conn:
        conn.execute(text('DELETE FROM "InvMaster" WHERE "StockCode" = :c'), {"c": skus[31]})
    engine.dispose()
    bad, _ = submit(client_id, canonical("#5901", [skus[31]], shipping=0))
    assert bad is not None

    def letter(order_id: int) -> DeadLetter | None:
        with session_scope() as s:
            return s.scalars(select(DeadLetter).where(DeadLetter.order_id == order_id)).first()

    dead = wait_for(lambda: letter(bad.order.id), timeout=60, what="the line error")
    assert dead.error_class == "rejected"
    assert f"Stock code '{skus[31]}' not found" in dead.message

    # The operator's password changed in SYSPRO: a settings dead letter.
    _source(company, password="not-the-password")
    wrong, _ = submit(client_id, canonical("#5902", [skus[32]], shipping=0))
    assert wrong is not None
    dead = wait_for(lambda: letter(wrong.order.id), timeout=60, what="the settings error")
    assert dead.error_class == "settings"
    assert "Invalid operator password" in dead.message
    assert "not-the-password" not in dead.message + (dead.fix or "")
    assert OPERATOR_PASSWORD not in orders_hub.logs()
