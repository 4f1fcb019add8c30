"""The iSync maps against seed 001's tables, and what they do to stock lines and orders."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest

import mappings.isync  # noqa: F401 - registers the iSync maps
from emulators.isync import generate_stock
from hub.schemas import load_order, load_product
from mappings import Map, MappingError, MissingSettingError, get_map, map_records, supported
from mappings.isync import SEED_PRODUCT_ROWS, UnknownStockLineError, order_payload

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seeds" / "isync.md"

Table = tuple[str, list[tuple[str, str, str]]]

PRODUCTS = get_map("isync", "products")
ORDERS = get_map("isync", "orders")


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
    assert [header for header, _ in seed] == ["iSync", "iSync"]


def test_products_render_the_seed_table_then_the_wire_formats_extras(seed: list[Table]) -> None:
    header, rows = rendered(PRODUCTS)
    assert header == "iSync"
    assert (header, rows[:SEED_PRODUCT_ROWS]) == seed[0]
    # What section 2 of the wire reference carries beyond the seed's table.
    assert [(erp, hub) for erp, hub, _ in rows[SEED_PRODUCT_ROWS:]] == [
        ("RetailSellingPrice", "variants.price"),
        ("Size", "options.option1"),
        ("Size", "variants.option1"),
        ("Colour", "options.option2"),
        ("Colour", "variants.option2"),
        ("ThirdPartyBarcode", "variants.barcode"),
        ("ProductStockID", "variants.meta.ProductStockID"),
    ]


def test_orders_render_the_seed_table(seed: list[Table]) -> None:
    assert rendered(ORDERS) == seed[1]


def test_orders_render_their_settings_with_the_alternatives() -> None:
    notes = ORDERS.render().split("Per-source settings:\n", 1)[1].splitlines()
    assert notes == [
        "- ProductStockID ← line_item.sku (order_line_key=sku, the default; stock_line_id: the "
        "synced stock line's ProductStockID for line_item.sku, refusing an order whose SKU has "
        "none)",
        "- SellingPrice ← line_item.price less its discount, per unit, ex VAT "
        "(prices_include_vat=false, the default; true: the same plus the line's tax_lines "
        "amounts per unit, as on the website, shipping likewise)",
    ]
    chosen = ORDERS.render({"order_line_key": "stock_line_id", "prices_include_vat": True})
    assert "- ProductStockID ← the synced stock line's ProductStockID for line_item.sku, " in chosen
    assert "(order_line_key=stock_line_id; sku: line_item.sku)" in chosen
    assert "(prices_include_vat=true; false: line_item.price less its discount" in chosen


def test_customers_have_no_map() -> None:
    # Seed 001: iSync does not sync customers.
    assert supported("isync") == ["products", "orders"]
    with pytest.raises(KeyError, match="isync does not support customers"):
        get_map("isync", "customers")


# --------------------------------------------------------------------------
# Products
# --------------------------------------------------------------------------


def stock_line(**over: Any) -> dict[str, Any]:
    """A stock line as the connector returns it: element names as sent, text values."""
    record: dict[str, Any] = {
        "JobProductID": "JP1",
        "ProductStockID": "JP1-RED-S",
        "SKU": "JP1-RED-S",
        "JobDescription": "Classic Hoodie",
        "RetailSellingPrice": "460.00",
        "SellingPrice": "400.00",
        "AvailableUnits": "12",
        "WebSale": "Active",
        "Size": "S",
        "Colour": "Red",
        "ThirdPartyBarcode": "6001234567890",
        "Modified": "2026-01-02T10:00:00",
    }
    record.update(over)
    return record


def test_a_stock_line_maps_row_for_row() -> None:
    flat = PRODUCTS.apply(stock_line())
    assert flat.errors == []
    assert dict(flat) == {
        "source_product_code": "JP1",
        "source_variant_code": "JP1-RED-S",
        "title": "Classic Hoodie",
        "csv_price_tiers": [
            {"tier": "retail", "price": 460},
            {"tier": "selling", "price": 400},
        ],
        "variants.qty": 12,
        "variants.sku": "JP1-RED-S",
        "product_active": "Active",
        "inventory_management": True,
        "variants.price": 460,
        "options.option1": "Size",
        "variants.option1": "S",
        "options.option2": "Colour",
        "variants.option2": "Red",
        "variants.barcode": "6001234567890",
        "variants.meta.ProductStockID": "JP1-RED-S",
    }


def test_lines_sharing_a_job_product_id_are_one_variable_product() -> None:
    records = [
        stock_line(),
        stock_line(SKU="JP1-RED-M", ProductStockID="JP1-RED-M", Size="M", AvailableUnits="-2"),
        stock_line(
            JobProductID="JP2",
            SKU="JP2",
            ProductStockID="JP2",
            JobDescription="Cap",
            Size=None,
            Colour=None,
            SellingPrice=None,
        ),
    ]
    products, errors = map_records(PRODUCTS, records)
    assert errors == []
    assert [p["source_product_code"] for p in products] == ["JP1", "JP2"]
    hoodie, cap = (load_product(p) for p in products)
    assert hoodie.errors == [] and hoodie.record is not None
    assert hoodie.record["options"] == [
        {"name": "Size", "position": 1},
        {"name": "Colour", "position": 2},
    ]
    variants = hoodie.record["variants"]
    assert [(v["sku"], v["option1"], v["option2"]) for v in variants] == [
        ("JP1-RED-S", "S", "Red"),
        ("JP1-RED-M", "M", "Red"),
    ]
    assert variants[1]["qty"] == 0  # negative stock is stored as 0
    # Each stock line's own id is kept, for orders keyed by it (order_line_key).
    assert [v["meta"] for v in variants] == [
        [{"key": "ProductStockID", "value": "JP1-RED-S"}],
        [{"key": "ProductStockID", "value": "JP1-RED-M"}],
    ]
    assert variants[0]["price"] == 460.0
    assert variants[0]["price_tiers"] == [
        {"tier": "retail", "price": 460.0},
        {"tier": "selling", "price": 400.0},
    ]
    assert all(v["inventory_management"] is True for v in variants)
    # A simple product: the same option names, no values; a blank price makes no tier.
    assert cap.record is not None
    assert [o["name"] for o in cap.record["options"]] == ["Size", "Colour"]
    (variant,) = cap.record["variants"]
    assert (variant["option1"], variant["option2"]) == (None, None)
    assert variant["price_tiers"] == [{"tier": "retail", "price": 460.0}]


@pytest.mark.parametrize(
    ("web_sale", "action"),
    [("Active", "active"), ("Ignore", "ignore"), ("Delete", "delete"), (" delete ", "delete")],
)
def test_web_sale_is_the_tri_state(web_sale: str, action: str) -> None:
    (product,), errors = map_records(PRODUCTS, [stock_line(WebSale=web_sale)])
    assert errors == []
    assert load_product(product).action == action


def test_an_unknown_web_sale_is_an_error_not_a_guess() -> None:
    (product,), _ = map_records(PRODUCTS, [stock_line(WebSale="Maybe")])
    loaded = load_product(product)
    assert loaded.record is None
    assert loaded.errors == [
        ("product_active", 'product_active "Maybe" is not Active, Delete or Ignore')
    ]


def test_a_bad_line_holds_back_its_whole_product_and_names_the_field() -> None:
    records = [
        stock_line(),
        stock_line(SKU="JP1-RED-M", SellingPrice="12,50"),
        stock_line(JobProductID="JP2", SKU="JP2", AvailableUnits="lots"),
    ]
    products, errors = map_records(PRODUCTS, records)
    assert products == []
    assert [(e.key, e.field, e.message) for e in errors] == [
        (
            "JP1-RED-M",
            "csv_price_tiers",
            'SellingPrice "12,50" is not a number (product JP1 is held back with its other '
            "variant)",
        ),
        ("JP2", "variants.qty", 'AvailableUnits "lots" is not a number'),
    ]


def test_generated_emulator_stock_loads_cleanly() -> None:
    lines = generate_stock(products=30, variants_per_product=4, seed=9)
    products, errors = map_records(PRODUCTS, lines)
    assert errors == []
    assert len(products) == 30
    for product in products:
        loaded = load_product(product)
        assert loaded.errors == []
        if loaded.action == "active":
            assert loaded.record is not None and len(loaded.record["variants"]) == 4


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------

SETTINGS: dict[str, Any] = {"default_customer_code": "CASH01", "shipping_code": "SHIP"}


def order(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel_order_code": "#1001",
        "channel": "shopify",
        "ordered_date": "2026-11-22T23:30:00+02:00",
        "customer": {"source_customer_code": "WEB001", "first_name": "Ann", "email": "a@b.co.za"},
        "shipping_address": {
            "first_name": "Ann",
            "last_name": "Lee",
            "address1": "86 Beach Road",
            "address2": None,
            "city": "Cape Town",
            "province": "Western Cape",
            "zip": "8001",
            "country": "South Africa",
            "phone": "021 555 0100",
        },
        "line_items": [
            {"sku": "JP1-RED-S", "qty": 2, "price": 460.0, "total_discount": 0.0},
            {"sku": "JP1-RED-M", "qty": 3, "price": 10.0, "total_discount": 1.0},
        ],
        "shipping_lines": [{"title": "Courier", "price": 60.0}],
        "meta": [],
    }
    base.update(over)
    return base


def test_order_payload_is_the_reference_sales_order() -> None:
    assert order_payload(order(), SETTINGS) == {
        "PONumber": "#1001",
        "CustomerCode": "WEB001",
        "DeliveryDetail": {
            "Name": "Ann Lee",
            "Address1": "86 Beach Road",
            "Address2": "",
            "City": "Cape Town",
            "Province": "Western Cape",
            "PostalCode": "8001",
            "Country": "South Africa",
            "Phone": "021 555 0100",
            "Email": "a@b.co.za",
        },
        "Lines": [
            {"ProductStockID": "JP1-RED-S", "Units": 2, "SellingPrice": 460.0},
            # 10.00 - 1.00 / 3 = 9.666... -> 9.67
            {"ProductStockID": "JP1-RED-M", "Units": 3, "SellingPrice": 9.67},
            {"ProductStockID": "SHIP", "Units": 1, "SellingPrice": 60.0},
        ],
    }
    assert ORDERS.apply(order(), SETTINGS) == order_payload(order(), SETTINGS)


def test_a_loaded_canonical_order_builds_too() -> None:
    loaded, errors = load_order(order())
    assert errors == [] and loaded is not None
    built = order_payload(loaded, SETTINGS)
    assert [line["ProductStockID"] for line in built["Lines"]] == ["JP1-RED-S", "JP1-RED-M", "SHIP"]


def test_the_default_customer_stands_in_for_a_missing_customer_code() -> None:
    walk_in = order(customer={"first_name": "Walk", "last_name": "In"})
    assert order_payload(walk_in, SETTINGS)["CustomerCode"] == "CASH01"
    assert order_payload(order(customer=None), SETTINGS)["CustomerCode"] == "CASH01"
    with pytest.raises(MappingError, match="default_customer_code"):
        order_payload(walk_in, {**SETTINGS, "default_customer_code": None})


def test_shipping_is_one_service_line() -> None:
    several = [{"title": "Courier", "price": "50"}, {"title": "Insurance", "price": 5.5}]
    lines = order_payload(order(shipping_lines=several), SETTINGS)["Lines"]
    assert lines[-1] == {"ProductStockID": "SHIP", "Units": 1, "SellingPrice": 55.5}
    free = order_payload(order(shipping_lines=[{"price": 0}]), {"default_customer_code": "C"})
    assert [line["ProductStockID"] for line in free["Lines"]] == ["JP1-RED-S", "JP1-RED-M"]
    with pytest.raises(MappingError, match="shipping_code"):
        order_payload(order(), {**SETTINGS, "shipping_code": None})
    with pytest.raises(MappingError, match="shipping line 1 price"):
        order_payload(order(shipping_lines=[{"price": -5}]), SETTINGS)


def test_the_delivery_name_falls_back_and_billing_stands_in() -> None:
    billing = {"company": "Acme", "address1": "PO Box 1"}
    detail = order_payload(order(shipping_address=None, billing_address=billing), SETTINGS)[
        "DeliveryDetail"
    ]
    assert (detail["Name"], detail["Address1"], detail["City"]) == ("Acme", "PO Box 1", "")
    bare = order_payload(order(shipping_address={}), SETTINGS)["DeliveryDetail"]
    assert bare["Name"] == "Ann"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"sku": "A", "qty": 1.5, "price": 1}], 'line 1 qty "1.5" is not a whole number'),
        ([{"sku": "A", "qty": "two", "price": 1}], 'line 1 qty "two" is not a number'),
        ([{"sku": "A", "qty": 0, "price": 1}], 'line 1 qty "0" is not a whole number'),
        (
            [{"sku": "A", "qty": 1, "price": 1}, {"sku": "B", "qty": 1, "price": -1}],
            'line 2 price "-1" is not a price of 0 or more',
        ),
        ([{"sku": "A", "qty": 1, "price": "abc"}], 'line 1 price "abc" is not a number'),
        ([{"sku": " ", "qty": 1, "price": 1}], "line 1 has no sku"),
        ([{"sku": "A", "qty": 1, "price": 1, "total_discount": 5}], "more than the line's price"),
        ([], "no line items"),
    ],
)
def test_bad_values_name_the_line_and_field(lines: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(MappingError, match=re.escape(message)):
        order_payload(order(line_items=lines), SETTINGS)


def test_an_order_needs_its_channel_order_code() -> None:
    with pytest.raises(MappingError, match="channel_order_code"):
        order_payload(order(channel_order_code=" "), SETTINGS)


# --------------------------------------------------------------------------
# Settings: order_line_key and prices_include_vat
# --------------------------------------------------------------------------


def with_stock_lines(base: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The order as the raise task hands it over: each line with the variant meta it found."""
    lines = [
        {**item, "variant_meta": {"ProductStockID": ids[item["sku"]]} if item["sku"] in ids else {}}
        for item in base["line_items"]
    ]
    return {**base, "line_items": lines}


