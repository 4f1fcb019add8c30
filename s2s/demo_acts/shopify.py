"""The demo's Shopify act: the catalogue pushed to an emulated store, kept up
to date, a refusal in Shopify's words, and an order from the store raised
into the ERP.

It plays on the SQL walk-through's client and ERP (``s2s.demo``), since a
channel sells what the client's ERPs hold: the emulated store is served in
this process and the demo's worker pushes to it over HTTP on ``push.shopify``
as it would to a real shop. The order comes back the way Shopify sends it:
an ``orders/create`` webhook signed with the channel's secret, posted
through the hub's own HTTP app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from emulators import sql_erp
from emulators.shopify import RunningServer, serve
from hub import pushes
from hub.db import session_scope
from s2s.api import create_app
from s2s.cli.runs import runs_table
from s2s.demo_acts import DEMO_CLIENT, Stage, orders_table, sync, wait_orders
from s2s.demo_acts.stores import (
    active_products,
    forget_earlier_store,
    keys_of,
    push,
    refusals,
    staged,
)
from workers.channels import get_channel
from workers.sources import get_client, set_channels

# Demo-only credentials of the emulated store (the app's Admin API token and
# the webhook signing secret); declared so that the demo's test can check
# that neither reaches the screen, a log, the hub's database or a task.
ACCESS_TOKEN = "shpat_demo_7c1e94b20f5d"
WEBHOOK_SECRET = "shpss_demo_3a8f61d2c9e0"
SECRETS = (ACCESS_TOKEN, WEBHOOK_SECRET)

# The channel's code is the webhook path's: /webhooks/shopify/<client>.
CHANNEL = "shopify"
# From how many products a first push goes by one bulk operation instead of a
# productSet call each: low enough that any demo catalogue of a few hundred
# products is imported in one go, not throttled by the cost bucket.
BULK_THRESHOLD = 200
REFUSAL = "Price must be less than 1,000,000"


def play(stage: Stage, source_id: int, erp_url: str) -> bool:
    """Push, change, refuse, and take an order; True when every step held."""
    console = stage.console
    console.rule("[bold]Shopify")
    with serve(access_token=ACCESS_TOKEN) as shop:
        console.print(f"emulated Shopify store at {shop.base_url} (Admin GraphQL API)")
        channel_id = _declare(shop)
        first_ok = _first_push(stage, channel_id, shop)
        changed_ok = _changed_push(stage, channel_id, shop, source_id, erp_url)
        refused_ok, refused_key = _refused_push(stage, channel_id, shop, source_id, erp_url)
        order_ok = _store_order(stage, shop, erp_url, refused_key)
    return first_ok and changed_ok and refused_ok and order_ok


# ------------------------------------------------------------------ set-up


def _declare(shop: RunningServer) -> int:
    """The demo client's Shopify channel, pointing at the emulated store."""
    spec = {
        "kind": "shopify",
        "store_url": shop.base_url,
        "allow_http": True,
        "access_token": ACCESS_TOKEN,
        "secret": WEBHOOK_SECRET,
        "schedule": "off",
        "bulk_threshold": BULK_THRESHOLD,
    }
    with session_scope() as s:
        client = get_client(s, DEMO_CLIENT)
        set_channels(s, client, {CHANNEL: spec})
        channel = get_channel(s, client, CHANNEL)
        assert channel is not None
        forget_earlier_store(s, channel)
        return channel.id


def _in_store(shop: RunningServer) -> set[str]:
    return {str(p["metafields"].get("s2s.product_key")) for p in shop.products()}


def _written_since(shop: RunningServer, mark: int) -> set[str]:
    """Keys of the store's products a productSet wrote after change ``mark``."""
    store = shop.store
    with store.lock:
        return {
            p.metafields[("s2s", "product_key")][0]
            for p in store.products.values()
            if p.updated > mark and ("s2s", "product_key") in p.metafields
        }


# ------------------------------------------------------------------ pushes


