"""Order intake over HTTP: the API and the channels' webhooks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from connectors.shopify.intake import sign as sign_shopify
from connectors.woocommerce.intake import sign as sign_woocommerce
from emulators import sql_erp
from hub.db import session_scope
from hub.models import Client, Order
from s2s.api import create_app
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import Shop, _assert_exactly_once, _shop, canonical
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers.sources import hash_token, set_channels, upsert_client

pytestmark = [pytest.mark.services, pytest.mark.slow]

SHOPIFY_SECRET = "shpss_test_secret_1"
WOO_SECRET = "wc_test_secret_2"


def shopify_payload(number: int, sku: str, status: str = "paid") -> dict[str, Any]:
    return {
        "id": 820982911946154500 + number,
        "name": f"#{number}",
        "order_number": number,
        "created_at": "2026-11-22T10:00:00+02:00",
        "financial_status": status,
        "taxes_included": False,
        "currency": "ZAR",
        "note": None,
        "email": "buyer@example.com",
        "total_discounts": "0.00",
        "customer": {
            "id": 1,
            "first_name": "Lerato",
            "last_name": "Dlamini",
            "email": "buyer@example.com",
        },
        "shipping_address": {
            "first_name": "Lerato",
            "last_name": "Dlamini",
            "address1": "12 Long Street",
            "address2": "",
            "city": "Cape Town",
            "province": "Western Cape",
            "province_code": "WC",
            "zip": "8001",
            "country": "South Africa",
            "country_code": "ZA",
            "phone": None,
            "company": None,
        },
        "line_items": [
            {
                "id": 1,
                "sku": sku,
                "title": "Thing",
                "quantity": 2,
                "price": "150.00",
                "total_discount": "0.00",
                "tax_lines": [],
            }
        ],
        "shipping_lines": [{"title": "Courier", "price": "95.00", "tax_lines": []}],
    }


@pytest.fixture
def shop(orders_hub: Hub, postgres_db: Any) -> Shop:
    shop = _shop(orders_hub, postgres_db("s2s_erp"))
    with session_scope() as s:
        acme = s.get(Client, shop.client_id)
        set_channels(
            s, acme, {"shopify": {"secret": SHOPIFY_SECRET}, "woocommerce": {"secret": WOO_SECRET}}
        )
        other, _ = upsert_client(s, "other")
        set_channels(s, other, {"shopify": {"secret": "other-secret"}})
    return shop


def _post_shopify(
    api: TestClient,
    body: bytes,
    client: str = "acme",
    secret: str = SHOPIFY_SECRET,
    delivery: str = "d-1",
    signature: str | None = None,
) -> Any:
    return api.post(
        f"/webhooks/shopify/{client}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": signature or sign_shopify(body, secret),
            "X-Shopify-Webhook-Id": delivery,
        },
    )


def _orders() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Order)) or 0


def test_same_webhook_three_times_is_raised_once(shop: Shop) -> None:
    api = TestClient(create_app())
    body = json.dumps(shopify_payload(1001, shop.skus[0])).encode()
    answers = [_post_shopify(api, body, delivery="delivery-1") for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 200, 200]
    assert {a.json()["order"] for a in answers} == {answers[0].json()["order"]}
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    # A redelivery under a new delivery id is still the same order.
    assert _post_shopify(api, body, delivery="delivery-2").json()["duplicate"] is True
    wait_for(lambda: _status(answers[0].json()["order"]) == "raised", timeout=60, what="raised")
    _assert_exactly_once(shop, ["#1001"])


def _status(order_id: int) -> str:
    with session_scope() as s:
        return s.get(Order, order_id).status


def test_bad_signature_is_401_and_stores_nothing(shop: Shop) -> None:
    api = TestClient(create_app())
    body = json.dumps(shopify_payload(1002, shop.skus[0])).encode()
    assert _post_shopify(api, body, signature="bm90LXRoZS1zaWduYXR1cmU=").status_code == 401
    assert _post_shopify(api, body, secret="wrong").status_code == 401
    # Signed with another client's secret: refused for acme, and nothing is stored anywhere.
    assert _post_shopify(api, body, secret="other-secret").status_code == 401
    assert _orders() == 0


def test_another_clients_webhook_cannot_create_acmes_order(shop: Shop) -> None:
    api = TestClient(create_app())
    body = json.dumps(shopify_payload(1003, shop.skus[0])).encode()
    answer = _post_shopify(api, body, client="other", secret="other-secret")
    assert answer.status_code == 201
    with session_scope() as s:
        order = s.get(Order, answer.json()["order"])
        assert order.client_id != shop.client_id


def test_malformed_json_and_unknown_client(shop: Shop) -> None:
    api = TestClient(create_app())
    bad = b'{"name": "#1", "line_items": [}'
    answer = _post_shopify(api, bad)
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]
    assert "line 1 column" in answer.json()["error"]
    assert _post_shopify(api, b"{}", client="nobody").status_code == 404
    token_less = api.post("/api/v1/clients/nobody/orders", content=b"{}")
    assert token_less.status_code == 404
    assert _orders() == 0


def test_api_intake_validates_and_stores_once(shop: Shop) -> None:
    with session_scope() as s:
        # Give acme a token we know (client add prints it once; tests can't read it back).
        s.get(Client, shop.client_id).api_token_hash = hash_token("acme-token")
    api = TestClient(create_app())
    auth = {"Authorization": "Bearer acme-token"}
    url = "/api/v1/clients/acme/orders"
    bad = api.post(url, headers=auth, content=b'{"channel_order_code": "A1"')
    assert bad.status_code == 400
    invalid = api.post(url, headers=auth, json={"channel_order_code": "A1", "line_items": []})
    assert invalid.status_code == 422 and invalid.json()["errors"]
    assert api.post(url, json=canonical("A1", [shop.skus[1]])).status_code == 401
    created = api.post(url, headers=auth, json=canonical("A1", [shop.skus[1]]))
    again = api.post(url, headers=auth, json=canonical("A1", [shop.skus[1]]))
    assert (created.status_code, again.status_code) == (201, 200)
    order_id = created.json()["order"]
    wait_for(lambda: _status(order_id) == "raised", timeout=60, what="raised")
    status = api.get(f"{url}/{order_id}", headers=auth).json()
    assert status["status"] == "raised" and status["document_number"]
    assert [h["status"] for h in status["history"]][-1] == "raised"
    _assert_exactly_once(shop, ["A1"])


def test_order_not_to_be_raised_is_stored_only(shop: Shop) -> None:
    api = TestClient(create_app())
    woo = {
        "id": 727,
        "number": "727",
        "status": "pending",
        "currency": "ZAR",
        "date_created_gmt": "2026-11-22T08:00:00",
        "customer_id": 0,
        "customer_note": "",
        "discount_total": "0.00",
        "billing": {
            "first_name": "Sipho",
            "last_name": "N",
            "email": "s@example.com",
            "address_1": "1 Main Rd",
            "address_2": "",
            "city": "Durban",
            "state": "KZN",
            "postcode": "4001",
            "country": "ZA",
            "phone": "",
            "company": "",
        },
        "shipping": {
            "first_name": "Sipho",
            "last_name": "N",
            "address_1": "1 Main Rd",
            "address_2": "",
            "city": "Durban",
            "state": "KZN",
            "postcode": "4001",
            "country": "ZA",
            "company": "",
        },
        "line_items": [
            {
                "id": 1,
                "name": "Thing",
                "sku": shop.skus[2],
                "quantity": 1,
                "subtotal": "100.00",
                "subtotal_tax": "15.00",
                "total": "100.00",
                "total_tax": "15.00",
                "price": 100,
                "taxes": [],
            }
        ],
        "shipping_lines": [],
    }
    body = json.dumps(woo).encode()
    answer = api.post(
        "/webhooks/woocommerce/acme",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-WC-Webhook-Signature": sign_woocommerce(body, WOO_SECRET),
            "X-WC-Webhook-Delivery-ID": "w-1",
        },
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "stored"
    assert sql_erp.order_counts(shop.erp_url).headers == 0


def test_webhook_body_is_stored_as_sent_whatever_its_encoding(shop: Shop) -> None:
    """The raw column holds the channel's body as it was sent (a price of
    "150.00" and a number 7.50 keep their spelling); a body in UTF-16 or
    with a byte-order mark, which the parser also reads, is stored too."""
    from sqlalchemy import text

    api = TestClient(create_app())
    payload = {**shopify_payload(2001, shop.skus[0]), "total_weight": 7.50, "note": "Ünï"}
    plain = json.dumps(payload).replace('"total_weight": 7.5', '"total_weight": 7.50').encode()
    assert b"7.50" in plain
    bodies = {
        "utf8": plain,
        "bom": b"\xef\xbb\xbf" + json.dumps(shopify_payload(2002, shop.skus[0])).encode(),
        "utf16": json.dumps(shopify_payload(2003, shop.skus[0])).encode("utf-16"),
    }
    answers = {name: _post_shopify(api, body, delivery=name) for name, body in bodies.items()}
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(bodies, 201)
    with session_scope() as s:
        weight, note, price = s.execute(
            text(
                "SELECT raw->>'total_weight', raw->>'note', raw->'line_items'->0->>'price' "
                "FROM orders WHERE id = :id"
            ),
            {"id": answers["utf8"].json()["order"]},
        ).one()
        assert (weight, note, price) == ("7.50", "Ünï", "150.00")
        for name in ("bom", "utf16"):
            kept = s.get(Order, answers[name].json()["order"])
            assert kept is not None and kept.raw["name"] == f"#{2002 if name == 'bom' else 2003}"


def test_a_value_jsonb_cannot_hold_outside_the_order_does_not_refuse_the_webhook(
    shop: Shop,
) -> None:
    """A NUL or a lone surrogate in a field of the body the order does not
    use is the channel's business: the order is taken and the body kept
    with those values escaped. In a field the order uses it is refused with
    the field named (422), never a 500."""
    from sqlalchemy import text

    api = TestClient(create_app(), raise_server_exceptions=False)
    odd = {
        **shopify_payload(3001, shop.skus[0]),
        "landing_site": "/?ref=a\u0000b",
        "source_name": "x\ud800y",
    }
    answer = _post_shopify(api, json.dumps(odd).encode(), delivery="odd-1")
    assert answer.status_code == 201, answer.text
    with session_scope() as s:
        landing, source = s.execute(
            text("SELECT raw->>'landing_site', raw->>'source_name' FROM orders WHERE id = :id"),
            {"id": answer.json()["order"]},
        ).one()
    assert (landing, source) == ("/?ref=a\\u0000b", "x\\ud800y")
    bad = {**shopify_payload(3002, shop.skus[0]), "note": "a\u0000b"}
    refused = _post_shopify(api, json.dumps(bad).encode(), delivery="odd-2")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "notes"


def test_an_api_order_with_a_lone_surrogate_is_refused_by_field(shop: Shop) -> None:
    """A stray ``\\ud800`` escape in an order's text gets a 422 naming the
    field (PostgreSQL stores no such text), not a 500; nothing is stored."""
    with session_scope() as s:
        s.get(Client, shop.client_id).api_token_hash = hash_token("acme-token")
    api = TestClient(create_app(), raise_server_exceptions=False)
    auth = {"Authorization": "Bearer acme-token", "Content-Type": "application/json"}
    body = json.dumps(canonical("U1", [shop.skus[1]]))[:-1] + ', "notes": "x\\ud800y"}'
    answer = api.post("/api/v1/clients/acme/orders", headers=auth, content=body.encode())
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "notes"
    assert "not valid Unicode" in answer.json()["errors"][0]["message"]
    assert _orders() == 0
