"""The settings for what the ERPs' public material leaves open, against the emulators.

IQ Retail's ``qty_formula`` and iSync's ``order_line_key`` and
``prices_include_vat``: each read or raised through the real connector,
over HTTP, against the emulator that answers as the published formats say,
then mapped by the source's map and loaded by the hub's schema (the path
``s2s preview`` and a sync take). The hub's own part of ``stock_line_id``
(finding each SKU's synced stock line id) is in the iSync end-to-end tests;
here the map's output for the synced lines stands in for it. ``s2s
mappings show`` is run as the command (its group, without the root's
logging set-up).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from connectors.base import RejectedError
from connectors.iq_retail import IqRetailConnector
from connectors.isync import IsyncConnector
from emulators import iq_retail, isync
from mappings import get_map
from s2s.cli.preview import mappings
from workers.pipeline import map_records

IQ_PASSWORD = "iq-site-Pass1"
ISYNC_PASSWORD = "isync-site-Pass1"
ITEMS = 300


# --------------------------------------------------------------------------
# IQ Retail: qty_formula, and what check counts
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('iq') / 'iq.sqlite'}"
    summary = iq_retail.seed(url, products=ITEMS, seed=7)
    with iq_retail.serve(url, password=IQ_PASSWORD) as server:
        server.summary = summary
        yield server


def iq_connector(server: Any, **over: Any) -> IqRetailConnector:
    settings = {
        "request_url": server.base_url,
        "company_number": "002",
        "user_number": "99",
        "user_password": IQ_PASSWORD,
        "page_size": 100,
        **over,
    }
    return IqRetailConnector(settings)


def synced_qty(server: Any, **over: Any) -> dict[str, int | None]:
    """Every product a full read makes, by code: its variant's qty as the hub stores it."""
    with iq_connector(server, **over) as connector:
        settings = dict(connector.settings)
        records: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = connector.read("products", cursor, 100)
            records.extend(page.records)
            cursor = page.next_cursor
            if cursor is None:
                break
    items, errors = map_records("iq_retail", "products", records, settings)
    assert errors == []
    return {i.key: i.data["variants"][0]["qty"] for i in items if i.action == "active"}


def test_qty_formula_onhand_is_the_seeds_and_less_sales_orders_subtracts(iq: Any) -> None:
    rows = iq_retail.generate_stock(ITEMS, 7)
    web = {r["code"]: r for r in rows if r["webitem"]}
    held = [code for code, r in web.items() if r["salesorder"]]
    assert held, "the emulator's stock must hold some sales orders for this to show anything"
    assert any(r["onhand"] < r["salesorder"] for r in web.values()), "and some over-committed"

    default = synced_qty(iq)
    assert default == {code: max(math.floor(r["onhand"]), 0) for code, r in web.items()}
    less = synced_qty(iq, qty_formula="onhand_less_sales_orders")
    assert less == {
        code: max(math.floor(r["onhand"] - r["salesorder"]), 0) for code, r in web.items()
    }
    assert {code for code in web if less[code] != default[code]} <= set(held)


def test_check_counts_the_web_items_that_will_sync(iq: Any) -> None:
    summary = iq.summary
    with iq_connector(iq, qty_formula="onhand_less_sales_orders") as connector:
        said = connector.check()
    assert said == (
        f"reached IQ Retail company 002 at {iq.base_url} as user 99: "
        f"{summary.web_items:,} web items will sync as products (of {summary.products:,} "
        f"stock items; the other {summary.hidden:,} are not ticked WebItem and stay out of "
        "the hub)"
    )
    # What the count promises is what a full read makes active.
    assert len(synced_qty(iq)) == summary.web_items


# --------------------------------------------------------------------------
# iSync: order_line_key and prices_include_vat
# --------------------------------------------------------------------------


@pytest.fixture
def numbered() -> Iterator[tuple[isync.IsyncData, Any]]:
    """An iSync whose stock lines are keyed by number, not by SKU."""
    lines = isync.generate_stock(products=6, variants_per_product=2, seed=5, numeric_ids=True)
    data = isync.IsyncData([{**line, "WebSale": "Active"} for line in lines])
    data.add_service_item("900001")
    with isync.serve(data, password=ISYNC_PASSWORD) as running:
        yield data, running


def isync_connector(running: Any, **over: Any) -> IsyncConnector:
    settings = {
        "service_url": running.service_url,
        "username": running.username,
        "password": ISYNC_PASSWORD,
        "default_customer_code": "CASH01",
        **over,
    }
    return IsyncConnector(settings)


def stock_line_ids(connector: IsyncConnector) -> dict[str, str]:
    """SKU -> the ProductStockID the hub keeps in the variant's meta, from a full read."""
    page = connector.read("products", None, 500)
    assert page.next_cursor is None
    items, errors = map_records("isync", "products", page.records, dict(connector.settings))
    assert errors == []
    found: dict[str, str] = {}
    for item in items:
        for variant in item.data["variants"]:
            (meta,) = variant["meta"]
            assert meta["key"] == "ProductStockID"
            found[variant["sku"]] = meta["value"]
    return found


