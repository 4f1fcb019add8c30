"""The WooCommerce emulator driven over HTTP with plain httpx, as a push connector would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from emulators.woocommerce import RunningServer, serve


@pytest.fixture
def shop() -> Iterator[RunningServer]:
    with serve(consumer_key="ck_test", consumer_secret="cs_test") as running:
        yield running


def call(shop: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{shop.api_url}/{path}", auth=shop.auth, timeout=10, **kwargs)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["data"]["status"] == status
    return body


def holder(shop: RunningServer, sku: str) -> int:
    """The id of the product holding ``sku`` (itself or through a variation)."""
    product = shop.product_by_sku(sku)
    assert product is not None, sku
    return int(product["id"])


def shirt() -> dict[str, Any]:
    return {
        "name": "Linen shirt",
        "type": "variable",
        "sku": "LS",
        "attributes": [
            {
                "name": "Size",
                "position": 0,
                "visible": True,
                "variation": True,
                "options": ["S", "M"],
            }
        ],
        "default_attributes": [{"name": "Size", "option": "S"}],
    }


# ---------------------------------------------------------------- reaching the store, auth


def test_the_index_answers_without_a_key(shop: RunningServer) -> None:
    index = ok(httpx.get(shop.api_url))
    assert index["namespace"] == "wc/v3"
    assert "/wc/v3/products" in index["routes"]
    assert "wc/v3" in ok(httpx.get(f"{shop.base_url}/wp-json/"))["namespaces"]
    refused(httpx.get(f"{shop.api_url}/nothing-here", auth=shop.auth), 404, "rest_no_route")


def test_keys_over_https_by_basic_auth_or_query_string(shop: RunningServer) -> None:
    assert ok(call(shop, "GET", "products")) == []
    keys = {"consumer_key": shop.consumer_key, "consumer_secret": shop.consumer_secret}
    assert ok(httpx.get(f"{shop.api_url}/products", params=keys)) == []
    status = ok(call(shop, "GET", "system_status"))
    assert status["environment"]["home_url"] == shop.base_url


def test_a_wrong_secret_and_an_unknown_key_are_refused_differently(shop: RunningServer) -> None:
    wrong = httpx.get(f"{shop.api_url}/products", auth=(shop.consumer_key, "cs_wrong"))
    body = refused(wrong, 401, "woocommerce_rest_authentication_error")
    assert body["message"] == "Consumer secret is invalid."
    # An unknown key sets no error: the request runs anonymously and fails permission.
    unknown = httpx.get(f"{shop.api_url}/products", auth=("ck_other", "cs_other"))
    refused(unknown, 401, "woocommerce_rest_cannot_view")
    anonymous = httpx.post(f"{shop.api_url}/products", json={"name": "X"})
    refused(anonymous, 401, "woocommerce_rest_cannot_create")
    batch = httpx.post(f"{shop.api_url}/products/batch", json={"create": [{"name": "X"}]})
    refused(batch, 401, "woocommerce_rest_cannot_batch")
    assert shop.products() == []


def test_a_read_only_key_cannot_write() -> None:
    with serve(consumer_key="ck_r", consumer_secret="cs_r", permissions="read") as shop:
        assert ok(call(shop, "GET", "products")) == []
        body = refused(
            call(shop, "POST", "products", json={"name": "X"}),
            401,
            "woocommerce_rest_authentication_error",
        )
        assert "write permissions" in body["message"]


def _oauth_params(method: str, url: str, key: str, secret: str, nonce: str) -> dict[str, str]:
    """One-legged OAuth 1.0a as the WooCommerce docs describe it (no token, key ``secret&``)."""
    params = {
        "oauth_consumer_key": key,
        "oauth_timestamp": str(int(time.time())),
        "oauth_nonce": nonce,
        "oauth_signature_method": "HMAC-SHA256",
    }

    def enc(text: str) -> str:
        return quote(text, safe="~-._")

    normalized = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()))
    base_string = "&".join([method, enc(url), enc(normalized)])
    digest = hmac.new(f"{secret}&".encode(), base_string.encode(), hashlib.sha256).digest()
    return {**params, "oauth_signature": base64.b64encode(digest).decode()}


def test_over_plain_http_basic_auth_is_not_honoured_but_oauth_is() -> None:
    with serve(consumer_key="ck_p", consumer_secret="cs_p", assume_https=False) as shop:
        url = f"{shop.api_url}/products"
        refused(httpx.get(url, auth=shop.auth), 401, "woocommerce_rest_cannot_view")
        behind_tls = httpx.get(url, auth=shop.auth, headers={"X-Forwarded-Proto": "https"})
        assert ok(behind_tls) == []
        signed = _oauth_params("GET", url, "ck_p", "cs_p", uuid.uuid4().hex)
        assert ok(httpx.get(url, params=signed)) == []
        replayed = refused(
            httpx.get(url, params=signed), 401, "woocommerce_rest_authentication_error"
        )
        assert "nonce" in replayed["message"]
        forged = _oauth_params("GET", url, "ck_p", "cs_wrong", uuid.uuid4().hex)
        body = refused(httpx.get(url, params=forged), 401, "woocommerce_rest_authentication_error")
        assert "signature" in body["message"]


# ---------------------------------------------------------------- products and variations


def test_create_a_simple_product(shop: RunningServer) -> None:
    created = call(
        shop,
        "POST",
        "products",
        json={
            "name": "Mug",
            "sku": "MUG-1",
            "regular_price": "12.50",
            "sale_price": "10.00",
            "stock_quantity": 7,
            "meta_data": [{"key": "_erp_id", "value": "A1"}],
        },
    )
    product = ok(created, 201)
    assert created.headers["Location"].endswith(f"/wp-json/wc/v3/products/{product['id']}")
    assert (product["type"], product["status"], product["slug"]) == ("simple", "publish", "mug")
    assert (product["price"], product["on_sale"]) == ("10.00", True)
    # stock_quantity takes effect only with manage_stock.
    assert (product["manage_stock"], product["stock_quantity"]) == (False, None)
    managed = ok(
        call(
            shop,
            "PUT",
            f"products/{product['id']}",
            json={"manage_stock": True, "stock_quantity": 0},
        )
    )
    assert (managed["stock_quantity"], managed["stock_status"]) == (0, "outofstock")
    cleared = ok(call(shop, "PATCH", f"products/{product['id']}", json={"sale_price": ""}))
    assert (cleared["price"], cleared["on_sale"]) == ("12.50", False)
    meta = ok(
        call(
            shop,
            "POST",
            f"products/{product['id']}",
            json={"meta_data": [{"key": "_erp_id", "value": "A2"}]},
        )
    )["meta_data"]
    assert [(m["key"], m["value"]) for m in meta] == [("_erp_id", "A2")]
    assert holder(shop, "MUG-1") == product["id"]
    assert shop.writes() == {"product.created": 1, "product.updated": 3}


def test_create_a_variable_product_with_variations(shop: RunningServer) -> None:
    product = ok(call(shop, "POST", "products", json=shirt()), 201)
    assert product["price"] == "" and product["stock_status"] == "outofstock"
    small = ok(
        call(
            shop,
            "POST",
            f"products/{product['id']}/variations",
            json={
                "sku": "LS-S",
                "regular_price": "20.00",
                "manage_stock": True,
                "stock_quantity": 3,
                "attributes": [
                    {"name": "Size", "option": "S"},
                    {"name": "Colour", "option": "Red"},
                ],
            },
        ),
        201,
    )
    assert small["attributes"] == [{"id": 0, "name": "Size", "option": "S"}]
    assert small["stock_status"] == "instock"
    batch = ok(
        call(
            shop,
            "POST",
            f"products/{product['id']}/variations/batch",
            json={"create": [{"sku": "LS-M", "regular_price": "22.00", "sale_price": "18.00"}]},
        )
    )
    medium = batch["create"][0]
    assert medium["price"] == "18.00"
    parent = ok(call(shop, "GET", f"products/{product['id']}"))
    assert parent["variations"] == [small["id"], medium["id"]]
    assert (parent["price"], parent["stock_status"]) == ("18.00", "instock")
    assert parent["default_attributes"] == [{"id": 0, "name": "Size", "option": "S"}]
    listed = ok(call(shop, "GET", f"products/{product['id']}/variations", params={"sku": "LS-M"}))
    assert [v["id"] for v in listed] == [medium["id"]]
    held = shop.products()[0]
    assert [(v["sku"], v["parent_id"]) for v in held["variations"]] == [
        ("LS-S", product["id"]),
        ("LS-M", product["id"]),
    ]
    refused(
        call(shop, "GET", f"products/{product['id']}/variations/999"),
        404,
        "woocommerce_rest_product_variation_invalid_id",
    )


def test_unknown_ids(shop: RunningServer) -> None:
    refused(call(shop, "GET", "products/999"), 404, "woocommerce_rest_product_invalid_id")
    refused(
        call(shop, "PUT", "products/999", json={"name": "X"}),
        400,
        "woocommerce_rest_product_invalid_id",
    )
    refused(call(shop, "DELETE", "products/999"), 404, "woocommerce_rest_product_invalid_id")


# ---------------------------------------------------------------- SKUs


def test_a_duplicate_sku_names_its_holder_across_products_and_variations(
    shop: RunningServer,
) -> None:
    product = ok(call(shop, "POST", "products", json=shirt()), 201)
    variation = ok(
        call(shop, "POST", f"products/{product['id']}/variations", json={"sku": "LS-S"}), 201
    )
    body = refused(
        call(shop, "POST", "products", json={"name": "Other", "sku": "LS-S"}),
        400,
        "product_invalid_sku",
    )
    assert body["message"] == "Invalid or duplicated SKU."
    assert body["data"]["resource_id"] == variation["id"]
    assert body["data"]["unique_sku"] == "LS-S-1"
    # Saving a product with its own SKU is no conflict.
    ok(call(shop, "PUT", f"products/{product['id']}", json={"sku": "LS", "name": "Renamed"}))
    assert shop.sku_counts() == {"LS": 1, "LS-S": 1}


def test_a_batch_item_with_a_duplicate_sku_fails_alone(shop: RunningServer) -> None:
    ok(call(shop, "POST", "products", json={"name": "Kept", "sku": "K-1"}), 201)
    answer = ok(
        call(
            shop,
            "POST",
            "products/batch",
            json={
                "create": [
                    {"name": "One", "sku": "B-1", "regular_price": "1.00"},
                    {"name": "Clash", "sku": "K-1"},
                    {"name": "Two", "sku": "B-2"},
                ]
            },
        )
    )
    assert set(answer) == {"create"}
    first, clash, second = answer["create"]
    assert (first["sku"], second["sku"]) == ("B-1", "B-2")
    assert clash["id"] == 0
    assert clash["error"]["code"] == "product_invalid_sku"
    assert clash["error"]["data"]["status"] == 400
    assert clash["error"]["data"]["resource_id"] == holder(shop, "K-1")
    assert shop.sku_counts() == {"K-1": 1, "B-1": 1, "B-2": 1}
    update = ok(
        call(
            shop,
            "PUT",
            "products/batch",
            json={"update": [{"id": first["id"], "sku": "B-2"}, {"id": 999, "name": "Gone"}]},
        )
    )["update"]
    assert update[0]["error"]["code"] == "product_invalid_sku"
    assert update[1] == {
        "id": 999,
        "error": {
            "code": "woocommerce_rest_product_invalid_id",
            "message": "Invalid ID.",
            "data": {"status": 400},
        },
    }
    assert shop.faults.batches == 2


def test_the_sku_filter_is_exact_and_takes_a_comma_separated_list(shop: RunningServer) -> None:
    for sku in ("A-1", "A-10", "B-1"):
        ok(call(shop, "POST", "products", json={"name": sku, "sku": sku}), 201)
    parent = ok(call(shop, "POST", "products", json=shirt()), 201)
    ok(call(shop, "POST", f"products/{parent['id']}/variations", json={"sku": "LS-S"}), 201)
    found = ok(call(shop, "GET", "products", params={"sku": "A-1,B-1"}))
    assert sorted(p["sku"] for p in found) == ["A-1", "B-1"]
    assert ok(call(shop, "GET", "products", params={"sku": "A"})) == []
    # Core's products query also looks at variations when filtering by SKU.
    (variation,) = ok(call(shop, "GET", "products", params={"sku": "LS-S"}))
    assert (variation["type"], variation["parent_id"]) == ("variation", parent["id"])
    # Without a SKU filter only parents are listed.
    assert {p["type"] for p in ok(call(shop, "GET", "products"))} == {"simple", "variable"}


# ---------------------------------------------------------------- batches, lists, deleting


def test_a_batch_holds_at_most_100_items(shop: RunningServer) -> None:
    too_many = {
        "create": [{"name": f"P{n}", "sku": f"P{n}"} for n in range(60)],
        "update": [{"id": n, "name": "x"} for n in range(40)],
        "delete": [1],
    }
    body = refused(
        call(shop, "POST", "products/batch", json=too_many),
        413,
        "woocommerce_rest_request_entity_too_large",
    )
    assert body["message"] == "Unable to accept more than 100 items for this request."
    assert shop.products() == []
    full = {"create": [{"name": f"P{n}", "sku": f"P{n}"} for n in range(100)]}
    assert len(ok(call(shop, "POST", "products/batch", json=full))["create"]) == 100
    assert len(shop.sku_counts()) == 100


def test_pagination_headers_and_links(shop: RunningServer) -> None:
    ok(
        call(
            shop,
            "POST",
            "products/batch",
            json={"create": [{"name": f"P{n:02}", "sku": f"P{n:02}"} for n in range(25)]},
        )
    )
    first = call(shop, "GET", "products", params={"per_page": 10, "orderby": "id", "order": "asc"})
    assert (first.headers["X-WP-Total"], first.headers["X-WP-TotalPages"]) == ("25", "3")
    assert set(first.links) == {"next", "last"}
    seen = [p["sku"] for p in ok(first)]
    url: str | None = first.links["next"]["url"]
    while url:
        page = httpx.get(url, auth=shop.auth)
        seen += [p["sku"] for p in ok(page)]
        url = page.links.get("next", {}).get("url")
    assert seen == [f"P{n:02}" for n in range(25)]
    assert set(page.links) == {"first", "prev"}
    assert len(ok(call(shop, "GET", "products"))) == 10  # default per_page
    body = refused(
        call(shop, "GET", "products", params={"per_page": 101}), 400, "rest_invalid_param"
    )
    assert "per_page" in body["data"]["params"]


def test_trash_then_force_delete(shop: RunningServer) -> None:
    product = ok(call(shop, "POST", "products", json=shirt()), 201)
    variation = ok(
        call(shop, "POST", f"products/{product['id']}/variations", json={"sku": "LS-S"}), 201
    )
    trashed = ok(call(shop, "DELETE", f"products/{product['id']}"))
    assert trashed["status"] == "trash"
    assert ok(call(shop, "GET", f"products/{product['id']}"))["status"] == "trash"
    refused(
        call(shop, "DELETE", f"products/{product['id']}"), 410, "woocommerce_rest_already_trashed"
    )
    assert ok(call(shop, "GET", "products")) == []
    assert [p["id"] for p in ok(call(shop, "GET", "products", params={"status": "trash"}))] == [
        product["id"]
    ]
    # A trashed product (and its variations) no longer holds its SKUs.
    assert shop.sku_counts() == {}
    ok(call(shop, "POST", "products", json={"name": "New", "sku": "LS"}), 201)
    ok(call(shop, "DELETE", f"products/{product['id']}", params={"force": "true"}))
    refused(
        call(shop, "GET", f"products/{product['id']}"), 404, "woocommerce_rest_product_invalid_id"
    )
    refused(
        call(shop, "GET", f"products/{product['id']}/variations/{variation['id']}"),
        404,
        "woocommerce_rest_product_variation_invalid_id",
    )
    other = holder(shop, "LS")
    deleted = ok(call(shop, "POST", "products/batch", json={"delete": [other]}))["delete"]
    assert deleted[0]["id"] == other
    assert shop.products() == []
    assert shop.writes()["product.deleted"] == 2


# ---------------------------------------------------------------- validation and faults


def test_money_must_be_a_decimal_string(shop: RunningServer) -> None:
    number = call(shop, "POST", "products", json={"name": "X", "regular_price": 21.99})
    body = refused(number, 400, "rest_invalid_param")
    assert body["data"]["params"] == {"regular_price": "regular_price is not of type string."}
    word = call(shop, "POST", "products", json={"name": "X", "sale_price": "abc"})
    assert "sale_price" in refused(word, 400, "rest_invalid_param")["data"]["params"]
    batch = ok(call(shop, "POST", "products/batch", json={"create": [{"regular_price": "1,50"}]}))
    assert batch["create"][0]["error"]["code"] == "rest_invalid_param"
    assert shop.products() == []


def test_faults_5xx_and_429(shop: RunningServer) -> None:
    shop.faults.fail_next = 2
    assert call(shop, "GET", "products").status_code == 503
    assert call(shop, "GET", "products").status_code == 503
    assert call(shop, "GET", "products").status_code == 200
    shop.faults.rate_limit_next = 1
    shop.faults.retry_after = 7
    limited = call(shop, "GET", "products")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert shop.faults.requests == 4


def test_a_refused_sku_fails_that_item(shop: RunningServer) -> None:
    shop.faults.refuse_sku("BAD-1", "woocommerce_product_image_upload_error", "Nope.")
    answer = ok(
        call(
            shop,
            "POST",
            "products/batch",
            json={"create": [{"name": "Bad", "sku": "BAD-1"}, {"name": "Good", "sku": "GOOD-1"}]},
        )
    )["create"]
    assert answer[0]["error"]["message"] == "Nope."
    assert [p["sku"] for p in shop.products()] == ["GOOD-1"]


def test_a_dropped_connection_after_the_batch_was_stored(shop: RunningServer) -> None:
    shop.faults.drop_after_commit = 1
    with pytest.raises(httpx.TransportError):
        call(shop, "POST", "products/batch", json={"create": [{"name": "P", "sku": "P-1"}]})
    assert shop.faults.dropped == 1
    # The client finds the product by its SKU rather than creating it again.
    (found,) = ok(call(shop, "GET", "products", params={"sku": "P-1"}))
    assert found["name"] == "P"
    assert shop.sku_counts() == {"P-1": 1}


def test_faults_by_hand(shop: RunningServer) -> None:
    spec = {"fail_next": 1, "fail_status": 502, "refused_skus": {"X-1": {"message": "No"}}}
    snapshot = httpx.post(f"{shop.base_url}/_faults", json=spec).json()
    assert (snapshot["fail_next"], snapshot["fail_status"]) == (1, 502)
    assert snapshot["refused_skus"]["X-1"]["message"] == "No"
    assert call(shop, "GET", "products").status_code == 502
    assert httpx.get(f"{shop.base_url}/_faults").json()["fail_next"] == 0
