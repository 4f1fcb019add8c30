"""The canonical model: coercion, tri-state, hashing, and the fast path's fidelity."""

from __future__ import annotations

import copy
import random
from decimal import Decimal
from typing import Any

import pytest

from hub.schemas import (
    CoercionError,
    CustomerSchema,
    ProductSchema,
    canonical_hash,
    coerce_bool,
    coerce_grams,
    coerce_order_qty,
    coerce_price,
    coerce_qty,
    coerce_tags,
    coerce_text,
    load_customer,
    load_customer_via_schema,
    load_order,
    load_product,
    load_product_via_schema,
    tri_state,
)

# --------------------------------------------------------------------------
# Coercion tables
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        ("  12 ", 12),
        ("0012", 12),
        ("12.0", 12),
        ("12.5", 12),  # whole units, rounded down: never oversell
        ("12.999", 12),
        ("-3", 0),  # negative stock is stored as 0
        (-3.5, 0),
        ("", None),
        ("   ", None),
        (None, None),
        (7, 7),
        (7.0, 7),
        (Decimal("4.000"), 4),
        ("1e2", 100),
    ],
)
def test_qty(raw: Any, expected: Any) -> None:
    assert coerce_qty(raw, "qty") == expected


@pytest.mark.parametrize("raw", ["abc", "1,5", "1 000", "1_000", "nan", "inf", True, [1], {}])
def test_qty_refuses(raw: Any) -> None:
    with pytest.raises(CoercionError, match=r'^qty ".*" is not a number$'):
        coerce_qty(raw, "qty")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("199.99", 199.99),
        (" 12.50 ", 12.5),
        ("8.000000000000001", 8.0),
        (0.1 + 0.2, 0.3),
        ("12.34567", 12.3457),
        (Decimal("5.10"), 5.1),
        (3, 3.0),
        ("-0", 0.0),
        ("", None),
        (None, None),
    ],
)
def test_price(raw: Any, expected: Any) -> None:
    out = coerce_price(raw, "price")
    assert out == expected
    assert out is None or type(out) is float


def test_price_error_names_field_and_value() -> None:
    with pytest.raises(CoercionError, match=r'^price "R12" is not a number$'):
        coerce_price("R12", "price")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("y", True),
        ("1", True),
        (1, True),
        (True, True),
        ("false", False),
        ("0", False),
        ("", False),
        ("no", False),
        ("N", False),
        (0, False),
        (None, False),
    ],
)
def test_bool(raw: Any, expected: bool) -> None:
    assert coerce_bool(raw, "inventory_management") is expected


def test_bool_refuses() -> None:
    with pytest.raises(CoercionError, match='inventory_management "maybe" is not true or false'):
        coerce_bool("maybe", "inventory_management")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Shirt ", "Shirt"),
        ("", None),
        ("   ", None),
        (None, None),
        (1001, "1001"),
        (1001.0, "1001"),
        (Decimal("12.50"), "12.50"),
    ],
)
def test_text(raw: Any, expected: Any) -> None:
    assert coerce_text(raw, "title") == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("b, a,,a , c", "a,b,c"),
        (["z", " y", "z"], "y,z"),
        (" , ", None),
        (None, None),
    ],
)
def test_tags(raw: Any, expected: Any) -> None:
    assert coerce_tags(raw, "tags") == expected


def test_grams_and_order_qty() -> None:
    assert coerce_grams("250.4", "grams") == 250
    with pytest.raises(CoercionError, match='grams "-5" is negative'):
        coerce_grams("-5", "grams")
    assert coerce_order_qty("2.0", "qty") == 2
    with pytest.raises(CoercionError, match=r'qty "2\.5" is not a whole number'):
        coerce_order_qty("2.5", "qty")
    with pytest.raises(CoercionError, match='qty "0" must be at least 1'):
        coerce_order_qty("0", "qty")


