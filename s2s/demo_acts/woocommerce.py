"""The demo's WooCommerce act: the catalogue pushed to an emulated store, a
change sent as exactly the changed products, and an order from the store
raised into the ERP.

It plays on the SQL walk-through's client and ERP, right after the Shopify
act (``s2s.demo``): one catalogue, two stores. The emulated store is served
in this process and the demo's worker pushes to it over HTTP on
``push.woocommerce``, in ``/products/batch`` calls of up to 100 as it would
to a real site. The order comes back the way WooCommerce sends it: an
``order.created`` webhook carrying the REST v3 order, signed with the
channel's secret, posted through the hub's own HTTP app. What the two
channel acts do alike (a push, the hub's refusals, the ERP's staging table)
is the Shopify act's.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

from connectors.woocommerce.intake import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from emulators import sql_erp
from emulators.woocommerce import RunningServer, serve
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

# Demo-only credentials of the emulated store (a REST API key pair and the
# webhook's signing secret); declared so that the demo's test can check that
# none reaches the screen, a log, the hub's database or a task.
CONSUMER_KEY = "ck_demo_5e0b7d3a91c4f2"
CONSUMER_SECRET = "cs_demo_b83f0e6a2d7c15"
WEBHOOK_SECRET = "wc_demo_whsec_4c9a27e1f0"
SECRETS = (CONSUMER_KEY, CONSUMER_SECRET, WEBHOOK_SECRET)

# The channel's code is the webhook path's: /webhooks/woocommerce/<client>.
CHANNEL = "woocommerce"
# Where the hub's key is kept on a product (``connectors.woocommerce.inputs``).
KEY_META = "_s2s_product_key"
PUBLISH = "publish"


def play(stage: Stage, source_id: int, erp_url: str) -> bool:
    """Push, change, and take an order; True when every step held."""
    console = stage.console
    console.rule("[bold]WooCommerce")
    with serve(consumer_key=CONSUMER_KEY, consumer_secret=CONSUMER_SECRET) as store:
        console.print(f"emulated WooCommerce store at {store.api_url} (REST API v3)")
        channel_id = _declare(store)
        first_ok = _first_push(stage, channel_id, store)
        changed_ok = _changed_push(stage, channel_id, store, source_id, erp_url)
        order_ok = _store_order(stage, store, erp_url)
    return first_ok and changed_ok and order_ok


def _declare(store: RunningServer) -> int:
    """The demo client's WooCommerce channel, pointing at the emulated store
    (plain http, which only ``allow_http`` lets the keys cross)."""
    spec = {
        "kind": "woocommerce",
        "store_url": store.base_url,
        "allow_http": True,
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "secret": WEBHOOK_SECRET,
        "schedule": "off",
    }
    with session_scope() as s:
        client = get_client(s, DEMO_CLIENT)
        set_channels(s, client, {CHANNEL: spec})
        channel = get_channel(s, client, CHANNEL)
        assert channel is not None
        forget_earlier_store(s, channel)
        return channel.id


def _key(product: dict[str, Any]) -> str | None:
    return next((str(m["value"]) for m in product["meta_data"] if m["key"] == KEY_META), None)


def _published(store: RunningServer) -> list[dict[str, Any]]:
    return [p for p in store.products() if p["status"] == PUBLISH]


def _first_push(stage: Stage, channel_id: int, store: RunningServer) -> bool:
    """Every active product in the store once, simple or variable, or refused
    by the hub with a reason shown (a demo run again meets the other ERPs'
    products of the last run, some without a retail price)."""
    console = stage.console
    console.print("[bold]first push[/] of the catalogue to the store")
    run = push(stage, channel_id, "first push")
    live = _published(store)
    kinds = Counter(p["type"] for p in live)
    variations = sum(len(p["variations"]) for p in live)
    counts = store.sku_counts()
    twice = sorted(sku for sku, n in counts.items() if n > 1)
    active = active_products(stage.client_id)
    batches = store.faults.snapshot()["batches"]
    console.print(
        f"  the store holds {kinds['simple']} simple and {kinds['variable']} variable products "
        f"({variations} variations), the hub {active} active products; "
        f"sent in {batches} batch calls of up to 100"
    )
    console.print(
        f"  {len(counts)} SKUs in the store, "
        + ("each held once" if not twice else f"[red]held more than once:[/] {twice[:10]}")
    )
    hub_refused = [p for p in refusals(stage, channel_id) if str(p["error"]).startswith("hub:")]
    return (
        run.status == pushes.SUCCEEDED
        and run.refused == len(hub_refused)
        and len(live) == active - len(hub_refused)
        and not twice
        and kinds["variable"] > 0
    )


def _written_since(store: RunningServer, mark: float) -> set[str]:
    """Keys of the products that a write touched after ``mark``, the product
    itself or one of its variations (the emulator stamps each write)."""
    shop = store.store
    with shop.lock:
        touched = {p.id for p in shop.products.values() if p.modified > mark}
        touched |= {v.parent_id for v in shop.variations.values() if v.modified > mark}
        return {
            str(m.value)
            for number in touched
            if number in shop.products
            for m in shop.products[number].meta
            if m.key == KEY_META
        }


def _changed_push(
    stage: Stage, channel_id: int, store: RunningServer, source_id: int, erp_url: str
) -> bool:
    console = stage.console
    changed = sql_erp.change_rows(erp_url, 10, seed=31)
    keys = keys_of(source_id, changed)
    held = keys & {_key(p) for p in _published(store)}
    console.print(
        f"[bold]a push after a change[/]: {len(changed)} rows ({len(keys)} products) "
        "changed in the ERP (price and stock), synced, pushed"
    )
    synced = sync(console, source_id, "products")
    console.print(runs_table([synced], title="sync of the changes"))
    before, mark = store.writes(), time.time()
    run = push(stage, channel_id, "push of the changes")
    after = store.writes()
    written = _written_since(store, mark)
    console.print(f"  the store's writes before: {_shown(before)}")
    console.print(f"  the store's writes after:  {_shown(after)}")
    exact = "exactly the changed products" if written == held else f"{sorted(written ^ held)}"
    console.print(
        f"  {len(written)} products written, {exact}; "
        f"the other {len(_published(store)) - len(written)} were not sent"
    )
    if held != keys:
        console.print(f"  [yellow]not in the store, so not updated:[/] {sorted(keys - held)}")
    return (
        synced.status == "succeeded"
        and run.status == pushes.SUCCEEDED
        and written == held
        and run.updated + run.stock == len(held)
        and after.get("product.created") == before.get("product.created")
    )


def _shown(writes: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(writes.items())) or "none"


# ------------------------------------------------------------------ the order


def _store_order(stage: Stage, store: RunningServer, erp_url: str) -> bool:
    """An order placed in the store arrives by a signed webhook and is raised once."""
    console = stage.console
    lines = _two_lines(store)
    number = 2_000_000 + int(stage.run)
    body = json.dumps(_order_created(number, lines)).encode()
    skus = ", ".join(str(item["sku"]) for _, item in lines)
    console.print(
        f"[bold]an order in the store[/]: #{number} for {skus}, delivered as WooCommerce's "
        "signed order.created webhook"
    )
    answer = TestClient(create_app()).post(
        f"/webhooks/{CHANNEL}/{DEMO_CLIENT}", content=body, headers=_headers(body, store)
    )
    console.print(f"  webhook answered {answer.status_code}")
    if answer.status_code != 201:
        console.print(f"  [red]the hub refused the webhook:[/] {answer.text}")
        return False
    rows = wait_orders([answer.json()["order"]], lambda o: o.status in ("raised", "dead"))
    orders_table(console, rows, "the store's order")
    raised = staged(erp_url, rows[0].channel_order_code)
    console.print(f"  the ERP's order staging table holds it {raised} time(s)")
    return len(lines) == 2 and rows[0].status == "raised" and raised == 1


def _two_lines(store: RunningServer) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """A simple product and a variable product's variation of the SQL ERP's
    (product, the item sold: the product itself or its variation)."""
    ours = [p for p in _published(store) if str(_key(p) or "").startswith("erp:")]
    simple = [(p, p) for p in ours if p["type"] == "simple"][:1]
    variable = [(p, p["variations"][0]) for p in ours if p["type"] == "variable"][:1]
    return simple + variable


def _line_item(n: int, product: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """One line as WooCommerce serialises it: subtotal and total ex tax, the
    tax per rate id (VAT at 15%, rate 1)."""
    qty = 1 + n
    price = Decimal(str(item["regular_price"]))
    subtotal = price * qty
    tax = (subtotal * Decimal("0.15")).quantize(Decimal("0.01"))
    option = ", ".join(str(a["option"]) for a in item.get("attributes", []) if "option" in a)
    return {
        "id": 401 + n,
        "name": f"{product['name']} - {option}" if item is not product else product["name"],
        "product_id": product["id"],
        "variation_id": item["id"] if item is not product else 0,
        "quantity": qty,
        "tax_class": "",
        "subtotal": f"{subtotal:.2f}",
        "subtotal_tax": f"{tax:.2f}",
        "total": f"{subtotal:.2f}",
        "total_tax": f"{tax:.2f}",
        "taxes": [{"id": 1, "total": f"{tax:.2f}", "subtotal": f"{tax:.2f}"}],
        "meta_data": [],
        "sku": item["sku"],
        "price": float(price),
    }


# The buyer's address as WooCommerce keeps one: codes for state and country.
_ADDRESS: dict[str, str] = {
    "first_name": "Lerato",
    "last_name": "Nkosi",
    "company": "",
    "address_1": "14 Jan Smuts Avenue",
    "address_2": "",
    "city": "Johannesburg",
    "state": "GP",
    "postcode": "2196",
    "country": "ZA",
    "phone": "+27 11 555 0177",
}


def _order_created(
    number: int, lines: list[tuple[dict[str, Any], dict[str, Any]]]
) -> dict[str, Any]:
    """The order as WooCommerce's ``order.created`` webhook sends it (the REST
    v3 order: the fields the hub reads and a few beside them, as a real body
    carries), paid and so ``processing``."""
    items = [_line_item(n, product, item) for n, (product, item) in enumerate(lines)]
    cart = sum(Decimal(i["total"]) for i in items)
    cart_tax = sum(Decimal(i["total_tax"]) for i in items)
    shipping, shipping_tax = Decimal("80.00"), Decimal("12.00")
    return {
        "id": number,
        "parent_id": 0,
        "number": str(number),
        "order_key": f"wc_order_demo{number}",
        "created_via": "checkout",
        "version": "10.3.0",
        "status": "processing",
        "currency": "ZAR",
        "date_created": "2026-11-22T12:00:00",
        "date_created_gmt": "2026-11-22T10:00:00",
        "date_modified": "2026-11-22T12:00:02",
        "date_modified_gmt": "2026-11-22T10:00:02",
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": f"{shipping:.2f}",
        "shipping_tax": f"{shipping_tax:.2f}",
        "cart_tax": f"{cart_tax:.2f}",
        "total": f"{cart + cart_tax + shipping + shipping_tax:.2f}",
        "total_tax": f"{cart_tax + shipping_tax:.2f}",
        "prices_include_tax": False,
        "customer_id": 0,
        "customer_ip_address": "196.0.2.44",
        "customer_user_agent": "Mozilla/5.0",
        "customer_note": "",
        "billing": {**_ADDRESS, "email": "lerato@example.co.za"},
        "shipping": dict(_ADDRESS),
        "payment_method": "payfast",
        "payment_method_title": "PayFast",
        "transaction_id": f"PF-{number}",
        "date_paid": "2026-11-22T12:00:01",
        "date_paid_gmt": "2026-11-22T10:00:01",
        "meta_data": [],
        "line_items": items,
        "tax_lines": [
            {
                "id": 501,
                "rate_code": "ZA-VAT-1",
                "rate_id": 1,
                "label": "VAT",
                "compound": False,
                "tax_total": f"{cart_tax:.2f}",
                "shipping_tax_total": f"{shipping_tax:.2f}",
                "rate_percent": 15,
                "meta_data": [],
            }
        ],
        "shipping_lines": [
            {
                "id": 502,
                "method_title": "Flat rate",
                "method_id": "flat_rate",
                "instance_id": "1",
                "total": f"{shipping:.2f}",
                "total_tax": f"{shipping_tax:.2f}",
                "taxes": [{"id": 1, "total": f"{shipping_tax:.2f}", "subtotal": ""}],
                "meta_data": [],
            }
        ],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": [],
    }


def _headers(body: bytes, store: RunningServer) -> dict[str, str]:
    """WooCommerce's delivery headers: the base64 HMAC-SHA256 of the raw body
    with the webhook's secret, and the delivery's id (a hash in current
    core; the hub's dedup key)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/10.3.0 Hookshot (WordPress/6.8.3)",
        "X-WC-Webhook-Source": f"{store.base_url}/",
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "created",
        "X-WC-Webhook-ID": "7",
        DELIVERY_HEADER: uuid.uuid4().hex,
        SIGNATURE_HEADER: sign(body, WEBHOOK_SECRET),
    }
