"""Real answers of a running hub validate against the OpenAPI document's schemas.

The route set and the document's own validity are checked in
tests/unit/test_openapi.py; here the document is held to what the handlers
actually send: each answer's status must be documented for its path and
method, and its body must validate against the schema given for that status.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from connectors.shopify.intake import sign as sign_shopify
from emulators import sql_erp
from hub.db import session_scope
from hub.models import Order
from hub.schemas.orders import load_order
from s2s.api import create_app
from s2s.openapi import document
from tests.conftest import Hub, wait_for
from tests.integration.test_api_orders import shopify_payload
from tests.integration.test_orders_e2e import canonical
from workers.sources import set_channels, upsert_client, upsert_source

SECRET = "shpss_openapi_test"


def _conforms(answer: Any, path: str, method: str = "get") -> dict[str, Any]:
    """Fail unless the answer's status and JSON body are what the document says."""
    doc = document()
    responses = doc["paths"][path][method]["responses"]
    status = str(answer.status_code)
    assert status in responses, f"{method.upper()} {path} answered {status}: undocumented"
    schema = responses[status]["content"]["application/json"]["schema"]
    # The components ride along so that "#/components/schemas/..." resolves.
    validator = Draft202012Validator(
        {**schema, "components": doc["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    body = answer.json()
    validator.validate(body)
    return dict(body) if isinstance(body, dict) else {"body": body}


@pytest.fixture
def api(embedded_hub: Hub) -> tuple[TestClient, dict[str, str]]:
    erp = f"sqlite:///{embedded_hub.var_dir / 'erp.sqlite'}"
    sql_erp.create_schema(erp)
    sql_erp.seed(erp, products=20, customers=3, seed=4)
    with session_scope() as s:
        acme, token = upsert_client(s, "acme")
        upsert_source(s, acme, "erp", "sql", {"url": erp})
        set_channels(s, acme, {"shopify": {"secret": SECRET}})
    return TestClient(create_app()), {"Authorization": f"Bearer {token}"}


C = "/api/v1/clients/{client}"


def test_health_status_resync_and_runs_conform(api: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = api
    _conforms(client.get("/health"), "/health")
    resync = f"{C}/sources/{{source}}/resync"
    started = _conforms(
        client.post("/api/v1/clients/acme/sources/erp/resync", headers=auth, json={}),
        resync,
        "post",
    )
    assert started["started"] is True
    again = client.post("/api/v1/clients/acme/sources/erp/resync", headers=auth)
    assert again.status_code == 200
    _conforms(again, resync, "post")
    _conforms(
        client.post(
            "/api/v1/clients/acme/sources/erp/resync", headers=auth, json={"stream": "orders"}
        ),
        resync,
        "post",
    )
    _conforms(
        client.post("/api/v1/clients/acme/sources/erp/resync", headers=auth, content=b"{x"),
        resync,
        "post",
    )
    runs = _conforms(
        client.get("/api/v1/clients/acme/sources/erp/runs", headers=auth),
        f"{C}/sources/{{source}}/runs",
    )
    assert runs["runs"], "the run just started is listed"
    _conforms(
        client.get("/api/v1/clients/acme/sources/erp/runs?limit=x", headers=auth),
        f"{C}/sources/{{source}}/runs",
    )
    status = _conforms(client.get("/api/v1/clients/acme/status", headers=auth), f"{C}/status")
    assert any(row["last_run"] for row in status["streams"])


def test_auth_failures_and_missing_things_conform(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, auth = api
    for answer, status in (
        (client.get("/api/v1/clients/acme/status"), 401),
        (client.get("/api/v1/clients/acme/status", headers={"Authorization": "Bearer x"}), 401),
        (client.get("/api/v1/clients/nobody/status", headers=auth), 404),
    ):
        assert answer.status_code == status
        _conforms(answer, f"{C}/status")
    missing = client.get("/api/v1/clients/acme/sources/nope/runs", headers=auth)
    assert missing.status_code == 404
    _conforms(missing, f"{C}/sources/{{source}}/runs")
    no_order = client.get("/api/v1/clients/acme/orders/999999", headers=auth)
    assert no_order.status_code == 404
    _conforms(no_order, f"{C}/orders/{{order_id}}")


def test_order_intake_and_status_conform(api: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = api
    url = "/api/v1/clients/acme/orders"
    created = client.post(url, headers=auth, json=canonical("OA1", ["SKU-1", "SKU-2"]))
    assert created.status_code == 201
    order = _conforms(created, f"{C}/orders", "post")
    duplicate = client.post(url, headers=auth, json=canonical("OA1", ["SKU-1", "SKU-2"]))
    assert duplicate.status_code == 200
    _conforms(duplicate, f"{C}/orders", "post")
    invalid = client.post(url, headers=auth, json={"channel_order_code": "OA2", "line_items": []})
    assert invalid.status_code == 422
    _conforms(invalid, f"{C}/orders", "post")
    _conforms(client.post(url, headers=auth, content=b"[1,"), f"{C}/orders", "post")
    status = client.get(f"{url}/{order['order']}", headers=auth)
    assert status.status_code == 200
    assert _conforms(status, f"{C}/orders/{{order_id}}")["history"]


def test_the_order_example_is_an_order_the_intake_stores(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    """The document's example, sent as it is, validates and is stored (201)."""
    client, auth = api
    doc = document()
    media = doc["paths"][f"{C}/orders"]["post"]["requestBody"]["content"]["application/json"]
    example = media["examples"]["complete"]["value"]
    Draft202012Validator({**media["schema"], "components": doc["components"]}).validate(example)
    created = client.post("/api/v1/clients/acme/orders", headers=auth, json=example)
    assert created.status_code == 201, created.text
    stored = _conforms(created, f"{C}/orders", "post")
    assert stored["channel_order_code"] == example["channel_order_code"]
    with session_scope() as s:
        order = s.get(Order, stored["order"])
        assert order is not None and order.order == load_order(example)[0]


def test_webhooks_conform(api: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = api
    path = "/webhooks/{channel}/{client}"
    body = json.dumps(shopify_payload(4242, "SKU-1")).encode()

    def post(signature: str, who: str = "acme", channel: str = "shopify") -> Any:
        return client.post(
            f"/webhooks/{channel}/{who}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Hmac-Sha256": signature,
                "X-Shopify-Webhook-Id": "d-1",
            },
        )

    good = sign_shopify(body, SECRET)
    expected = [
        (post(good), 201),
        (post(good), 200),
        (post(sign_shopify(body, "wrong")), 401),
        (post(good, who="nobody"), 404),
        (post(good, channel="magento"), 404),
    ]
    for answer, status in expected:
        assert answer.status_code == status, answer.text
        _conforms(answer, path, "post")
    ping = client.post(
        "/webhooks/woocommerce/acme",
        content=b"webhook_id=7",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert _conforms(ping, path, "post") == {"ping": "ok"}


def test_a_wrong_body_is_caught(api: tuple[TestClient, dict[str, str]]) -> None:
    """The check itself can fail: a body that breaks the schema does not pass."""
    client, auth = api
    answer = client.get("/api/v1/clients/acme/status", headers=auth)

    class Tampered:
        status_code = answer.status_code

        @staticmethod
        def json() -> Any:
            return {**answer.json(), "unexpected": 1}

    with pytest.raises(Exception, match="unexpected"):
        _conforms(Tampered(), f"{C}/status")


def _synced(client: TestClient, auth: dict[str, str], hub: Hub) -> None:
    for stream in ("products", "customers"):
        url = "/api/v1/clients/acme/sources/erp/resync"
        assert client.post(url, headers=auth, json={"stream": stream}).status_code == 202
    hub.start_worker()

    def done() -> bool:
        runs = client.get("/api/v1/clients/acme/sources/erp/runs", headers=auth).json()["runs"]
        return len(runs) == 2 and all(r["status"] == "succeeded" for r in runs)

    wait_for(done, timeout=120, what="the products and customers runs")


def test_catalogue_feed_and_records_conform(
    api: tuple[TestClient, dict[str, str]], embedded_hub: Hub
) -> None:
    client, auth = api
    _synced(client, auth, embedded_hub)
    for stream, one, key in (("products", "product", "sku"), ("customers", "customer", "code")):
        path = f"{C}/{stream}"
        url = f"/api/v1/clients/acme/{stream}"
        first = _conforms(client.get(f"{url}?limit=2", headers=auth), path)
        assert len(first["items"]) == 2 and first["more"] is True
        rest = _conforms(client.get(f"{url}?after={first['next']}", headers=auth), path)
        assert rest["items"] and rest["items"][0][one] is not None
        for bad in ("limit=0", "limit=x", "after=not-a-cursor"):
            answer = client.get(f"{url}?{bad}", headers=auth)
            assert answer.status_code == 400, bad
            _conforms(answer, path)
        _conforms(client.get(url), path)  # 401
        code = first["items"][0]["code"]
        record = client.get(f"{url}/{code}", headers=auth)
        assert record.status_code == 200
        assert _conforms(record, f"{path}/{{{key}}}")["code"] == code
        missing = client.get(f"{url}/no-such-code", headers=auth)
        assert missing.status_code == 404
        _conforms(missing, f"{path}/{{{key}}}")