def _first_push(stage: Stage, channel_id: int, shop: RunningServer) -> bool:
    """Every active product in the store, or refused by the hub with a reason
    shown (none on a first demo run; a demo run again meets the other ERPs'
    products of the last run, some without a retail price)."""
    console = stage.console
    console.print("[bold]first push[/] of the catalogue to the store")
    run = push(stage, channel_id, "first push")
    in_store = [p for p in shop.products() if p["status"] == "ACTIVE"]
    active = active_products(stage.client_id)
    how = "one bulk operation" if shop.shop.bulk else "productSet calls"
    console.print(
        f"  the store holds {len(in_store)} active products, the hub {active}; sent by {how}"
    )
    hub_refused = [p for p in refusals(stage, channel_id) if str(p["error"]).startswith("hub:")]
    return (
        run.status == pushes.SUCCEEDED
        and run.refused == len(hub_refused)
        and len(in_store) == active - len(hub_refused)
    )


def _changed_push(
    stage: Stage, channel_id: int, shop: RunningServer, source_id: int, erp_url: str
) -> bool:
    console = stage.console
    changed = sql_erp.change_rows(erp_url, 10, seed=23)
    keys = keys_of(source_id, changed)
    held = keys & _in_store(shop)
    console.print(
        f"[bold]a push after a change[/]: {len(changed)} rows ({len(keys)} products) "
        "changed in the ERP (price and stock), synced, pushed"
    )
    synced = sync(console, source_id, "products")
    console.print(runs_table([synced], title="sync of the changes"))
    writes, mark = shop.mutations("productSet"), shop.store.changes
    run = push(stage, channel_id, "push of the changes")
    updates = shop.mutations("productSet") - writes
    written = _written_since(shop, mark)
    exact = "exactly the changed products" if written == held else f"{sorted(written ^ held)}"
    console.print(
        f"  {updates} product updates in the store (productSet), for {exact}; "
        f"the other {len(shop.products()) - len(written)} products were not sent"
    )
    if held != keys:
        console.print(f"  [yellow]not in the store, so not updated:[/] {sorted(keys - held)}")
    return (
        run.status == pushes.SUCCEEDED
        and synced.status == "succeeded"
        and updates == len(held) == run.updated
        and written == held
    )


