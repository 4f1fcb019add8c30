"""A hub product rendered for a channel, and what a push sends of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.channel import ACTIVE, ARCHIVED
from hub.models import ChannelProduct, Product
from workers.rendering import RenderError, carried, decide, hashes, key_of, render, whole

SETTINGS: dict[str, Any] = {
    "price_tier": "retail",
    "compare_at_tier": None,
    "warehouses": [],
    "carries": "all_active",
}


def tshirt(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source_product_code": "TS",
        "title": "T-shirt",
        "body_html": "<p>Cotton</p>",
        "vendor": "Acme",
        "product_type": "Shirts",
        "collection": "Summer",
        "tags": "summer, cotton,summer",
        "active": True,
        "options": [{"name": "Size", "position": 1}],
        "meta": [{"key": "Web", "value": "yes"}],
        "variants": [
            {
                "source_variant_code": "TS-M",
                "sku": "TS-M",
                "price": 19.99,
                "price_tiers": [
                    {"tier": "retail", "price": 19.99},
                    {"tier": "wholesale", "price": 12.5},
                    {"tier": "list", "price": 24.99},
                ],
                "qty": 7,
                "qty_availability": [
                    {"description": "JHB", "qty": 3},
                    {"description": "CPT", "qty": 4},
                    {"description": "DBN", "qty": -2},
                ],
                "option1": "M",
            },
            {
                "source_variant_code": "TS-S",
                "sku": "TS-S",
                "price": 19.99,
                "price_tiers": [{"tier": "wholesale", "price": 12}],
                "qty": None,
                "qty_availability": [],
                "option1": "S",
            },
        ],
    }
    data.update(changes)
    return data


def test_the_chosen_tiers_and_warehouses_make_price_compare_at_and_stock() -> None:
    settings = {
        **SETTINGS,
        "price_tier": "wholesale",
        "compare_at_tier": "list",
        "warehouses": ["jhb", "DBN"],
    }
    listing = render(tshirt(), "erp:TS", settings)
    by_sku = {v.sku: v for v in listing.variants}
    assert by_sku["TS-M"].price == "12.50"
    assert by_sku["TS-M"].compare_at_price == "24.99"
    assert by_sku["TS-M"].qty == 3  # JHB 3 + DBN -2 counted as 0; CPT not carried
    assert by_sku["TS-S"].price == "12.00"
    assert by_sku["TS-S"].compare_at_price is None
    assert by_sku["TS-S"].qty == 0
    assert listing.options == ("Size",)
    assert by_sku["TS-M"].options == ("M",)
    assert listing.tags == ("cotton", "summer")


def test_retail_falls_back_to_the_variant_price_and_no_warehouses_means_qty() -> None:
    listing = render(tshirt(), "erp:TS", SETTINGS)
    by_sku = {v.sku: v for v in listing.variants}
    assert by_sku["TS-S"].price == "19.99"
    assert by_sku["TS-M"].qty == 7
    assert by_sku["TS-S"].qty is None


def test_a_variant_without_a_price_in_the_tier_is_named() -> None:
    with pytest.raises(RenderError, match=r"variant TS-S: price: no price in .*'list'"):
        render(tshirt(), "erp:TS", {**SETTINGS, "price_tier": "list"})


@pytest.mark.parametrize(
    ("carries", "expected"),
    [
        ("all_active", True),
        ({"collection": "summer"}, True),
        ({"collection": "Winter"}, False),
        ({"web": "yes"}, True),
        ({"missing": "x"}, False),
    ],
)
def test_carries_by_a_product_field_or_meta_key(carries: Any, expected: bool) -> None:
    assert carried(tshirt(), carries) is expected


def test_stock_alone_changes_only_the_stock_hash() -> None:
    before = render(tshirt(), "erp:TS", SETTINGS)
    data = tshirt()
    data["variants"][0]["qty"] = 8
    after = render(data, "erp:TS", SETTINGS)
    assert hashes(before)[0] == hashes(after)[0]
    assert hashes(before)[1] != hashes(after)[1]
    data["variants"][0]["price"] = 18.0
    data["variants"][0]["price_tiers"][0]["price"] = 18.0
    assert hashes(render(data, "erp:TS", SETTINGS))[0] != hashes(before)[0]


def _product(data: dict[str, Any], *, active: bool = True, deleted: bool = False) -> Product:
    return Product(
        id=1,
        source_product_code=data["source_product_code"],
        active=active,
        data=data,
        deleted_at=datetime.now(UTC) if deleted else None,
        change_seq=1,
    )


def _bound(listing_hashes: tuple[str, str], status: str = ACTIVE) -> ChannelProduct:
    return ChannelProduct(
        product_id=1,
        key="erp:TS",
        store_id="gid://shopify/Product/1",
        ids={"variants": {"TS-M": "v1"}, "items": {"TS-M": "i1"}, "stock": {"TS-M": 7}},
        status=status,
        product_hash=listing_hashes[0],
        stock_hash=listing_hashes[1],
    )


def test_decisions_from_what_the_store_confirmed() -> None:
    product = _product(tshirt())
    first = decide(product, "erp", None, SETTINGS)
    assert (first.outcome, first.item is not None) == ("created", True)
    assert first.key == key_of("erp", "TS") == "erp:TS"
    row = _bound(hashes(render(tshirt(), "erp:TS", SETTINGS)))
    assert decide(product, "erp", row, SETTINGS).outcome == "unchanged"
    forced = decide(product, "erp", row, SETTINGS, force=True)
    assert forced.outcome == "updated" and forced.item is not None
    changed = tshirt()
    changed["variants"][0]["qty"] = 1
    stock = decide(_product(changed), "erp", row, SETTINGS)
    assert stock.outcome == "stock" and stock.item is not None
    assert stock.item.send_stock and not stock.item.send_product


def test_deleted_inactive_or_not_carried_products_are_archived_once_or_skipped() -> None:
    row = _bound(hashes(render(tshirt(), "erp:TS", SETTINGS)))
    for product in (_product(tshirt(), deleted=True), _product(tshirt(), active=False)):
        archived = decide(product, "erp", row, SETTINGS)
        assert archived.outcome == "archived" and archived.item is not None
        assert archived.item.listing.status == ARCHIVED
        assert decide(product, "erp", None, SETTINGS).outcome == "skipped"
    not_carried = decide(_product(tshirt()), "erp", row, {**SETTINGS, "carries": {"vendor": "x"}})
    assert not_carried.outcome == "archived"
    row.status = ARCHIVED
    assert decide(_product(tshirt(), deleted=True), "erp", row, SETTINGS).outcome == "unchanged"


def test_a_refused_listing_waits_for_a_change_or_a_retry() -> None:
    product = _product(tshirt())
    listing = render(tshirt(), "erp:TS", SETTINGS)
    row = ChannelProduct(
        product_id=1,
        key="erp:TS",
        ids={},
        refused_hash=whole(*hashes(listing)),
        refused_at=datetime.now(UTC),
        error="Price must be positive",
    )
    assert decide(product, "erp", row, SETTINGS).outcome == "unchanged"
    assert decide(product, "erp", row, SETTINGS, retry_refused=True).outcome == "created"
    changed = _product(tshirt(title="T-shirt (new)"))
    assert decide(changed, "erp", row, SETTINGS).outcome == "created"


def test_the_hub_refuses_what_it_cannot_render_with_the_field() -> None:
    decision = decide(_product(tshirt()), "erp", None, {**SETTINGS, "price_tier": "list"})
    assert decision.outcome == "refused" and decision.item is None
    assert decision.error is not None and "TS-S: price" in decision.error


def test_variants_without_option_names_are_offered_by_sku() -> None:
    data = tshirt(options=[])
    listing = render(data, "erp:TS", SETTINGS)
    assert listing.options == ("Variant",)
    assert {v.sku: v.options for v in listing.variants} == {"TS-M": ("TS-M",), "TS-S": ("TS-S",)}
    single = tshirt(options=[], variants=tshirt()["variants"][:1])
    assert render(single, "erp:TS", SETTINGS).options == ()