def test_order_lines_quote_the_stock_line_id_when_set() -> None:
    by_id = {**SETTINGS, "order_line_key": "stock_line_id", "shipping_code": "900001"}
    assert ORDERS.line_meta_keys(SETTINGS) == ()
    assert ORDERS.line_meta_keys(by_id) == ("ProductStockID",)
    built = ORDERS.apply(
        with_stock_lines(order(), {"JP1-RED-S": "100001", "JP1-RED-M": "100002"}), by_id
    )
    assert [(ln["ProductStockID"], ln["SellingPrice"]) for ln in built["Lines"]] == [
        ("100001", 460.0),
        ("100002", 9.67),
        ("900001", 60.0),
    ]
    # The default reads the SKU and ignores whatever the hub attached.
    default = ORDERS.apply(with_stock_lines(order(), {"JP1-RED-S": "100001"}), SETTINGS)
    assert [ln["ProductStockID"] for ln in default["Lines"]] == ["JP1-RED-S", "JP1-RED-M", "SHIP"]


def test_a_sku_without_a_stock_line_id_is_refused_naming_order_and_sku() -> None:
    by_id = {**SETTINGS, "order_line_key": "stock_line_id"}
    # One line the hub knows no id for; then an order handed over without any.
    for unknown, sku in (
        (with_stock_lines(order(), {"JP1-RED-S": "100001"}), "JP1-RED-M"),
        (order(), "JP1-RED-S"),
    ):
        with pytest.raises(UnknownStockLineError) as caught:
            ORDERS.apply(unknown, by_id)
        assert str(caught.value) == (
            f"order #1001: SKU {sku} has no iSync stock line id (ProductStockID) among the "
            "stock lines synced from iSync, and the source's order_line_key is stock_line_id"
        )
        assert caught.value.error_class == "unknown_stock_line"
        assert "s2s resync" in caught.value.fix and "order_line_key" in caught.value.fix
    assert pickle.loads(pickle.dumps(caught.value)).sku == "JP1-RED-S"


