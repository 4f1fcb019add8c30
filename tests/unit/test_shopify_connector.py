"""The Shopify connector against the emulated store, over real HTTP.

What a merchant would check in their Shopify admin after a push: the
products, prices, compare-at prices, options, stock and statuses the hub
sent, no product twice however the connection behaves, and the store's own
words when it refuses one.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import SettingsError, TransientError
from connectors.channel import ARCHIVED, Bound, Listing, ListingVariant, Outcome, PushItem
from connectors.shopify import ShopifyConnector
from emulators.shopify import RunningServer, serve

TOKEN = "shpat_0123456789abcdef_secret"


class Clock:
    """One clock for the emulated bucket and the connector; sleeping moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def shop() -> Iterator[RunningServer]:
    with serve(access_token=TOKEN) as running:
        yield running


def connect(shop: RunningServer, **settings: Any) -> ShopifyConnector:
    return ShopifyConnector(
        {"store_url": shop.base_url, "api_version": "2025-10", **settings},
        {"access_token": TOKEN},
        sleep=settings.pop("sleep", lambda _: None),
    )


def shirt(key: str = "SHIRT", price: str = "19.99", qty: tuple[int, int] = (5, 3)) -> Listing:
    return Listing(
        key=key,
        title=f"Linen shirt {key}",
        body_html="<p>Cool linen</p>",
        vendor="Linen & Co",
        product_type="Shirts",
        tags=("summer", "linen"),
        options=("Size",),
        variants=(
            ListingVariant(f"{key}-S", price, "24.99", qty[0], ("S",), barcode="600100", grams=250),
            ListingVariant(f"{key}-M", price, None, qty[1], ("M",)),
        ),
    )


def mug(key: str = "MUG", price: str = "5.00", qty: int | None = 7, **kw: Any) -> Listing:
    return Listing(
        key=key, title=f"Mug {key}", variants=(ListingVariant(key, price, None, qty),), **kw
    )


def variant(shop: RunningServer, sku: str) -> dict[str, Any]:
    product = shop.product_by_sku(sku)
    assert product is not None, sku
    found: dict[str, Any] = next(v for v in product["variants"] if v["sku"] == sku)
    return found


def again(outcomes: list[Outcome], listings: list[Listing], **flags: bool) -> list[PushItem]:
    """The next push of the same listings, with what the last one confirmed."""
    return [
        PushItem(listing, bound=outcome.bound, **flags)
        for listing, outcome in zip(listings, outcomes, strict=True)
    ]


def test_a_catalogue_arrives_as_listed(shop: RunningServer) -> None:
    listings = [shirt(), mug(), mug("OLD", status=ARCHIVED)]
    with connect(shop) as connector:
        outcomes = connector.push([PushItem(x) for x in listings])
    assert [o.error for o in outcomes] == [None, None, None]
    products = {p["title"]: p for p in shop.products()}
    assert sorted(products) == ["Linen shirt SHIRT", "Mug MUG", "Mug OLD"]
    linen = products["Linen shirt SHIRT"]
    assert (linen["status"], linen["vendor"], linen["product_type"]) == (
        "ACTIVE",
        "Linen & Co",
        "Shirts",
    )
    assert (linen["description_html"], linen["tags"]) == ("<p>Cool linen</p>", ["linen", "summer"])
    assert linen["options"] == [("Size", ["S", "M"])]
    assert [
        (v["sku"], v["price"], v["compare_at_price"], v["options"], v["tracked"])
        for v in linen["variants"]
    ] == [
        ("SHIRT-S", Decimal("19.99"), Decimal("24.99"), [("Size", "S")], True),
        ("SHIRT-M", Decimal("19.99"), None, [("Size", "M")], True),
    ]
    assert (linen["variants"][0]["barcode"], linen["variants"][0]["weight"]) == (
        "600100",
        (250.0, "GRAMS"),
    )
    assert (shop.available("SHIRT-S"), shop.available("SHIRT-M"), shop.available("MUG")) == (
        5,
        3,
        7,
    )
    assert products["Mug MUG"]["options"] == [("Title", ["Default Title"])]
    assert products["Mug OLD"]["status"] == "ARCHIVED"
    # What the hub is told is what the store holds.
    bound = outcomes[0].bound
    assert bound is not None
    assert bound.product_id == linen["id"]
    assert bound.variants == {v["sku"]: v["id"] for v in linen["variants"]}
    assert bound.items == {v["sku"]: v["inventory_item_id"] for v in linen["variants"]}
    assert bound.stock == {"SHIRT-S": 5, "SHIRT-M": 3}
    assert linen["metafields"] == {"s2s.product_key": "SHIRT"}
    assert shop.definitions() == [
        {
            "owner_type": "PRODUCT",
            "namespace": "s2s",
            "key": "product_key",
            "type": "id",
            "name": "Hub product key",
        }
    ]
    assert shop.mutations() == 4  # the definition and one productSet each
    assert shop.mutations("inventorySetQuantities") == 0


