"""iSync end to end: the hub against the iSync SOAP emulator, over HTTP.

Real worker processes, PostgreSQL and Redis. iSync lists one stock line per
variant and ends an account's earlier session at every login, so these tests
check what a user of a variable-product shop would: whole products across
page boundaries, and two workers sharing one account without tripping over
each other's session.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from emulators import isync
from hub.db import session_scope
from hub.models import DeadLetter, Order, Product, SyncRun
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import canonical
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers.orders import submit
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

PASSWORD = "isync-Secret-31"
PRODUCTS = 2_500
VARIANTS = 4  # 10,000 stock lines


def _all_active(lines: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{**line, "WebSale": "Active"} for line in lines]


@pytest.fixture
def emulator() -> Iterator[Any]:
    data = isync.IsyncData(_all_active(isync.generate_stock(PRODUCTS, VARIANTS, seed=4)))
    data.add_service_item("SHIP")
    with isync.serve(data, password=PASSWORD) as server:
        yield server


def _source(server: Any, page_size: int = 333, **over: Any) -> tuple[int, int]:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "isync",
            "isync",
            {
                "service_url": server.service_url,
                "username": server.username,
                "password": PASSWORD,
                "default_customer_code": "CASH01",
                "shipping_code": "SHIP",
                "page_size": page_size,
                **over,
            },
        )
        return client.id, source.id


def _run(source_id: int, **kw: Any) -> SyncRun:
    run_id = start_sync(source_id, "products", requested_by="test", **kw).run.id

    def done() -> SyncRun | None:
        with session_scope() as s:
            r = s.get(SyncRun, run_id)
            return r if r.status != "running" else None

    return wait_for(done, timeout=300, what=f"run {run_id}")


def _stored() -> dict[str, dict[str, Any]]:
    with session_scope() as s:
        return {
            p.source_product_code: p.data
            for p in s.scalars(select(Product).where(Product.deleted_at.is_(None)))
        }


def test_10000_lines_make_2500_whole_variable_products(orders_hub: Hub, emulator: Any) -> None:
    lines = emulator.data.stock_lines()
    assert len(lines) == PRODUCTS * VARIANTS
    expected: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in lines:
        expected[line["JobProductID"]].append(line)
    _, source_id = _source(emulator, page_size=333)  # 333 is not a multiple of 4: splits
    orders_hub.start_worker(concurrency=2)

    first = _run(source_id)
    assert first.status == "succeeded", first.error
    assert first.fetched == PRODUCTS * VARIANTS
    assert first.created == PRODUCTS and first.quarantined == 0
    stored = _stored()
    assert set(stored) == set(expected)
    for job, job_lines in expected.items():
        product = stored[job]
        assert product["title"] == job_lines[0]["JobDescription"]
        assert [o["name"] for o in product["options"]] == ["Size", "Colour"]
        by_sku = {v["sku"]: v for v in product["variants"]}
        assert set(by_sku) == {line["SKU"] for line in job_lines}, job
        for line in job_lines:
            variant = by_sku[line["SKU"]]
            assert (variant["option1"], variant["option2"]) == (line["Size"], line["Colour"])
            assert variant["price"] == pytest.approx(float(line["RetailSellingPrice"]))
            tiers = {t["tier"]: t["price"] for t in variant["price_tiers"]}
            assert tiers == pytest.approx(
                {
                    "retail": float(line["RetailSellingPrice"]),
                    "selling": float(line["SellingPrice"]),
                }
            )
            assert variant["qty"] == max(int(line["AvailableUnits"]), 0)
            assert variant["inventory_management"] is True

    # Twenty lines change: the incremental run brings only those lines, and
    # each touched product keeps all its variants, with the new values.
    changed = emulator.data.touch(20, seed=9, when="2026-11-30T09:00:00")
    second = _run(source_id)
    assert second.status == "succeeded", second.error
    assert not second.full and second.since == first.high_water
    assert 20 <= second.fetched < 60
    now = {line["SKU"]: line for line in emulator.data.stock_lines()}
    touched = {now[sku]["JobProductID"] for sku in changed}
    assert second.updated == len(touched) and second.created == 0
    stored = _stored()
    assert len(stored) == PRODUCTS
    for job in touched:
        variants = {v["sku"]: v for v in stored[job]["variants"]}
        assert len(variants) == VARIANTS, job
        for sku in variants:
            assert variants[sku]["price"] == pytest.approx(float(now[sku]["RetailSellingPrice"]))
            assert variants[sku]["qty"] == max(int(now[sku]["AvailableUnits"]), 0)

    full = _run(source_id, full=True)
    assert full.status == "succeeded" and full.updated == 0 and full.unchanged == PRODUCTS


def test_two_workers_share_one_account_and_raise_each_order_once(
    orders_hub: Hub, emulator: Any
) -> None:
    client_id, source_id = _source(emulator, page_size=200)
    orders_hub.start_worker(concurrency=2, name="w1")
    orders_hub.start_worker(concurrency=2, name="w2")
    assert _run(source_id).status == "succeeded"
    skus = [line["SKU"] for line in emulator.data.stock_lines()[:80]]

    # A resync and forty orders at once, through both workers, one account.
    emulator.faults.drop_after_commit_next(1)
    run_id = start_sync(source_id, "products", requested_by="test", full=True).run.id
    codes = [f"#{3000 + n}" for n in range(40)]
    for n, code in enumerate(codes):
        result, errors = submit(client_id, canonical(code, skus[2 * n : 2 * n + 2]))
        assert result is not None, errors

    def all_raised() -> bool:
        with session_scope() as s:
            raised = s.scalar(
                select(func.count()).select_from(Order).where(Order.status == "raised")
            )
            return raised == len(codes)

    wait_for(all_raised, timeout=180, what="40 orders raised")
    run = wait_for(
        lambda: _finished(run_id),
        timeout=300,
        what=f"run {run_id}",
    )
    assert run.status == "succeeded", run.error

    # Exactly once in iSync, with its order numbers in the hub.
    assert emulator.data.order_counts() == dict.fromkeys(codes, 1)
    in_isync = {o["PONumber"]: o for o in emulator.data.orders()}
    with session_scope() as s:
        rows = s.execute(
            select(Order.channel_order_code, Order.document_number, Order.attempts)
        ).all()
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
    for code, document, attempts in rows:
        assert in_isync[code]["OrderNumber"] == document
        assert attempts <= 2  # the dropped one was asked for, not sent again
    # Shipping went in as its service line.
    first = in_isync[codes[0]]
    assert first["Lines"][-1]["ProductStockID"] == "SHIP"
    assert first["Lines"][-1]["Units"] == 1
    assert [ln["ProductStockID"] for ln in first["Lines"][:-1]] == skus[0:2]
    # Neither worker ever failed on the other's session: no retried fetch,
    # and only the order whose connection was dropped needed a second attempt.
    logs = orders_hub.logs()
    assert "fetch failed" not in logs
    assert sum(1 for _, _, attempts in rows if attempts > 1) == 1


def _finished(run_id: int) -> SyncRun | None:
    with session_scope() as s:
        r = s.get(SyncRun, run_id)
        return r if r.status != "running" else None


def test_a_bad_line_is_dead_lettered_with_isyncs_response_text(
    orders_hub: Hub, emulator: Any
) -> None:
    client_id, source_id = _source(emulator)
    orders_hub.start_worker(concurrency=2)
    assert _run(source_id).status == "succeeded"
    lines = emulator.data.stock_lines()
    gone = lines[5]["SKU"]
    # The line is withdrawn in iSync after the hub synced it.
    emulator.data.seed([line for line in lines if line["SKU"] != gone])
    emulator.data.add_service_item("SHIP")
    result, _ = submit(client_id, canonical("#4001", [lines[0]["SKU"], gone]))
    assert result is not None

    def letter() -> DeadLetter | None:
        with session_scope() as s:
            return s.scalars(select(DeadLetter)).first()

    dead = wait_for(letter, timeout=60, what="the dead letter")
    assert dead.error_class == "rejected" and dead.attempts == 1
    assert f"Line 2: ProductStockID '{gone}' does not exist" in dead.message
    assert emulator.data.order_counts() == {}
    assert PASSWORD not in orders_hub.logs()


# --------------------------------------------------------------------------
# An iSync that keys order lines by its own stock line ids (order_line_key)
# --------------------------------------------------------------------------


@pytest.fixture
def numbered() -> Iterator[Any]:
    lines = _all_active(isync.generate_stock(40, 3, seed=6, numeric_ids=True))
    data = isync.IsyncData(lines)
    data.add_service_item("900001")
    with isync.serve(data, password=PASSWORD) as server:
        yield server


def _taxed(code: str, skus: list[str]) -> dict[str, Any]:
    """``canonical``'s order with VAT on every line: 15% of what the line costs."""
    order = canonical(code, skus)
    for item in order["line_items"]:
        tax = round(item["qty"] * item["price"] * 0.15, 2)
        item["tax_lines"] = [{"code": "VAT", "price": tax, "rate": 0.15}]
    order["shipping_lines"][0]["tax_lines"] = [{"code": "VAT", "price": 14.25, "rate": 0.15}]
    return order


