"""End to end: an ERP's catalogue pushed to an emulated WooCommerce store.

Real PostgreSQL, Redis and worker processes, the WooCommerce emulator over
HTTP. Products with several variants become variable products (one option,
"Variant", valued by SKU: the SQL template maps no option names); the store
is compared with the hub's rows recomputed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from emulators import sql_erp
from emulators.woocommerce import RunningServer, serve
from hub.db import session_scope
from hub.models import ChannelProduct, PushRun
from tests.conftest import Hub, wait_for
from tests.integration.test_push_e2e import _binder, _hub_active, _setup, _wait_push
from tests.integration.test_sync_e2e import _sync
from workers.channels import get_channel
from workers.pushing import start_push
from workers.sources import get_client, set_channels

pytestmark = [pytest.mark.services, pytest.mark.slow]

KEY, SECRET = "ck_woo_e2e_8d7c6b", "cs_woo_e2e_5a4f3e"


@pytest.fixture
def woo() -> Iterator[RunningServer]:
    with serve(consumer_key=KEY, consumer_secret=SECRET) as running:
        yield running


def _declare(woo: RunningServer, secret: str = SECRET, **settings: Any) -> int:
    with session_scope() as s:
        client = get_client(s, "acme")
        spec = {
            "kind": "woocommerce",
            "secret": "wc_webhook_e2e",
            "store_url": woo.base_url,
            "allow_http": True,
            "consumer_key": KEY,
            "consumer_secret": secret,
            "schedule": "off",
            **settings,
        }
        set_channels(s, client, {"woo": spec})
        channel = get_channel(s, client, "woo")
        assert channel is not None
        return channel.id


def _push(channel_id: int, **options: Any) -> PushRun:
    run = _wait_push(start_push(channel_id, requested_by="test", **options).run.id)
    assert run.status == "succeeded", run.error
    return run


def _store_items(woo: RunningServer) -> dict[str, dict[str, Any]]:
    """Every live SKU in the store: its price, sale price, stock and status."""
    out: dict[str, dict[str, Any]] = {}
    for product in woo.products():
        if product["status"] == "trash":
            continue
        holders = product["variations"] if product["type"] == "variable" else [product]
        for item in holders:
            assert item["sku"] not in out, f"SKU {item['sku']} twice in the store"
            if product["type"] == "variable":
                # The SQL template names no options: one, "Variant", by SKU.
                chosen = [(a["name"], a["option"]) for a in item["attributes"]]
                assert chosen == [("Variant", item["sku"])], item
            out[item["sku"]] = {
                "price": Decimal(item["regular_price"]),
                "stock": item["stock_quantity"],
                "status": product["status"],
                "type": product["type"],
                "name": product["name"],
            }
    return out


def _assert_store_matches_hub(woo: RunningServer) -> None:
    hub = _hub_active()
    store = _store_items(woo)
    live = {sku: item for sku, item in store.items() if item["status"] == "publish"}
    want = {
        sku: (product["title"], price, qty, len(product["variants"]) > 1)
        for product in hub.values()
        for sku, (price, qty) in product["variants"].items()
    }
    assert set(live) == set(want)
    for sku, (title, price, qty, variable) in want.items():
        got = live[sku]
        assert (got["name"], got["price"], got["stock"] or 0) == (title, price, qty or 0), sku
        assert got["type"] == ("variable" if variable else "simple"), sku
    assert all(n == 1 for n in woo.sku_counts().values())


def test_a_catalogue_pushed_to_woocommerce_kept_up_to_date_and_drafted(
    pg_hub: Hub, postgres_db: Any, woo: RunningServer
) -> None:
    erp_url = postgres_db("s2s_erp")
    rows = sql_erp.generate_rows(5000, 42)
    source_id = _setup(erp_url, 5000)
    pg_hub.start_worker(concurrency=2)
    _sync(source_id)
    # The store already sells two of the hub's simple products: adopted, not doubled.
    active = _hub_active()
    simple = [r for r in rows if r["SKU"] == r["Prod"] and f"erp:{r['Prod']}" in active]
    for row in simple[:2]:
        made = httpx.post(
            f"{woo.api_url}/products",
            json={"name": "Hand-made listing", "sku": row["SKU"], "regular_price": "1.00"},
            auth=woo.auth,
        )
        assert made.status_code == 201, made.text
    channel_id = _declare(woo)

    first = _push(channel_id)
    hub = _hub_active()
    assert first.created + first.updated == len(hub) and first.refused == 0
    _assert_store_matches_hub(woo)
    assert any(len(p["variants"]) > 1 for p in hub.values())  # variable products included

    writes = dict(woo.writes())
    second = _push(channel_id)
    assert woo.writes() == writes
    assert second.created + second.updated + second.stock + second.archived == 0

    changed = sql_erp.change_rows(erp_url, 10, seed=3)
    products = {_product_of(rows, sku) for sku in changed}
    _sync(source_id)
    writes = dict(woo.writes())
    third = _push(channel_id)
    assert third.updated + third.stock == len(products)
    delta = {k: n - writes.get(k, 0) for k, n in woo.writes().items() if n != writes.get(k, 0)}
    variable = [
        hub[f"erp:{p}"]["variants"] for p in products if len(hub[f"erp:{p}"]["variants"]) > 1
    ]
    # One write per changed product; a changed variable product's variations
    # are sent together (the hub keeps one hash per product, not per variant).
    assert delta == {
        "product.updated": len(products),
        **({"variation.updated": sum(len(v) for v in variable)} if variable else {}),
    }
    _assert_store_matches_hub(woo)

    gone = simple[5]["SKU"]
    sql_erp.set_flag(erp_url, gone, "Delete")
    _sync(source_id)
    fourth = _push(channel_id)
    assert fourth.archived == 1
    assert woo.product_by_sku(gone)["status"] == "draft"  # type: ignore[index]
    _assert_store_matches_hub(woo)

    # One item of a batch refused: recorded with WooCommerce's code and words.
    again = sql_erp.change_rows(erp_url, 5, seed=11)
    woo.faults.refuse_sku(again[0], "product_invalid_sku", "Invalid or duplicated SKU.")
    _sync(source_id)
    fifth = _push(channel_id)
    assert fifth.refused == 1
    refused = [r for r in _binder().values() if r.error]
    assert len(refused) == 1
    assert "product_invalid_sku" in (refused[0].error or "")
    assert "Invalid or duplicated SKU." in (refused[0].error or "")


def _product_of(rows: list[dict[str, str]], sku: str) -> str:
    return next(r["Prod"] for r in rows if r["SKU"] == sku)


def _confirmed(channel_id: int) -> int:
    with session_scope() as s:
        query = (
            select(func.count())
            .select_from(ChannelProduct)
            .where(ChannelProduct.channel_id == channel_id, ChannelProduct.store_id.is_not(None))
        )
        return int(s.scalar(query) or 0)


def test_a_killed_worker_and_a_dropped_batch_duplicate_no_sku(
    pg_hub: Hub, postgres_db: Any, woo: RunningServer
) -> None:
    pg_hub.env.update({"S2S_STALE_AFTER": "3", "S2S_SWEEP_EVERY": "1", "S2S_SLOT_LEASE": "8"})
    erp_url = postgres_db("s2s_erp")
    source_id = _setup(erp_url, 3000, seed=7)
    worker = pg_hub.start_worker(concurrency=2)
    _sync(source_id)
    channel_id = _declare(woo, deleted="trash")
    run_id = start_push(channel_id, requested_by="test").run.id
    wait_for(lambda: _confirmed(channel_id) >= 300, timeout=120, what="300 confirmed")
    pg_hub.kill(worker)
    woo.faults.configure({"drop_after_commit": 2})
    pg_hub.start_beat()
    pg_hub.start_worker(concurrency=2, name="w2")
    run = _wait_push(run_id, timeout=240)
    assert run.status == "succeeded", run.error
    assert woo.faults.snapshot()["dropped"] == 2
    _assert_store_matches_hub(woo)
    assert _confirmed(channel_id) == len(_hub_active())


def test_plain_http_and_wrong_keys_fail_in_one_line_without_secrets(
    pg_hub: Hub, postgres_db: Any, woo: RunningServer
) -> None:
    erp_url = postgres_db("s2s_erp")
    source_id = _setup(erp_url, 40, seed=5)
    pg_hub.start_worker(concurrency=1)
    _sync(source_id)
    refused = pg_hub.run_cli(
        "channel",
        "add",
        "acme",
        "woocommerce",
        "--set",
        f"store_url={woo.base_url}",
        "--set",
        "secret=x",
    )
    assert refused.returncode != 0
    assert "store_url" in refused.stderr + refused.stdout and "allow_http" in (
        refused.stderr + refused.stdout
    )
    wrong = "cs_wrong_e2e_0000"
    _declare(woo, secret=wrong)
    result = pg_hub.run_cli("push", "acme", "woo", "--wait")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "consumer" in out and wrong not in out
    with session_scope() as s:
        run = s.scalars(select(PushRun)).one()
        assert run.status == "failed" and "consumer" in (run.error or "")
        assert wrong not in (run.error or "") and "\n" not in (run.error or "")
    assert wrong not in pg_hub.logs()