def test_nothing_changed_sends_nothing(shop: RunningServer) -> None:
    listings = [shirt(), mug()]
    with connect(shop) as connector:
        first = connector.push([PushItem(x) for x in listings])
        mutations, requests = shop.mutations(), shop.faults.requests
        second = connector.push(again(first, listings, send_product=False))
    assert (shop.mutations(), shop.faults.requests) == (mutations, requests)
    assert [o.bound for o in second] == [o.bound for o in first]
    assert all(o.confirmed for o in second)
    # A new connector (a new task) checks the definition again; nothing is written.
    with connect(shop) as connector:
        connector.push(again(first, listings, send_product=False))
    assert shop.mutations() == mutations
    assert len(shop.definitions()) == 1


def test_a_price_change_sends_one_product_set_per_changed_product(shop: RunningServer) -> None:
    listings = [shirt(), mug()]
    with connect(shop) as connector:
        first = connector.push([PushItem(x) for x in listings])
        before = shop.mutations("productSet")
        changed = [shirt(price="17.50"), mug()]
        items = again(first, changed, send_product=False)
        items[0] = PushItem(changed[0], bound=first[0].bound, send_product=True)
        second = connector.push(items)
    assert shop.mutations("productSet") == before + 1
    assert shop.mutations("inventorySetQuantities") == 0
    assert variant(shop, "SHIRT-S")["price"] == Decimal("17.50")
    assert variant(shop, "SHIRT-S")["compare_at_price"] == Decimal("24.99")
    assert variant(shop, "MUG")["price"] == Decimal("5.00")
    # The same variants and inventory items, so the stock is where it was.
    assert second[0].bound == first[0].bound
    assert shop.available("SHIRT-S") == 5


def test_compare_at_price_removed_is_cleared(shop: RunningServer) -> None:
    with connect(shop) as connector:
        (first,) = connector.push([PushItem(shirt())])
        plain = shirt()
        plain = Listing(
            **{
                **plain.__dict__,
                "variants": tuple(
                    ListingVariant(v.sku, v.price, None, v.qty, v.options) for v in plain.variants
                ),
            }
        )
        connector.push([PushItem(plain, bound=first.bound)])
    assert variant(shop, "SHIRT-S")["compare_at_price"] is None


def test_a_stock_change_alone_sets_quantities_and_nothing_else(shop: RunningServer) -> None:
    listings = [shirt(), mug()]
    with connect(shop) as connector:
        first = connector.push([PushItem(x) for x in listings])
        before = shop.mutations("productSet")
        changed = [shirt(qty=(9, 3)), mug(qty=0)]
        second = connector.push(again(first, changed, send_product=False, send_stock=True))
    assert shop.mutations("productSet") == before
    assert shop.mutations("inventorySetQuantities") == 1  # one call for the whole batch
    assert (shop.available("SHIRT-S"), shop.available("SHIRT-M"), shop.available("MUG")) == (
        9,
        3,
        0,
    )
    assert [o.bound.stock if o.bound else None for o in second] == [
        {"SHIRT-S": 9, "SHIRT-M": 3},
        {"MUG": 0},
    ]


def test_stock_alone_without_known_items_sends_the_product(shop: RunningServer) -> None:
    with connect(shop) as connector:
        (outcome,) = connector.push([PushItem(mug(qty=4), send_product=False, send_stock=True)])
    assert outcome.confirmed and outcome.bound is not None
    assert shop.mutations("productSet") == 1
    assert shop.available("MUG") == 4


