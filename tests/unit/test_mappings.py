"""The maps against their seed tables, and what they do to records."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.schemas import load_product
from mappings import (
    Map,
    Row,
    build_customers,
    build_products,
    get_map,
    map_records,
    supported,
)
from mappings.core import RawRecord
from mappings.sql import order_payload

SEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "seeds"

Pairs = list[tuple[str, str]]


def parse_tables(markdown: str) -> list[tuple[str, Pairs]]:
    """Every pipe table in a page: (left header, [(erp, hub), ...]) in page order."""
    tables: list[tuple[str, Pairs]] = []
    current: list[list[str]] | None = None
    for line in [*markdown.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if current is None:
                current = []
            current.append(cells)
            continue
        if current:
            header, rows = current[0], current[1:]
            body = [r for r in rows if not all(re.fullmatch(r"-+", c) for c in r if c)]
            tables.append((header[0], [(r[0], r[1]) for r in body]))
        current = None
    return tables


def rendered(m: Map) -> tuple[str, Pairs]:
    (table,) = parse_tables(m.render())
    return table


@pytest.fixture(scope="module")
def sql_seed() -> list[tuple[str, Pairs]]:
    return parse_tables((SEEDS / "sql.md").read_text())


PRODUCTS = get_map("sql", "products")
CUSTOMERS = get_map("sql", "customers")
ORDERS = get_map("sql", "orders")


# --------------------------------------------------------------------------
# Seed tables
# --------------------------------------------------------------------------


def test_seed_has_product_customer_and_order_tables(sql_seed: list[tuple[str, Pairs]]) -> None:
    assert [header for header, _ in sql_seed] == ["{{connector_name}}"] * 3
    products, customers, orders = (pairs for _, pairs in sql_seed)
    # The seed's known error: its customer and order tables are copies of the
    # product table, so they cannot be held against the customer/order maps.
    assert customers == products
    assert orders == products


def test_products_render_matches_the_corrected_seed(sql_seed: list[tuple[str, Pairs]]) -> None:
    header, seed = sql_seed[0]
    # The seed swaps the targets of qty and price; the map holds the fix.
    assert ("qty", "variants.retail_price") in seed
    assert ("price", "variants.qty") in seed
    fix = {"qty": "variants.qty", "price": "variants.retail_price"}
    corrected = [(erp, fix.get(erp, hub)) for erp, hub in seed]
    assert sum(a != b for a, b in zip(seed, corrected, strict=True)) == 2

    assert rendered(PRODUCTS) == (header, corrected)
    assert PRODUCTS.erp_title == header


# The seed has no customer table of its own (it repeats the product table),
# so the customers map is held against this one, built from the reference's
# section 4: source_customer_code, first_name, last_name, email, and
# customer_active hard-coded true unless the query has the column.
CORRECTED_CUSTOMERS: Pairs = [
    ("'true' or customer_active", "customer_active"),
    ("Customer", "source_customer_code"),
    ("FirstName", "first_name"),
    ("LastName", "last_name"),
    ("Email", "email"),
    ("price_tier", "price_tier"),
    # A custom query's address aliases (issue 19): billing then shipping.
    *(
        (f"{kind}_{alias}", f"addresses.{field}")
        for kind in ("billing", "shipping")
        for alias, field in (
            ("address1", "address1"),
            ("address2", "address2"),
            ("city", "city"),
            ("province", "province"),
            ("postal_code", "zip"),
            ("country", "country"),
            ("phone", "phone"),
        )
    ),
    ("phone", "addresses.phone"),
]

# Likewise the order table: the seed's is the product table again. These are
# the staging-table columns `order_payload` writes.
CORRECTED_ORDERS: Pairs = [
    ("header.channel_order_code", "channel_order_code"),
    ("header.customer_code", "customer.source_customer_code"),
    ("header.ordered_date", "ordered_date"),
    ("header.email", "customer.email"),
    ("header.ship_name", "shipping_address.first_name + last_name"),
    ("header.ship_address1", "shipping_address.address1"),
    ("header.ship_address2", "shipping_address.address2"),
    ("header.ship_city", "shipping_address.city"),
    ("header.ship_province", "shipping_address.province"),
    ("header.ship_zip", "shipping_address.zip"),
    ("header.ship_country", "shipping_address.country"),
    ("header.ship_phone", "shipping_address.phone"),
    ("header.notes", "notes"),
    ("header.total_ex_tax", "line_items + shipping_lines"),
    ("line.channel_order_code", "channel_order_code"),
    ("line.line_no", "line_items[] position"),
    ("line.sku", "line_item.sku"),
    ("line.title", "line_item.title"),
    ("line.qty", "line_item.qty"),
    ("line.unit_price", "line_item.price"),
    ("line.total_discount", "line_item.total_discount"),
]


def test_customers_render_matches_the_corrected_table() -> None:
    assert rendered(CUSTOMERS) == ("{{connector_name}}", CORRECTED_CUSTOMERS)


def test_orders_render_matches_the_staging_columns() -> None:
    assert rendered(ORDERS) == ("{{connector_name}}", CORRECTED_ORDERS)


def test_render_layout() -> None:
    lines = PRODUCTS.render().splitlines()
    assert re.fullmatch(r"\| \{\{connector_name\}\} +\| Stock2Shop +\| Description +\|", lines[0])
    assert re.fullmatch(r"\| -+ \| -+ \| -+ \|", lines[1])
    assert len(lines) == 2 + len(PRODUCTS.rows)
    assert len({len(line) for line in lines}) == 1  # columns aligned
    assert "Groups variants" in lines[2]


def test_other_seed_tables_parse() -> None:
    # Guards the parser the map tests rely on against the other seeds' layout.
    headers = {
        name: [h for h, _ in parse_tables((SEEDS / f"{name}.md").read_text())]
        for name in ("iq_retail", "isync", "syspro")
    }
    assert headers == {
        "iq_retail": ["IQ Retail", "IQ Retail"],
        "isync": ["iSync", "iSync"],
        "syspro": ["Syspro", "Syspro", "Syspro"],
    }


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


def test_registry() -> None:
    assert supported("sql") == ["products", "customers", "orders"]
    assert supported("nonesuch") == []
    assert get_map("sql", "products") is PRODUCTS
    with pytest.raises(KeyError, match=r"no map for ERP 'nonesuch'.*sql: products"):
        get_map("nonesuch", "products")
    with pytest.raises(KeyError, match="sql does not support stock"):
        get_map("sql", "stock")


def test_a_map_refuses_an_unknown_hub_path() -> None:
    with pytest.raises(ValueError, match="not a hub path"):
        Map("x", "X", "products", (Row("A", "variants.quantity"),))
    with pytest.raises(ValueError, match="not a hub path"):
        Map("x", "X", "products", (Row("A", "title"),), passthrough=frozenset({"nonsense"}))


def test_raw_record_reads_keys_in_any_case() -> None:
    view = RawRecord({"SKU": "A", "webname": "B"})
    assert view["sku"] == "A"
    assert view.get("WebName") == "B"
    assert view.get("missing", 3) == 3
    assert "Sku" in view


# --------------------------------------------------------------------------
# Products
# --------------------------------------------------------------------------


def template_row(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Prod": "TSHIRT",
        "SKU": "TSHIRT-RED",
        "WebName": "T-shirt",
        "product_active": "Active",
        "qty": "5",
        "price": "199.99",
    }
    row.update(over)
    return row


def test_simple_product() -> None:
    flat = PRODUCTS.apply(template_row(Prod="A1", SKU="A1"))
    assert dict(flat) == {
        "source_product_code": "A1",
        "source_variant_code": "A1",
        "title": "T-shirt",
        "product_active": "Active",
        "variants.qty": 5,
        "variants.retail_price": 199.99,
        "variants.sku": "A1",
        "variants.inventory_management": True,
    }
    products, errors = build_products([flat])
    assert errors == []
    assert products == [
        {
            "source_product_code": "A1",
            "title": "T-shirt",
            "product_active": "Active",
            "variants": [
                {
                    "source_variant_code": "A1",
                    "sku": "A1",
                    "qty": 5,
                    "price": 199.99,
                    "price_tiers": [{"tier": "retail", "price": 199.99}],
                    "inventory_management": True,
                }
            ],
        }
    ]


def test_variable_product_groups_rows_sharing_prod() -> None:
    rows = [
        template_row(SKU="TSHIRT-RED", qty="3"),
        template_row(Prod="MUG", SKU="MUG", WebName="Mug"),
        template_row(SKU="TSHIRT-BLUE", WebName="T-shirt (blue)", qty="4"),
    ]
    products, errors = build_products([PRODUCTS.apply(r) for r in rows])
    assert errors == []
    assert [p["source_product_code"] for p in products] == ["TSHIRT", "MUG"]
    tshirt = products[0]
    assert tshirt["title"] == "T-shirt"  # product fields come from the first row
    assert [(v["sku"], v["qty"]) for v in tshirt["variants"]] == [
        ("TSHIRT-RED", 3),
        ("TSHIRT-BLUE", 4),
    ]


def test_padded_values_and_key_case() -> None:
    flat = PRODUCTS.apply(
        {
            "PROD": "  P1  ",
            "sku": "P1   ",
            "webname": " Padded ",
            "PRODUCT_ACTIVE": " 1 ",
            "Qty": "  0012 ",
            "PRICE": " 00012.50 ",
        }
    )
    assert flat.errors == []
    assert flat["source_product_code"] == "P1"
    assert flat["variants.sku"] == "P1"
    assert flat["title"] == "Padded"
    assert flat["product_active"] == "1"
    assert flat["variants.qty"] == 12
    assert flat["variants.retail_price"] == 12.5


def test_numbers_from_the_driver_are_kept() -> None:
    from decimal import Decimal

    flat = PRODUCTS.apply(template_row(Prod=1001, SKU=1001.0, qty=Decimal("7.000"), price=9))
    assert flat.errors == []
    assert flat["source_product_code"] == "1001"
    assert flat["variants.sku"] == "1001"
    assert flat["variants.qty"] == 7.0
    assert flat["variants.retail_price"] == 9


def test_a_bad_value_quarantines_its_record_and_only_it() -> None:
    rows = [
        template_row(Prod="A", SKU="A", qty="10"),
        template_row(Prod="B", SKU="B-1", qty="abc"),
        template_row(Prod="C", SKU="C", price="12,50"),
        template_row(Prod="D", SKU="D", qty=""),
    ]
    products, errors = map_records(PRODUCTS, rows)
    assert [p["source_product_code"] for p in products] == ["A", "D"]
    assert products[1]["variants"][0]["qty"] is None  # blank is null, not an error
    assert [(e.key, e.field, e.message) for e in errors] == [
        ("B-1", "variants.qty", 'qty "abc" is not a number'),
        ("C", "variants.retail_price", 'price "12,50" is not a number'),
    ]
    assert errors[0].raw == rows[1]


def test_a_bad_variant_holds_back_its_whole_product() -> None:
    rows = [
        template_row(SKU="TSHIRT-RED"),
        template_row(SKU="TSHIRT-BLUE", qty="lots"),
        template_row(Prod="MUG", SKU="MUG"),
    ]
    products, errors = build_products([PRODUCTS.apply(r) for r in rows])
    assert [p["source_product_code"] for p in products] == ["MUG"]
    (error,) = errors
    assert error.key == "TSHIRT-BLUE"
    assert error.field == "variants.qty"
    assert error.message.startswith('qty "lots" is not a number')
    assert "TSHIRT is held back with its other variant" in error.message


def test_missing_product_code_and_duplicate_variant() -> None:
    rows = [
        template_row(Prod="", SKU="ORPHAN"),
        template_row(SKU="DUP"),
        template_row(SKU="DUP"),
        template_row(Prod="OK", SKU="OK"),
    ]
    products, errors = build_products([PRODUCTS.apply(r) for r in rows])
    assert [p["source_product_code"] for p in products] == ["OK"]
    assert [(e.key, e.field) for e in errors] == [
        ("ORPHAN", "source_product_code"),
        ("DUP", "source_variant_code"),
    ]
    assert errors[1].message == 'source_variant_code "DUP" appears twice in product TSHIRT'


def test_a_failing_transform_is_an_error_not_an_exception() -> None:
    def boom(value: Any) -> Any:
        raise RuntimeError("no luck")

    m = Map(
        "x",
        "X",
        "products",
        (Row("Prod", "source_product_code"), Row("WebName", "title", transform=boom)),
    )
    flat = m.apply({"Prod": "P"})
    assert flat.errors == []  # a column the record lacks is not read
    flat = m.apply({"Prod": "P", "WebName": "x"})
    assert flat.errors == [("title", "WebName could not be mapped: no luck")]
    _, errors = build_products([flat])
    assert [(e.key, e.field) for e in errors] == [("P", "title")]


def test_alias_passthrough_wins_over_the_template_column() -> None:
    record = {
        "Prod": "TEMPLATE",
        "SKU": "TEMPLATE-SKU",
        "WebName": "Template title",
        "qty": "1",
        "price": "1.00",
        # columns a custom query aliased straight to hub paths
        "source_product_code": "ALIAS",
        "Title": "Alias title",
        "variants.qty": "42",
        "VARIANTS.OPTION1": "Red",
        "options.option1": "Colour",
        "variants.barcode": " 600123 ",
        "variants.inventory_management": "false",
        "Meta.Brand": "Acme",
        "variants.meta.bin": "A7",
    }
    flat = PRODUCTS.apply(record)
    assert flat.errors == []
    assert flat["source_product_code"] == "ALIAS"
    assert flat["title"] == "Alias title"
    assert flat["variants.qty"] == 42
    assert flat["variants.sku"] == "TEMPLATE-SKU"  # no alias: the template column
    assert flat["variants.inventory_management"] is False  # alias beats the constant
    (product,), errors = build_products([flat])
    assert errors == []
    assert product["options"] == [{"name": "Colour", "position": 1}]
    assert product["meta"] == [{"key": "Brand", "value": "Acme"}]
    (variant,) = product["variants"]
    assert variant["option1"] == "Red"
    assert variant["barcode"] == "600123"
    assert variant["meta"] == [{"key": "bin", "value": "A7"}]


def test_bad_alias_value_is_an_error_naming_the_alias() -> None:
    flat = PRODUCTS.apply(template_row(**{"variants.qty": "n/a"}))
    assert flat.errors == [("variants.qty", 'variants.qty "n/a" is not a number')]


def test_retail_price_is_price_and_retail_tier() -> None:
    flat = PRODUCTS.apply(template_row(price="10", csv_price_tiers="wholesale:8.5, retail:11"))
    (product,), _ = build_products([flat])
    (variant,) = product["variants"]
    assert variant["price"] == 10
    # the retail_price row replaces a "retail" entry of the tier list
    assert variant["price_tiers"] == [
        {"tier": "wholesale", "price": 8.5},
        {"tier": "retail", "price": 10},
    ]
    # an explicit variants.price wins the price, retail stays a tier
    flat = PRODUCTS.apply(template_row(price="10", **{"variants.price": "9"}))
    (product,), _ = build_products([flat])
    assert product["variants"][0]["price"] == 9
    assert product["variants"][0]["price_tiers"] == [{"tier": "retail", "price": 10}]
    # a blank price is null and makes no tier
    flat = PRODUCTS.apply(template_row(price=" "))
    (product,), _ = build_products([flat])
    assert product["variants"][0]["price"] is None
    assert product["variants"][0]["price_tiers"] == []


def test_bad_tier_list_is_an_error() -> None:
    flat = PRODUCTS.apply(template_row(csv_price_tiers="wholesale"))
    assert flat.errors == [
        ("csv_price_tiers", 'csv_price_tiers "wholesale" is not a list of name:value pairs')
    ]
    flat = PRODUCTS.apply(template_row(csv_price_tiers="wholesale:cheap"))
    assert flat.errors == [("csv_price_tiers", 'csv_price_tiers wholesale "cheap" is not a number')]


def test_mapped_products_load_into_the_canonical_model() -> None:
    rows = [template_row(SKU="TSHIRT-RED", qty="-2"), template_row(SKU="TSHIRT-BLUE", qty="3.9")]
    (product,), errors = map_records(PRODUCTS, rows)
    assert errors == []
    loaded = load_product(product)
    assert loaded.errors == [] and loaded.action == "active"
    assert loaded.record is not None
    assert [v["qty"] for v in loaded.record["variants"]] == [0, 3]
    assert loaded.record["active"] is True


# --------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------


def test_customers_default_active_and_column() -> None:
    rows = [
        {"Customer": " C001 ", "FirstName": "Ann", "LastName": "Lee", "Email": "ann@x.co"},
        {"customer": "C002", "firstname": "Bob", "customer_active": "Delete"},
        {"Customer": "C001", "FirstName": "Dup"},
        {"FirstName": "No code"},
    ]
    customers, errors = build_customers([CUSTOMERS.apply(r) for r in rows])
    assert customers == [
        {
            "customer_active": True,
            "source_customer_code": "C001",
            "first_name": "Ann",
            "last_name": "Lee",
            "email": "ann@x.co",
        },
        {"customer_active": "Delete", "source_customer_code": "C002", "first_name": "Bob"},
    ]
    assert [(e.key, e.field) for e in errors] == [
        ("C001", "source_customer_code"),
        ("<unknown>", "source_customer_code"),
    ]


def test_customer_aliases_nest_addresses_and_meta() -> None:
    flat = CUSTOMERS.apply(
        {
            "source_customer_code": "C9",
            "addresses.city": "Cape Town",
            "addresses.zip": 8001,
            "meta.rep": "R1",
            "price_tier": "wholesale",
        }
    )
    (customer,), errors = build_customers([flat])
    assert errors == []
    assert customer["addresses"] == [{"city": "Cape Town", "zip": "8001"}]
    assert customer["meta"] == [{"key": "rep", "value": "R1"}]
    assert customer["price_tier"] == "wholesale"
    assert customer["customer_active"] is True


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------


def order(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel_order_code": "1001",
        "channel": "shopify",
        "ordered_date": datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        "notes": "Leave at the gate",
        "customer": {
            "source_customer_code": "C001",
            "first_name": "Ann",
            "last_name": "Lee",
            "email": "ann@x.co",
        },
        "shipping_address": {
            "first_name": "Ann",
            "last_name": "Lee",
            "address1": "1 Long St",
            "address2": None,
            "city": "Cape Town",
            "province": "Western Cape",
            "zip": "8001",
            "country": "South Africa",
            "phone": "021 000 0000",
        },
        "line_items": [
            {"sku": "A", "title": "Alpha", "qty": 3, "price": 0.1, "total_discount": 0.0},
            {"sku": "B", "title": "Beta", "qty": 2, "price": 10.005, "total_discount": 1.5},
        ],
        "shipping_lines": [{"title": "Courier", "price": 60.0}],
        "total_discount": 999.0,  # the channel's figure is never trusted
    }
    base.update(over)
    return base


SETTINGS = {"shipping_code": "SHIP", "default_customer_code": "CASH"}


def test_order_payload_header_and_lines() -> None:
    payload = order_payload(order(), SETTINGS)
    header, lines = payload["header"], payload["lines"]
    assert header == {
        "channel_order_code": "1001",
        "customer_code": "C001",
        "ordered_date": "2024-05-01T09:30:00+00:00",
        "email": "ann@x.co",
        "ship_name": "Ann Lee",
        "ship_address1": "1 Long St",
        "ship_address2": None,
        "ship_city": "Cape Town",
        "ship_province": "Western Cape",
        "ship_zip": "8001",
        "ship_country": "South Africa",
        "ship_phone": "021 000 0000",
        "notes": "Leave at the gate",
        # 3 x 0.1 + 2 x 10.005 - 1.5 + 60 = 78.81 exactly, not 78.80999...
        "total_ex_tax": 78.81,
    }
    assert lines == [
        {
            "channel_order_code": "1001",
            "line_no": 1,
            "sku": "A",
            "title": "Alpha",
            "qty": 3,
            "unit_price": 0.1,
            "total_discount": 0.0,
        },
        {
            "channel_order_code": "1001",
            "line_no": 2,
            "sku": "B",
            "title": "Beta",
            "qty": 2,
            "unit_price": 10.005,
            "total_discount": 1.5,
        },
        {
            "channel_order_code": "1001",
            "line_no": 3,
            "sku": "SHIP",
            "title": "Courier",
            "qty": 1,
            "unit_price": 60.0,
            "total_discount": 0.0,
        },
    ]
    assert ORDERS.apply(order(), SETTINGS) == payload


def test_header_total_equals_the_sum_of_its_lines() -> None:
    payload = order_payload(order(), SETTINGS)
    lines_total = sum(
        ln["qty"] * ln["unit_price"] - ln["total_discount"] for ln in payload["lines"]
    )
    assert payload["header"]["total_ex_tax"] == round(lines_total, 2)


def test_shipping_without_a_shipping_code_names_the_setting() -> None:
    with pytest.raises(ValueError, match="shipping_code"):
        order_payload(order(), {"default_customer_code": "CASH"})


def test_free_shipping_needs_no_line_and_no_setting() -> None:
    payload = order_payload(order(shipping_lines=[{"title": "Collect", "price": 0}]), {})
    assert [ln["sku"] for ln in payload["lines"]] == ["A", "B"]
    assert payload["header"]["total_ex_tax"] == 18.81


def test_several_shipping_lines_become_one() -> None:
    shipping = [{"title": "Courier", "price": "50"}, {"title": "Insurance", "price": 5.5}]
    payload = order_payload(order(shipping_lines=shipping), SETTINGS)
    last = payload["lines"][-1]
    assert (last["sku"], last["title"], last["unit_price"]) == ("SHIP", "Courier + Insurance", 55.5)


def test_customer_code_falls_back_to_the_default_account() -> None:
    anonymous = order(customer={"first_name": "Walk", "last_name": "In"}, shipping_address=None)
    payload = order_payload(anonymous, SETTINGS)
    assert payload["header"]["customer_code"] == "CASH"
    assert payload["header"]["ship_name"] == "Walk In"
    with pytest.raises(ValueError, match="default_customer_code"):
        order_payload(anonymous, {"shipping_code": "SHIP"})


def test_fractional_order_qty_is_refused() -> None:
    bad = order(line_items=[{"sku": "A", "qty": "1.5", "price": 1}])
    with pytest.raises(ValueError, match="whole number"):
        order_payload(bad, SETTINGS)
