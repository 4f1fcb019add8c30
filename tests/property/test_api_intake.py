"""Order intake over HTTP never crashes, whatever the body: stored, or refused by name.

Property-based: the API's ``POST /api/v1/clients/<client>/orders`` on the
production shape (PostgreSQL, Redis) is sent orders with any field replaced
by anything (see tests/unit/test_property_maps.py), and bodies that are not
JSON at all. Every answer is 201 or 200 (stored, or a repeat) or a 4xx whose
message names the field; never a 500. Stored orders are then read back
through the API by the same client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from hub.db import session_scope
from s2s.api import create_app
from tests.conftest import Hub
from tests.unit.test_property_maps import BASE_ORDER as BASE
from tests.unit.test_property_maps import orders
from workers.sources import hash_token, upsert_client

pytestmark = pytest.mark.services

TOKEN = "prop-token-1"
URL = "/api/v1/clients/acme/orders"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def api(pg_hub: Hub) -> Iterator[TestClient]:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        client.api_token_hash = hash_token(TOKEN)
    yield TestClient(create_app())


def _body(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


BODIES = st.one_of(
    orders().map(_body),
    st.binary(max_size=200),
    st.text(max_size=100).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'{"line_items": "lots"}',
            b'{"channel_order_code": "\\u0000"}',
            "\ufeff{}".encode(),
            b'{"a": 1e999}',
            b"[" * 50 + b"]" * 50,
        ]
    ),
)


def _check(api: TestClient, body: bytes) -> None:
    answer = api.post(URL, headers=AUTH, content=body)
    assert answer.status_code in (200, 201, 400, 422), (answer.status_code, answer.text[:500])
    payload = answer.json()
    if answer.status_code >= 400:
        assert payload["error"].strip()
        if answer.status_code == 422:
            assert all(e["field"] and e["message"] for e in payload["errors"])
        return
    shown = api.get(f"{URL}/{payload['order']}", headers=AUTH)
    assert shown.status_code == 200 and shown.json()["order"] == payload["order"]


def test_any_body_is_stored_or_refused_by_name(api: TestClient) -> None:
    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(body=BODIES)
    def check(body: bytes) -> None:
        _check(api, body)

    check()


def test_a_deeply_nested_body_is_a_400(api: TestClient) -> None:
    answer = api.post(URL, headers=AUTH, content=b"[" * 100_000)
    assert answer.status_code == 400 and "JSON" in answer.json()["error"]


def test_a_nul_character_is_refused_by_name(api: TestClient) -> None:
    order = json.loads(_body(BASE))
    order["line_items"][0]["sku"] = "S\x001"
    answer = api.post(URL, headers=AUTH, content=_body(order))
    assert answer.status_code == 422 and "sku" in answer.json()["error"]
