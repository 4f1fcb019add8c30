"""End to end: an ERP's catalogue synced, then pushed to an emulated Shopify store.

Real PostgreSQL, Redis, worker processes (and beat where the schedule or the
sweeper is what is tested) and the Shopify emulator over HTTP. What the
store holds is compared with the hub's products recomputed here from the
hub's rows, never with the push's own bookkeeping alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from emulators import sql_erp
from emulators.shopify import RunningServer, serve
from hub.db import session_scope
from hub.models import Channel, ChannelProduct, Product, PushRun, Source
from tests.conftest import Hub, wait_for
from tests.integration.test_sync_e2e import _sync
from workers.channels import get_channel
from workers.pushing import start_push
from workers.sources import get_client, set_channels, upsert_client, upsert_source

pytestmark = [pytest.mark.services, pytest.mark.slow]

TOKEN = "shpat_push_e2e_5b1f0c"
WEBHOOK_SECRET = "whsec_push_e2e"


@pytest.fixture
def shop() -> Iterator[RunningServer]:
    with serve(access_token=TOKEN) as running:
        yield running


def _setup(erp_url: str, products: int, seed: int = 42) -> int:
    sql_erp.create_schema(erp_url)
    sql_erp.seed(erp_url, products=products, customers=0, seed=seed)
    with session_scope() as s:
        client, _ = upsert_client(s, "acme", "Acme")
        source = upsert_source(s, client, "erp", "sql", {"url": erp_url, "page_size": 500})
        return source.id


def _declare(shop: RunningServer, token: str = TOKEN, **settings: Any) -> int:
    with session_scope() as s:
        client = get_client(s, "acme")
        spec = {
            "kind": "shopify",
            "secret": WEBHOOK_SECRET,
            "store_url": shop.base_url,
            "allow_http": True,
            "access_token": token,
            **settings,
        }
        set_channels(s, client, {"shop": spec})
        channel = get_channel(s, client, "shop")
        assert channel is not None
        return channel.id


def _wait_push(run_id: int, timeout: float = 300) -> PushRun:
    def done() -> PushRun | None:
        with session_scope() as s:
            run = s.get(PushRun, run_id)
            if run is None or run.status == "running":
                return None
            s.expunge(run)
            return run

    return wait_for(done, timeout=timeout, what=f"push {run_id} to end")


def _push(channel_id: int, **options: Any) -> PushRun:
    result = start_push(channel_id, requested_by="test", **options)
    assert result.created
    run = _wait_push(result.run.id)
    assert run.status == "succeeded", run.error
    return run


def _hub_active() -> dict[str, dict[str, Any]]:
    """The hub's live products by key, as the store should show them (retail
    tier, stock = qty: the channel's defaults)."""
    out: dict[str, dict[str, Any]] = {}
    with session_scope() as s:
        rows = s.execute(
            select(Product, Source.code)
            .join(Source, Source.id == Product.source_id)
            .where(Product.deleted_at.is_(None), Product.active.is_(True))
        ).all()
        for product, source in rows:
            out[f"{source}:{product.source_product_code}"] = {
                "title": product.data["title"],
                "variants": {
                    v["sku"]: (Decimal(str(v["price"])).quantize(Decimal("0.01")), v["qty"])
                    for v in product.data["variants"]
                },
            }
    return out


def _store_by_key(shop: RunningServer) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in shop.products():
        key = p["metafields"].get("s2s.product_key")
        assert key is not None, f"store product {p['id']} has no product key"
        assert key not in out, f"two store products for {key}"
        out[key] = p
    return out


def _assert_store_matches_hub(shop: RunningServer) -> None:
    hub = _hub_active()
    store = _store_by_key(shop)
    active = {k: p for k, p in store.items() if p["status"] == "ACTIVE"}
    assert set(active) == set(hub)
    location = shop.location_id
    skus = [v["sku"] for p in store.values() for v in p["variants"]]
    assert len(skus) == len(set(skus)), "a SKU is in the store twice"
    for key, want in hub.items():
        got = active[key]
        assert got["title"] == want["title"], key
        variants = {v["sku"]: v for v in got["variants"]}
        assert set(variants) == set(want["variants"]), key
        for sku, (price, qty) in want["variants"].items():
            assert Decimal(str(variants[sku]["price"])) == price, sku
            assert variants[sku]["available"].get(location, 0) == (qty or 0), sku