def _refused_push(
    stage: Stage, channel_id: int, shop: RunningServer, source_id: int, erp_url: str
) -> tuple[bool, str | None]:
    """The store refuses one changed product: recorded with its words, the push goes on."""
    console = stage.console
    simple = [
        p
        for p in shop.products()
        if p["status"] == "ACTIVE"
        and len(p["variants"]) == 1
        and str(p["metafields"].get("s2s.product_key", "")).startswith("erp:")
    ]
    if not simple:
        console.print("  [red]the store holds no product of the SQL ERP to refuse[/]")
        return False, None
    product = simple[len(simple) // 2]
    sku, key = product["variants"][0]["sku"], product["metafields"]["s2s.product_key"]
    _reprice(erp_url, sku)
    shop.faults.refuse_sku(sku, REFUSAL)
    console.print(
        f"[bold]a refusal[/]: {sku}'s price changed in the ERP; the store will not save it "
        "(a refusal switched on in the emulated store)"
    )
    synced = sync(console, source_id, "products")
    run = push(stage, channel_id, "push with a refusal")
    problems = refusals(stage, channel_id, key)
    recorded = [p for p in problems if p["key"] == key and REFUSAL in (p["error"] or "")]
    ok = synced.status == "succeeded" and run.status == pushes.SUCCEEDED and run.refused == 1
    return ok and len(recorded) == 1, key


def _reprice(erp_url: str, sku: str) -> None:
    """One more rand on a SKU's price in the ERP, as a buyer would change it."""
    engine = create_engine(erp_url)
    try:
        with engine.begin() as conn:
            price = conn.execute(
                text('SELECT price FROM products WHERE "SKU" = :sku'), {"sku": sku}
            ).scalar_one()
            conn.execute(
                text('UPDATE products SET price = :price WHERE "SKU" = :sku'),
                {"price": str(Decimal(str(price).strip()) + 1), "sku": sku},
            )
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the order


def _store_order(stage: Stage, shop: RunningServer, erp_url: str, refused: str | None) -> bool:
    """An order placed in the store arrives by a signed webhook and is raised once."""
    console = stage.console
    lines = [
        (p, p["variants"][0])
        for p in shop.products()
        if p["status"] == "ACTIVE"
        and str(p["metafields"].get("s2s.product_key", "")).startswith("erp:")
        and p["metafields"].get("s2s.product_key") != refused
    ][:2]
    number = 1000 + int(stage.run)
    body = json.dumps(_orders_create(number, lines)).encode()
    console.print(
        f"[bold]an order in the store[/]: #{number} for {', '.join(v['sku'] for _, v in lines)}, "
        "delivered as Shopify's signed orders/create webhook"
    )
    api = TestClient(create_app())
    headers = _webhook_headers(body, shop)
    first = api.post(f"/webhooks/{CHANNEL}/{DEMO_CLIENT}", content=body, headers=headers)
    # Shopify retries a delivery it thinks failed: the same body and webhook id.
    again = api.post(f"/webhooks/{CHANNEL}/{DEMO_CLIENT}", content=body, headers=headers)
    console.print(
        f"  webhook answered {first.status_code}; delivered again, {again.status_code} "
        f"(duplicate: {again.json().get('duplicate')})"
    )
    if first.status_code != 201:
        console.print(f"  [red]the hub refused the webhook:[/] {first.text}")
        return False
    rows = wait_orders([first.json()["order"]], lambda o: o.status in ("raised", "dead"))
    orders_table(console, rows, "the store's order")
    raised = staged(erp_url, rows[0].channel_order_code)
    console.print(f"  the ERP's order staging table holds it {raised} time(s)")
    return (
        len(lines) == 2
        and again.status_code == 200
        and rows[0].status == "raised"
        and rows[0].attempts == 1
        and raised == 1
    )


def _gid_number(gid: str) -> int:
    return int(gid.rsplit("/", 1)[1])


# The buyer's address as Shopify serialises one (billing and shipping alike).
_ADDRESS: dict[str, Any] = {
    "first_name": "Ayanda",
    "last_name": "Zulu",
    "company": None,
    "address1": "21 Florida Road",
    "address2": "",
    "city": "Durban",
    "province": "KwaZulu-Natal",
    "province_code": "NL",
    "zip": "4001",
    "country": "South Africa",
    "country_code": "ZA",
    "phone": "+27 31 555 0142",
    "name": "Ayanda Zulu",
}


def _line_item(n: int, product: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": 17_000_000 + n,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{17_000_000 + n}",
        "product_id": _gid_number(product["id"]),
        "variant_id": _gid_number(variant["id"]),
        "title": product["title"],
        "variant_title": None,
        "name": product["title"],
        "sku": variant["sku"],
        "quantity": 1 + n,
        "price": f"{Decimal(str(variant['price'])):.2f}",
        "total_discount": "0.00",
        "discount_allocations": [],
        "taxable": True,
        "requires_shipping": True,
        "tax_lines": [],
    }


def _orders_create(
    number: int, lines: list[tuple[dict[str, Any], dict[str, Any]]]
) -> dict[str, Any]:
    """The order as Shopify's ``orders/create`` webhook serialises it (the
    fields the hub reads and a few beside them, as a real body carries)."""
    items = [_line_item(n, product, variant) for n, (product, variant) in enumerate(lines)]
    subtotal = sum(Decimal(i["price"]) * i["quantity"] for i in items)
    return {
        "id": 6_100_000_000_000 + number,
        "admin_graphql_api_id": f"gid://shopify/Order/{6_100_000_000_000 + number}",
        "name": f"#{number}",
        "order_number": number,
        "email": "ayanda@example.co.za",
        "created_at": "2026-11-22T12:00:00+02:00",
        "currency": "ZAR",
        "financial_status": "paid",
        "fulfillment_status": None,
        "taxes_included": False,
        "note": None,
        "subtotal_price": f"{subtotal:.2f}",
        "total_discounts": "0.00",
        "total_price": f"{subtotal + 95:.2f}",
        "total_tax": "0.00",
        "discount_codes": [],
        "customer": {
            "id": 7_200_000_001,
            "email": "ayanda@example.co.za",
            "first_name": "Ayanda",
            "last_name": "Zulu",
        },
        "billing_address": dict(_ADDRESS),
        "shipping_address": dict(_ADDRESS),
        "line_items": items,
        "shipping_lines": [
            {"title": "Courier", "price": "95.00", "discount_allocations": [], "tax_lines": []}
        ],
    }


def _webhook_headers(body: bytes, shop: RunningServer) -> dict[str, str]:
    """Shopify's delivery headers: the HMAC-SHA256 of the raw body with the
    app's secret, base64, and the delivery's id (the hub's dedup key)."""
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Shop-Domain": shop.base_url.removeprefix("http://"),
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-22T10:00:00.123456789Z",
    }
