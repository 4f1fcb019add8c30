"""The HTTP API: per-client tokens, resyncs, run history, health."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from emulators import sql_erp
from hub.db import session_scope
from s2s.api import create_app
from tests.conftest import Hub, wait_for
from workers.sources import upsert_client, upsert_source


@pytest.fixture
def api(embedded_hub: Hub) -> Any:
    erp = f"sqlite:///{embedded_hub.var_dir / 'erp.sqlite'}"
    sql_erp.create_schema(erp)
    sql_erp.seed(erp, products=200, customers=5, seed=2)
    with session_scope() as s:
        acme, acme_token = upsert_client(s, "acme")
        other, other_token = upsert_client(s, "other")
        upsert_source(s, acme, "erp", "sql", {"url": erp})
        upsert_source(s, other, "erp", "sql", {"url": erp})
    return TestClient(create_app()), acme_token, other_token


def test_resync_needs_the_clients_own_token(api: Any) -> None:
    client, _, other_token = api
    url = "/api/v1/clients/acme/sources/erp/resync"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    # Another client's valid token does not open acme's sources.
    assert client.post(url, headers={"Authorization": f"Bearer {other_token}"}).status_code == 401
    assert client.post("/api/v1/clients/nobody/sources/erp/resync").status_code == 404


def test_resync_starts_one_run_and_says_so(api: Any, embedded_hub: Hub) -> None:
    client, token, _ = api
    auth = {"Authorization": f"Bearer {token}"}
    url = "/api/v1/clients/acme/sources/erp/resync"
    first = client.post(url, headers=auth, json={"stream": "products"})
    assert first.status_code == 202 and first.json()["started"] is True
    second = client.post(url, headers=auth, json={"stream": "products"})
    assert second.status_code == 200 and second.json()["started"] is False
    assert second.json()["run"] == first.json()["run"]
    assert "already active" in second.json()["message"]

    embedded_hub.start_worker()

    def done() -> dict[str, Any] | None:
        runs = client.get("/api/v1/clients/acme/sources/erp/runs", headers=auth).json()["runs"]
        return runs[0] if runs and runs[0]["status"] != "running" else None

    run = wait_for(done, timeout=120, what="the API-started run")
    assert run["status"] == "succeeded" and run["created"] > 0 and run["requested_by"] == "api"


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"stream": "orders"}', 422, "does not support syncing orders"),
    ],
)
def test_bad_requests_name_the_problem(api: Any, body: bytes, status: int, text: str) -> None:
    client, token, _ = api
    response = client.post(
        "/api/v1/clients/acme/sources/erp/resync",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        content=body,
    )
    assert response.status_code == status
    assert text in response.json()["error"]


def test_health_reports_database_and_broker(api: Any) -> None:
    client, _, _ = api
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