def test_a_new_variant_gets_its_stock_with_the_product_and_known_ones_after(
    shop: RunningServer,
) -> None:
    with connect(shop) as connector:
        (first,) = connector.push([PushItem(shirt())])
        bigger = shirt(qty=(8, 3))
        bigger = Listing(
            **{
                **bigger.__dict__,
                "variants": (
                    *bigger.variants,
                    ListingVariant("SHIRT-L", "21.00", None, 2, ("L",)),
                ),
            }
        )
        (second,) = connector.push([PushItem(bigger, bound=first.bound)])
    assert second.confirmed and second.bound is not None
    assert second.bound.stock == {"SHIRT-S": 8, "SHIRT-M": 3, "SHIRT-L": 2}
    assert (shop.available("SHIRT-S"), shop.available("SHIRT-L")) == (8, 2)
    assert shop.mutations("productSet") == 2
    assert shop.mutations("inventorySetQuantities") == 1
    assert first.bound is not None
    assert second.bound.variants["SHIRT-S"] == first.bound.variants["SHIRT-S"]
    (product,) = shop.products()
    assert product["options"] == [("Size", ["S", "M", "L"])]


def test_archiving_a_product(shop: RunningServer) -> None:
    with connect(shop) as connector:
        (first,) = connector.push([PushItem(mug())])
        connector.push([PushItem(mug(status=ARCHIVED), bound=first.bound)])
    (product,) = shop.products()
    assert product["status"] == "ARCHIVED"


def test_a_refused_product_carries_shopifys_words_and_the_rest_go_on(
    shop: RunningServer,
) -> None:
    shop.faults.refuse_sku("SHIRT-M", "Variant SHIRT-M could not be saved")
    odd = Listing("ODD", "Odd", options=("Size",), variants=(ListingVariant("ODD-1", "1.00"),))
    with connect(shop) as connector:
        outcomes = connector.push(
            [PushItem(mug("A")), PushItem(shirt()), PushItem(odd), PushItem(mug("B"))]
        )
    assert [o.confirmed for o in outcomes] == [True, False, False, True]
    refused = outcomes[1]
    assert refused.error == (
        "input.variants.1.sku (SKU SHIRT-M): Variant SHIRT-M could not be saved"
    )
    assert refused.permanent is True
    assert outcomes[2].error is not None and "ODD-1" in outcomes[2].error
    assert "options" in outcomes[2].error
    assert sorted(p["title"] for p in shop.products()) == ["Mug A", "Mug B"]


def test_a_price_shopify_refuses(shop: RunningServer) -> None:
    with connect(shop) as connector:
        (outcome,) = connector.push([PushItem(mug(price="-1.00"))])
    assert outcome.error == (
        "input.variants.0.price (SKU MUG): Variant price must be greater than or equal to zero."
    )
    assert outcome.permanent is True


@pytest.mark.parametrize("drops", [1, 2])
def test_a_connection_lost_after_the_write_never_makes_a_second_product(
    shop: RunningServer, drops: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), connect(shop) as connector:
        (first,) = connector.push([PushItem(mug("A"))])
        shop.faults.drop_after_commit = drops
        listings = [shirt(), mug("B"), mug("A", price="6.00")]
        bounds = [None, None, first.bound]
        outcomes = connector.push(
            [PushItem(x, bound=b) for x, b in zip(listings, bounds, strict=True)]
        )
    assert shop.faults.dropped == drops
    assert "sending productSet again" in caplog.text
    assert TOKEN not in caplog.text
    assert all(o.confirmed for o in outcomes)
    products = shop.products()
    assert len(products) == len(listings)
    skus = [v["sku"] for p in products for v in p["variants"]]
    assert sorted(skus) == sorted(set(skus))
    assert {o.bound.product_id for o in outcomes if o.bound} == {p["id"] for p in products}
    assert (shop.available("SHIRT-S"), variant(shop, "A")["price"]) == (5, Decimal("6.00"))


def test_stock_sent_again_after_a_lost_answer_uses_the_same_idempotency_key(
    shop: RunningServer,
) -> None:
    with connect(shop, api_version="2026-04") as connector:
        (first,) = connector.push([PushItem(mug())])
        shop.faults.drop_after_commit = 1
        (second,) = connector.push(
            [PushItem(mug(qty=2), bound=first.bound, send_product=False, send_stock=True)]
        )
    assert shop.faults.dropped == 1
    assert second.confirmed and second.bound is not None and second.bound.stock == {"MUG": 2}
    assert shop.available("MUG") == 2
    # The resend was answered from the first attempt, not applied again.
    assert shop.mutations("inventorySetQuantities") == 1