# --------------------------------------------------------------------------
# Tri-state
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, "active"),
        (1, "active"),
        ("1", "active"),
        ("Active", "active"),
        ("ACTIVE", "active"),
        ("Y", "active"),
        ("yes", "active"),
        ("true", "active"),
        ("t", "active"),
        ("Ignore", "ignore"),
        (" IGNORE ", "ignore"),
        (False, "delete"),
        (0, "delete"),
        ("0", "delete"),
        ("", "delete"),
        (None, "delete"),
        ("Delete", "delete"),
        ("no", "delete"),
        ("n", "delete"),
        ("false", "delete"),
    ],
)
def test_tri_state(raw: Any, expected: str) -> None:
    assert tri_state(raw) == expected


@pytest.mark.parametrize("raw", ["maybe", 2, "Activ", [True]])
def test_tri_state_refuses(raw: Any) -> None:
    with pytest.raises(CoercionError, match=r"^WebSale .* is not Active, Delete or Ignore$"):
        tri_state(raw, "WebSale")
    with pytest.raises(CoercionError) as caught:
        tri_state("maybe")
    assert str(caught.value) == 'product_active "maybe" is not Active, Delete or Ignore'


# --------------------------------------------------------------------------
# Loading products and customers
# --------------------------------------------------------------------------


def product(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source_product_code": "TSHIRT",
        "title": " T-shirt ",
        "product_active": "Active",
        "tags": "summer, cotton,summer",
        "options": [{"name": "Size", "position": "2"}, {"name": "Colour", "position": 1}],
        "meta": [{"key": "material", "value": "cotton"}, {"key": "Brand", "value": "Acme"}],
        "variants": [
            {
                "source_variant_code": "SKU-RED",
                "sku": "SKU-RED",
                "qty": "-4",
                "price": "199.990",
                "price_tiers": [
                    {"tier": "wholesale", "price": "150"},
                    {"tier": "retail", "price": 199.99},
                ],
                "qty_availability": [{"description": "JHB", "qty": "3"}],
                "option1": "Red",
                "grams": "250",
            },
            {"source_variant_code": "SKU-BLUE", "sku": "SKU-BLUE", "qty": "12.0"},
        ],
        "unexpected": "dropped",
    }
    base.update(over)
    return base


def test_load_product_canonical_shape() -> None:
    loaded = load_product(product())
    assert loaded.errors == []
    assert loaded.action == "active"
    assert loaded.record == {
        "source_product_code": "TSHIRT",
        "title": "T-shirt",
        "body_html": None,
        "collection": None,
        "product_type": None,
        "vendor": None,
        "tags": "cotton,summer",
        "active": True,
        "options": [{"name": "Colour", "position": 1}, {"name": "Size", "position": 2}],
        "meta": [{"key": "Brand", "value": "Acme"}, {"key": "material", "value": "cotton"}],
        "variants": [
            {
                "source_variant_code": "SKU-RED",
                "sku": "SKU-RED",
                "barcode": None,
                "qty": 0,
                "qty_availability": [{"description": "JHB", "qty": 3}],
                "price": 199.99,
                "price_tiers": [
                    {"tier": "retail", "price": 199.99},
                    {"tier": "wholesale", "price": 150.0},
                ],
                "inventory_management": True,
                "grams": 250,
                "option1": "Red",
                "option2": None,
                "option3": None,
                "meta": [],
            },
            {
                "source_variant_code": "SKU-BLUE",
                "sku": "SKU-BLUE",
                "barcode": None,
                "qty": 12,
                "qty_availability": [],
                "price": None,
                "price_tiers": [],
                "inventory_management": True,
                "grams": None,
                "option1": None,
                "option2": None,
                "option3": None,
                "meta": [],
            },
        ],
    }


def test_options_rules() -> None:
    loaded = load_product(product(options=[{"name": "Size"}, {"name": "Colour"}]))
    assert loaded.record is not None
    assert loaded.record["options"] == [
        {"name": "Size", "position": 1},
        {"name": "Colour", "position": 2},
    ]
    clash = load_product(product(options=[{"name": "Size", "position": 2}, {"name": "Colour"}]))
    assert clash.errors == [("options", 'options position "2" appears twice')]
    four = load_product(product(options=[{"name": n} for n in "ABCD"]))
    assert four.errors == [("options", "options has 4 entries; at most 3 are allowed")]


