"""The push benchmark: the catalogue out to an emulated Shopify store and
an emulated WooCommerce store.

``python -m bench.push [--size small|full] [--runs 3] [--channel both] [--json PATH]``

Measured through the doors users use, as ``bench.run`` measures syncs: the
hub's ``start_push`` (what ``s2s push`` and the API call) and real ``s2s
worker`` subprocesses (``--profile sync`` and ``--profile push``) on fresh
PostgreSQL databases and Redis db 15, against the Shopify emulator served in
this process with its default cost limits (the standard plan: a bucket of
2,000 points refilled at 100 a second). Nothing is mocked.

1. a first push of N products by bulk operation: seconds, products/s;
2. the same catalogue unchanged, pushed again: seconds, and the mutations
   the store received (there must be none);
3. 1% of the ERP's rows changed, synced, pushed: seconds and productSet
   writes (one per changed product);
4. a first push of a smaller catalogue to a fresh store by productSet (no
   bulk): productSet/s once the bucket's first 2,000 points are spent, the
   cost of a productSet as the store's answers state it
   (``extensions.cost``), and what a store on those limits takes per hour,
   measured and by the bucket's arithmetic (restore rate / cost).

The emulator finishes a bulk operation on its second poll, so figure 1 is
the hub's side of a bulk import (planning, rendering, upload, polling every
3 s, recording), not Shopify's own processing time.

WooCommerce's phases W1-W3 (``bench.push_woo``: a first push in batches,
an unchanged push, 1% changed) run on the same client after phases 1-3;
``--channel shopify`` or ``woocommerce`` runs one store's phases only.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.push_store import (
    TOKEN,
    Answer,
    PushResult,
    Store,
    changed_products,
    checked,
    run_push,
    served_store,
)
from bench.push_woo import rows as woocommerce_rows
from bench.push_woo import woocommerce_phases
from bench.run import (
    ROOT,
    SEED,
    Env,
    _admin,
    _git_commit,
    _pg_url,
    _say,
    _terminate_as_interrupt,
    _timed,
    _versions,
    cleaned_up,
    combine,
    machine_facts,
    run_sync,
)

WEBHOOK_SECRET = "shpss_bench_" + uuid.uuid4().hex[:12]
# From how many products a first push goes by bulk operation in phase 1:
# low, so that the small size's catalogue goes by bulk as the full one does.
BULK_THRESHOLD = 100


@dataclass(frozen=True)
class Size:
    """ERP products for phases 1-3, and for phase 4's productSet push."""

    products: int
    rate_products: int


# Phase 4's catalogue must outlast the bucket: at the hub's own pace (about
# 20 productSet/s here) the 2,000 points run dry after some 400 products
# (2,000 + 100 t = 10 x 20 t), so the small size's 700 leave a few hundred
# paid at the restore rate.
SIZES = {
    "small": Size(products=500, rate_products=700),
    "full": Size(products=10_000, rate_products=1_000),
}


# --------------------------------------------------------------------------
# The hub's side: a client, its channel, a push
# --------------------------------------------------------------------------


def add_client(code: str, erp_url: str, products: int, page_size: int) -> tuple[int, int]:
    """Seed an ERP database and register a client with it as its SQL source."""
    from emulators import sql_erp
    from hub.db import session_scope
    from workers.sources import upsert_client, upsert_source

    sql_erp.seed(erp_url, products=products, customers=10, seed=SEED)
    with session_scope() as s:
        client, _ = upsert_client(s, code, f"Bench {code}")
        source = upsert_source(s, client, "erp", "sql", {"url": erp_url, "page_size": page_size})
        return client.id, source.id


def declare_channel(client_id: int, store: Store, **settings: Any) -> int:
    """The client's Shopify channel at the emulated store (no schedule: only
    the benchmark starts pushes)."""
    from hub.db import session_scope
    from hub.models import Client
    from workers.channels import get_channel
    from workers.sources import set_channels

    spec = {
        "kind": "shopify",
        "store_url": store.server.base_url,
        "allow_http": True,
        "access_token": TOKEN,
        "secret": WEBHOOK_SECRET,
        "schedule": "off",
        **settings,
    }
    with session_scope() as s:
        client = s.get(Client, client_id)
        assert client is not None
        set_channels(s, client, {"shop": spec})
        channel = get_channel(s, client, "shop")
        assert channel is not None
        return channel.id


