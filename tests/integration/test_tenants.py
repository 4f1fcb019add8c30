"""Tenants: two clients on the same kind of ERP, with the same SKUs, never meet.

Acme and Beta both run a SQL ERP seeded from the same generator, so every
product code and SKU exists in both; Beta's prices then change. Everything a
user can look at — products, runs, orders, dead letters, through the CLI and
the HTTP API — is checked from both sides, and so is what lands in each ERP:
an order is raised into its own client's ERP only, a token opens only its own
client's URLs, and a webhook signed for one client cannot create the other's
order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from starlette.testclient import TestClient

from connectors.shopify.intake import sign as sign_shopify
from emulators import sql_erp
from hub.db import session_scope
from hub.models import Client, DeadLetter, Order, Product, SyncRun, Variant
from s2s.api import create_app
from tests.conftest import Hub, wait_for
from tests.integration.test_api_orders import shopify_payload
from tests.integration.test_orders_e2e import canonical
from tests.integration.test_sync_e2e import _expected
from workers.orders import submit
from workers.sources import hash_token, set_channels, upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

PRODUCTS = 60
SEED = 21
TOKENS = {"acme": "acme-token-0001", "beta": "beta-token-0002"}
WEBHOOK_SECRETS = {"acme": "acme-shopify-secret", "beta": "beta-shopify-secret"}


@dataclass
class Tenant:
    code: str
    client_id: int
    source_id: int
    erp_url: str
    run_id: int = 0


@dataclass
class World:
    hub: Hub
    acme: Tenant
    beta: Tenant
    skus: list[str]
    beta_changed: list[str]


def _wait_run(run_id: int) -> SyncRun:
    def done() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run.status != "running" else None

    return wait_for(done, timeout=120, what=f"run {run_id}")


def _order_status(order_id: int) -> str:
    with session_scope() as s:
        return s.get(Order, order_id).status


@pytest.fixture
def world(pg_hub: Hub) -> Iterator[World]:
    tenants: dict[str, Tenant] = {}
    for code in ("acme", "beta"):
        url = f"sqlite:///{pg_hub.var_dir / f'{code}-erp.sqlite'}"
        sql_erp.seed(url, products=PRODUCTS, customers=5, seed=SEED)
        with session_scope() as s:
            client, _ = upsert_client(s, code)
            client.api_token_hash = hash_token(TOKENS[code])
            set_channels(s, client, {"shopify": {"secret": WEBHOOK_SECRETS[code]}})
            # Both sources are called "erp": only the client tells them apart.
            source = upsert_source(
                s,
                client,
                "erp",
                "sql",
                {"url": url, "default_customer_code": "CASH", "shipping_code": "SHIP"},
            )
            tenants[code] = Tenant(code, client.id, source.id, url)
    beta_changed = sql_erp.change_rows(tenants["beta"].erp_url, 5, seed=3)
    pg_hub.start_worker(concurrency=2)
    for tenant in tenants.values():
        tenant.run_id = start_sync(tenant.source_id, "products", requested_by="test").run.id
    for tenant in tenants.values():
        run = _wait_run(tenant.run_id)
        assert run.status == "succeeded", run.error
    expected = _expected(sql_erp.generate_rows(PRODUCTS, SEED))
    skus = sorted(sku for p in expected.values() for sku in p["variants"])
    yield World(pg_hub, tenants["acme"], tenants["beta"], skus, beta_changed)


def _auth(code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[code]}"}


def test_same_skus_two_clients_each_sees_only_its_own(world: World) -> None:
    expected = _expected(sql_erp.generate_rows(PRODUCTS, SEED))
    with session_scope() as s:
        for tenant in (world.acme, world.beta):
            codes = set(
                s.scalars(
                    select(Product.source_product_code).where(Product.client_id == tenant.client_id)
                )
            )
            assert codes == set(expected), tenant.code  # same codes, one copy each
            foreign = s.scalar(
                select(func.count())
                .select_from(Product)
                .where(Product.client_id == tenant.client_id)
                .where(Product.source_id != tenant.source_id)
            )
            assert foreign == 0
        # Beta's changed prices are Beta's alone.
        for sku in world.beta_changed:
            prices = dict(
                s.execute(select(Variant.client_id, Variant.price).where(Variant.sku == sku)).all()
            )
            assert set(prices) == {world.acme.client_id, world.beta.client_id}
            assert prices[world.acme.client_id] != prices[world.beta.client_id], sku

    # Run history through the CLI: the same source code, two clients, two histories.
    for tenant, other in ((world.acme, world.beta), (world.beta, world.acme)):
        shown = world.hub.run_cli("runs", tenant.code, "erp")
        assert shown.returncode == 0, shown.stderr
        ids = {int(line.split()[1]) for line in shown.stdout.splitlines() if _run_row(line)}
        assert ids == {tenant.run_id}, shown.stdout
        assert other.run_id not in ids

    # ... and through the API, with each client's own token.
    api = TestClient(create_app())
    for tenant, other in ((world.acme, world.beta), (world.beta, world.acme)):
        runs = api.get(
            f"/api/v1/clients/{tenant.code}/sources/erp/runs", headers=_auth(tenant.code)
        )
        assert runs.status_code == 200
        assert [r["id"] for r in runs.json()["runs"]] == [tenant.run_id]
        status = api.get(f"/api/v1/clients/{tenant.code}/status", headers=_auth(tenant.code))
        assert status.json()["client"] == tenant.code
        last_runs = {row["last_run"]["id"] for row in status.json()["streams"] if row["last_run"]}
        assert last_runs == {tenant.run_id}
        assert other.run_id not in last_runs


def _run_row(line: str) -> bool:
    cells = line.split()
    return len(cells) > 2 and cells[0] in ("│", "|") and cells[1].isdigit()


def test_orders_and_dead_letters_stay_with_their_client(world: World) -> None:
    sku = world.skus[0]  # in both ERPs and both clients' products
    acme_order, errors = submit(world.acme.client_id, canonical("SAME-1", [sku]))
    assert acme_order is not None, errors
    # The same channel order code for the other client is another order, not a duplicate.
    beta_order, errors = submit(world.beta.client_id, canonical("SAME-1", [sku]))
    assert beta_order is not None and beta_order.created, errors
    assert beta_order.order.id != acme_order.order.id
    # A SKU Beta does not have: dead-lettered for Beta.
    beta_dead, _ = submit(world.beta.client_id, canonical("BETA-DEAD", ["NO-SUCH-SKU"]))
    assert beta_dead is not None
    ids = {"acme": acme_order.order.id, "beta": beta_order.order.id}
    for order_id in ids.values():
        wait_for(lambda i=order_id: _order_status(i) == "raised", timeout=90, what="raised")
    wait_for(lambda: _order_status(beta_dead.order.id) == "dead", timeout=90, what="dead letter")

    # Each ERP got exactly its own client's order.
    for tenant in (world.acme, world.beta):
        counts = sql_erp.order_counts(tenant.erp_url)
        assert (counts.headers, counts.orders) == (1, 1), tenant.code
        engine = create_engine(tenant.erp_url)
        with engine.connect() as conn:
            document = conn.execute(text("SELECT id FROM s2s_order")).scalar_one()
        engine.dispose()
        with session_scope() as s:
            order = s.get(Order, ids[tenant.code])
            assert order.source_id == tenant.source_id
            assert order.document_number == str(document)
        with session_scope() as s:
            letters = s.scalars(select(DeadLetter.client_id)).all()
        assert letters == [world.beta.client_id]

    # The CLI's per-client views.
    hub = world.hub
    acme_dlq = hub.run_cli("dlq", "list", "--client", "acme")
    assert acme_dlq.returncode == 0 and "no open dead letters" in acme_dlq.stdout
    beta_dlq = hub.run_cli("dlq", "list", "--client", "beta")
    assert beta_dlq.returncode == 0 and "BETA-DEAD" in beta_dlq.stdout
    acme_orders = hub.run_cli("orders", "list", "--client", "acme")
    assert acme_orders.returncode == 0
    assert "SAME-1" in acme_orders.stdout and "BETA-DEAD" not in acme_orders.stdout
    assert "beta" not in acme_orders.stdout

    # The API: a client sees its own orders; the other's id is not there for it.
    api = TestClient(create_app())
    url = "/api/v1/clients/{client}/orders/{order}"
    own = api.get(url.format(client="acme", order=ids["acme"]), headers=_auth("acme"))
    assert own.status_code == 200 and own.json()["status"] == "raised"
    for order in (ids["beta"], beta_dead.order.id):
        peek = api.get(url.format(client="acme", order=order), headers=_auth("acme"))
        assert peek.status_code == 404, peek.text
        assert "SAME-1" not in peek.text and "BETA-DEAD" not in peek.text
    dead = api.get(url.format(client="beta", order=beta_dead.order.id), headers=_auth("beta"))
    assert dead.json()["status"] == "dead" and "NO-SUCH-SKU" in dead.json()["last_error"]


def test_a_token_opens_only_its_own_clients_urls(world: World) -> None:
    api = TestClient(create_app())
    beta_order, _ = submit(world.beta.client_id, canonical("B-1", [world.skus[1]]))
    assert beta_order is not None
    before = _counts()
    acme_on_beta = _auth("acme")
    answers = {
        "status": api.get("/api/v1/clients/beta/status", headers=acme_on_beta),
        "runs": api.get("/api/v1/clients/beta/sources/erp/runs", headers=acme_on_beta),
        "resync": api.post(
            "/api/v1/clients/beta/sources/erp/resync",
            headers=acme_on_beta,
            json={"stream": "products"},
        ),
        "submit": api.post(
            "/api/v1/clients/beta/orders",
            headers=acme_on_beta,
            json=canonical("FROM-ACME", [world.skus[2]]),
        ),
        "order": api.get(
            f"/api/v1/clients/beta/orders/{beta_order.order.id}", headers=acme_on_beta
        ),
    }
    for what, answer in answers.items():
        assert answer.status_code == 401, (what, answer.text)
        assert "B-1" not in answer.text and "beta-token" not in answer.text
    assert _counts() == before  # no run started, no order stored

    # Acme's own token on its own URL writes to acme only.
    mine = api.post(
        "/api/v1/clients/acme/orders",
        headers=_auth("acme"),
        json=canonical("FROM-ACME", [world.skus[2]]),
    )
    assert mine.status_code == 201, mine.text
    with session_scope() as s:
        assert s.get(Order, mine.json()["order"]).client_id == world.acme.client_id


def test_a_webhook_for_one_client_cannot_create_anothers_order(world: World) -> None:
    api = TestClient(create_app())
    body = json.dumps(shopify_payload(5001, world.skus[3])).encode()

    def post(client: str, secret: str) -> Any:
        return api.post(
            f"/webhooks/shopify/{client}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Hmac-Sha256": sign_shopify(body, secret),
                "X-Shopify-Webhook-Id": f"delivery-{client}-{secret[:4]}",
            },
        )

    before = _counts()
    # Signed with Acme's secret but sent to Beta's URL (and the reverse): refused.
    assert post("beta", WEBHOOK_SECRETS["acme"]).status_code == 401
    assert post("acme", WEBHOOK_SECRETS["beta"]).status_code == 401
    assert _counts() == before
    # Signed for Beta, at Beta's URL: Beta's order, and only Beta's.
    answer = post("beta", WEBHOOK_SECRETS["beta"])
    assert answer.status_code == 201, answer.text
    with session_scope() as s:
        order = s.get(Order, answer.json()["order"])
        assert order.client_id == world.beta.client_id
        assert (
            s.scalar(
                select(func.count())
                .select_from(Order)
                .where(Order.client_id == world.acme.client_id)
            )
            == 0
        )
    wait_for(lambda: _order_status(answer.json()["order"]) == "raised", timeout=90, what="raised")
    assert sql_erp.order_counts(world.acme.erp_url).headers == 0
    assert sql_erp.order_counts(world.beta.erp_url).headers == 1


def _counts() -> tuple[int, int]:
    with session_scope() as s:
        return (
            s.scalar(select(func.count()).select_from(Order)) or 0,
            s.scalar(select(func.count()).select_from(SyncRun)) or 0,
        )


def test_channel_order_codes_are_unique_per_client_not_globally(world: World) -> None:
    with session_scope() as s:
        names = dict(s.execute(select(Client.code, Client.id)).all())
    assert set(names) == {"acme", "beta"}
    first, _ = submit(names["acme"], canonical("#77", [world.skus[4]]))
    second, _ = submit(names["beta"], canonical("#77", [world.skus[4]]))
    again, _ = submit(names["acme"], canonical("#77", [world.skus[4]]))
    assert first is not None and second is not None and again is not None
    assert first.created and second.created and not again.created
    assert again.order.id == first.order.id != second.order.id