def test_negative_qty_is_stored_as_zero() -> None:
    raw = product()
    raw["variants"][1]["qty"] = -12
    raw["variants"][0]["qty_availability"] = [{"description": "CPT", "qty": "-1"}]
    loaded = load_product(raw)
    assert loaded.record is not None
    assert [v["qty"] for v in loaded.record["variants"]] == [0, 0]
    assert loaded.record["variants"][0]["qty_availability"] == [{"description": "CPT", "qty": 0}]


def test_errors_name_the_record_and_the_field() -> None:
    raw = product(title="  ")
    raw["variants"][0]["qty"] = "abc"
    raw["variants"][0]["price_tiers"][0]["price"] = "cheap"
    raw["variants"][1]["sku"] = None
    loaded = load_product(raw)
    assert loaded.record is None
    assert loaded.action == "active"
    assert sorted(loaded.errors) == [
        ("title", "title is required"),
        ("variants[SKU-BLUE].sku", "sku is required"),
        ("variants[SKU-RED].price_tiers[wholesale].price", 'price "cheap" is not a number'),
        ("variants[SKU-RED].qty", 'qty "abc" is not a number'),
    ]


def test_structure_errors() -> None:
    assert load_product(product(variants=[])).errors == [
        ("variants", "a product needs at least one variant")
    ]
    no_variants = product()
    del no_variants["variants"]
    assert load_product(no_variants).errors == [
        ("variants", "a product needs at least one variant")
    ]
    assert load_product(product(variants="SKU-RED")).errors == [
        ("variants", "variants must be a list")
    ]
    twice = product()
    twice["variants"][1]["source_variant_code"] = "SKU-RED"
    assert load_product(twice).errors == [
        ("variants", 'variants source_variant_code "SKU-RED" appears twice')
    ]
    assert load_product("nope").errors == [("product", "a product must be an object")]
    assert load_product(product(meta=[{"key": "a"}, {"key": "A"}])).errors == [
        ("meta", 'meta key "A" appears twice')
    ]


def test_delete_and_ignore_carry_only_the_key() -> None:
    broken = product(product_active="Delete")
    broken["variants"][0]["qty"] = "abc"  # irrelevant: the product is going away
    assert load_product(broken) == (
        {"source_product_code": "TSHIRT", "active": False},
        "delete",
        [],
    )
    assert load_product(product(product_active=" ignore ")) == (
        {"source_product_code": "TSHIRT"},
        "ignore",
        [],
    )
    assert load_product(product(product_active="0", source_product_code="")).errors == [
        ("source_product_code", "source_product_code is required")
    ]


def test_active_flag_sources() -> None:
    no_flag = product()
    del no_flag["product_active"]
    assert load_product(no_flag).action == "active"  # a query without the column syncs all
    plain = product(active=False)
    del plain["product_active"]
    assert load_product(plain).action == "delete"
    bad = load_product(product(product_active="maybe"))
    assert bad.record is None and bad.action is None
    assert bad.errors == [
        ("product_active", 'product_active "maybe" is not Active, Delete or Ignore')
    ]


def test_customers() -> None:
    raw = {
        "source_customer_code": " C001 ",
        "first_name": "Ann",
        "customer_active": True,
        "addresses": [{"city": " Cape Town ", "zip": 8001, "unknown": 1}],
        "meta": [{"key": "rep", "value": 7}],
        "extra": "dropped",
    }
    loaded = load_customer(raw)
    assert loaded.errors == []
    assert loaded.record == {
        "source_customer_code": "C001",
        "first_name": "Ann",
        "last_name": None,
        "email": None,
        "active": True,
        "addresses": [
            {
                "first_name": None,
                "last_name": None,
                "company": None,
                "address1": None,
                "address2": None,
                "city": "Cape Town",
                "province": None,
                "province_code": None,
                "country": None,
                "country_code": None,
                "zip": "8001",
                "phone": None,
            }
        ],
        "price_tier": None,
        "qty_availability": None,
        "meta": [{"key": "rep", "value": "7"}],
    }
    assert load_customer({**raw, "customer_active": "Delete"}).record == {
        "source_customer_code": "C001",
        "active": False,
    }
    assert load_customer({"first_name": "x"}).errors == [
        ("source_customer_code", "source_customer_code is required")
    ]