def _push_figures(result: PushResult, answers: list[Answer]) -> dict[str, Any]:
    return {
        "seconds": round(result.seconds, 3),
        "run_row_seconds": round(result.run_row_seconds, 3),
        **result.counts,
        "store_requests": len(answers),
        "store_seconds": round(sum(a.seconds for a in answers), 3),
        "refusals_by_reason": result.problems,
    }


# --------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------


def _bulk_wait(answers: list[Answer]) -> float | None:
    """Seconds from the bulk operation's start to the last answer about it:
    the connector's polls (every 3 s), during which the hub does nothing."""
    started = [a.at for a in answers if "bulkOperationRunMutation" in a.roots]
    polls = {"currentBulkOperation", "bulkOperation", "node"}
    polled = [a.at for a in answers if polls & set(a.roots)]
    if not started or not polled:
        return None
    return round(max(polled) - started[0], 3)


def _in_store(store: Store, product_codes: set[str]) -> int:
    keys = {f"erp:{code}" for code in product_codes}
    return sum(1 for p in store.server.products() if p["metafields"].get("s2s.product_key") in keys)


def catalogue_phases(env: Env, size: Size, store: Store, client_id: int, source_id: int) -> Any:
    """Phases 1-3 on the main client's catalogue and store."""
    from emulators import sql_erp

    channel_id = declare_channel(client_id, store, bulk_threshold=BULK_THRESHOLD)
    phases: dict[str, Any] = {}

    mark = store.log.mark()
    first = _timed("first push (bulk)", lambda: checked(run_push(channel_id), "first push"))
    figures = _push_figures(first, store.log.since(mark))
    figures["products_per_s"] = round(first.counts["created"] / first.seconds, 1)
    figures["bulk_operations"] = store.bulk_operations
    figures["bulk_wait_seconds"] = _bulk_wait(store.log.since(mark))
    figures["store_products"] = len(store.server.products())
    phases["first_push_bulk"] = figures

    before, mark = store.mutations(), store.log.mark()
    second = _timed("unchanged push", lambda: checked(run_push(channel_id), "unchanged push"))
    phases["unchanged_push"] = {
        **_push_figures(second, store.log.since(mark)),
        "mutations_before": before,
        "mutations_after": store.mutations(),
        "mutations_sent": store.mutations() - before,
    }

    erp_url = _pg_url(env.erp_db)
    rows = max(1, size.products // 100)
    skus = sql_erp.change_rows(erp_url, rows, seed=SEED)
    changed = changed_products(size.products, skus)
    in_store = _in_store(store, changed)
    synced = _timed(f"{rows} rows changed, synced", lambda: run_sync(source_id, full=False))
    writes, stock, mark = (
        store.mutations("productSet"),
        store.mutations("inventorySetQuantities"),
        store.log.mark(),
    )
    third = _timed("push of the changes", lambda: checked(run_push(channel_id), "changed push"))
    phases["changed_push"] = {
        **_push_figures(third, store.log.since(mark)),
        "rows_changed": rows,
        "products_changed": len(changed),
        "products_changed_in_store": in_store,
        "sync_seconds": round(synced.seconds, 3),
        "product_set_writes": store.mutations("productSet") - writes,
        "inventory_set_calls": store.mutations("inventorySetQuantities") - stock,
    }
    return phases


def _rates(sets: list[Answer], cost: float) -> tuple[float | None, float | None, int]:
    """productSet/s while the bucket held points and once it ran dry (less
    than two calls' worth left), and how many were paid from the full bucket."""
    dry = next(
        (n for n, a in enumerate(sets) if a.available is not None and a.available < 2 * cost),
        len(sets),
    )

    def rate(window: list[Answer]) -> float | None:
        span = window[-1].at - window[0].at if len(window) > 10 else 0.0
        return (len(window) - 1) / span if span > 0 else None

    return rate(sets[:dry]), rate(sets[dry:]), dry


def rate_phase(client_id: int, store: Store) -> dict[str, Any]:
    """Phase 4: a first push by productSet to a fresh store on the default limits."""
    channel_id = declare_channel(client_id, store, bulk_threshold=0)
    mark = store.log.mark()
    result = _timed("first push by productSet", lambda: checked(run_push(channel_id), "push"))
    answers = store.log.since(mark)
    sets = [a for a in answers if "productSet" in a.roots and a.actual is not None]
    if not sets:
        raise RuntimeError("the push sent no productSet")
    cost = sum(float(a.actual or 0) for a in sets) / len(sets)
    requested = sum(float(a.requested or 0) for a in sets) / len(sets)
    bucket = store.server.bucket
    unlimited, steady, burst = _rates(sets, cost)
    arithmetic = bucket.restore_rate / cost
    faults = store.server.faults.snapshot()
    return {
        **_push_figures(result, answers),
        "product_sets": len(sets),
        "product_sets_per_s": round(len(sets) / result.seconds, 2),
        "before_dry_product_sets_per_s": round(unlimited, 2) if unlimited else None,
        "steady_product_sets_per_s": round(steady, 2) if steady else None,
        "product_sets_before_dry": burst,
        "cost_actual": round(cost, 2),
        "cost_requested": round(requested, 2),
        "bucket_maximum": bucket.maximum,
        "bucket_restore_rate": bucket.restore_rate,
        "per_hour_measured": round(steady * 3600) if steady else None,
        "per_hour_arithmetic": round(arithmetic * 3600),
        "measured_over_arithmetic": round(steady / arithmetic, 3) if steady else None,
        "throttled_answers": faults["throttled"],
        "throttle_episodes": faults["throttle_episodes"],
    }


CHANNELS = ("shopify", "woocommerce")


def _phases(env: Env, size: Size, channels: tuple[str, ...]) -> dict[str, Any]:
    erp_url = _pg_url(env.erp_db)
    client_id, source_id = _timed(
        f"ERP seeded with {size.products:,} products",
        lambda: add_client("bench", erp_url, size.products, env.page_size),
    )
    env.start_worker("sync")
    env.start_worker("push")
    synced = _timed("first sync", lambda: run_sync(source_id, full=True))
    if synced.status != "succeeded":
        raise RuntimeError(f"the first sync ended {synced.status}")
    phases: dict[str, Any] = {"catalogue": {"products": size.products, **synced.counts}}
    if "shopify" in channels:
        with served_store() as store:
            phases.update(catalogue_phases(env, size, store, client_id, source_id))
    if "woocommerce" in channels:
        phases["woocommerce"] = woocommerce_phases(env, size.products, client_id, source_id)
    if "shopify" not in channels:
        return phases

    rate_db = f"bench_erp_rate_{env.tag}"
    _admin(f'CREATE DATABASE "{rate_db}"')
    env.databases.append(rate_db)
    rate_client, rate_source = _timed(
        f"second ERP seeded with {size.rate_products:,} products",
        lambda: add_client("rate", _pg_url(rate_db), size.rate_products, env.page_size),
    )
    rate_sync = _timed("its first sync", lambda: run_sync(rate_source, full=True))
    if rate_sync.status != "succeeded":
        raise RuntimeError(f"the second client's sync ended {rate_sync.status}")
    with served_store() as store:
        phases["product_set_rate"] = {
            "erp_products": size.rate_products,
            **rate_phase(rate_client, store),
        }
    return phases


def benchmark(
    size_name: str, page_size: int, concurrency: int, keep_logs: bool, channels: tuple[str, ...]
) -> Any:
    """Every phase of the ``channels`` in one fresh environment; the results as plain data."""
    size = SIZES[size_name]
    env = Env(page_size=page_size, concurrency=concurrency, keep_logs=keep_logs)
    results: dict[str, Any] = {
        "size": size_name,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "git_commit": _git_commit(),
        "config": {
            "products": size.products,
            "rate_products": size.rate_products,
            "page_size": page_size,
            "worker_concurrency": concurrency,
            "workers": "s2s worker --profile sync and --profile push",
            "bulk_threshold_phase_1": BULK_THRESHOLD,
            "channels": list(channels),
            "store": "emulators.shopify, default cost limits (2,000 points, 100/s)",
            "woocommerce_store": "emulators.woocommerce (no rate limit, batches of 100)",
        },
    }
    with cleaned_up(env, "cleaning up (workers, databases, redis db)"), _terminate_as_interrupt():
        _timed("databases created and migrated", env.open)
        results["versions"] = _versions()
        results["phases"] = _phases(env, size, channels)
    return results


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    """The figures as a fixed-width table."""
    phases = results["phases"]
    rows = _rows(phases) if "first_push_bulk" in phases else []
    if "woocommerce" in phases:
        rows += woocommerce_rows(phases["woocommerce"])
    width = max(len(r[0]) for r in rows)
    m, v, c = results["machine"], results["versions"], results["config"]
    rate = f" (phase 4: {c['rate_products']:,})" if "product_set_rate" in phases else ""
    head = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, kernel {m['kernel']}",
        f"versions: python {v['python']}, postgresql {v['postgresql']}, redis {v['redis']}, "
        f"celery {v['celery']}",
        f"commit {results['git_commit']}; size {results['size']}; {c['products']:,} ERP products"
        f"{rate}; worker concurrency {c['worker_concurrency']}"
        + (f"; median of {results['runs']} runs" if results.get("runs") else ""),
        "",
    ]
    return "\n".join(head + [f"{label.ljust(width)}  {value}" for label, value in rows])