@pytest.mark.parametrize("version", ["2025-10", "2026-01", "2026-04", "unstable"])
def test_stock_is_set_in_each_api_versions_words(shop: RunningServer, version: str) -> None:
    with connect(shop, api_version=version) as connector:
        (first,) = connector.push([PushItem(shirt())])
        (second,) = connector.push(
            [PushItem(shirt(qty=(1, 0)), bound=first.bound, send_product=False, send_stock=True)]
        )
    assert second.error is None
    assert (shop.available("SHIRT-S"), shop.available("SHIRT-M")) == (1, 0)


def test_a_server_error_is_transient(shop: RunningServer) -> None:
    with connect(shop) as connector:
        connector.check()
        shop.faults.fail_next = 1
        with pytest.raises(TransientError) as caught:
            connector.push([PushItem(mug())])
        assert "503" in str(caught.value)
        (outcome,) = connector.push([PushItem(mug())])
    assert outcome.confirmed
    assert len(shop.products()) == 1


@pytest.mark.parametrize("status", [429, 502])
def test_too_many_requests_and_bad_gateways_are_transient(shop: RunningServer, status: int) -> None:
    shop.faults.fail_status = status
    shop.faults.fail_next = 1
    with connect(shop) as connector, pytest.raises(TransientError, match=f"HTTP {status}"):
        connector.check()


def test_a_wrong_token_names_the_setting_and_never_shows_it(shop: RunningServer) -> None:
    wrong = "shpat_wrong_and_secret_987654"
    connector = ShopifyConnector(
        {"store_url": shop.base_url, "api_version": "2025-10"}, {"access_token": wrong}
    )
    with connector:
        with pytest.raises(SettingsError) as caught:
            connector.push([PushItem(mug())])
        with pytest.raises(SettingsError, match="access_token"):
            connector.check()
    error = caught.value
    assert "access_token" in str(error)
    assert "\n" not in str(error)
    for text in (str(error), repr(error), error.hint or "", repr(connector), repr(connector.api)):
        assert wrong not in text
    assert shop.products() == []


def test_a_store_url_that_is_not_there() -> None:
    connector = ShopifyConnector(
        {"store_url": "http://no-such-shop.invalid"}, {"access_token": TOKEN}
    )
    with connector, pytest.raises(SettingsError) as caught:
        connector.check()
    assert "store_url" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_store_that_does_not_answer_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = ShopifyConnector({"store_url": f"http://127.0.0.1:{port}"}, {"access_token": TOKEN})
    with connector, pytest.raises(TransientError):
        connector.push([PushItem(mug())])


def test_check_and_location_settings(shop: RunningServer) -> None:
    warehouse = shop.store.add_location("Warehouse")
    with connect(shop) as connector:
        assert connector.check() == (
            f"Shopify store 'Emulated Shop' ({shop.base_url}): API 2025-10,"
            " location 'Shop location'"
        )
    with connect(shop, location="warehouse") as connector:
        assert connector.check().endswith("location 'Warehouse'")
        connector.push([PushItem(mug())])
    warehouse_id = f"gid://shopify/Location/{warehouse.id}"
    assert shop.available("MUG", warehouse_id) == 7
    assert shop.available("MUG") is None
    with connect(shop, location="Cellar") as connector, pytest.raises(SettingsError) as caught:
        connector.check()
    assert "location 'Cellar'" in str(caught.value) and "'Warehouse'" in str(caught.value)


def test_find_by_the_hubs_key(shop: RunningServer) -> None:
    with connect(shop) as connector:
        (outcome,) = connector.push([PushItem(shirt())])
        assert connector.find("SHIRT") == outcome.bound
        assert connector.find("NOT-PUSHED") is None