def test_schemas_exclude_unknown_keys() -> None:
    out = ProductSchema().load(product())
    assert "unexpected" not in out and "product_active" not in out
    assert out["active"] is True
    assert CustomerSchema().load({"source_customer_code": "C", "x": 1})["active"] is True


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------


def test_load_order() -> None:
    order, errors = load_order(
        {
            "channel_order_code": " 1001 ",
            "ordered_date": "2024-05-01T09:30:00",
            "customer": {"email": "a@b.co"},
            "line_items": [{"sku": "A", "qty": "2", "price": "10.50"}],
            "shipping_lines": [{"title": "Courier", "price": "60"}],
        }
    )
    assert errors == []
    assert order is not None
    assert order["channel_order_code"] == "1001"
    assert order["instruction"] == "add_order"
    assert order["ordered_date"] == "2024-05-01T09:30:00+00:00"
    assert order["line_items"] == [
        {"sku": "A", "title": None, "qty": 2, "price": 10.5, "total_discount": 0.0, "tax_lines": []}
    ]
    assert order["total_discount"] == 0.0


def test_load_order_errors() -> None:
    order, errors = load_order(
        {
            "channel_order_code": "1001",
            "instruction": "add",
            "ordered_date": "yesterday",
            "line_items": [{"sku": "A", "qty": "1.5", "price": None}],
            "total_discounts": 5,
        }
    )
    assert order is None
    assert sorted(errors) == [
        ("instruction", 'instruction "add" is not add_order or sync_order'),
        ("line_items[0].price", "price is required"),
        ("line_items[0].qty", 'qty "1.5" is not a whole number'),
        ("ordered_date", 'ordered_date "yesterday" is not an ISO-8601 date and time'),
        ("total_discounts", "Unknown field."),
    ]
    assert load_order({"channel_order_code": "1"})[1] == [
        ("line_items", "an order needs at least one line item")
    ]


# --------------------------------------------------------------------------
# Change detection
# --------------------------------------------------------------------------


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        items = [_shuffled(v, rng) for v in value]
        rng.shuffle(items)
        return items
    return value


def test_hash_ignores_key_and_list_order() -> None:
    record = load_product(product()).record
    assert record is not None
    digest = canonical_hash(record)
    assert len(digest) == 64 and int(digest, 16) >= 0
    rng = random.Random(7)
    for _ in range(20):
        assert canonical_hash(_shuffled(record, rng)) == digest


def test_hash_changes_with_any_field() -> None:
    record = load_product(product()).record
    assert record is not None
    digest = canonical_hash(record)
    changes = [
        ("title", "T-shirt!"),
        ("active", False),
        ("tags", None),
    ]
    for key, value in changes:
        assert canonical_hash({**record, key: value}) != digest
    for key, value in [("qty", 1), ("price", 199.98), ("sku", "X"), ("option1", None)]:
        other = copy.deepcopy(record)
        other["variants"][0][key] = value
        assert canonical_hash(other) != digest
    other = copy.deepcopy(record)
    other["variants"][0]["price_tiers"][1]["price"] = 151.0
    assert canonical_hash(other) != digest
    other = copy.deepcopy(record)
    other["variants"][0]["meta"].append({"key": "bin", "value": "A7"})
    assert canonical_hash(other) != digest


def test_hash_renders_floats_stably() -> None:
    assert canonical_hash({"price": 8.000000000000001}) == canonical_hash({"price": 8.0})
    assert canonical_hash({"price": 0.1 + 0.2}) == canonical_hash({"price": 0.3})
    assert canonical_hash({"price": 8.0}) != canonical_hash({"price": 8.5})
    assert canonical_hash({"a": True}) != canonical_hash({"a": 1})
    assert canonical_hash({"a": None}) != canonical_hash({})


