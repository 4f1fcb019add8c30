"""Where a sync page and an order raise spend their time: cProfile, one process.

``python -m bench.profile_sync [--products N] [--orders M] [--top K]``

Why in one process: a prefork worker hides its time in child processes and
the broker's waiting; calling the real task functions (``fetch_page``,
``map_page``, ``upsert_page``, ``route_order``, ``raise_order``) directly,
in order, on real PostgreSQL, shows the cost of the code itself, stage by
stage. Messages the tasks publish go to Redis db 15 and are discarded: no
worker runs. The databases are fresh and dropped afterwards, as in
``bench.run``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench.run import SEED, Env, _order_payload, _pg_url, _terminate_as_interrupt


def _stats(profile: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def profile_sync(top: int, full_resync: bool) -> tuple[dict[str, float], str]:
    """Run every page of one full sync through the three tasks, timing each stage."""
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import SyncPage, SyncRun
    from workers.tasks import fetch_page, map_page, start_sync, upsert_page

    timings: dict[str, float] = defaultdict(float)

    def timed(stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        value = fn(*args)
        timings[stage] += time.perf_counter() - t0
        return value

    profile = cProfile.Profile()
    source_id = _SOURCE["id"]
    result = start_sync(source_id, "products", full=full_resync or None, requested_by="profile")
    run_id = result.run.id
    profile.enable()
    seq = 0
    while True:
        timed("fetch_page", fetch_page, run_id, seq)
        with session_scope() as s:
            page = s.execute(
                select(SyncPage.id, SyncPage.cursor_out).where(
                    SyncPage.run_id == run_id, SyncPage.seq == seq
                )
            ).one()
        timed("map_page", map_page, page.id)
        timed("upsert_page", upsert_page, page.id)
        if page.cursor_out is None:
            break
        seq += 1
    profile.disable()
    with session_scope() as s:
        run = s.get(SyncRun, run_id)
        assert run is not None and run.status == "succeeded", run and run.status
    timings["pages"] = seq + 1
    return dict(timings), _stats(profile, top)


def profile_orders(count: int, top: int) -> tuple[dict[str, float], str]:
    """Intake, route and raise ``count`` orders in-process, timing each step."""
    from workers.orders import raise_order, route_order, submit

    timings: dict[str, float] = defaultdict(float)
    profile = cProfile.Profile()
    profile.enable()
    for i in range(count):
        skus = [_SOURCE["skus"][(i * 7 + j) % len(_SOURCE["skus"])] for j in range(1 + i % 3)]
        t0 = time.perf_counter()
        result, errors = submit(_SOURCE["client"], _order_payload(f"P{i:06d}", skus))
        assert result is not None and not errors
        t1 = time.perf_counter()
        route_order(result.order.id)
        t2 = time.perf_counter()
        raise_order(result.order.id)
        t3 = time.perf_counter()
        timings["submit"] += t1 - t0
        timings["route_order"] += t2 - t1
        timings["raise_order"] += t3 - t2
    profile.disable()
    return dict(timings), _stats(profile, top)


_SOURCE: dict[str, Any] = {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_sync")
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    env = Env(page_size=args.page_size, concurrency=0)
    try:
        with _terminate_as_interrupt():
            env.open()
            from sqlalchemy import select

            from emulators import sql_erp
            from hub.db import session_scope
            from hub.models import Product, Variant
            from workers.sources import upsert_client, upsert_source

            erp_url = _pg_url(env.erp_db)
            sql_erp.seed(erp_url, products=args.products, customers=10, seed=SEED)
            with session_scope() as s:
                client, _ = upsert_client(s, "prof")
                source = upsert_source(
                    s,
                    client,
                    "erp",
                    "sql",
                    {
                        "url": erp_url,
                        "page_size": args.page_size,
                        "default_customer_code": "CASH",
                        "shipping_code": "SHIP",
                    },
                )
                _SOURCE.update(id=source.id, client=client.id)
            for label, full in (("first full sync", False), ("unchanged resync", True)):
                timings, report = profile_sync(args.top, full)
                total = sum(v for k, v in timings.items() if k != "pages")
                print(f"===== {label}: {args.products:,} products, {timings['pages']:.0f} pages")
                for stage in ("fetch_page", "map_page", "upsert_page"):
                    share = timings[stage] / total * 100
                    print(f"  {stage:<12} {timings[stage]:7.2f} s  {share:4.0f}%")
                print(f"  {'total':<12} {total:7.2f} s  {args.products / total:,.0f} products/s")
                print(report)
            if args.orders < 1:
                return 0  # --orders 0: the sync alone
            with session_scope() as s:
                _SOURCE["skus"] = list(
                    s.scalars(
                        select(Variant.sku)
                        .join(Product, Product.id == Variant.product_id)
                        .where(Product.deleted_at.is_(None))
                        .order_by(Variant.sku)
                        .limit(2000)
                    )
                )
            timings, report = profile_orders(args.orders, args.top)
            total = sum(timings.values())
            print(f"===== orders: {args.orders} in one process")
            for stage, seconds in timings.items():
                each = seconds / args.orders * 1000
                print(f"  {stage:<12} {seconds:7.2f} s  {each:6.2f} ms each")
            print(f"  {'total':<12} {total:7.2f} s  {args.orders / total:,.0f} orders/s")
            print(report)
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
