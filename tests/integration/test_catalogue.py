"""The catalogue read back on PostgreSQL: the change feed over the COPY path,
and (below) the HTTP routes and CLI commands over a synced hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from emulators import sql_erp
from hub.db import session_scope
from s2s.api import create_app
from tests.conftest import Hub, assert_one_line_error
from tests.integration.test_sync_e2e import _expected, _wait_run
from tests.unit.test_change_feed import (  # noqa: F401  (run again here, on PostgreSQL)
    migration_numbers_existing_rows,
    test_an_unchanged_resync_adds_nothing_to_the_feed,
    test_customers_have_their_own_feed,
    test_inserts_updates_deletes_appear_once_each_in_order,
    test_listing_filters_and_one_by_code_or_sku,
    test_paging_with_small_limits_returns_every_change_exactly_once,
    test_two_clients_number_and_read_their_own_changes,
)
from workers.sources import hash_token, upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services]


def test_the_migration_numbers_existing_rows_on_postgresql(postgres_db: Any) -> None:
    migration_numbers_existing_rows(postgres_db())


# --------------------------------------------------------------------------
# The HTTP routes and the CLI over a hub synced from ERP emulators
# --------------------------------------------------------------------------

PRODUCTS = 40
SEED = 21
TOKENS = {"acme": "acme-token-catalogue-1", "beta": "beta-token-catalogue-2"}


@dataclass
class Synced:
    hub: Hub
    erp: dict[str, str]  # client code -> its ERP's URL
    source_ids: dict[str, int]
    expected: dict[str, dict[str, Any]]  # product code -> title and variants


def _sync(source_id: int, stream: str = "products") -> None:
    run = _wait_run(start_sync(source_id, stream, requested_by="test").run.id)
    assert run.status == "succeeded", run.error


@pytest.fixture
def synced(pg_hub: Hub) -> Iterator[Synced]:
    """Two clients on two ERPs seeded alike (same codes and SKUs), synced."""
    erp: dict[str, str] = {}
    source_ids: dict[str, int] = {}
    for code in ("acme", "beta"):
        url = erp[code] = f"sqlite:///{pg_hub.var_dir / f'{code}-erp.sqlite'}"
        sql_erp.seed(url, products=PRODUCTS, customers=6, seed=SEED)
        with session_scope() as s:
            client, _ = upsert_client(s, code)
            client.api_token_hash = hash_token(TOKENS[code])
            source_ids[code] = upsert_source(s, client, "erp", "sql", {"url": url}).id
    pg_hub.start_worker(concurrency=2)
    for code in ("acme", "beta"):
        _sync(source_ids[code])
    _sync(source_ids["acme"], "customers")
    expected = _expected(sql_erp.generate_rows(PRODUCTS, SEED))
    yield Synced(pg_hub, erp, source_ids, expected)


def _auth(code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[code]}"}


def _read_feed(api: TestClient, client: str, stream: str, after: str | None, limit: int):
    items: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": limit, **({"after": after} if after else {})}
        answer = api.get(f"/api/v1/clients/{client}/{stream}", params=params, headers=_auth(client))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        after = body["next"]
        if not body["more"]:
            return items, after


def test_the_feed_over_http_each_change_once_per_client(synced: Synced) -> None:
    api = TestClient(create_app())
    acme, acme_next = _read_feed(api, "acme", "products", None, 7)
    beta, beta_next = _read_feed(api, "beta", "products", None, 1000)
    for items in (acme, beta):
        assert sorted(i["code"] for i in items) == sorted(synced.expected)  # each once
        assert all(i["source"] == "erp" and not i["deleted"] for i in items)
    first = acme[0]["product"]
    want = synced.expected[acme[0]["code"]]
    assert first["title"] == want["title"]
    assert {v["sku"] for v in first["variants"]} == set(want["variants"])

    # Beta's ERP changes: Beta's feed has exactly those products, Acme's nothing.
    changed = sql_erp.change_rows(synced.erp["beta"], 3, seed=5)
    gone = next(
        p for p, v in synced.expected.items() if list(v["variants"]) == [p] and p not in changed
    )
    sql_erp.set_flag(synced.erp["beta"], gone, "Delete")
    _sync(synced.source_ids["beta"])
    _sync(synced.source_ids["acme"])  # unchanged: nothing new in Acme's feed
    later, _ = _read_feed(api, "beta", "products", beta_next, 2)
    rows = sql_erp.generate_rows(PRODUCTS, SEED)
    products_changed = {next(r["Prod"] for r in rows if r["SKU"] == sku) for sku in changed}
    assert sorted(i["code"] for i in later) == sorted(products_changed | {gone})
    tombstone = next(i for i in later if i["code"] == gone)
    assert tombstone["deleted"] is True and tombstone["product"] is None
    assert _read_feed(api, "acme", "products", acme_next, 5)[0] == []

    # One product by code or SKU; each client sees its own copy only.
    sku = next(iter(synced.expected[gone]["variants"]))
    own = api.get(f"/api/v1/clients/acme/products/{sku}", headers=_auth("acme"))
    assert own.status_code == 200 and own.json()["code"] == gone and not own.json()["deleted"]
    theirs = api.get(f"/api/v1/clients/beta/products/{sku}", headers=_auth("beta"))
    assert theirs.json()["deleted"] is True
    missing = api.get("/api/v1/clients/acme/products/NO-SUCH-SKU", headers=_auth("acme"))
    assert missing.status_code == 404 and "NO-SUCH-SKU" in missing.json()["error"]


def test_customers_over_http(synced: Synced) -> None:
    api = TestClient(create_app())
    items, cursor = _read_feed(api, "acme", "customers", None, 4)
    codes = [r["Customer"] for r in sql_erp.generate_customers(6, SEED)]
    assert sorted(i["code"] for i in items) == sorted(codes)
    assert _read_feed(api, "beta", "customers", None, 4)[0] == []  # never synced for Beta
    one = api.get(f"/api/v1/clients/acme/customers/{codes[0]}", headers=_auth("acme"))
    assert one.status_code == 200 and one.json()["customer"]["source_customer_code"] == codes[0]
    assert (
        api.get(f"/api/v1/clients/beta/customers/{codes[0]}", headers=_auth("beta")).status_code
        == 404
    )
    # A products cursor is not a customers cursor.
    _, products_cursor = _read_feed(api, "acme", "products", None, 1000)
    wrong = api.get(
        "/api/v1/clients/acme/customers", params={"after": products_cursor}, headers=_auth("acme")
    )
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("after:")
    assert cursor != products_cursor


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "not-a-cursor"}, "after"),
    ],
)
def test_bad_feed_parameters_are_400_naming_them(
    synced: Synced, params: dict[str, str], named: str
) -> None:
    api = TestClient(create_app())
    answer = api.get("/api/v1/clients/acme/products", params=params, headers=_auth("acme"))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(named)


def test_the_catalogue_routes_need_the_clients_own_token(synced: Synced) -> None:
    api = TestClient(create_app())
    sku = next(iter(next(iter(synced.expected.values()))["variants"]))
    for path in ("products", f"products/{sku}", "customers", "customers/C00001"):
        url = f"/api/v1/clients/acme/{path}"
        assert api.get(url).status_code == 401
        assert api.get(url, headers=_auth("beta")).status_code == 401  # Beta's token
        assert api.get(f"/api/v1/clients/nobody/{path}").status_code == 404


def test_the_cli_lists_and_shows_products_and_customers(synced: Synced) -> None:
    hub = synced.hub
    listed = hub.run_cli("products", "list", "--client", "acme", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(i["code"] for i in json.loads(listed.stdout)) == sorted(synced.expected)
    code, want = next((c, v) for c, v in synced.expected.items() if len(v["variants"]) > 1)
    sku = sorted(want["variants"])[-1]
    table = hub.run_cli("products", "list", "--client", "acme", "--sku", sku)
    assert table.returncode == 0, table.stderr
    assert code in table.stdout and want["title"] in table.stdout  # whole, not cut
    assert "active" in table.stdout
    shown = hub.run_cli("products", "show", "--client", "acme", sku)
    assert shown.returncode == 0, shown.stderr
    assert want["title"] in shown.stdout
    assert all(s in shown.stdout for s in want["variants"])
    as_json = json.loads(hub.run_cli("products", "show", "--client", "acme", code, "--json").stdout)
    assert as_json["code"] == code and as_json["product"]["title"] == want["title"]
    # Filters.
    none = hub.run_cli("products", "list", "--client", "acme", "--inactive")
    assert none.returncode == 0 and "no products match" in none.stdout
    later = hub.run_cli("products", "list", "--client", "acme", "--changed-since", "2999-01-01")
    assert "no products match" in later.stdout
    few = hub.run_cli("products", "list", "--client", "acme", "--limit", "3", "--json")
    assert len(json.loads(few.stdout)) == 3
    assert (
        "no products match"
        in hub.run_cli("products", "list", "--client", "acme", "--source", "other").stdout
    )
    # Customers.
    customer = sql_erp.generate_customers(6, SEED)[0]
    clist = hub.run_cli("customers", "list", "--client", "acme")
    assert clist.returncode == 0 and customer["Customer"] in clist.stdout
    cshow = hub.run_cli("customers", "show", "--client", "acme", customer["Customer"])
    assert cshow.returncode == 0, cshow.stderr
    assert customer["Email"] in cshow.stdout and customer["FirstName"] in cshow.stdout
    # Operator errors: one line each.
    assert_one_line_error(hub.run_cli("products", "list", "--client", "nobody"), "no client")
    assert_one_line_error(
        hub.run_cli("products", "show", "--client", "acme", "NO-SUCH"), "has no product"
    )
    assert_one_line_error(
        hub.run_cli("customers", "list", "--client", "acme", "--changed-since", "soon"),
        "--changed-since",
    )