# --------------------------------------------------------------------------
# The fast path is held to the marshmallow schemas
# --------------------------------------------------------------------------

# (usually fine, sometimes wrong) values per kind of field
VALUES: dict[str, tuple[list[Any], list[Any]]] = {
    "code": (["P1", " P1 ", 1001, 12.0], ["", None, "x" * 256, {"a": 1}, True]),
    "text": (["Shirt", "  Shirt ", "", None, 42, Decimal("1.50")], [[1], True]),
    "qty": (
        ["5", " 007 ", "-3", "12.5", "12.0", "", None, 3, -2.5],
        ["abc", "1,5", True, "nan"],
    ),
    "price": (["9.99", "8.000000000000001", "", None, 7, Decimal("1.10")], ["R12", float("inf")]),
    "flag": (["true", "0", "", None, 1, True], ["maybe", 2]),
    "state": (["Active", "Delete", "Ignore", "1", "0", "", None, True, False], ["maybe", 5]),
    "grams": (["250", "2.6", "", None], ["-1", "heavy"]),
    "tags": (["b,a,b", " ", None, ["x", "y"]], [5]),
}
MISSING = object()


def _pick(rng: random.Random, kind: str) -> Any:
    roll = rng.random()
    if roll < 0.1:
        return MISSING
    good, bad = VALUES[kind]
    return rng.choice(bad if roll > 0.97 else good)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not MISSING:
        out[key] = value


def _random_list(rng: random.Random, make: Any) -> Any:
    roll = rng.random()
    if roll < 0.05:
        return "not a list"
    if roll < 0.1:
        return None
    items: list[Any] = [make(rng) for _ in range(rng.randint(0, 3))]
    if items and rng.random() < 0.05:
        items[0] = 7
    return items


def _tier(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "tier", rng.choice(["retail", "wholesale", "retail", "", MISSING]))
    _put(out, "price", _pick(rng, "price"))
    return out


def _warehouse(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "description", rng.choice(["JHB", "CPT", "JHB", None, MISSING]))
    _put(out, "qty", _pick(rng, "qty"))
    return out


def _meta(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "key", rng.choice(["brand", "Brand", "bin", "", MISSING]))
    _put(out, "value", _pick(rng, "text"))
    return out


def _option(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "name", rng.choice(["Size", "Colour", "Fit", "", MISSING]))
    _put(out, "position", rng.choice([1, 2, 3, "2", 4, "x", None, MISSING, MISSING]))
    return out