def test_prices_include_vat_adds_each_lines_tax_per_unit() -> None:
    taxed = order(
        line_items=[
            # 2 x 199.00 less 20.00 = 378.00, VAT 56.70: 434.70 for two, 217.35 each.
            {
                "sku": "JP1-RED-S",
                "qty": 2,
                "price": "199.00",
                "total_discount": "20.00",
                "tax_lines": [{"code": "VAT", "price": "56.70", "rate": 0.15}],
            },
            # 3 x 10.00, tax 4.50 in two parts: 11.50 each.
            {
                "sku": "JP1-RED-M",
                "qty": 3,
                "price": 10,
                "tax_lines": [{"price": "3.00"}, {"price": 1.5}],
            },
            # No tax on the line: the same price either way.
            {"sku": "JP2", "qty": 1, "price": 5, "tax_lines": []},
        ],
        shipping_lines=[{"price": 95, "tax_lines": [{"price": "14.25", "rate": 0.15}]}],
    )
    ex_vat = order_payload(taxed, SETTINGS)["Lines"]
    assert [ln["SellingPrice"] for ln in ex_vat] == [189.0, 10.0, 5.0, 95.0]
    for value in (True, "true", "1"):
        inc_vat = order_payload(taxed, {**SETTINGS, "prices_include_vat": value})["Lines"]
        assert [ln["SellingPrice"] for ln in inc_vat] == [217.35, 11.5, 5.0, 109.25]
    loaded, errors = load_order(taxed)
    assert errors == [] and loaded is not None
    built = order_payload(loaded, {**SETTINGS, "prices_include_vat": True})
    assert [ln["SellingPrice"] for ln in built["Lines"]] == [217.35, 11.5, 5.0, 109.25]


def test_a_bad_tax_amount_names_the_line_when_it_is_used() -> None:
    bad = order(line_items=[{"sku": "A", "qty": 1, "price": 1, "tax_lines": [{"price": "-1"}]}])
    assert order_payload(bad, SETTINGS)["Lines"][0]["SellingPrice"] == 1.0
    with pytest.raises(MappingError, match='line 1 tax line 1 price "-1" is negative'):
        order_payload(bad, {**SETTINGS, "prices_include_vat": True})


@pytest.mark.parametrize(
    ("over", "setting", "message"),
    [
        (
            {"order_line_key": "ProductStockID"},
            "order_line_key",
            'order_line_key "ProductStockID" is not one of sku, stock_line_id',
        ),
        (
            {"prices_include_vat": "sometimes"},
            "prices_include_vat",
            'prices_include_vat "sometimes" is not true or false (true or false)',
        ),
    ],
)
def test_a_setting_the_map_cannot_read_names_itself(
    over: dict[str, Any], setting: str, message: str
) -> None:
    with pytest.raises(MissingSettingError) as caught:
        order_payload(order(), {**SETTINGS, **over})
    assert caught.value.setting == setting
    assert str(caught.value) == message