def _binder() -> dict[str, ChannelProduct]:
    with session_scope() as s:
        rows = list(s.scalars(select(ChannelProduct)))
        for r in rows:
            s.expunge(r)
    return {r.key: r for r in rows}


def test_a_catalogue_pushed_kept_up_to_date_and_archived(
    pg_hub: Hub, postgres_db: Any, shop: RunningServer
) -> None:
    """5,000 ERP rows: a first push by bulk operation, a second push that
    sends nothing, ten changed rows that reach the store as exactly their
    products' writes after a sync (pushed by beat, debounced), a deleted
    product archived, and a refused product recorded with Shopify's words."""
    pg_hub.env.update({"S2S_PUSH_DEBOUNCE": "1", "S2S_DISPATCH_EVERY": "1"})
    erp_url = postgres_db("s2s_erp")
    rows = sql_erp.generate_rows(5000, 42)
    source_id = _setup(erp_url, 5000)
    pg_hub.start_worker(concurrency=2)
    _sync(source_id)
    channel_id = _declare(shop, bulk_threshold=1000, schedule="off")

    # 1. The first push goes by bulk operation; the store holds the hub's
    # active products exactly, every one confirmed.
    first = _push(channel_id)
    refusals = [r.error for r in _binder().values() if r.error]
    assert first.created == len(_hub_active()) and first.refused == 0, refusals[:3]
    assert len(shop.shop.bulk) == 1  # one bulk operation, its lines run by the store
    assert shop.mutations("productSet") == len(_hub_active())
    _assert_store_matches_hub(shop)
    binder = _binder()
    assert len(binder) == len(_hub_active())
    assert all(r.store_id and r.error is None for r in binder.values())

    # 2. Nothing changed: a push sends no mutation at all.
    before = shop.mutations()
    second = _push(channel_id)
    assert shop.mutations() == before
    assert second.created + second.updated + second.stock + second.archived == 0

    # 3. Ten rows change in the ERP; the sync marks the channel, beat starts
    # the push after the debounce, and exactly those products are written.
    changed = sql_erp.change_rows(erp_url, 10, seed=3)
    products = {next(r["Prod"] for r in rows if r["SKU"] == sku) for sku in changed}
    writes = shop.mutations("productSet")
    pg_hub.start_beat()
    _sync(source_id)

    def pushed_after_sync() -> PushRun | None:
        with session_scope() as s:
            run = s.scalars(
                select(PushRun).where(PushRun.requested_by == "sync", PushRun.status != "running")
            ).first()
            if run is not None:
                s.expunge(run)
            return run

    third = wait_for(pushed_after_sync, timeout=120, what="the push after the sync")
    assert third.status == "succeeded", third.error
    assert shop.mutations("productSet") - writes == len(products)
    assert third.updated == len(products)
    _assert_store_matches_hub(shop)

    # 4. A product deleted in the ERP is archived in the store, not destroyed.
    simple = next(
        r["SKU"]
        for r in rows
        if r["SKU"] == r["Prod"] and r["Prod"] not in products and f"erp:{r['Prod']}" in binder
    )
    sql_erp.set_flag(erp_url, simple, "Delete")
    _sync(source_id)
    fourth = wait_for(
        lambda: _latest_finished(after=third.id), timeout=120, what="the push after the delete"
    )
    assert fourth.archived == 1, fourth.error
    archived = _store_by_key(shop)[f"erp:{simple}"]
    assert archived["status"] == "ARCHIVED"
    _assert_store_matches_hub(shop)

    # 5. The store refuses one product: it is recorded with Shopify's words,
    # the rest of its batch lands, and `s2s channel problems` shows it.
    again = sql_erp.change_rows(erp_url, 5, seed=11)
    refused_sku = again[0]
    shop.faults.refuse_sku(refused_sku, "Price must be less than 1,000,000")
    _sync(source_id)
    fifth = wait_for(
        lambda: _latest_finished(after=fourth.id), timeout=120, what="the push with a refusal"
    )
    assert fifth.refused == 1
    refused_key = f"erp:{next(r['Prod'] for r in rows if r['SKU'] == refused_sku)}"
    row = _binder()[refused_key]
    assert row.error is not None and "Price must be less than 1,000,000" in row.error
    result = pg_hub.run_cli("channel", "problems", "acme", "shop")
    assert result.returncode == 0, result.stderr
    assert refused_key.split(":", 1)[1] in result.stdout
    assert "Price must be less than" in result.stdout
    others = {f"erp:{next(r['Prod'] for r in rows if r['SKU'] == sku)}" for sku in again[1:]} - {
        refused_key
    }
    store = _store_by_key(shop)
    hub = _hub_active()
    for key in others:
        got = {v["sku"]: Decimal(str(v["price"])) for v in store[key]["variants"]}
        assert got == {sku: p for sku, (p, _) in hub[key]["variants"].items()}, key

    # 6. A paused channel gets no push after a sync; resumed, it does.
    paused = pg_hub.run_cli("channel", "pause", "acme", "shop")
    assert paused.returncode == 0 and "paused" in paused.stdout, paused.stderr
    sql_erp.change_rows(erp_url, 2, seed=23)
    _sync(source_id)
    time.sleep(4)  # debounce 1 s, dispatch every 1 s: a push would have started
    assert _latest_finished(after=fifth.id) is None
    assert pg_hub.run_cli("channel", "resume", "acme", "shop").returncode == 0
    sixth = wait_for(lambda: _latest_finished(after=fifth.id), timeout=60, what="resumed push")
    assert sixth.status == "succeeded" and sixth.updated >= 1, sixth.error

    # 7. What operations see: `s2s status` per channel, and /metrics by kind.
    status = pg_hub.run_cli("status", "--client", "acme")
    assert status.returncode == 0, status.stderr
    assert "shop" in status.stdout and "succeeded" in status.stdout
    _assert_push_metrics(refused=1, runs=6)


