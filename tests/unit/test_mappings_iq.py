"""The IQ Retail maps against seed 000's tables, and what they do to records and orders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.schemas import load_order, load_product
from mappings import Map, build_products, get_map, map_records, supported
from mappings.iq_retail import order_payload

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seeds" / "iq_retail.md"

Table = tuple[str, list[tuple[str, str, str]]]

PRODUCTS = get_map("iq_retail", "products")
ORDERS = get_map("iq_retail", "orders")


def tables(markdown: str) -> list[Table]:
    """Every pipe table: (left header, [(left, middle, description), ...]) in page order."""
    found: list[Table] = []
    current: list[list[str]] = []
    for line in [*markdown.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            current.append([c.strip() for c in stripped.strip("|").split("|")])
            continue
        if current:
            header, *body = current
            body = [r for r in body if not all(re.fullmatch(r"-+", c) for c in r)]
            found.append((header[0], [(r[0], r[1], r[2]) for r in body]))
        current = []
    return found


@pytest.fixture(scope="module")
def seed() -> list[Table]:
    return tables(SEED.read_text())


def rendered(m: Map) -> Table:
    (table,) = tables(m.render())
    return table


# --------------------------------------------------------------------------
# Seed tables
# --------------------------------------------------------------------------


def test_seed_has_a_product_and_an_order_table(seed: list[Table]) -> None:
    assert [header for header, _ in seed] == ["IQ Retail", "IQ Retail"]


def test_products_render_the_seed_table(seed: list[Table]) -> None:
    assert rendered(PRODUCTS) == seed[0]
    assert PRODUCTS.erp_title == "IQ Retail"


def test_orders_render_the_seed_table(seed: list[Table]) -> None:
    assert rendered(ORDERS) == seed[1]


def test_customers_have_no_map() -> None:
    # Seed 000: IQ Retail does not sync customers.
    assert supported("iq_retail") == ["products", "orders"]
    with pytest.raises(KeyError, match="iq_retail does not support customers"):
        get_map("iq_retail", "customers")


# --------------------------------------------------------------------------
# Products
# --------------------------------------------------------------------------


def stock(**over: Any) -> dict[str, Any]:
    """A GenericSQL record as the connector returns it: keys in lower case."""
    record: dict[str, Any] = {
        "code": "A1",
        "descript": "Alpha",
        "webitem": True,
        "sellprice1": 460.0,
        "onhand": 12,
        "modified": "2026-01-02 10:00:00",
    }
    record.update(over)
    return record


def test_a_stock_record_becomes_a_simple_product() -> None:
    flat = PRODUCTS.apply(stock())
    assert flat.errors == []
    assert dict(flat) == {
        "source_product_code": "A1",
        "source_variant_code": "A1",
        "title": "Alpha",
        "product_active": True,
        "variants.price": 460.0,
        "variants.qty": 12,
        "variants.sku": "A1",
        "variants.inventory_management": True,
    }
    (product,), errors = build_products([flat])
    assert errors == []
    assert product == {
        "source_product_code": "A1",
        "title": "Alpha",
        "product_active": True,
        "variants": [
            {
                "source_variant_code": "A1",
                "sku": "A1",
                "qty": 12,
                "price": 460.0,
                "inventory_management": True,
            }
        ],
    }


def test_padded_strings_and_any_key_case() -> None:
    flat = PRODUCTS.apply(
        {
            "CODE": "B2   ",
            "Descript": " Beta ",
            "WebItem": "T",
            "SellPrice1": " 0012.50 ",
            "OnHand": " -3 ",
        }
    )
    assert flat.errors == []
    assert flat["source_product_code"] == "B2"
    assert flat["variants.sku"] == "B2"
    assert flat["title"] == "Beta"
    assert flat["product_active"] == "T"
    assert flat["variants.price"] == 12.5
    assert flat["variants.qty"] == -3


def test_mapped_stock_loads_into_the_canonical_model() -> None:
    records = [
        stock(),
        stock(code="B2", onhand="-3", webitem="1"),
        stock(code="C3", webitem=False),
        stock(code="D4", onhand="lots"),
    ]
    products, errors = map_records(PRODUCTS, records)
    assert [p["source_product_code"] for p in products] == ["A1", "B2", "C3"]
    assert [(e.key, e.field, e.message) for e in errors] == [
        ("D4", "variants.qty", 'onhand "lots" is not a number')
    ]
    loaded = [load_product(p) for p in products]
    assert [item.action for item in loaded] == ["active", "active", "delete"]
    assert loaded[0].errors == [] and loaded[0].record is not None
    assert loaded[0].record["variants"][0]["price"] == 460.0
    assert loaded[1].record is not None
    assert loaded[1].record["variants"][0]["qty"] == 0  # negative stock is stored as 0


# --------------------------------------------------------------------------
# qty_formula
# --------------------------------------------------------------------------

LESS_SALES_ORDERS: dict[str, Any] = {"qty_formula": "onhand_less_sales_orders"}


@pytest.mark.parametrize(
    ("onhand", "salesorder", "default", "less"),
    [
        (12, 5, 12, 7),
        ("12", " 5 ", 12, 7),
        (3.3, 0.3, 3.3, 3),  # exact: not 2.999...
        (10.5, 2, 10.5, 8.5),
        (4, 9, 4, -5),  # committed beyond stock: the hub stores 0
        (7, None, 7, 7),  # a blank salesorder holds nothing back
        (None, 3, None, None),  # unknown stock stays unknown
    ],
)
def test_qty_is_onhand_or_onhand_less_sales_orders(
    onhand: Any, salesorder: Any, default: Any, less: Any
) -> None:
    record = stock(onhand=onhand, salesorder=salesorder)
    assert PRODUCTS.apply(record).get("variants.qty") == default
    assert PRODUCTS.apply(record, {"qty_formula": "onhand"}).get("variants.qty") == default
    assert PRODUCTS.apply(record, LESS_SALES_ORDERS).get("variants.qty") == less


def test_qty_less_sales_orders_loads_clamped_and_floored() -> None:
    records = [
        stock(code="A1", onhand=4, salesorder=9),
        stock(code="B2", onhand=10.5, salesorder=2),
    ]
    products, errors = map_records(PRODUCTS, records, LESS_SALES_ORDERS)
    assert errors == []
    loaded = [load_product(p).record for p in products]
    assert [r["variants"][0]["qty"] if r else None for r in loaded] == [0, 8]


def test_qty_formula_problems_name_the_record_and_the_setting() -> None:
    _, errors = map_records(PRODUCTS, [stock(code="A1")], LESS_SALES_ORDERS)
    assert [(e.key, e.field, e.message) for e in errors] == [
        (
            "A1",
            "variants.qty",
            "the stock row has no salesorder column, which qty_formula "
            "onhand_less_sales_orders reads",
        )
    ]
    _, errors = map_records(PRODUCTS, [stock(code="A1", salesorder="two")], LESS_SALES_ORDERS)
    assert [e.message for e in errors] == ['salesorder "two" is not a number']
    _, errors = map_records(PRODUCTS, [stock(code="A1")], {"qty_formula": "onhand-so"})
    assert [e.message for e in errors] == [
        'qty_formula "onhand-so" is not one of onhand, onhand_less_sales_orders: '
        "correct the source's settings"
    ]


def test_products_render_qty_formula_with_its_alternative() -> None:
    notes = PRODUCTS.render().split("Per-source settings:\n", 1)[1]
    assert notes == (
        "- variants.qty ← onhand (qty_formula=onhand, the default; onhand_less_sales_orders: "
        "onhand - salesorder, the stock not yet committed to sales orders (stored as 0 when "
        "below 0))\n"
    )
    chosen = PRODUCTS.render(LESS_SALES_ORDERS)
    assert "- variants.qty ← onhand - salesorder, the stock" in chosen
    assert "(qty_formula=onhand_less_sales_orders; onhand: onhand)" in chosen


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------

SETTINGS: dict[str, Any] = {
    "company_number": "002",
    "terminal_number": "1",
    "sales_rep_number": 1,
    "default_debtor_account": "CASH01",
    "shipping_code": "COURIER",
}


def order(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel_order_code": "#1001",
        "channel": "shopify",
        "ordered_date": "2026-11-22T23:30:00+02:00",
        "customer": {"source_customer_code": "DEB001", "first_name": "Ann"},
        "shipping_address": {
            "address1": "86 Beach Road",
            "address2": None,
            "city": "Cape Town",
            "province": "WC",
            "zip": "8001",
        },
        "line_items": [
            {"sku": "A1", "qty": 2, "price": 460.0, "total_discount": 0.0},
            {"sku": "B2", "qty": 3, "price": 10.0, "total_discount": 1.0},
        ],
        "shipping_lines": [{"title": "Courier", "price": 60.0}],
        "meta": [],
    }
    base.update(over)
    return base


def test_order_payload_is_the_reference_document() -> None:
    assert order_payload(order(), SETTINGS) == {
        "IQ_Company_Number": "002",
        "IQ_Terminal_Number": "1",
        "IQ_Submit_Data": {
            "IQ_Root_JSON": {
                "IQ_Identification_Info": {"Company_Code": "002"},
                "Processing_Documents": [
                    {
                        "Export_Class": "Sales_Order",
                        "Document": {
                            "Order_Number": "#1001",
                            "Debtor_Account": "DEB001",
                            "Sales_Representative_Number": 1,
                            "Document_Includes_VAT": False,
                            "Delivery_Address_Information": [
                                "86 Beach Road",
                                "",
                                "Cape Town",
                                "WC",
                            ],
                            # the channel's own date, not converted to UTC
                            "Order_Information": {"Order_Date": "2026-11-22"},
                        },
                        "Items": [
                            {"Stock_Code": "A1", "Quantity": 2, "Item_Price_Exclusive": 460.0},
                            # 10.00 - 1.00 / 3 = 9.666... -> 9.67
                            {"Stock_Code": "B2", "Quantity": 3, "Item_Price_Exclusive": 9.67},
                            {"Stock_Code": "COURIER", "Quantity": 1, "Item_Price_Exclusive": 60.0},
                        ],
                    }
                ],
            }
        },
    }
    assert ORDERS.apply(order(), SETTINGS) == order_payload(order(), SETTINGS)


def document(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["IQ_Submit_Data"]["IQ_Root_JSON"]["Processing_Documents"][0]


def test_a_loaded_canonical_order_builds_too() -> None:
    loaded, errors = load_order(order(ordered_date=datetime(2026, 11, 22, 9, 0, tzinfo=UTC)))
    assert errors == [] and loaded is not None
    built = document(order_payload(loaded, SETTINGS))
    assert built["Document"]["Order_Information"] == {"Order_Date": "2026-11-22"}
    assert [i["Stock_Code"] for i in built["Items"]] == ["A1", "B2", "COURIER"]


def test_order_meta_overrides_company_terminal_and_rep() -> None:
    meta = [
        {"key": "IQ_Company_Number", "value": "003"},
        {"key": "iq_terminal_number", "value": "4"},
        {"key": "sales_rep_id", "value": "7"},
    ]
    payload = order_payload(order(meta=meta), SETTINGS)
    assert payload["IQ_Company_Number"] == "003"
    assert payload["IQ_Terminal_Number"] == "4"
    root = payload["IQ_Submit_Data"]["IQ_Root_JSON"]
    assert root["IQ_Identification_Info"] == {"Company_Code": "003"}
    assert document(payload)["Document"]["Sales_Representative_Number"] == 7
    # sales_representative_number wins over sales_rep_id
    meta.append({"key": "sales_representative_number", "value": 9})
    assert (
        document(order_payload(order(meta=meta), SETTINGS))["Document"][
            "Sales_Representative_Number"
        ]
        == 9
    )
    with pytest.raises(ValueError, match="sales_rep_id"):
        order_payload(order(meta=[{"key": "sales_rep_id", "value": "R1"}]), SETTINGS)


def test_settings_defaults_when_the_source_leaves_them_out() -> None:
    payload = order_payload(order(shipping_lines=[]), {"company_number": "002"})
    assert payload["IQ_Terminal_Number"] == "1"
    assert document(payload)["Document"]["Sales_Representative_Number"] == 1
    assert (
        document(order_payload(order(), {**SETTINGS, "sales_rep_number": 5}))["Document"][
            "Sales_Representative_Number"
        ]
        == 5
    )


def test_the_cash_account_stands_in_for_a_missing_customer_code() -> None:
    walk_in = order(customer={"first_name": "Walk", "last_name": "In"})
    assert document(order_payload(walk_in, SETTINGS))["Document"]["Debtor_Account"] == "CASH01"
    assert (
        document(order_payload(order(customer=None), SETTINGS))["Document"]["Debtor_Account"]
        == "CASH01"
    )
    with pytest.raises(ValueError, match="default_debtor_account"):
        order_payload(walk_in, {**SETTINGS, "default_debtor_account": None})


def test_shipping() -> None:
    several = [{"title": "Courier", "price": "50"}, {"title": "Insurance", "price": 5.5}]
    items = document(order_payload(order(shipping_lines=several), SETTINGS))["Items"]
    assert items[-1] == {"Stock_Code": "COURIER", "Quantity": 1, "Item_Price_Exclusive": 55.5}
    free = document(order_payload(order(shipping_lines=[{"price": 0}]), {"company_number": "1"}))
    assert [i["Stock_Code"] for i in free["Items"]] == ["A1", "B2"]
    with pytest.raises(ValueError, match="shipping_code"):
        order_payload(order(), {**SETTINGS, "shipping_code": None})


def test_discounted_unit_price_rounds_half_up_to_the_cent() -> None:
    lines = [{"sku": "A", "qty": 2, "price": 0.125, "total_discount": 0}]
    (item,) = document(order_payload(order(line_items=lines, shipping_lines=[]), SETTINGS))["Items"]
    assert item["Item_Price_Exclusive"] == 0.13
    assert isinstance(item["Quantity"], int)


def test_missing_pieces() -> None:
    no_address = order(shipping_address=None, billing_address={"address1": "PO Box 1"})
    assert document(order_payload(no_address, SETTINGS))["Document"][
        "Delivery_Address_Information"
    ] == ["PO Box 1", "", "", ""]
    undated = document(order_payload(order(ordered_date=None), SETTINGS))["Document"]
    assert "Order_Information" not in undated  # IQ dates it today
    with pytest.raises(ValueError, match="company_number"):
        order_payload(order(), {})
    with pytest.raises(ValueError, match="whole number"):
        order_payload(order(line_items=[{"sku": "A", "qty": 1.5, "price": 1}]), SETTINGS)
    with pytest.raises(ValueError, match="ordered_date"):
        order_payload(order(ordered_date="yesterday"), SETTINGS)