def _rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    first, unchanged = p["first_push_bulk"], p["unchanged_push"]
    changed, rate = p["changed_push"], p["product_set_rate"]
    rows: list[tuple[str, str]] = [
        (
            f"1. first push by bulk operation, {first['created']:,} products",
            f"{first['seconds']:.2f} s  {first['products_per_s']:,.0f} products/s  "
            f"({first['bulk_operations']} bulk operation, {first['refused']:,} refused)",
        ),
        (
            "   of which waiting on the operation's polls",
            f"{_num(first.get('bulk_wait_seconds'))} s",
        ),
        (
            "2. unchanged push",
            f"{unchanged['seconds']:.2f} s  mutations {unchanged['mutations_before']:,} -> "
            f"{unchanged['mutations_after']:,} ({unchanged['mutations_sent']} sent)",
        ),
        (
            f"3. 1% changed ({changed['rows_changed']:,} rows, "
            f"{changed['products_changed']:,} products), synced, pushed",
            f"sync {changed['sync_seconds']:.2f} s, push {changed['seconds']:.2f} s  "
            f"{changed['product_set_writes']:,} productSet writes "
            f"({changed['products_changed_in_store']:,} changed products in the store), "
            f"{changed['inventory_set_calls']} inventorySetQuantities",
        ),
        (
            f"4. first push by productSet, {rate['product_sets']:,} products, fresh store",
            f"{rate['seconds']:.2f} s  {rate['product_sets_per_s']:.2f} productSet/s overall",
        ),
        (
            "   while the bucket held points / once it ran dry",
            f"{_num(rate['before_dry_product_sets_per_s'])}/s for the first "
            f"{rate['product_sets_before_dry']:,} / "
            f"{_num(rate['steady_product_sets_per_s'])}/s after",
        ),
        (
            "   cost of a productSet (extensions.cost)",
            f"{rate['cost_actual']:.1f} points actual, {rate['cost_requested']:.1f} requested; "
            f"{rate['throttled_answers']} THROTTLED answers",
        ),
        (
            "   a store on the default limits, per hour",
            _per_hour(rate),
        ),
    ]
    refusals = {**first.get("refusals_by_reason", {})}
    for reason, count in sorted(refusals.items(), key=lambda kv: -kv[1]):
        rows.append(("   refused in the first push", f"{count:,}: {reason}"))
    return rows