def _assert_push_metrics(*, refused: int, runs: int) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    from s2s.api import create_app

    response = TestClient(create_app()).get("/metrics")
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    kind = (("kind", "shopify"),)
    assert samples[("s2s_push_runs_total", (*kind, ("status", "succeeded")))] == runs
    assert samples[("s2s_push_refused_products", kind)] == refused
    assert samples[("s2s_push_lag_products", kind)] == 0
    archived = ("s2s_push_products_total", (*kind, ("outcome", "archived")))
    assert samples[archived] == 1
    assert "acme" not in response.text


def _latest_finished(after: int) -> PushRun | None:
    with session_scope() as s:
        run = s.scalars(
            select(PushRun)
            .where(PushRun.id > after, PushRun.status != "running")
            .order_by(PushRun.id.desc())
        ).first()
        if run is not None:
            s.expunge(run)
        return run


def _confirmed_count(channel_id: int) -> int:
    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(ChannelProduct)
                .where(
                    ChannelProduct.channel_id == channel_id, ChannelProduct.store_id.is_not(None)
                )
            )
            or 0
        )


def test_a_worker_killed_mid_push_and_a_dropped_answer_duplicate_nothing(
    pg_hub: Hub, postgres_db: Any
) -> None:
    """The worker is SIGKILLed while batches are being sent, and the store
    drops its answers after taking mutations: afterwards the store has one
    product per hub product and every product is confirmed."""
    pg_hub.env.update({"S2S_STALE_AFTER": "3", "S2S_SWEEP_EVERY": "1", "S2S_SLOT_LEASE": "8"})
    pg_hub.env["S2S_RETRY_BASE"] = "0.2"
    erp_url = postgres_db("s2s_erp")
    source_id = _setup(erp_url, 600, seed=7)
    worker = pg_hub.start_worker(concurrency=2)
    _sync(source_id)
    # A small bucket that refills fast: batches take a while, never long.
    with serve(access_token=TOKEN, maximum=400, restore_rate=200) as shop:
        channel_id = _declare(shop, bulk_threshold=0, schedule="off")
        run_id = start_push(channel_id, requested_by="test").run.id
        wait_for(lambda: _confirmed_count(channel_id) >= 100, timeout=120, what="100 confirmed")
        pg_hub.kill(worker)
        shop.faults.configure({"drop_after_commit": 3})
        pg_hub.start_beat()
        pg_hub.start_worker(concurrency=2, name="w2")
        run = _wait_push(run_id, timeout=240)
        assert run.status == "succeeded", run.error
        assert shop.faults.dropped == 3
        hub = _hub_active()
        store = _store_by_key(shop)
        assert len(shop.products()) == len(store) == len(hub)
        _assert_store_matches_hub(shop)
        assert _confirmed_count(channel_id) == len(hub)