def _variant(rng: random.Random, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {"source_variant_code": f"V{index}", "sku": f"V{index}"}
    if rng.random() < 0.1:
        _put(out, "source_variant_code", _pick(rng, "code"))
    if rng.random() < 0.1:
        _put(out, "sku", _pick(rng, "code"))
    _put(out, "qty", _pick(rng, "qty"))
    _put(out, "price", _pick(rng, "price"))
    _put(out, "barcode", _pick(rng, "text"))
    _put(out, "grams", _pick(rng, "grams"))
    _put(out, "inventory_management", _pick(rng, "flag"))
    _put(out, "option1", _pick(rng, "text"))
    if rng.random() < 0.5:
        out["price_tiers"] = _random_list(rng, _tier)
    if rng.random() < 0.3:
        out["qty_availability"] = _random_list(rng, _warehouse)
    if rng.random() < 0.3:
        out["meta"] = _random_list(rng, _meta)
    if rng.random() < 0.2:
        out["surplus"] = "ignored"
    return out


def _random_product(rng: random.Random) -> Any:
    if rng.random() < 0.02:
        return ["not", "a", "product"]
    out: dict[str, Any] = {"source_product_code": "P1", "title": "Shirt"}
    if rng.random() < 0.2:
        _put(out, "source_product_code", _pick(rng, "code"))
    if rng.random() < 0.2:
        _put(out, "title", _pick(rng, "text"))
    _put(out, "product_active", _pick(rng, "state") if rng.random() < 0.3 else "Active")
    if rng.random() < 0.1:
        _put(out, "active", _pick(rng, "state"))
    _put(out, "tags", _pick(rng, "tags"))
    _put(out, "vendor", _pick(rng, "text"))
    if rng.random() < 0.4:
        out["options"] = _random_list(rng, _option) if rng.random() < 0.9 else [{"name": "A"}] * 4
    if rng.random() < 0.3:
        out["meta"] = _random_list(rng, _meta)
    roll = rng.random()
    if roll < 0.05:
        out["variants"] = []
    elif roll < 0.08:
        out["variants"] = "V1"
    elif roll > 0.1:  # else: no variants key at all
        variants: list[Any] = [_variant(rng, i) for i in range(rng.randint(1, 3))]
        if rng.random() < 0.05 and len(variants) > 1:
            variants[1] = dict(variants[1], source_variant_code=variants[0]["source_variant_code"])
        if rng.random() < 0.05:
            variants.append(None)
        out["variants"] = variants
    return out


def _same(a: Any, b: Any) -> None:
    assert a.record == b.record
    assert a.action == b.action
    assert sorted(a.errors) == sorted(b.errors)


def test_fast_path_equals_marshmallow_on_varied_products() -> None:
    rng = random.Random(20240501)
    outcomes = {"active": 0, "delete": 0, "ignore": 0, "errors": 0}
    for _ in range(2000):
        raw = _random_product(rng)
        fast, slow = load_product(copy.deepcopy(raw)), load_product_via_schema(copy.deepcopy(raw))
        _same(fast, slow)
        if fast.errors:
            outcomes["errors"] += 1
        else:
            assert fast.action is not None
            outcomes[fast.action] += 1
    # the generator reaches every outcome, so the comparison means something
    assert all(count > 20 for count in outcomes.values()), outcomes


def test_fast_path_equals_marshmallow_on_handpicked_products() -> None:
    cases = [
        product(),
        product(title=None),
        product(options=[{"name": n} for n in "ABCD"]),
        product(options=[{"name": "Size", "position": 2}, {"name": "Colour"}]),
        product(meta=[{"key": "a"}, {"key": "A"}]),
        product(meta="brand=acme"),
        product(variants=[None]),
        product(variants=[{"source_variant_code": "X", "sku": "X", "price_tiers": [7]}]),
        product(product_active="Delete"),
        product(product_active="maybe", title=""),
    ]
    for raw in cases:
        _same(load_product(copy.deepcopy(raw)), load_product_via_schema(copy.deepcopy(raw)))


def test_fast_path_equals_marshmallow_on_customers() -> None:
    rng = random.Random(3)
    for _ in range(400):
        raw: dict[str, Any] = {}
        _put(raw, "source_customer_code", _pick(rng, "code"))
        _put(raw, "first_name", _pick(rng, "text"))
        _put(raw, "email", _pick(rng, "text"))
        _put(raw, "customer_active", _pick(rng, "state"))
        if rng.random() < 0.4:
            raw["addresses"] = _random_list(
                rng, lambda r: {"city": _pick(r, "text"), "zip": _pick(r, "text")}
            )
        if rng.random() < 0.3:
            raw["meta"] = _random_list(rng, _meta)
        raw = {k: v for k, v in raw.items() if v is not MISSING}
        for address in raw.get("addresses") or []:
            if isinstance(address, dict):
                for key in [k for k, v in address.items() if v is MISSING]:
                    del address[key]
        _same(
            load_customer(copy.deepcopy(raw)),
            load_customer_via_schema(copy.deepcopy(raw)),
        )


def test_stock_beyond_what_the_hub_stores_is_a_named_error() -> None:
    from hub.schemas import MAX_QTY, CoercionError, coerce_qty

    assert coerce_qty(str(MAX_QTY), "qty") == MAX_QTY
    with pytest.raises(CoercionError, match=r"qty .* more stock than the hub can hold"):
        coerce_qty(MAX_QTY + 1, "qty")