def _per_hour(rate: dict[str, Any]) -> str:
    bucket = (
        f"the bucket allows {rate['bucket_restore_rate']:.0f} points/s / "
        f"{rate['cost_actual']:.0f} points = {rate['per_hour_arithmetic']:,}/h"
    )
    if rate["per_hour_measured"] is None:
        return f"not reached (the bucket never ran dry); {bucket}"
    return (
        f"{rate['per_hour_measured']:,} products measured; {bucket}; measured is "
        f"{rate['measured_over_arithmetic']:.0%} of that"
    )


def _num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.push",
        description="Benchmark pushes to emulated Shopify and WooCommerce stores, real workers.",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--runs", type=int, default=1, help="whole runs; figures are medians")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results-push.json", help="results file"
    )
    parser.add_argument("--page-size", type=int, default=500, help="records per sync page")
    parser.add_argument("-c", "--concurrency", type=int, default=2, help="pool size per worker")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs")
    parser.add_argument(
        "--channel", choices=(*CHANNELS, "both"), default="both", help="which stores' phases"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    each = []
    for i in range(args.runs):
        if args.runs > 1:
            _say(f"run {i + 1} of {args.runs}")
        channels = CHANNELS if args.channel == "both" else (args.channel,)
        each.append(
            benchmark(args.size, args.page_size, args.concurrency, args.keep_logs, channels)
        )
    results = combine(each)
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
