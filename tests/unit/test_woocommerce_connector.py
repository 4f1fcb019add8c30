"""The WooCommerce connector against the emulated store, over real HTTP.

What a merchant would check in their WooCommerce admin after a push: the
products and variations, regular and sale prices, stock and statuses the
hub sent, each SKU once however the connection behaves (their own products
adopted, not copied), and WooCommerce's own words when it refuses one.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from connectors.base import SettingsError, TransientError
from connectors.channel import ARCHIVED, Bound, Listing, ListingVariant, Outcome, PushItem
from connectors.woocommerce import WooCommerceConnector
from emulators.woocommerce import RunningServer, serve

KEY = "ck_hub_0123456789abcdef0123456789abcdef"
SECRET = "cs_hub_fedcba9876543210fedcba9876543210"


@pytest.fixture
def store() -> Iterator[RunningServer]:
    with serve(consumer_key=KEY, consumer_secret=SECRET) as running:
        yield running


def connect(store: RunningServer, **settings: Any) -> WooCommerceConnector:
    sleep = settings.pop("sleep", lambda _: None)
    return WooCommerceConnector(
        {"store_url": store.base_url, "allow_http": True, **settings},
        {"consumer_key": KEY, "consumer_secret": SECRET},
        sleep=sleep,
    )


def shirt(key: str = "erp:SHIRT", price: str = "19.99", qty: tuple[int, int] = (5, 3)) -> Listing:
    code = key.split(":")[1]
    return Listing(
        key=key,
        title=f"Linen shirt {code}",
        body_html="<p>Cool linen</p>",
        tags=("summer",),
        options=("Size",),
        variants=(
            ListingVariant(f"{code}-S", price, "24.99", qty[0], ("S",)),
            ListingVariant(f"{code}-M", price, None, qty[1], ("M",)),
        ),
    )


def mug(code: str = "MUG", price: str = "5.00", qty: int | None = 7, **kw: Any) -> Listing:
    return Listing(
        key=f"erp:{code}",
        title=f"Mug {code}",
        variants=(ListingVariant(code, price, None, qty),),
        **kw,
    )


def again(outcomes: list[Outcome], listings: list[Listing], **flags: bool) -> list[PushItem]:
    """The next push of the same listings, with what the last one confirmed."""
    return [
        PushItem(listing, bound=outcome.bound, **flags)
        for listing, outcome in zip(listings, outcomes, strict=True)
    ]


def held(store: RunningServer, sku: str) -> dict[str, Any]:
    """The product holding ``sku``, or the variation itself with its product."""
    product = store.product_by_sku(sku)
    assert product is not None, sku
    if product["sku"] == sku:
        return product
    found: dict[str, Any] = next(v for v in product["variations"] if v["sku"] == sku)
    return found


def writes(store: RunningServer) -> dict[str, int]:
    return store.writes()


def test_a_catalogue_arrives_as_listed(store: RunningServer) -> None:
    listings = [shirt(), mug(), mug("SPOON", qty=None)]
    with connect(store) as connector:
        outcomes = connector.push([PushItem(x) for x in listings])
    assert [o.error for o in outcomes] == [None, None, None]
    products = {p["name"]: p for p in store.products()}
    assert sorted(products) == ["Linen shirt SHIRT", "Mug MUG", "Mug SPOON"]
    linen = products["Linen shirt SHIRT"]
    assert (linen["type"], linen["sku"], linen["status"]) == ("variable", "SHIRT", "publish")
    assert linen["description"] == "<p>Cool linen</p>"
    assert [(a["name"], a["options"], a["variation"]) for a in linen["attributes"]] == [
        ("Size", ["S", "M"], True)
    ]
    assert [
        (
            v["sku"],
            v["regular_price"],
            v["sale_price"],
            v["manage_stock"],
            v["stock_quantity"],
            [(c["name"], c["option"]) for c in v["attributes"]],
        )
        for v in linen["variations"]
    ] == [
        ("SHIRT-S", "24.99", "19.99", True, 5, [("Size", "S")]),
        ("SHIRT-M", "19.99", "", True, 3, [("Size", "M")]),
    ]
    cup = products["Mug MUG"]
    assert (cup["type"], cup["sku"], cup["regular_price"], cup["sale_price"]) == (
        "simple",
        "MUG",
        "5.00",
        "",
    )
    assert (cup["manage_stock"], cup["stock_quantity"]) == (True, 7)
    assert (products["Mug SPOON"]["manage_stock"], products["Mug SPOON"]["stock_quantity"]) == (
        False,
        None,
    )
    keys = {p["name"]: {m["key"]: m["value"] for m in p["meta_data"]} for p in products.values()}
    assert keys["Linen shirt SHIRT"] == {"_s2s_product_key": "erp:SHIRT"}
    assert keys["Mug MUG"] == {"_s2s_product_key": "erp:MUG"}
    # What the hub is told is what the store holds.
    assert outcomes[0].bound == Bound(
        str(linen["id"]),
        {v["sku"]: str(v["id"]) for v in linen["variations"]},
        {v["sku"]: str(v["id"]) for v in linen["variations"]},
        {"SHIRT-S": 5, "SHIRT-M": 3},
    )
    assert outcomes[1].bound == Bound(
        str(cup["id"]), {"MUG": str(cup["id"])}, {"MUG": str(cup["id"])}, {"MUG": 7}
    )
    assert outcomes[2].bound is not None and outcomes[2].bound.stock == {}
    # One products batch and one variations batch.
    assert store.faults.batches == 2
    assert writes(store) == {"product.created": 3, "variation.created": 2}


def test_nothing_changed_sends_nothing(store: RunningServer) -> None:
    listings = [shirt(), mug()]
    with connect(store) as connector:
        first = connector.push([PushItem(x) for x in listings])
        before = store.faults.requests
        second = connector.push(again(first, listings, send_product=False))
    assert store.faults.requests == before
    assert [o.bound for o in second] == [o.bound for o in first]
    assert all(o.confirmed for o in second)


def test_a_price_change_is_one_product_write(store: RunningServer) -> None:
    listings = [shirt(), mug()]
    with connect(store) as connector:
        first = connector.push([PushItem(x) for x in listings])
        before, batches = writes(store), store.faults.batches
        changed = [shirt(), mug(price="6.50")]
        items = again(first, changed, send_product=False)
        items[1] = PushItem(changed[1], bound=first[1].bound, send_product=True)
        second = connector.push(items)
    assert writes(store) == {**before, "product.updated": 1}
    assert store.faults.batches == batches + 1
    assert (held(store, "MUG")["regular_price"], held(store, "MUG")["stock_quantity"]) == (
        "6.50",
        7,
    )
    assert second[1].bound == first[1].bound


def test_a_variable_products_price_change_updates_its_variations_by_id(
    store: RunningServer,
) -> None:
    with connect(store) as connector:
        (first,) = connector.push([PushItem(shirt())])
        (second,) = connector.push([PushItem(shirt(price="17.50"), bound=first.bound)])
    assert second.bound == first.bound
    assert writes(store) == {"product.created": 1, "variation.created": 2} | {
        "product.updated": 1,
        "variation.updated": 2,
    }
    assert (held(store, "SHIRT-S")["sale_price"], held(store, "SHIRT-M")["regular_price"]) == (
        "17.50",
        "17.50",
    )


def test_a_stock_change_alone_sets_quantities_and_nothing_else(store: RunningServer) -> None:
    listings = [shirt(), mug()]
    with connect(store) as connector:
        first = connector.push([PushItem(x) for x in listings])
        before = writes(store)
        changed = [shirt(qty=(9, 3)), mug(qty=0)]
        second = connector.push(again(first, changed, send_product=False, send_stock=True))
    # Only the changed quantities: one variation and the simple product.
    assert writes(store) == {**before, "variation.updated": 1, "product.updated": 1}
    assert [held(store, s)["stock_quantity"] for s in ("SHIRT-S", "SHIRT-M", "MUG")] == [9, 3, 0]
    assert held(store, "MUG")["stock_status"] == "outofstock"
    assert [o.bound.stock if o.bound else None for o in second] == [
        {"SHIRT-S": 9, "SHIRT-M": 3},
        {"MUG": 0},
    ]


def test_stock_alone_without_known_ids_sends_the_product(store: RunningServer) -> None:
    with connect(store) as connector:
        (outcome,) = connector.push([PushItem(mug(qty=4), send_product=False, send_stock=True)])
    assert outcome.confirmed and outcome.bound is not None
    assert held(store, "MUG")["stock_quantity"] == 4


def test_variants_added_and_removed(store: RunningServer) -> None:
    with connect(store) as connector:
        (first,) = connector.push([PushItem(shirt())])
        base = shirt()
        changed = replace(
            base,
            variants=(
                base.variants[0],
                ListingVariant("SHIRT-L", "21.00", None, 2, ("L",)),
            ),
        )
        (second,) = connector.push([PushItem(changed, bound=first.bound)])
    assert second.confirmed and second.bound is not None and first.bound is not None
    assert second.bound.variants["SHIRT-S"] == first.bound.variants["SHIRT-S"]
    assert set(second.bound.variants) == {"SHIRT-S", "SHIRT-L"}
    assert second.bound.stock == {"SHIRT-S": 5, "SHIRT-L": 2}
    (product,) = store.products()
    assert [v["sku"] for v in product["variations"]] == ["SHIRT-S", "SHIRT-L"]
    assert product["attributes"][0]["options"] == ["S", "L"]
    assert store.sku_counts() == {"SHIRT": 1, "SHIRT-S": 1, "SHIRT-L": 1}


def test_archived_becomes_a_draft_and_comes_back(store: RunningServer) -> None:
    with connect(store) as connector:
        first = connector.push([PushItem(mug()), PushItem(shirt())])
        archived = connector.push(
            [
                PushItem(mug(status=ARCHIVED), bound=first[0].bound),
                PushItem(replace(shirt(), status=ARCHIVED), bound=first[1].bound),
            ]
        )
        assert [p["status"] for p in store.products()] == ["draft", "draft"]
        assert [o.bound for o in archived] == [o.bound for o in first]
        back = connector.push([PushItem(mug(), bound=archived[0].bound)])
    assert back[0].confirmed
    assert held(store, "MUG")["status"] == "publish"


def test_archived_goes_to_the_trash_when_set_so(store: RunningServer) -> None:
    with connect(store, deleted="trash") as connector:
        first = connector.push([PushItem(mug()), PushItem(shirt())])
        trashed = connector.push(
            [
                PushItem(mug(status=ARCHIVED), bound=first[0].bound),
                PushItem(replace(shirt(), status=ARCHIVED), bound=first[1].bound),
            ]
        )
        assert all(o.confirmed for o in trashed)
        assert [p["status"] for p in store.products()] == ["trash", "trash"]
        assert store.sku_counts() == {}
        # Trashing again (a retried push) is no error.
        again_ = connector.push([PushItem(mug(status=ARCHIVED), bound=first[0].bound)])
        assert again_[0].confirmed
        back = connector.push([PushItem(shirt(), bound=first[1].bound)])
    assert back[0].confirmed and back[0].bound == first[1].bound
    shirt_row = next(p for p in store.products() if p["sku"] == "SHIRT")
    assert shirt_row["status"] == "publish"
    assert [v["status"] for v in shirt_row["variations"]] == ["publish", "publish"]
    assert writes(store)["product.trashed"] == 2


def test_a_store_without_trash_is_told_plainly(store: RunningServer) -> None:
    store.shop.trash_supported = False
    with connect(store, deleted="trash") as connector:
        (first,) = connector.push([PushItem(mug())])
        (outcome,) = connector.push([PushItem(mug(status=ARCHIVED), bound=first.bound)])
    assert outcome.error is not None
    assert outcome.error.startswith("woocommerce_rest_trash_not_supported: ")
    assert "set deleted to draft" in outcome.error
    assert held(store, "MUG")["status"] == "publish"


def seed(store: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    """A product the merchant made in the store before the hub came."""
    with store.store.lock:
        return store.shop.create_product(body, store.base_url)


def seed_variation(store: RunningServer, product_id: int, body: dict[str, Any]) -> dict[str, Any]:
    with store.store.lock:
        return store.shop.create_variation(product_id, body, store.base_url)


SIZES = [{"name": "Size", "variation": True, "visible": True, "options": ["S", "M"]}]


def test_a_store_already_holding_the_skus_is_adopted(store: RunningServer) -> None:
    own_mug = seed(store, {"name": "Old mug", "sku": "MUG", "regular_price": "4.00"})
    own_shirt = seed(
        store, {"name": "Shirt", "type": "variable", "sku": "SHIRT", "attributes": SIZES}
    )
    small = seed_variation(store, own_shirt["id"], {"sku": "SHIRT-S", "regular_price": "1.00"})
    # A variable product made without a parent SKU, found through its variations.
    bare = seed(store, {"name": "Polo", "type": "variable", "attributes": SIZES})
    polo_m = seed_variation(store, bare["id"], {"sku": "POLO-M", "regular_price": "1.00"})
    before = writes(store)
    with connect(store) as connector:
        outcomes = connector.push([PushItem(mug()), PushItem(shirt()), PushItem(shirt("erp:POLO"))])
    assert all(o.confirmed for o in outcomes), [o.error for o in outcomes]
    assert writes(store)["product.created"] == before["product.created"]
    assert store.sku_counts() == dict.fromkeys(
        ["MUG", "SHIRT", "SHIRT-S", "SHIRT-M", "POLO", "POLO-S", "POLO-M"], 1
    )
    ids = [o.bound.product_id if o.bound else None for o in outcomes]
    assert ids == [str(own_mug["id"]), str(own_shirt["id"]), str(bare["id"])]
    assert outcomes[1].bound is not None and outcomes[2].bound is not None
    assert outcomes[1].bound.variants["SHIRT-S"] == str(small["id"])
    assert outcomes[2].bound.variants["POLO-M"] == str(polo_m["id"])
    assert held(store, "MUG")["name"] == "Mug MUG"
    assert held(store, "SHIRT-S")["regular_price"] == "24.99"
    assert {m["key"]: m["value"] for m in held(store, "MUG")["meta_data"]} == {
        "_s2s_product_key": "erp:MUG"
    }


def test_a_sku_held_by_another_hub_product_is_refused_not_taken(store: RunningServer) -> None:
    with connect(store) as connector:
        connector.push([PushItem(mug())])
        clash = Listing("other:MUG", "Clash", variants=(ListingVariant("MUG", "1.00"),))
        (outcome,) = connector.push([PushItem(clash)])
    assert outcome.error is not None and outcome.permanent
    assert "SKU MUG" in outcome.error and "erp:MUG" in outcome.error
    assert held(store, "MUG")["name"] == "Mug MUG"


def test_a_refused_item_carries_woocommerces_words_and_the_rest_go_on(
    store: RunningServer,
) -> None:
    store.faults.refuse_sku("B", "product_invalid_sku", "Invalid or duplicated SKU.")
    store.faults.refuse_sku("C", "woocommerce_product_save_failed", "Could not save.", 500)
    store.faults.refuse_sku("SHIRT-M", "woocommerce_rest_invalid_sku", "Bad SKU.")
    odd = Listing("erp:ODD", "Odd", options=("Size",), variants=(ListingVariant("ODD-1", "1"),))
    with connect(store) as connector:
        outcomes = connector.push(
            [PushItem(x) for x in (mug("A"), mug("B"), mug("C"), shirt(), odd, mug("D"))]
        )
    assert [o.confirmed for o in outcomes] == [True, False, False, False, False, True]
    assert outcomes[1].error == "product_invalid_sku: Invalid or duplicated SKU. (sku B)"
    assert outcomes[1].permanent is True
    assert outcomes[2].error == "woocommerce_product_save_failed: Could not save."
    assert outcomes[2].permanent is False
    assert outcomes[3].error == "variation SKU SHIRT-M: woocommerce_rest_invalid_sku: Bad SKU."
    assert outcomes[4].error is not None and "ODD-1" in outcomes[4].error
    assert sorted(store.sku_counts()) == ["A", "D", "SHIRT", "SHIRT-S"]


@pytest.mark.parametrize("drops", [1, 2])
def test_a_connection_lost_after_the_batch_never_makes_a_second_product(
    store: RunningServer, drops: int
) -> None:
    with connect(store) as connector:
        (first,) = connector.push([PushItem(mug("A"))])
        store.faults.drop_after_commit = drops
        listings = [shirt(), mug("B"), mug("A", price="6.00")]
        bounds = [None, None, first.bound]
        outcomes = connector.push(
            [PushItem(x, bound=b) for x, b in zip(listings, bounds, strict=True)]
        )
    assert store.faults.dropped == drops
    assert all(o.confirmed for o in outcomes), [o.error for o in outcomes]
    assert store.sku_counts() == dict.fromkeys(["A", "B", "SHIRT", "SHIRT-S", "SHIRT-M"], 1)
    assert len(store.products()) == 3
    assert {o.bound.product_id for o in outcomes if o.bound} == {
        str(p["id"]) for p in store.products()
    }
    assert held(store, "A")["regular_price"] == "6.00"


def test_a_connection_lost_after_the_variations_never_makes_them_twice(
    store: RunningServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_variations = store.shop.batch_variations

    def dropped_once(*args: Any) -> Any:
        # The emulator drops the connection after the write it arms for: this one.
        if not store.faults.dropped:
            store.faults.drop_after_commit = 1
        return batch_variations(*args)

    monkeypatch.setattr(store.shop, "batch_variations", dropped_once)
    with caplog.at_level(logging.INFO), connect(store) as connector:
        (outcome,) = connector.push([PushItem(shirt())])
    assert store.faults.dropped == 1
    assert "reading the variations and sending again" in caplog.text
    assert KEY not in caplog.text and SECRET not in caplog.text
    assert outcome.confirmed and outcome.bound is not None
    assert set(outcome.bound.variants) == {"SHIRT-S", "SHIRT-M"}
    assert outcome.bound.stock == {"SHIRT-S": 5, "SHIRT-M": 3}
    assert store.sku_counts() == dict.fromkeys(["SHIRT", "SHIRT-S", "SHIRT-M"], 1)
    assert writes(store)["variation.created"] == 2


def test_a_variable_product_whose_code_is_one_of_its_skus_is_found_by_its_key(
    store: RunningServer,
) -> None:
    # The product code is also a variant's SKU, so the parent carries none;
    # after a lost answer the new product is found by the key in its meta.
    tee = replace(shirt(), key="erp:SHIRT-S", title="Tee")
    with connect(store) as connector:
        store.faults.drop_after_commit = 1
        (outcome,) = connector.push([PushItem(tee)])
        assert connector.find_listing(tee) == outcome.bound
    assert outcome.confirmed, outcome.error
    (product,) = store.products()
    assert product["sku"] == ""
    assert store.sku_counts() == {"SHIRT-S": 1, "SHIRT-M": 1}


def test_a_product_made_by_someone_else_meanwhile_is_adopted_not_duplicated(
    store: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_products = store.shop.batch_products
    made: list[dict[str, Any]] = []

    def another_worker_first(*args: Any) -> Any:
        # Between the hub's lookup and its create, another worker made the mug.
        if not made:
            meta = [{"key": "_s2s_product_key", "value": "erp:MUG"}]
            made.append(seed(store, {"name": "Mug", "sku": "MUG", "meta_data": meta}))
        return batch_products(*args)

    monkeypatch.setattr(store.shop, "batch_products", another_worker_first)
    with connect(store) as connector:
        (outcome,) = connector.push([PushItem(mug())])
    assert outcome.confirmed, outcome.error
    assert outcome.bound is not None and outcome.bound.product_id == str(made[0]["id"])
    assert store.sku_counts() == {"MUG": 1}
    assert (held(store, "MUG")["name"], held(store, "MUG")["regular_price"]) == ("Mug MUG", "5.00")


def test_a_short_retry_after_is_waited_out_and_a_long_one_handed_back(
    store: RunningServer,
) -> None:
    slept: list[float] = []
    with connect(store, sleep=slept.append) as connector:
        store.faults.rate_limit_next, store.faults.retry_after = 1, 2
        (outcome,) = connector.push([PushItem(mug())])
        assert outcome.confirmed and slept == [2.0]
        store.faults.rate_limit_next, store.faults.retry_after = 1, 30
        with pytest.raises(TransientError) as caught:
            connector.push([PushItem(mug("B"))])
    assert caught.value.retry_after == 30
    assert "HTTP 429" in str(caught.value)
    assert slept == [2.0]


def test_a_server_error_is_transient(store: RunningServer) -> None:
    with connect(store) as connector:
        store.faults.fail_next = 1
        with pytest.raises(TransientError, match="HTTP 503"):
            connector.push([PushItem(mug())])
        (outcome,) = connector.push([PushItem(mug())])
    assert outcome.confirmed
    assert store.sku_counts() == {"MUG": 1}


def test_plain_http_needs_allow_http() -> None:
    with pytest.raises(SettingsError) as caught:
        WooCommerceConnector(
            {"store_url": "http://shop.example.com"},
            {"consumer_key": KEY, "consumer_secret": SECRET},
        )
    message = str(caught.value)
    assert "store_url" in message and "allow_http" in message and "\n" not in message


def test_settings_and_secrets_that_are_missing_or_wrong_are_named() -> None:
    site = {"store_url": "https://shop.example.com"}
    with pytest.raises(SettingsError, match="consumer_key and consumer_secret are not set"):
        WooCommerceConnector(site, {})
    with pytest.raises(SettingsError, match="consumer_secret is not set"):
        WooCommerceConnector(site, {"consumer_key": KEY})
    with pytest.raises(SettingsError, match="store_url is not set"):
        WooCommerceConnector({}, {"consumer_key": KEY, "consumer_secret": SECRET})
    with pytest.raises(SettingsError, match="deleted 'bin' is not draft or trash"):
        WooCommerceConnector(
            {**site, "deleted": "bin"}, {"consumer_key": KEY, "consumer_secret": SECRET}
        )


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        (KEY, "cs_wrong_and_very_secret_000000000000000", "woocommerce_rest_authentication_error"),
        ("ck_unknown_and_secret_11111111111111111", SECRET, "woocommerce_rest_cannot_view"),
    ],
)
def test_wrong_keys_name_the_settings_and_never_show_them(
    store: RunningServer, key: str, secret: str, code: str
) -> None:
    connector = WooCommerceConnector(
        {"store_url": store.base_url, "allow_http": True},
        {"consumer_key": key, "consumer_secret": secret},
    )
    with connector:
        with pytest.raises(SettingsError) as caught:
            connector.check()
        with pytest.raises(SettingsError, match="consumer_key/consumer_secret"):
            connector.push([PushItem(mug())])
    error = caught.value
    assert "consumer_key/consumer_secret" in str(error) and code in str(error)
    assert "\n" not in str(error)
    for text in (str(error), repr(error), error.hint or "", repr(connector), repr(connector.api)):
        assert key not in text and secret not in text
    assert store.products() == []


def test_a_store_url_that_is_not_there() -> None:
    connector = WooCommerceConnector(
        {"store_url": "https://no-such-shop.invalid"},
        {"consumer_key": KEY, "consumer_secret": SECRET},
    )
    with connector, pytest.raises(SettingsError) as caught:
        connector.check()
    assert "store_url" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_store_that_does_not_answer_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = WooCommerceConnector(
        {"store_url": f"http://127.0.0.1:{port}", "allow_http": True},
        {"consumer_key": KEY, "consumer_secret": SECRET},
    )
    with connector, pytest.raises(TransientError):
        connector.push([PushItem(mug())])


def test_a_site_without_the_api_names_store_url(store: RunningServer) -> None:
    connector = WooCommerceConnector(
        {"store_url": f"{store.base_url}/blog", "allow_http": True},
        {"consumer_key": KEY, "consumer_secret": SECRET},
    )
    with connector, pytest.raises(SettingsError, match="store_url"):
        connector.check()


def test_check_says_what_it_found(store: RunningServer) -> None:
    with connect(store) as connector:
        assert connector.check() == f"WooCommerce store {store.base_url}: REST v3, 0 products"
        connector.push([PushItem(mug()), PushItem(shirt())])
        assert connector.check().endswith("REST v3, 2 products")


def test_find_by_the_hubs_key_and_by_the_listing(store: RunningServer) -> None:
    with connect(store) as connector:
        outcomes = connector.push([PushItem(shirt()), PushItem(mug())])
        assert connector.find("erp:SHIRT") == outcomes[0].bound
        assert connector.find("erp:MUG") == outcomes[1].bound
        assert connector.find("other:MUG") is None
        assert connector.find("erp:NOT-PUSHED") is None
        assert connector.find_listing(shirt()) == outcomes[0].bound
        assert connector.find_listing(mug("NEW")) is None


def test_more_variations_than_a_batch_takes(store: RunningServer) -> None:
    sizes = tuple(
        ListingVariant(f"BIG-{n:03d}", "1.00", None, n, (f"{n:03d}",)) for n in range(105)
    )
    big = Listing("erp:BIG", "Big", options=("Size",), variants=sizes)
    with connect(store) as connector:
        (outcome,) = connector.push([PushItem(big)])
        batches = store.faults.batches
        found = connector.find("erp:BIG")  # two pages of variations
    assert outcome.confirmed and outcome.bound is not None
    assert batches == 3  # the product, then 100 + 5 variations
    assert len(outcome.bound.variants) == 105
    assert found == outcome.bound


def test_a_listing_left_as_it_was_keeps_its_bound(store: RunningServer) -> None:
    bound = Bound("12", {"MUG": "12"}, {"MUG": "12"}, {"MUG": 7})
    with connect(store) as connector:
        (outcome,) = connector.push([PushItem(mug(), bound=bound, send_product=False)])
    assert outcome == Outcome("erp:MUG", bound=bound)
    assert store.faults.requests == 0


def test_a_product_deleted_in_the_store_is_made_again(store: RunningServer) -> None:
    with connect(store) as connector:
        (first,) = connector.push([PushItem(mug())])
        assert first.bound is not None and first.bound.product_id is not None
        with store.store.lock:
            store.shop.delete_product(int(first.bound.product_id), True, store.base_url)
        (second,) = connector.push([PushItem(mug(price="9.00"), bound=first.bound)])
    assert second.confirmed and second.bound is not None
    assert second.bound.product_id != first.bound.product_id
    assert held(store, "MUG")["regular_price"] == "9.00"
    assert store.sku_counts() == {"MUG": 1}
