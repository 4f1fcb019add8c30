"""The Shopify emulator driven over HTTP with plain httpx, as a connector would."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from emulators.shopify import RunningServer, serve

SET = """
mutation set($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
  productSet(input: $input, identifier: $identifier, synchronous: true) {
    product {
      id handle title status
      variants(first: 10) { nodes { id sku price compareAtPrice inventoryItem { id } } }
    }
    userErrors { field message code }
  }
}
"""

FIND = """
query find($identifier: ProductIdentifierInput!) {
  productByIdentifier(identifier: $identifier) {
    id handle title variants(first: 5) { nodes { sku } }
  }
}
"""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(clock: Clock) -> Iterator[RunningServer]:
    with serve(access_token="shpat_test", clock=clock) as running:
        yield running


def call(shop: RunningServer, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = httpx.post(
        shop.graphql_url(),
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": shop.access_token},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def shirt(**changes: Any) -> dict[str, Any]:
    product: dict[str, Any] = {
        "title": "Linen shirt",
        "handle": "linen-shirt",
        "status": "ACTIVE",
        "productOptions": [{"name": "Size", "values": [{"name": "S"}, {"name": "M"}]}],
        "variants": [
            {
                "optionValues": [{"optionName": "Size", "name": "S"}],
                "sku": "LS-S",
                "price": "10.00",
            },
            {
                "optionValues": [{"optionName": "Size", "name": "M"}],
                "sku": "LS-M",
                "price": "12.50",
                "compareAtPrice": "15.00",
            },
        ],
        "metafields": [{"namespace": "hub", "key": "code", "value": "LS", "type": "id"}],
    }
    product.update(changes)
    return product


def test_product_set_creates_a_product_with_variants(shop: RunningServer) -> None:
    body = call(shop, SET, {"input": shirt()})
    payload = body["data"]["productSet"]
    assert payload["userErrors"] == []
    product = payload["product"]
    assert product["id"].startswith("gid://shopify/Product/")
    assert product["handle"] == "linen-shirt"
    variants = product["variants"]["nodes"]
    assert [(v["sku"], v["price"], v["compareAtPrice"]) for v in variants] == [
        ("LS-S", "10.00", None),
        ("LS-M", "12.50", "15.00"),
    ]
    assert all(
        v["inventoryItem"]["id"].startswith("gid://shopify/InventoryItem/") for v in variants
    )
    (stored,) = shop.products()
    assert stored["variants"][1]["price"] == Decimal("12.50")
    assert stored["metafields"] == {"hub.code": "LS"}
    assert shop.mutations("productSet") == 1


@pytest.mark.parametrize(
    "identifier",
    [
        {"handle": "linen-shirt"},
        {"customId": {"namespace": "hub", "key": "code", "value": "LS"}},
    ],
)
def test_setting_again_by_identifier_updates_instead_of_creating(
    shop: RunningServer, identifier: dict[str, Any]
) -> None:
    first = call(shop, SET, {"input": shirt(), "identifier": identifier})["data"]["productSet"]
    changed = shirt(title="Linen shirt (new)")
    changed["variants"][0]["price"] = "11.00"
    second = call(shop, SET, {"input": changed, "identifier": identifier})["data"]["productSet"]
    assert second["userErrors"] == []
    assert second["product"]["id"] == first["product"]["id"]
    old_ids = [v["id"] for v in first["product"]["variants"]["nodes"]]
    assert [v["id"] for v in second["product"]["variants"]["nodes"]] == old_ids
    (stored,) = shop.products()
    assert stored["title"] == "Linen shirt (new)"
    assert stored["variants"][0]["price"] == Decimal("11.00")


def test_set_by_id_of_a_missing_product_is_refused(shop: RunningServer) -> None:
    ident = {"id": "gid://shopify/Product/999999"}
    payload = call(shop, SET, {"input": shirt(), "identifier": ident})["data"]["productSet"]
    assert payload["product"] is None
    assert payload["userErrors"][0]["code"] == "PRODUCT_DOES_NOT_EXIST"
    assert shop.products() == []


def test_variants_left_out_are_removed(shop: RunningServer) -> None:
    call(shop, SET, {"input": shirt(), "identifier": {"handle": "linen-shirt"}})
    one = shirt()
    one["variants"] = one["variants"][:1]
    call(shop, SET, {"input": one, "identifier": {"handle": "linen-shirt"}})
    (stored,) = shop.products()
    assert [v["sku"] for v in stored["variants"]] == ["LS-S"]


def test_a_product_is_found_again_by_identifier_and_by_search(shop: RunningServer) -> None:
    call(shop, SET, {"input": shirt()})
    found = call(shop, FIND, {"identifier": {"handle": "linen-shirt"}})["data"][
        "productByIdentifier"
    ]
    assert found["title"] == "Linen shirt"
    custom = {"customId": {"namespace": "hub", "key": "code", "value": "LS"}}
    assert (
        call(shop, FIND, {"identifier": custom})["data"]["productByIdentifier"]["id"] == found["id"]
    )
    missing = {"handle": "nothing-here"}
    assert call(shop, FIND, {"identifier": missing})["data"]["productByIdentifier"] is None
    listed = call(shop, '{ products(first: 5, query: "sku:LS-M") { nodes { id } } }')
    assert listed["data"]["products"]["nodes"] == [{"id": found["id"]}]


def test_products_page_with_cursors(shop: RunningServer) -> None:
    for n in range(3):
        call(shop, SET, {"input": shirt(title=f"Shirt {n}", handle=f"shirt-{n}", metafields=[])})
    query = """query page($after: String) { products(first: 2, after: $after) {
      nodes { title } pageInfo { hasNextPage endCursor } } }"""
    page = call(shop, query)["data"]["products"]
    assert [n["title"] for n in page["nodes"]] == ["Shirt 0", "Shirt 1"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = call(shop, query, {"after": page["pageInfo"]["endCursor"]})["data"]["products"]
    assert [n["title"] for n in rest["nodes"]] == ["Shirt 2"]
    assert rest["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("change", "field", "code", "message"),
    [
        ({"title": ""}, ["input", "title"], "BLANK", "Title can't be blank"),
        (
            {"price": "-1.00"},
            ["input", "variants", "0", "price"],
            "GREATER_THAN_OR_EQUAL_TO",
            "Variant price must be greater than or equal to zero.",
        ),
        (
            {"price": "ten"},
            ["input", "variants", "0", "price"],
            "INVALID",
            "Price must be a number",
        ),
        ({"sku": "LS-M"}, ["input", "variants", "1", "sku"], "DUPLICATED_INPUT", None),
    ],
)
def test_invalid_products_get_user_errors_and_change_nothing(
    shop: RunningServer, change: dict[str, Any], field: list[str], code: str, message: str | None
) -> None:
    product = shirt()
    if "title" in change:
        product.update(change)
    else:
        product["variants"][0].update(change)
    payload = call(shop, SET, {"input": product})["data"]["productSet"]
    assert payload["product"] is None
    (error,) = payload["userErrors"]
    assert error["field"] == field
    assert error["code"] == code
    if message:
        assert error["message"] == message
    assert shop.products() == []
    assert shop.mutations() == 0


def test_a_wrong_or_missing_token_gets_shopifys_401(shop: RunningServer) -> None:
    for headers in ({"X-Shopify-Access-Token": "shpat_wrong"}, {}):
        response = httpx.post(
            shop.graphql_url(),
            json={"query": "{ locations(first: 1) { nodes { id } } }"},
            headers=headers,
        )
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }


def test_graphql_errors_for_an_invalid_document(shop: RunningServer) -> None:
    assert "errors" in call(shop, "{ products(first: 1) { nodes { nope } } }")
    assert "errors" in call(shop, "{ products(first: ")


INVENTORY = """
mutation stock($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { reason changes { name delta } }
    userErrors { field message code }
  }
}
"""

LEVEL = """
query level($id: ID!, $location: ID!) {
  inventoryItem(id: $id) { inventoryLevel(locationId: $location) {
    quantities(names: ["available", "on_hand"]) { name quantity } } }
}
"""


def _item_of(shop: RunningServer, sku: str) -> str:
    product = shop.product_by_sku(sku)
    assert product is not None
    return next(v["inventory_item_id"] for v in product["variants"] if v["sku"] == sku)


def test_inventory_is_set_at_a_location(shop: RunningServer) -> None:
    call(shop, SET, {"input": shirt()})
    locations = call(shop, "{ locations(first: 5) { nodes { id name } } }")["data"]["locations"]
    location = locations["nodes"][0]["id"]
    assert location == shop.location_id
    item = _item_of(shop, "LS-S")
    quantities = [{"inventoryItemId": item, "locationId": location, "quantity": 7}]
    stock = {"name": "available", "reason": "correction", "ignoreCompareQuantity": True}
    payload = call(shop, INVENTORY, {"input": {**stock, "quantities": quantities}})
    payload = payload["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    assert payload["inventoryAdjustmentGroup"]["changes"] == [{"name": "available", "delta": 7}]
    assert shop.available("LS-S") == 7
    level = call(shop, LEVEL, {"id": item, "location": location})["data"]["inventoryItem"]
    assert level["inventoryLevel"]["quantities"] == [
        {"name": "available", "quantity": 7},
        {"name": "on_hand", "quantity": 7},
    ]
    quantities[0].update(quantity=3, compareQuantity=7)
    again = {"name": "available", "reason": "correction", "quantities": quantities}
    assert (
        call(shop, INVENTORY, {"input": again})["data"]["inventorySetQuantities"]["userErrors"]
        == []
    )
    assert shop.available("LS-S") == 3
    assert shop.mutations("inventorySetQuantities") == 2


def test_inventory_user_errors(shop: RunningServer) -> None:
    call(shop, SET, {"input": shirt()})
    item = _item_of(shop, "LS-S")
    cases = [
        ({"reason": "because"}, "INVALID_REASON"),
        ({"name": "incoming"}, "INVALID_NAME"),
        ({"item": "gid://shopify/InventoryItem/1"}, "INVALID_INVENTORY_ITEM"),
        ({"location": "gid://shopify/Location/1"}, "INVALID_LOCATION"),
        ({"ignore": False}, "COMPARE_QUANTITY_REQUIRED"),
        ({"ignore": False, "compare": 5}, "COMPARE_QUANTITY_STALE"),
    ]
    for change, code in cases:
        quantity: dict[str, Any] = {
            "inventoryItemId": change.get("item", item),
            "locationId": change.get("location", shop.location_id),
            "quantity": 4,
        }
        if "compare" in change:
            quantity["compareQuantity"] = change["compare"]
        stock = {
            "name": change.get("name", "available"),
            "reason": change.get("reason", "correction"),
            "ignoreCompareQuantity": change.get("ignore", True),
            "quantities": [quantity],
        }
        payload = call(shop, INVENTORY, {"input": stock})["data"]["inventorySetQuantities"]
        assert [e["code"] for e in payload["userErrors"]] == [code], change
        assert payload["inventoryAdjustmentGroup"] is None
    assert shop.available("LS-S") is None


LIST = "{ products(first: 10) { nodes { id title } } }"


def _status(body: dict[str, Any]) -> dict[str, Any]:
    cost: dict[str, Any] = body["extensions"]["cost"]
    return cost


def test_every_answer_carries_the_cost_and_the_bucket(shop: RunningServer, clock: Clock) -> None:
    cost = _status(call(shop, SET, {"input": shirt()}))
    assert cost == {
        "requestedQueryCost": 10,
        "actualQueryCost": 10,
        "throttleStatus": {
            "maximumAvailable": 2000.0,
            "currentlyAvailable": 1990.0,
            "restoreRate": 100.0,
        },
    }
    # A connection is asked for at 2 + first x node cost, and paid for by the
    # nodes returned: 12 requested, 3 actual, the 9 refunded.
    cost = _status(call(shop, LIST))
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (12, 3)
    assert cost["throttleStatus"]["currentlyAvailable"] == 1987.0
    clock.now += 0.5
    assert _status(call(shop, LIST))["throttleStatus"]["currentlyAvailable"] == 2000.0 - 3


def test_a_query_over_the_single_query_limit_is_refused_unpaid(shop: RunningServer) -> None:
    query = "{ products(first: 250) { nodes { variants(first: 100) { nodes { id } } } } }"
    body = call(shop, query)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert _status(body)["requestedQueryCost"] == 2 + 250 * (1 + 2 + 100)
    assert _status(body)["throttleStatus"]["currentlyAvailable"] == 2000.0


def test_an_empty_bucket_throttles_without_effect_until_restored(
    shop: RunningServer, clock: Clock
) -> None:
    shop.bucket.drain()
    body = call(shop, SET, {"input": shirt()})
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
    ]
    assert "data" not in body
    assert _status(body)["actualQueryCost"] is None
    assert _status(body)["throttleStatus"]["currentlyAvailable"] == 0.0
    clock.now += 0.0625  # 6.25 points back: a mutation (10) still does not fit
    assert call(shop, SET, {"input": shirt()})["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert shop.products() == []
    assert (shop.faults.throttled, shop.faults.throttle_episodes) == (2, 1)
    clock.now += 0.0625  # 12.5 points: the mutation is paid, 2.5 remain
    body = call(shop, SET, {"input": shirt()})
    assert body["data"]["productSet"]["userErrors"] == []
    assert _status(body)["throttleStatus"]["currentlyAvailable"] == 2.0
    assert len(shop.products()) == 1
    call(shop, LIST)  # throttled again: a second episode
    assert (shop.faults.throttled, shop.faults.throttle_episodes) == (3, 2)
    clock.now += 1000
    assert shop.bucket.available == 2000.0


def test_forced_throttling(shop: RunningServer) -> None:
    shop.faults.throttle_next = 1
    assert call(shop, SET, {"input": shirt()})["errors"][0]["message"] == "Throttled"
    assert call(shop, SET, {"input": shirt()})["data"]["productSet"]["userErrors"] == []
    assert len(shop.products()) == 1


STAGE = """
mutation stage($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}
"""

RUN = """
mutation run($mutation: String!, $path: String!) {
  bulkOperationRunMutation(mutation: $mutation, stagedUploadPath: $path) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""

POLL = """
{ currentBulkOperation(type: MUTATION) { id status objectCount url errorCode } }
"""

LINE_MUTATION = """
mutation call($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
  productSet(input: $input, identifier: $identifier) {
    product { id handle } userErrors { field message code }
  }
}
"""


def _upload(shop: RunningServer, lines: list[dict[str, Any]]) -> str:
    """Stage a JSONL file the way Shopify's staged upload takes it; its path."""
    import json

    stage_input = {
        "resource": "BULK_MUTATION_VARIABLES",
        "filename": "products.jsonl",
        "mimeType": "text/jsonl",
        "httpMethod": "POST",
    }
    staged = call(shop, STAGE, {"input": [stage_input]})["data"]["stagedUploadsCreate"]
    (target,) = staged["stagedTargets"]
    assert target["url"].startswith(shop.base_url)
    params = {p["name"]: p["value"] for p in target["parameters"]}
    jsonl = "".join(json.dumps(line) + "\n" for line in lines)
    files = {"file": ("products.jsonl", jsonl.encode(), "text/jsonl")}
    response = httpx.post(target["url"], data=params, files=files)
    assert response.status_code == 201
    assert params["key"] in response.text
    return params["key"]


def test_a_bulk_operation_end_to_end(shop: RunningServer) -> None:
    import json

    lines = [
        {
            "input": shirt(
                title=f"Shirt {n}",
                handle=f"shirt-{n}",
                metafields=[],
                variants=[
                    {
                        "optionValues": [{"optionName": "Size", "name": "S"}],
                        "sku": f"B-{n}",
                        "price": "9.00",
                    }
                ],
            ),
            "identifier": {"handle": f"shirt-{n}"},
        }
        for n in range(3)
    ]
    lines[2]["input"]["variants"][0]["price"] = "-1"
    path = _upload(shop, lines)
    started = call(shop, RUN, {"mutation": LINE_MUTATION, "path": path})
    run = started["data"]["bulkOperationRunMutation"]
    assert run["userErrors"] == []
    assert run["bulkOperation"]["status"] == "CREATED"
    assert run["bulkOperation"]["id"].startswith("gid://shopify/BulkOperation/")
    statuses = []
    for _ in range(5):
        current = call(shop, POLL)["data"]["currentBulkOperation"]
        statuses.append(current["status"])
        if current["status"] == "COMPLETED":
            break
    assert statuses == ["RUNNING", "COMPLETED"]
    assert current["id"] == run["bulkOperation"]["id"]
    assert current["objectCount"] == "3"
    by_node = call(
        shop,
        "query n($id: ID!) { node(id: $id) { ... on BulkOperation { status url } } }",
        {"id": current["id"]},
    )["data"]["node"]
    assert by_node == {"status": "COMPLETED", "url": current["url"]}
    results = [json.loads(line) for line in httpx.get(current["url"]).text.splitlines()]
    assert [r["__lineNumber"] for r in results] == [0, 1, 2]
    assert results[0]["data"]["productSet"]["product"]["handle"] == "shirt-0"
    assert results[2]["data"]["productSet"]["userErrors"][0]["code"] == "GREATER_THAN_OR_EQUAL_TO"
    assert sorted(p["handle"] for p in shop.products()) == ["shirt-0", "shirt-1"]
    assert shop.mutations("productSet") == 2
    # Run again by the same identifiers: updated, not duplicated.
    again = call(shop, RUN, {"mutation": LINE_MUTATION, "path": _upload(shop, lines[:2])})
    assert again["data"]["bulkOperationRunMutation"]["userErrors"] == []
    assert len(shop.products()) == 2


def test_bulk_operation_refusals(shop: RunningServer) -> None:
    missing = call(shop, RUN, {"mutation": LINE_MUTATION, "path": "tmp/none/products.jsonl"})
    assert missing["data"]["bulkOperationRunMutation"]["userErrors"][0]["code"] == "NO_SUCH_FILE"
    path = _upload(shop, [{"input": shirt()}])
    bad = call(shop, RUN, {"mutation": "{ products(first: 1) { nodes { id } } }", "path": path})
    assert bad["data"]["bulkOperationRunMutation"]["userErrors"][0]["code"] == "INVALID_MUTATION"
    assert (
        call(shop, RUN, {"mutation": LINE_MUTATION, "path": path})["data"][
            "bulkOperationRunMutation"
        ]["userErrors"]
        == []
    )
    busy = call(shop, RUN, {"mutation": LINE_MUTATION, "path": path})
    assert (
        busy["data"]["bulkOperationRunMutation"]["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"
    )


def test_server_errors_on_the_next_requests(shop: RunningServer) -> None:
    shop.faults.fail_next = 2
    headers = {"X-Shopify-Access-Token": shop.access_token}
    for _ in range(2):
        response = httpx.post(shop.graphql_url(), json={"query": LIST}, headers=headers)
        assert response.status_code == 503
    assert "data" in call(shop, LIST)
    assert shop.faults.requests == 3


def test_a_user_error_on_a_given_sku(shop: RunningServer) -> None:
    shop.faults.refuse_sku("LS-M", "Variant LS-M could not be saved")
    payload = call(shop, SET, {"input": shirt()})["data"]["productSet"]
    assert payload["product"] is None
    assert payload["userErrors"] == [
        {
            "field": ["input", "variants", "1", "sku"],
            "message": "Variant LS-M could not be saved",
            "code": "INVALID_VARIANT",
        }
    ]
    assert shop.products() == []
    other = shirt(handle="other", metafields=[])
    other["variants"] = other["variants"][:1]
    assert call(shop, SET, {"input": other})["data"]["productSet"]["userErrors"] == []


def test_a_connection_dropped_after_the_mutation_was_applied(shop: RunningServer) -> None:
    shop.faults.drop_after_commit = 1
    headers = {"X-Shopify-Access-Token": shop.access_token}
    body = {"query": SET, "variables": {"input": shirt(), "identifier": {"handle": "linen-shirt"}}}
    with pytest.raises(httpx.TransportError):
        httpx.post(shop.graphql_url(), json=body, headers=headers, timeout=5)
    assert len(shop.products()) == 1
    assert shop.faults.dropped == 1
    # The client finds the product by its identifier, and a retry updates it.
    found = call(shop, FIND, {"identifier": {"handle": "linen-shirt"}})["data"]
    assert found["productByIdentifier"]["id"] == shop.products()[0]["id"]
    call(shop, SET, body["variables"])
    assert len(shop.products()) == 1
    assert shop.mutations("productSet") == 2


def test_faults_by_hand(shop: RunningServer) -> None:
    spec = {"fail_next": 1, "fail_status": 502, "refuse_skus": {"X-1": "No"}}
    snapshot = httpx.post(f"{shop.base_url}/_faults", json=spec).json()
    assert (snapshot["fail_next"], snapshot["fail_status"]) == (1, 502)
    assert snapshot["refuse_skus"] == {"X-1": "No"}
    headers = {"X-Shopify-Access-Token": shop.access_token}
    assert httpx.post(shop.graphql_url(), json={"query": LIST}, headers=headers).status_code == 502
    assert httpx.get(f"{shop.base_url}/_faults").json()["fail_next"] == 0


def test_cost_through_edges_and_type_conditions(shop: RunningServer) -> None:
    product = call(shop, SET, {"input": shirt()})["data"]["productSet"]["product"]
    edges = _status(call(shop, "{ products(first: 10) { edges { node { id title } } } }"))
    assert edges["requestedQueryCost"] == 2 + 10 * 1
    query = """query n($id: ID!) { node(id: $id) {
      ... on Product { id variants(first: 5) { nodes { id } } }
      ... on Location { id name } } }"""
    cost = _status(call(shop, query, {"id": product["id"]}))
    # The dearer fragment counts: 1 for the node, 2 + 5 x 1 for the variants
    # asked for, 2 + 2 x 1 for the two returned.
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (1 + 7, 1 + 4)


# ---------------------------------------------------------------- additions


def call_at(shop: RunningServer, version: str, query: str, variables: dict[str, Any]) -> Any:
    response = httpx.post(
        shop.graphql_url(version),
        json={"query": query, "variables": variables},
        headers={"X-Shopify-Access-Token": shop.access_token},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_product_details_are_kept_and_read_back(shop: RunningServer) -> None:
    product = shirt(
        vendor="Linen & Co",
        productType="Shirts",
        descriptionHtml="<p>Cool</p>",
        tags=["summer", "linen", "summer"],
    )
    product["variants"][0].update(
        barcode="6001234567890",
        inventoryItem={
            "sku": "LS-S",
            "tracked": True,
            "measurement": {"weight": {"value": 250, "unit": "GRAMS"}},
        },
    )
    del product["variants"][0]["sku"]
    call(shop, SET, {"input": product})
    query = """{ products(first: 1) { nodes { vendor productType descriptionHtml tags
      variants(first: 2) { nodes { sku barcode inventoryItem { tracked
        measurement { weight { value unit } } } } } } } }"""
    (node,) = call(shop, query)["data"]["products"]["nodes"]
    assert (node["vendor"], node["productType"], node["descriptionHtml"]) == (
        "Linen & Co",
        "Shirts",
        "<p>Cool</p>",
    )
    assert node["tags"] == ["linen", "summer"]
    first = node["variants"]["nodes"][0]
    assert (first["sku"], first["barcode"]) == ("LS-S", "6001234567890")
    assert first["inventoryItem"] == {
        "tracked": True,
        "measurement": {"weight": {"value": 250.0, "unit": "GRAMS"}},
    }
    (stored,) = shop.products()
    assert stored["tags"] == ["linen", "summer"]
    assert stored["variants"][0]["weight"] == (250.0, "GRAMS")


DEFINE = """
mutation define($definition: MetafieldDefinitionInput!) {
  metafieldDefinitionCreate(definition: $definition) {
    createdDefinition { id namespace key type { name } ownerType }
    userErrors { field message code }
  }
}
"""


def test_metafield_definitions_are_made_once(shop: RunningServer) -> None:
    definition = {
        "name": "Product key",
        "namespace": "hub",
        "key": "code",
        "type": "id",
        "ownerType": "PRODUCT",
    }
    made = call(shop, DEFINE, {"definition": definition})["data"]["metafieldDefinitionCreate"]
    assert made["userErrors"] == []
    assert made["createdDefinition"]["type"] == {"name": "id"}
    again = call(shop, DEFINE, {"definition": definition})["data"]["metafieldDefinitionCreate"]
    assert again["createdDefinition"] is None
    assert again["userErrors"] == [
        {
            "field": ["definition", "key"],
            "message": "Key is in use for Product metafields on the 'hub' namespace.",
            "code": "TAKEN",
        }
    ]
    wrong = call(shop, DEFINE, {"definition": {**definition, "key": "x", "type": "colour_wheel"}})
    assert wrong["data"]["metafieldDefinitionCreate"]["userErrors"][0]["code"] == "INCLUSION"
    assert shop.definitions() == [
        {
            "owner_type": "PRODUCT",
            "namespace": "hub",
            "key": "code",
            "type": "id",
            "name": "Product key",
        }
    ]


def test_the_shop_and_its_primary_location(shop: RunningServer) -> None:
    shop.store.add_location("Warehouse")
    body = call(shop, "{ shop { name myshopifyDomain } location { id name } }")["data"]
    assert body["shop"] == {
        "name": "Emulated Shop",
        "myshopifyDomain": "emulated-shop.myshopify.com",
    }
    assert body["location"] == {"id": shop.location_id, "name": "Shop location"}


IDEMPOTENT_SET = """
mutation stock($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { changes { name delta } }
    userErrors { field message code }
  }
}
"""


def _quantities(shop: RunningServer, quantity: int, **extra: Any) -> dict[str, Any]:
    item = _item_of(shop, "LS-S")
    entry = {"inventoryItemId": item, "locationId": shop.location_id, "quantity": quantity}
    return {"name": "available", "reason": "correction", "quantities": [{**entry, **extra}]}


def test_inventory_by_api_version(shop: RunningServer) -> None:
    call(shop, SET, {"input": shirt()})
    # Up to 2025-10 there is no changeFromQuantity and no directive.
    old = call_at(shop, "2025-10", IDEMPOTENT_SET, {"input": _quantities(shop, 1), "key": "k0"})
    assert "idempotent" in old["errors"][0]["message"]
    # 2026-01: changeFromQuantity null skips the check; a stale one is refused.
    body = {"input": _quantities(shop, 5, changeFromQuantity=None), "key": "k1"}
    payload = call_at(shop, "2026-01", IDEMPOTENT_SET, body)["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    assert shop.available("LS-S") == 5
    stale = {"input": _quantities(shop, 6, changeFromQuantity=4), "key": "k2"}
    payload = call_at(shop, "2026-01", IDEMPOTENT_SET, stale)["data"]["inventorySetQuantities"]
    assert [e["code"] for e in payload["userErrors"]] == ["CHANGE_FROM_QUANTITY_STALE"]
    fresh = {"input": _quantities(shop, 6, changeFromQuantity=5), "key": "k3"}
    payload = call_at(shop, "2026-01", IDEMPOTENT_SET, fresh)["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    # 2026-04: ignoreCompareQuantity is gone, changeFromQuantity must be given,
    # and the directive is required.
    gone = {"input": {**_quantities(shop, 7), "ignoreCompareQuantity": True}, "key": "k4"}
    assert (
        "ignoreCompareQuantity"
        in call_at(shop, "2026-04", IDEMPOTENT_SET, gone)["errors"][0]["message"]
    )
    missing = {"input": _quantities(shop, 7), "key": "k5"}
    payload = call_at(shop, "2026-04", IDEMPOTENT_SET, missing)["data"]["inventorySetQuantities"]
    assert payload["userErrors"][0]["field"] == ["input", "quantities", "0", "changeFromQuantity"]
    no_key = call_at(
        shop, "2026-04", INVENTORY, {"input": _quantities(shop, 7, changeFromQuantity=None)}
    )
    assert "idempotency key is required" in no_key["errors"][0]["message"]
    assert no_key["data"]["inventorySetQuantities"] is None
    assert shop.available("LS-S") == 6
    assert shop.mutations("inventorySetQuantities") == 2


def test_an_idempotency_key_replays_its_first_answer(shop: RunningServer) -> None:
    call(shop, SET, {"input": shirt()})
    body = {"input": _quantities(shop, 9, changeFromQuantity=None), "key": "same"}
    first = call_at(shop, "2026-04", IDEMPOTENT_SET, body)["data"]["inventorySetQuantities"]
    assert first["inventoryAdjustmentGroup"]["changes"] == [{"name": "available", "delta": 9}]
    shop.store.levels.clear()  # what a replay must not touch again
    again = call_at(shop, "2026-04", IDEMPOTENT_SET, body)["data"]["inventorySetQuantities"]
    assert again == first
    assert shop.available("LS-S") is None
    assert shop.mutations("inventorySetQuantities") == 1
    other = {"input": _quantities(shop, 3, changeFromQuantity=None), "key": "same"}
    payload = call_at(shop, "2026-04", IDEMPOTENT_SET, other)["data"]["inventorySetQuantities"]
    assert [e["code"] for e in payload["userErrors"]] == ["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]


def _bulk_lines(count: int) -> list[dict[str, Any]]:
    return [
        {
            "input": shirt(
                title=f"Shirt {n}",
                handle=f"shirt-{n}",
                metafields=[],
                variants=[
                    {
                        "optionValues": [{"optionName": "Size", "name": "S"}],
                        "sku": f"B-{n}",
                        "price": "9.00",
                    }
                ],
            ),
            "identifier": {"handle": f"shirt-{n}"},
        }
        for n in range(count)
    ]


def _finish(shop: RunningServer, path: str) -> dict[str, Any]:
    run = call(shop, RUN, {"mutation": LINE_MUTATION, "path": path})
    assert run["data"]["bulkOperationRunMutation"]["userErrors"] == []
    query = "{ currentBulkOperation(type: MUTATION) { status errorCode url partialDataUrl } }"
    for _ in range(5):
        current: dict[str, Any] = call(shop, query)["data"]["currentBulkOperation"]
        if current["status"] not in ("CREATED", "RUNNING"):
            return current
    raise AssertionError("the bulk operation did not finish")


def test_a_bulk_operation_may_write_its_results_in_any_order(shop: RunningServer) -> None:
    import json

    shop.shop.bulk_in_order = False
    current = _finish(shop, _upload(shop, _bulk_lines(12)))
    numbers = [json.loads(x)["__lineNumber"] for x in httpx.get(current["url"]).text.splitlines()]
    assert sorted(numbers) == list(range(12))
    assert numbers != sorted(numbers)


def test_a_failed_bulk_operation_has_partial_results(shop: RunningServer) -> None:
    import json

    shop.faults.fail_bulk = 1
    current = _finish(shop, _upload(shop, _bulk_lines(6)))
    assert (current["status"], current["errorCode"], current["url"]) == (
        "FAILED",
        "INTERNAL_SERVER_ERROR",
        None,
    )
    lines = [json.loads(x) for x in httpx.get(current["partialDataUrl"]).text.splitlines()]
    assert sorted(line["__lineNumber"] for line in lines) == [0, 1, 2]
    assert len(shop.products()) == 3