def test_wrong_credentials_fail_the_push_in_one_line_without_the_secret(
    pg_hub: Hub, postgres_db: Any, shop: RunningServer
) -> None:
    erp_url = postgres_db("s2s_erp")
    source_id = _setup(erp_url, 50, seed=5)
    pg_hub.start_worker(concurrency=1)
    _sync(source_id)
    wrong = "shpat_wrong_9f8e7d6c5b4a"
    _declare(shop, token=wrong, schedule="off")
    result = pg_hub.run_cli("push", "acme", "shop", "--wait")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "access_token" in out
    assert wrong not in out
    with session_scope() as s:
        run = s.scalars(select(PushRun)).one()
        assert run.status == "failed" and run.error is not None
        assert "access_token" in run.error and "\n" not in run.error
        assert wrong not in run.error
        channel = s.scalars(select(Channel)).one()
        assert wrong not in json.dumps(channel.settings)
    assert wrong not in pg_hub.logs()


def test_throttling_waits_for_the_bucket_instead_of_hammering(
    pg_hub: Hub, postgres_db: Any
) -> None:
    """A bucket of 100 points that refills at 50 a second, emptied from
    outside three times while the push runs (another app of the store
    spending it): the push paces itself, and the store counts at most one
    refused request per throttle episode."""
    erp_url = postgres_db("s2s_erp")
    source_id = _setup(erp_url, 90, seed=9)
    pg_hub.start_worker(concurrency=1)
    _sync(source_id)
    with serve(access_token=TOKEN, maximum=100, restore_rate=50) as shop:
        channel_id = _declare(shop, bulk_threshold=0, schedule="off")
        run_id = start_push(channel_id, requested_by="test").run.id
        for _ in range(3):
            wait_for(lambda: shop.faults.requests > 5, timeout=60, what="the push to start")
            time.sleep(1.0)
            shop.bucket.drain()
        run = _wait_push(run_id)
        assert run.status == "succeeded", run.error
        _assert_store_matches_hub(shop)
        faults = shop.faults.snapshot()
        assert faults["throttle_episodes"] >= 1, faults
        assert faults["throttled"] == faults["throttle_episodes"]


def test_the_chosen_tier_compare_at_tier_and_warehouses_reach_the_store(
    pg_hub: Hub, postgres_db: Any, shop: RunningServer
) -> None:
    """SYSPRO's price codes and warehouses: the store's price is the chosen
    tier, its compare-at price the other chosen tier, and its stock the sum
    of the chosen warehouses' free stock, computed here from the emulated
    company's own rows."""
    from emulators import syspro
    from tests.integration.test_syspro_e2e import TIERS, _company, _run, _source

    companies = _company(postgres_db, 300)
    company = next(companies)
    request_close = companies.close  # the emulated e.net stops with the test
    with session_scope() as s:
        upsert_client(s, "acme", "Acme")
    _, source_id = _source(company)
    pg_hub.start_worker(concurrency=2)
    assert _run(source_id).status == "succeeded"
    channel_id = _declare(
        shop,
        price_tier="wholesale",
        compare_at_tier="retail",
        warehouses=["WH01", "WH03"],
        schedule="off",
    )
    run = _push(channel_id)
    rows = syspro.generate_stock(300, 6, 3, 3)
    tier_code = {tier: code for code, tier in TIERS.items()}
    active = {m["StockCode"] for m in rows.master if m["UserField1"] == "Y"}
    priced = {p["StockCode"] for p in rows.prices if p["PriceCode"] == tier_code["wholesale"]}
    codes = active & priced
    # A stock code without a wholesale price is refused by the hub, naming it.
    assert (run.created, run.refused) == (len(codes), len(active - priced))
    refusals = {r.key.split(":", 1)[1]: r.error for r in _binder().values() if r.error}
    assert set(refusals) == active - priced
    for code, error in refusals.items():
        assert error == f"hub: variant {code}: price: no price in the channel's tier 'wholesale'"
    store = {v["sku"]: v for p in shop.products() for v in p["variants"]}
    assert set(store) == codes
    for code in codes:
        prices = {p["PriceCode"]: p["SellingPrice"] for p in rows.prices if p["StockCode"] == code}
        free = sum(
            max(w["QtyOnHand"] - w["QtyAllocated"], 0)
            for w in rows.warehouses
            if w["StockCode"] == code and w["Warehouse"] in ("WH01", "WH03")
        )
        got = store[code]
        assert Decimal(str(got["price"])) == Decimal(str(prices[tier_code["wholesale"]])).quantize(
            Decimal("0.01")
        ), code
        assert Decimal(str(got["compare_at_price"])) == Decimal(
            str(prices[tier_code["retail"]])
        ).quantize(Decimal("0.01")), code
        assert got["available"][shop.location_id] == free, code
    request_close()