def test_pushes_are_paced_by_the_cost_bucket() -> None:
    clock = Clock()
    with serve(access_token=TOKEN, clock=clock, maximum=60, restore_rate=10) as shop:
        with connect(shop, sleep=clock.sleep) as connector:
            outcomes = connector.push([PushItem(mug(f"M{n}")) for n in range(12)])
            assert all(o.confirmed for o in outcomes)
            # 12 productSets of 10 points and a definition of 10 in a bucket of 60
            # filled at 10 a second: the connector waited instead of being refused.
            assert (shop.faults.throttled, shop.faults.throttle_episodes) == (0, 0)
            assert clock.slept and sum(clock.slept) >= 6
            # Someone else empties the bucket: one refusal, one wait, then on.
            shop.bucket.drain()
            connector.push([PushItem(mug(f"N{n}")) for n in range(5)])
            assert (shop.faults.throttled, shop.faults.throttle_episodes) == (1, 1)
            # A THROTTLED answer that gives no reason is waited out too, once.
            shop.faults.throttle_next = 1
            connector.push([PushItem(mug("LAST"))])
            assert (shop.faults.throttled, shop.faults.throttle_episodes) == (2, 2)
        assert len(shop.products()) == 18
        assert shop.faults.requests == 18 + 2 + 2  # the writes, shop and definition, two refused


def bulk_items(count: int) -> list[PushItem]:
    return [
        PushItem(shirt(f"B{n:03d}", qty=(n % 7, 1)) if n % 3 == 0 else mug(f"B{n:03d}", qty=n))
        for n in range(count)
    ]


def test_a_large_first_push_goes_in_bulk(shop: RunningServer) -> None:
    shop.shop.bulk_in_order = False
    items = bulk_items(300)
    clock = Clock()
    with connect(shop, bulk_threshold=100, sleep=clock.sleep) as connector:
        assert connector.bulk_threshold == 100
        outcomes = connector.push_bulk(items)
    assert all(o.confirmed for o in outcomes), [o.error for o in outcomes if o.error][:3]
    assert [o.key for o in outcomes] == [i.listing.key for i in items]
    products = {p["metafields"]["s2s.product_key"]: p for p in shop.products()}
    assert len(products) == 300
    for item, outcome in zip(items, outcomes, strict=True):
        stored = products[item.listing.key]
        assert outcome.bound is not None and outcome.bound.product_id == stored["id"]
        assert outcome.bound.variants == {v["sku"]: v["id"] for v in stored["variants"]}
        assert outcome.bound.stock == {v.sku: v.qty for v in item.listing.variants}
    assert shop.available("B003-S") == 3 and shop.available("B299") == 299
    assert shop.mutations("productSet") == 300
    assert shop.faults.requests < 10  # not one request per product
    assert clock.slept  # polls were spaced


def test_a_bulk_operation_that_fails_half_way(shop: RunningServer) -> None:
    shop.faults.fail_bulk = 1
    items = bulk_items(10)
    with connect(shop) as connector:
        outcomes = connector.push_bulk(items)
        assert [o.confirmed for o in outcomes] == [True] * 5 + [False] * 5
        assert all(o.permanent is False for o in outcomes[5:])
        assert "failed (INTERNAL_SERVER_ERROR)" in (outcomes[9].error or "")
        retried = connector.push_bulk(
            [PushItem(i.listing, bound=o.bound) for i, o in zip(items, outcomes, strict=True)]
        )
    assert all(o.confirmed for o in retried)
    assert len(shop.products()) == 10


def test_the_default_bulk_threshold_and_turning_it_off(shop: RunningServer) -> None:
    assert connect(shop).bulk_threshold == 1000
    assert connect(shop, bulk_threshold=None).bulk_threshold is None
    assert connect(shop, bulk_threshold=0).bulk_threshold is None


def test_a_listing_left_as_it_was_keeps_its_bound(shop: RunningServer) -> None:
    bound = Bound("gid://shopify/Product/1", {"MUG": "v"}, {"MUG": "i"}, {"MUG": 7})
    with connect(shop) as connector:
        (outcome,) = connector.push([PushItem(mug(), bound=bound, send_product=False)])
    assert outcome == Outcome("MUG", bound=bound)


def test_which_refusals_are_permanent() -> None:
    from connectors.shopify.inputs import permanent

    for code in ("INVALID_VARIANT", "TAKEN", "DUPLICATED_INPUT", "PRODUCT_DOES_NOT_EXIST", None):
        assert permanent([{"code": code, "message": "no"}]) is True, code
    for code in ("GENERIC_ERROR", "JOB_ERROR"):
        assert permanent([{"code": code, "message": "try again"}]) is False, code
    assert permanent([{"code": "GENERIC_ERROR"}, {"code": "INVALID"}]) is True