def test_orders_quote_the_stock_line_ids_the_hub_synced(orders_hub: Hub, numbered: Any) -> None:
    client_id, source_id = _source(
        numbered,
        shipping_code="900001",
        order_line_key="stock_line_id",
        prices_include_vat=True,
    )
    orders_hub.start_worker(concurrency=2)
    assert _run(source_id).status == "succeeded"
    lines = {line["SKU"]: line for line in numbered.data.stock_lines()}
    for product in _stored().values():
        for variant in product["variants"]:
            assert variant["meta"] == [
                {"key": "ProductStockID", "value": lines[variant["sku"]]["ProductStockID"]}
            ]
    skus = sorted(lines)

    # One SKU's stored variant lost its id (as one synced before the map kept
    # it would lack it): an order for it is refused at routing, by name.
    lost = skus[5]
    with session_scope() as s:
        product = s.scalars(
            select(Product).where(Product.source_product_code == lines[lost]["JobProductID"])
        ).one()
        data = dict(product.data)
        data["variants"] = [
            {k: v for k, v in variant.items() if not (variant["sku"] == lost and k == "meta")}
            for variant in data["variants"]
        ]
        product.data = data

    assert submit(client_id, _taxed("#5001", skus[:2]))[0] is not None
    assert submit(client_id, _taxed("#5002", [skus[3], lost]))[0] is not None

    def settled() -> bool:
        with session_scope() as s:
            return (
                s.scalar(select(func.count()).select_from(Order).where(Order.status == "raised"))
                == 1
                and s.scalar(select(func.count()).select_from(DeadLetter)) == 1
            )

    wait_for(settled, timeout=60, what="one order raised, one dead-lettered")
    (raised,) = numbered.data.orders()
    assert raised["PONumber"] == "#5001"
    # canonical(): qty 1 at 100.00 and qty 2 at 101.00, each plus 15% VAT;
    # shipping 95.00 plus 14.25.
    assert raised["Lines"] == [
        {"ProductStockID": lines[skus[0]]["ProductStockID"], "Units": 1, "SellingPrice": "115.00"},
        {"ProductStockID": lines[skus[1]]["ProductStockID"], "Units": 2, "SellingPrice": "116.15"},
        {"ProductStockID": "900001", "Units": 1, "SellingPrice": "109.25"},
    ]
    with session_scope() as s:
        dead = s.scalars(select(DeadLetter)).one()
        order = s.get(Order, dead.order_id)
        assert order is not None and order.channel_order_code == "#5002"
    assert dead.error_class == "unknown_stock_line" and dead.stage == "route"
    assert dead.message == (
        f"order #5002: SKU {lost} has no iSync stock line id (ProductStockID) among the stock "
        "lines synced from iSync, and the source's order_line_key is stock_line_id"
    )
    assert "s2s resync" in dead.fix and "order_line_key" in dead.fix
    assert numbered.data.create_attempts() == {"#5001": 1}