def taxed_order(code: str, skus: list[str]) -> dict[str, Any]:
    """Two units of each SKU at 100.00 ex VAT less 10.00, VAT 15% on 190.00; courier 95.00."""
    return {
        "channel_order_code": code,
        "customer": {"first_name": "Ann"},
        "shipping_address": {"first_name": "Ann", "address1": "86 Beach Road"},
        "line_items": [
            {
                "sku": sku,
                "qty": 2,
                "price": "100.00",
                "total_discount": "10.00",
                "tax_lines": [{"code": "VAT", "price": "28.50", "rate": 0.15}],
            }
            for sku in skus
        ],
        "shipping_lines": [{"price": "95.00", "tax_lines": [{"price": "14.25", "rate": 0.15}]}],
    }


def raise_order(connector: IsyncConnector, order: dict[str, Any], ids: dict[str, str]) -> str:
    """Map the order as the raise task does (the synced ids on its lines) and raise it."""
    settings = dict(connector.settings)
    order_map = get_map("isync", "orders")
    if order_map.line_meta_keys(settings):
        order = {
            **order,
            "line_items": [
                {**item, "variant_meta": {"ProductStockID": ids[item["sku"]]}}
                for item in order["line_items"]
            ],
        }
    return connector.raise_order(order_map.apply(order, settings))


def test_stock_line_id_quotes_the_synced_numbers_that_iSync_keys_lines_by(
    numbered: tuple[isync.IsyncData, Any],
) -> None:
    data, running = numbered
    lines = data.stock_lines()
    skus = [lines[0]["SKU"], lines[3]["SKU"]]
    # The seed's reading, SKU as ProductStockID, is refused by this iSync.
    refused = f"Line 1: ProductStockID '{skus[0]}' does not exist"
    with (
        isync_connector(running, shipping_code="900001") as connector,
        pytest.raises(RejectedError, match=refused),
    ):
        raise_order(connector, taxed_order("#1", skus), {})
    with isync_connector(
        running, shipping_code="900001", order_line_key="stock_line_id"
    ) as connector:
        ids = stock_line_ids(connector)
        assert ids == {line["SKU"]: line["ProductStockID"] for line in lines}
        assert raise_order(connector, taxed_order("#2", skus), ids) == "SO000001"
    (raised,) = data.orders()
    assert raised["PONumber"] == "#2"
    assert [(ln["ProductStockID"], ln["Units"]) for ln in raised["Lines"]] == [
        (lines[0]["ProductStockID"], 2),
        (lines[3]["ProductStockID"], 2),
        ("900001", 1),
    ]


def test_prices_include_vat_sends_the_websites_price(
    numbered: tuple[isync.IsyncData, Any],
) -> None:
    data, running = numbered
    lines = data.stock_lines()
    sku = lines[1]["SKU"]
    keyed = {"shipping_code": "900001", "order_line_key": "stock_line_id"}
    with isync_connector(running, **keyed) as ex_vat:
        ids = stock_line_ids(ex_vat)
        raise_order(ex_vat, taxed_order("#10", [sku]), ids)
    with isync_connector(running, **keyed, prices_include_vat=True) as inc_vat:
        raise_order(inc_vat, taxed_order("#11", [sku]), ids)
    prices = {o["PONumber"]: [ln["SellingPrice"] for ln in o["Lines"]] for o in data.orders()}
    # 100.00 less 10.00 over two units = 95.00 each ex VAT; plus 28.50 / 2 = 109.25.
    assert prices == {"#10": ["95.00", "95.00"], "#11": ["109.25", "109.25"]}


# --------------------------------------------------------------------------
# s2s mappings show
# --------------------------------------------------------------------------


def show(erp: str, stream: str) -> list[str]:
    result = CliRunner().invoke(mappings, ["show", erp, stream])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_mappings_show_lists_each_setting_with_its_alternatives() -> None:
    iq_lines = show("iq_retail", "products")
    assert iq_lines[0].replace(" ", "") == "|IQRetail|Stock2Shop|Description|"
    assert "Per-source settings:" in iq_lines
    assert (
        "- variants.qty ← onhand (qty_formula=onhand, the default; onhand_less_sales_orders: "
        "onhand - salesorder, the stock not yet committed to sales orders (stored as 0 when "
        "below 0))"
    ) in iq_lines
    isync_lines = show("isync", "orders")
    settings = isync_lines[isync_lines.index("Per-source settings:") + 1 :]
    assert [line.split(" (", 1)[0] for line in settings if line] == [
        "- ProductStockID ← line_item.sku",
        "- SellingPrice ← line_item.price less its discount, per unit, ex VAT",
    ]
    assert (
        "stock_line_id: the synced stock line's ProductStockID for line_item.sku" in (settings[0])
    )
    assert "true: the same plus the line's tax_lines amounts per unit" in settings[1]
    # A map without such settings prints its table alone.
    assert "Per-source settings:" not in show("isync", "products")
