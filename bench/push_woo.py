"""The push benchmark's WooCommerce phases (``python -m bench.push --channel``).

The same doors as the Shopify phases: the hub's ``start_push`` and the real
``s2s worker --profile push`` process, on the main client's synced
catalogue, against the WooCommerce emulator served in this process. Core
``wc/v3`` has no rate limit and neither has the emulator, so these figures
are the hub's side and the emulator's: products go in ``/products/batch``
calls of up to 100, each variable product's variations in a variations
batch of its own; there is no bulk import.

1. a first push of the catalogue: seconds, products/s, batch calls and
   requests, what the store then holds (simple, variable, variations) and
   whether every SKU is held once;
2. the same catalogue pushed again unchanged: seconds, and the store's count
   of writes that took effect before and after (it must not move);
3. 1% of the ERP's rows changed (other rows than the Shopify phase's),
   synced, pushed: seconds, the writes by kind, and which products the
   store saw written against the products the changed rows belong to.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

from bench.push_store import PushResult, changed_products, checked, run_push
from bench.run import SEED, Env, _pg_url, _timed, run_sync

KEY = "ck_bench_" + uuid.uuid4().hex[:16]
SECRET = "cs_bench_" + uuid.uuid4().hex[:16]
WEBHOOK_SECRET = "wc_bench_" + uuid.uuid4().hex[:12]
# Where the hub's key is kept on a product (``connectors.woocommerce.inputs``).
KEY_META = "_s2s_product_key"


def declare_channel(client_id: int, base_url: str) -> int:
    """The client's WooCommerce channel at the emulated store (plain http,
    allowed for the emulator; no schedule: only the benchmark pushes)."""
    from hub.db import session_scope
    from hub.models import Client
    from workers.channels import get_channel
    from workers.sources import set_channels

    spec = {
        "kind": "woocommerce",
        "store_url": base_url,
        "allow_http": True,
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "secret": WEBHOOK_SECRET,
        "schedule": "off",
    }
    with session_scope() as s:
        client = s.get(Client, client_id)
        assert client is not None
        set_channels(s, client, {"woo": spec})
        channel = get_channel(s, client, "woo")
        assert channel is not None
        return channel.id


def _traffic(server: Any) -> dict[str, Any]:
    """The emulator's own counts: requests, batch calls, writes by kind."""
    snap = server.faults.snapshot()
    return {"requests": snap["requests"], "batches": snap["batches"], "writes": snap["writes"]}


def _figures(result: PushResult, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    writes = Counter(after["writes"])
    writes.subtract(before["writes"])
    return {
        "seconds": round(result.seconds, 3),
        "run_row_seconds": round(result.run_row_seconds, 3),
        **result.counts,
        "store_requests": after["requests"] - before["requests"],
        "batch_calls": after["batches"] - before["batches"],
        "writes": {kind: n for kind, n in sorted(writes.items()) if n},
        "writes_before": sum(before["writes"].values()),
        "writes_after": sum(after["writes"].values()),
        "refusals_by_reason": result.problems,
    }


def _timed_push(label: str, server: Any, channel_id: int) -> dict[str, Any]:
    before = _traffic(server)
    result = _timed(f"WooCommerce: {label}", lambda: checked(run_push(channel_id), label))
    return _figures(result, before, _traffic(server))


def _held(server: Any) -> dict[str, Any]:
    """What the store holds of the push, and SKUs held more than once."""
    live = [p for p in server.products() if p["status"] == "publish"]
    kinds = Counter(p["type"] for p in live)
    counts = server.sku_counts()
    return {
        "store_products": len(live),
        "store_simple": kinds["simple"],
        "store_variable": kinds["variable"],
        "store_variations": sum(len(p["variations"]) for p in live),
        "store_skus": len(counts),
        "skus_held_twice": sum(1 for n in counts.values() if n > 1),
    }


def _keys(server: Any) -> set[str]:
    return {
        str(m["value"])
        for p in server.products()
        if p["status"] == "publish"
        for m in p["meta_data"]
        if m["key"] == KEY_META
    }


def _written_since(server: Any, mark: float) -> set[str]:
    """Keys of the products a write touched after ``mark`` (the product or one
    of its variations: the emulator stamps each item it saves)."""
    shop = server.store
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


def woocommerce_phases(env: Env, products: int, client_id: int, source_id: int) -> dict[str, Any]:
    """Phases W1-W3 on the main client's catalogue, to a fresh emulated store."""
    from emulators import sql_erp
    from emulators.woocommerce import serve

    phases: dict[str, Any] = {}
    with serve(consumer_key=KEY, consumer_secret=SECRET) as server:
        channel_id = declare_channel(client_id, server.base_url)
        first = _timed_push("first push", server, channel_id)
        first["products_per_s"] = round(first["created"] / first["seconds"], 1)
        phases["first_push"] = {**first, **_held(server)}

        unchanged = _timed_push("unchanged push", server, channel_id)
        unchanged["writes_sent"] = unchanged["writes_after"] - unchanged["writes_before"]
        phases["unchanged_push"] = unchanged

        rows = max(1, products // 100)
        skus = sql_erp.change_rows(_pg_url(env.erp_db), rows, seed=SEED + 1)
        changed = {f"erp:{code}" for code in changed_products(products, skus)}
        in_store = changed & _keys(server)
        synced = _timed(f"{rows} rows changed, synced", lambda: run_sync(source_id, full=False))
        mark = time.time()
        pushed = _timed_push("push of the changes", server, channel_id)
        written = _written_since(server, mark)
        phases["changed_push"] = {
            **pushed,
            "rows_changed": rows,
            "products_changed": len(changed),
            "products_changed_in_store": len(in_store),
            "products_written": len(written),
            "written_exactly_the_changed": written == in_store,
            "sync_seconds": round(synced.seconds, 3),
        }
    return phases


def rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    """The WooCommerce phases' lines of the table."""
    first, unchanged, changed = p["first_push"], p["unchanged_push"], p["changed_push"]
    once = "every SKU once" if not first["skus_held_twice"] else "SKUs held twice!"
    exact = "exactly" if changed["written_exactly_the_changed"] else "NOT exactly"
    lines = [
        (
            f"W1. first push, {first['created']:,} products "
            f"({first['store_simple']:,} simple, {first['store_variable']:,} variable)",
            f"{first['seconds']:.2f} s  {first['products_per_s']:,.0f} products/s  "
            f"({first['batch_calls']:,} batch calls, {first['store_requests']:,} requests, "
            f"{first['store_variations']:,} variations; {first['store_skus']:,} SKUs, {once}; "
            f"{first['refused']:,} refused)",
        ),
        (
            "W2. unchanged push",
            f"{unchanged['seconds']:.2f} s  writes {unchanged['writes_before']:,} -> "
            f"{unchanged['writes_after']:,} ({unchanged['writes_sent']} sent; "
            f"{unchanged['store_requests']} requests)",
        ),
        (
            f"W3. 1% changed ({changed['rows_changed']:,} rows, "
            f"{changed['products_changed']:,} products), synced, pushed",
            f"sync {changed['sync_seconds']:.2f} s, push {changed['seconds']:.2f} s  "
            f"writes: {_writes(changed['writes'])}; {changed['products_written']:,} products "
            f"written, {exact} the {changed['products_changed_in_store']:,} changed in the store "
            f"({changed['batch_calls']} batch calls)",
        ),
    ]
    for reason, count in sorted(first["refusals_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(("    refused in the first push", f"{count:,}: {reason}"))
    return lines


def _writes(writes: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in writes.items()) or "none"
