"""The SYSPRO maps against seed 003's tables, and what they do to records and orders."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import mappings.syspro as syspro
from hub.schemas import load_customer, load_product
from mappings import Map, get_map, map_records
from mappings.core import MappingError, MissingSettingError

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seeds" / "syspro.md"

Table = tuple[str, list[tuple[str, str, str]]]


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


def rendered(m: Map) -> Table:
    (table,) = tables(m.render())
    return table


# --------------------------------------------------------------------------
# Seed tables and registry
# --------------------------------------------------------------------------


def test_the_three_maps_render_seed_003_row_for_row() -> None:
    seed = tables(SEED.read_text())
    assert [header for header, _ in seed] == ["Syspro", "Syspro", "Syspro"]
    assert rendered(syspro.PRODUCTS) == seed[0]
    # The customers table is the seed's, row for row, then what the seed
    # leaves out and ArCustomer has (issue 19): price tier and addresses.
    header, rows = rendered(syspro.CUSTOMERS)
    assert (header, rows[: len(seed[1][1])]) == seed[1]
    assert [(erp, hub) for erp, hub, _ in rows[len(seed[1][1]) :]] == CUSTOMER_EXTRA_ROWS
    assert rendered(syspro.ORDERS) == seed[2]


CUSTOMER_EXTRA_ROWS = [
    ("PriceCode", "price_tier"),
    ("SoldToAddr1", "addresses.address1"),
    ("SoldToAddr2", "addresses.address2"),
    ("SoldToAddr3-5", "addresses.city"),
    ("SoldPostalCode", "addresses.zip"),
    ("ShipToAddr1", "addresses.address1"),
    ("ShipToAddr2", "addresses.address2"),
    ("ShipToAddr3-5", "addresses.city"),
    ("ShipPostalCode", "addresses.zip"),
    ("Telephone", "addresses.phone"),
]


def test_maps_are_registered() -> None:
    assert get_map("syspro", "products") is syspro.PRODUCTS
    assert get_map("syspro", "customers") is syspro.CUSTOMERS
    assert get_map("syspro", "orders") is syspro.ORDERS


# --------------------------------------------------------------------------
# Products
# --------------------------------------------------------------------------


def stock(**over: Any) -> dict[str, Any]:
    """One record as the connector returns it: InvMaster columns plus nested rows."""
    record: dict[str, Any] = {
        "StockCode": "A1",
        "Description": "Alpha Kettle  ",
        "UserField1": "Y",
        "UserField2": "",
        "UserField3": None,
        "UserField4": None,
        "UserField5": None,
        "InvPrice": [
            {"PriceCode": "A", "SellingPrice": "460.00"},
            {"PriceCode": "B", "SellingPrice": 437.5},
            {"PriceCode": "C", "SellingPrice": "415.00000"},
        ],
        "InvWarehouse": [
            {"Warehouse": "WH01", "QtyOnHand": "10.000000", "QtyAllocated": "2.000000"},
            {"Warehouse": "WH02", "QtyOnHand": 5, "QtyAllocated": 0},
            {"Warehouse": "WH03", "QtyOnHand": 1, "QtyAllocated": 4},
        ],
    }
    record.update(over)
    return record


def product(record: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    (item,), errors = map_records(syspro.PRODUCTS, [record], settings or {})
    assert errors == []
    return item


def test_a_stock_code_becomes_a_simple_product_with_tiers_and_warehouses() -> None:
    item = product(stock())
    assert item == {
        "source_product_code": "A1",
        "title": "Alpha Kettle",
        "product_active": "active",
        "variants": [
            {
                "source_variant_code": "A1",
                "sku": "A1",
                "qty": 10,  # 8 + 5 - 3: QtyOnHand - QtyAllocated summed
                "qty_availability": [
                    {"description": "WH01", "qty": 8},
                    {"description": "WH02", "qty": 5},
                    {"description": "WH03", "qty": -3},
                ],
                "price_tiers": [
                    {"tier": "A", "price": 460},
                    {"tier": "B", "price": 437.5},
                    {"tier": "C", "price": 415},
                ],
                "inventory_management": True,
            }
        ],
    }
    record, action, problems = load_product(item)
    assert problems in (None, []) and action == "active"
    assert record is not None and record["variants"][0]["qty"] == 10


def test_price_codes_name_the_tiers_and_leave_out_the_others() -> None:
    item = product(stock(), {"price_codes": {"a": "retail", "B": "wholesale"}})
    assert item["variants"][0]["price_tiers"] == [
        {"tier": "retail", "price": 460},
        {"tier": "wholesale", "price": 437.5},
    ]


def test_warehouses_setting_chooses_what_is_summed_and_listed() -> None:
    variant = product(stock(), {"warehouses": ["wh02", "WH03"]})["variants"][0]
    assert variant["qty"] == 2
    assert [w["description"] for w in variant["qty_availability"]] == ["WH02", "WH03"]


def test_no_warehouse_rows_is_null_qty_and_no_price_rows_no_tiers() -> None:
    variant = product(stock(InvWarehouse=[], InvPrice=[]))["variants"][0]
    assert variant["qty"] is None
    assert variant["qty_availability"] == []
    assert variant["price_tiers"] == []


@pytest.mark.parametrize(
    ("settings", "fields", "expected"),
    [
        ({}, {"UserField1": "Y"}, "active"),
        ({}, {"UserField1": " y "}, "active"),
        ({}, {"UserField1": "N"}, "delete"),
        ({}, {"UserField1": ""}, "delete"),
        ({}, {"UserField1": None}, "delete"),
        ({"active_user_field": 3}, {"UserField1": "Y", "UserField3": "WEB"}, "delete"),
        (
            {"active_user_field": 3, "active_values": ["WEB", "B2B"]},
            {"UserField3": "b2b"},
            "active",
        ),
        ({"delete_values": ["N"]}, {"UserField1": "N"}, "delete"),
        ({"delete_values": ["N"]}, {"UserField1": "HOLD"}, "ignore"),
        ({"delete_values": ["N"]}, {"UserField1": ""}, "ignore"),
    ],
)
def test_active_user_field_is_tri_state(
    settings: dict[str, Any], fields: dict[str, Any], expected: str
) -> None:
    flat = syspro.PRODUCTS.apply(stock(**fields), settings)
    assert flat.errors == []
    assert flat["product_active"] == expected


def test_a_bad_active_user_field_setting_is_an_error_naming_it() -> None:
    flat = syspro.PRODUCTS.apply(stock(), {"active_user_field": 9})
    assert flat.errors == [
        ("product_active", 'active_user_field "9" is not a user field from 1 to 5')
    ]


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"InvPrice": [{"PriceCode": "A", "SellingPrice": "4,60"}]}, "csv_price_tiers", "4,60"),
        ({"InvPrice": [{"PriceCode": " ", "SellingPrice": "1"}]}, "csv_price_tiers", "PriceCode"),
        (
            {"InvWarehouse": [{"Warehouse": "WH01", "QtyOnHand": "abc", "QtyAllocated": 0}]},
            "variants.qty",
            "QtyOnHand",
        ),
        ({"InvWarehouse": "WH01:3"}, "variants.qty", "InvWarehouse"),
    ],
)
def test_bad_values_quarantine_the_record_naming_it_and_the_field(
    over: dict[str, Any], field: str, words: str
) -> None:
    good = stock(StockCode="A2")
    products, errors = map_records(syspro.PRODUCTS, [stock(**over), good], {})
    assert [p["source_product_code"] for p in products] == ["A2"]
    assert errors, "the bad record must be quarantined"
    assert {e.key for e in errors} == {"A1"}
    assert field in {e.field for e in errors}
    assert any(words in e.message for e in errors)


# --------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------


def account(**over: Any) -> dict[str, Any]:
    record = {
        "Customer": "C000001 ",
        "Name": "Karoo Hardware CC",
        "Email": "accounts@karoo.co.za",
        "CustomerOnHold": "N",
        "ShipToAddr1": "1 Main Road",
    }
    record.update(over)
    return record


def test_name_goes_to_first_and_last_name_and_customers_are_active() -> None:
    (customer,), errors = map_records(syspro.CUSTOMERS, [account()], {})
    assert errors == []
    assert customer == {
        "customer_active": True,
        "source_customer_code": "C000001",
        "first_name": "Karoo Hardware CC",
        "last_name": "Karoo Hardware CC",
        "email": "accounts@karoo.co.za",
        "price_tier": None,  # the record has no PriceCode
        "addresses": [{"type": "shipping", "address1": "1 Main Road"}],
        "meta": [{"key": "channels", "value": "trade"}],  # for the B2B trade store only
    }
    record, action, problems = load_customer(customer)
    assert action == "active" and not problems
    assert record is not None and record["first_name"] == record["last_name"]
    assert record["meta"] == [{"key": "channels", "value": "trade"}]


def test_customer_active_field_is_read_when_set() -> None:
    records = [account(WebActive="Y"), account(Customer="C2", WebActive="0")]
    customers, errors = map_records(
        syspro.CUSTOMERS, records, {"customer_active_field": "WebActive"}
    )
    assert errors == []
    assert [c["customer_active"] for c in customers] == ["Y", "0"]
    assert [load_customer(c)[1] for c in customers] == ["active", "delete"]


def full_account(**over: Any) -> dict[str, Any]:
    """An ArCustomer row with every column the connector reads, CHAR-padded as SYSPRO keeps them."""
    columns = dict(
        Telephone="021 555 0100 ",
        Salesperson="001",
        PriceCode="B ",
        SoldToAddr1="12 Long Street      ",
        SoldToAddr2="Suite 4",
        SoldToAddr3="   ",
        SoldToAddr4="Cape Town",
        SoldToAddr5="Western Cape",
        SoldPostalCode="8001 ",
        ShipToAddr1="Unit 9, Montague Park",
        ShipToAddr2="",
        ShipToAddr3="Montague Gardens",
        ShipToAddr4=None,
        ShipToAddr5="Cape Town",
        ShipPostalCode="7441",
    )
    return account(**{**columns, **over})


def test_customers_keep_billing_and_shipping_addresses_phone_and_price_tier() -> None:
    (customer,), errors = map_records(
        syspro.CUSTOMERS, [full_account()], {"price_codes": {"A": "retail", "B": "wholesale"}}
    )
    assert errors == []
    assert customer["price_tier"] == "wholesale"
    assert customer["addresses"] == [
        {
            "type": "billing",
            "address1": "12 Long Street",
            "address2": "Suite 4",
            # lines 3-5: blank ones dropped, the rest kept in order
            "city": "Cape Town, Western Cape",
            "zip": "8001",
            "phone": "021 555 0100",
        },
        {
            "type": "shipping",
            "address1": "Unit 9, Montague Park",
            "city": "Montague Gardens, Cape Town",
            "zip": "7441",
            "phone": "021 555 0100",
        },
    ]
    # The hub's schema takes them as they are, each marked billing or shipping.
    record, action, problems = load_customer(customer)
    assert action == "active" and not problems and record is not None
    assert [(a["type"], a["address1"], a["zip"]) for a in record["addresses"]] == [
        ("billing", "12 Long Street", "8001"),
        ("shipping", "Unit 9, Montague Park", "7441"),
    ]
    assert record["price_tier"] == "wholesale"


def test_an_address_without_lines_is_left_out() -> None:
    blank = {f"{side}{n}": "  " for side in ("SoldToAddr", "ShipToAddr") for n in range(1, 6)}
    # A postal code or a telephone alone is not an address.
    (customer,), errors = map_records(syspro.CUSTOMERS, [full_account(**blank)], {})
    assert errors == []
    assert "addresses" not in customer
    record, _, problems = load_customer(customer)
    assert not problems and record is not None and record["addresses"] == []
    # Only the ship-to lines filled in: one address, the shipping one.
    only_ship = {**blank, "ShipToAddr3": "Paarl"}
    (customer,), _ = map_records(syspro.CUSTOMERS, [full_account(**only_ship)], {})
    assert customer["addresses"] == [
        {"type": "shipping", "city": "Paarl", "zip": "7441", "phone": "021 555 0100"}
    ]


@pytest.mark.parametrize(
    ("code", "settings", "tier"),
    [
        ("B ", {}, "B"),  # no price_codes: the code is the tier, as the products' tiers
        ("b", {"price_codes": {"B": "wholesale"}}, "wholesale"),
        ("C", {"price_codes": {"A": "retail", "B": "wholesale"}}, None),  # stays home
        ("  ", {}, None),
        (None, {}, None),
    ],
)
def test_price_code_becomes_the_tier_the_products_use(
    code: Any, settings: dict[str, Any], tier: str | None
) -> None:
    (customer,), errors = map_records(syspro.CUSTOMERS, [account(PriceCode=code)], settings)
    assert errors == []
    assert customer["price_tier"] == tier


def test_columns_an_older_arcustomer_lacks_are_simply_absent() -> None:
    """What the connector reads from a site without ShipToAddr3-5 and the postal codes."""
    old = full_account()
    for name in ("ShipToAddr3", "ShipToAddr4", "ShipToAddr5", "SoldPostalCode", "ShipPostalCode"):
        del old[name]
    (customer,), errors = map_records(syspro.CUSTOMERS, [old], {})
    assert errors == []
    assert customer["addresses"] == [
        {
            "type": "billing",
            "address1": "12 Long Street",
            "address2": "Suite 4",
            "city": "Cape Town, Western Cape",
            "phone": "021 555 0100",
        },
        {"type": "shipping", "address1": "Unit 9, Montague Park", "phone": "021 555 0100"},
    ]


def test_an_address_line_that_is_not_text_quarantines_the_customer_by_name() -> None:
    records = [full_account(ShipToAddr2=["not", "text"]), account(Customer="C2")]
    customers, errors = map_records(syspro.CUSTOMERS, records, {})
    assert [c["source_customer_code"] for c in customers] == ["C2"]
    (error,) = errors
    assert error.key == "C000001"
    assert error.field == "addresses.address2"
    assert "ShipToAddr2" in error.message and "is not text" in error.message


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------


def order(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel_order_code": "#1001",
        "ordered_date": "2026-11-22T23:30:00+02:00",
        "customer": {"source_customer_code": "ACC001", "email": "a@b.co.za"},
        "shipping_address": {
            "first_name": "Thandi",
            "last_name": "Nkosi",
            "address1": "86 Beach Road",
            "city": "Cape Town",
            "province": "Western Cape",
            "country": "South Africa",
            "zip": "7979",
        },
        "line_items": [{"sku": "A1", "qty": 2, "price": 460.0}],
        "shipping_lines": [{"title": "Courier", "price": 95}],
    }
    base.update(over)
    return base


SETTINGS: dict[str, Any] = {"sales_rep": "001", "order_type": "00", "order_warehouse": "WH01"}


def test_order_payload_follows_the_seed_rows() -> None:
    payload = syspro.ORDERS.apply(order(), SETTINGS)
    assert payload == {
        "header": {
            "CustomerPoNumber": "#1001",
            "OrderActionType": "A",
            "Customer": "ACC001",
            "OrderDate": "2026-11-22",
            "Salesperson": "001",
            "OrderType": "00",
            "Email": "a@b.co.za",
            "ShipAddress1": "Thandi Nkosi",
            "ShipAddress2": "86 Beach Road",
            "ShipAddress3": "Cape Town",
            "ShipAddress4": "Western Cape, South Africa",
            "ShipAddress5": "",
            "ShipPostalCode": "7979",
            "Warehouse": "WH01",
        },
        "lines": [
            {
                "CustomerPoLine": 1,
                "LineActionType": "A",
                "StockCode": "A1",
                "Warehouse": "WH01",
                "OrderQty": "2",
                "Price": "460.00",
            }
        ],
        "freight": {"FreightValue": "95.00"},
    }


@pytest.mark.parametrize(
    ("price", "discount", "qty", "expected"),
    [
        (8, 0, 1, "8.00"),
        (8.000000000000001, 0, 1, "8.00"),
        (0.1 + 0.2, 0, 1, "0.30"),
        ("1234.565", 0, 1, "1234.57"),
        (Decimal("19.999"), 0, 1, "20.00"),
        (100, 30, 3, "90.00"),  # the line's discount spread over its units
        (10, 1, 3, "9.67"),
    ],
)
def test_prices_have_exactly_two_places(price: Any, discount: Any, qty: int, expected: str) -> None:
    items = [{"sku": "A1", "qty": qty, "price": price, "total_discount": discount}]
    (line,) = syspro.ORDERS.apply(order(line_items=items), SETTINGS)["lines"]
    assert line["Price"] == expected
    assert re.fullmatch(r"\d+\.\d{2}", line["Price"])


def test_quantities_are_plain_numbers() -> None:
    items = [{"sku": "A1", "qty": 2.0, "price": 1}, {"sku": "B2", "qty": "1.5", "price": 1}]
    lines = syspro.ORDERS.apply(order(line_items=items), SETTINGS)["lines"]
    assert [line["OrderQty"] for line in lines] == ["2", "1.5"]
    assert [line["CustomerPoLine"] for line in lines] == [1, 2]


def test_po_number_is_cut_to_30_and_ship_lines_to_40() -> None:
    code = "WEB-" + "9" * 40
    long = "Unit 12, The Very Long Named Business Park Estate Phase Two"
    payload = syspro.ORDERS.apply(
        order(
            channel_order_code=code,
            shipping_address={"address1": long, "address2": "x\x00y\tz", "zip": "7979"},
        ),
        SETTINGS,
    )
    header = payload["header"]
    assert header["CustomerPoNumber"] == code[:30]
    assert syspro.po_number(code) == code[:30]
    assert header["ShipAddress1"] == long[:40].rstrip()
    assert header["ShipAddress2"] == "x y z"
    assert all(len(header[f"ShipAddress{n}"]) <= 40 for n in range(1, 6))


def test_meta_wins_over_settings_and_defaults_apply() -> None:
    meta = [{"key": "Sales_Rep_Id", "value": "007"}, {"key": "order_type", "value": "IN"}]
    header = syspro.ORDERS.apply(order(meta=meta), SETTINGS)["header"]
    assert (header["Salesperson"], header["OrderType"]) == ("007", "IN")
    header = syspro.ORDERS.apply(order(), {})["header"]
    assert header["Salesperson"] is None  # SYSPRO uses the customer's own
    assert header["OrderType"] == "00"
    assert header["Warehouse"] is None


def test_customer_falls_back_to_the_default_account_or_names_the_setting() -> None:
    cash = order(customer={"email": "x@y.z"})
    payload = syspro.ORDERS.apply(cash, {"default_customer_code": "CASH01"})
    assert payload["header"]["Customer"] == "CASH01"
    with pytest.raises(MissingSettingError, match="default_customer_code") as caught:
        syspro.ORDERS.apply(cash, {})
    assert caught.value.setting == "default_customer_code"


def test_free_shipping_has_no_freight_line_and_shipping_needs_no_setting() -> None:
    assert syspro.ORDERS.apply(order(shipping_lines=[]), SETTINGS)["freight"] is None
    several = [{"price": 50}, {"price": "45.5"}]
    payload = syspro.ORDERS.apply(order(shipping_lines=several), SETTINGS)
    assert payload["freight"] == {"FreightValue": "95.50"}


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"line_items": [{"sku": "A1", "qty": "two", "price": 1}]}, "line 1 qty"),
        ({"line_items": [{"sku": "A1", "qty": 0, "price": 1}]}, "line 1 qty"),
        ({"line_items": [{"sku": "A1", "qty": 1, "price": "1,50"}]}, "line 1 price"),
        ({"line_items": [{"sku": " ", "qty": 1, "price": 1}]}, "line 1 has no sku"),
        ({"line_items": []}, "no line_items"),
        ({"ordered_date": "yesterday"}, "ordered_date"),
        ({"shipping_lines": [{"price": "free"}]}, "shipping price"),
    ],
)
def test_bad_orders_name_the_order_and_field(over: dict[str, Any], words: str) -> None:
    with pytest.raises(MappingError) as caught:
        syspro.ORDERS.apply(order(**over), SETTINGS)
    assert "order #1001" in str(caught.value)
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)  # the raise task's "missing setting / bad value"
