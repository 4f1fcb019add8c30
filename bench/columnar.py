"""Mapping alone, per path: the per-record reference against the columnar path.

The same rows as ``bench.run`` (``emulators.sql_erp.seed`` with seed 7:
100,000 products, 120,062 rows at full size) are seeded into a PostgreSQL
database of this benchmark's own (``col_<tag>``, dropped at the end), read
once through the SQL connector in pages, and kept; then every page is
mapped and validated by ``workers.pipeline.map_records`` with
``S2S_COLUMNAR=0`` (per record) and ``S2S_COLUMNAR=all`` (in columns,
whatever the page size), in turns, ``--runs`` times each. Nothing is
written.

Each figure is the median of the runs, in wall seconds and in CPU seconds
of this process (``time.process_time``: all its threads, Polars' included),
since the machine may be shared. The two paths' outputs are compared once
(the same items and quarantine entries, in the same order) and the run
fails if they differ.

    python -m bench.columnar                    # 100,000 products, median of 3
    python -m bench.columnar --products 20000 --runs 5 --json out.json

What the figures said when this was written (2026-12-06, 2-core VM, load
1-3, 500-row pages): per record 2.61 s CPU (26 µs a product), columnar
1.02 s (10 µs), 2.5x. Of the columnar path's time about a quarter is
Polars' query (about 1 ms a page whatever its size up to a few thousand
rows) and most of the rest is Python building what the store takes (a
dict per product and per variant, a StoreItem, a sha256): the next steps
are pages in columns from the driver and a store that takes columns.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import workers.pipeline  # noqa: F401  (sets Polars' thread default before Polars loads)
from bench.run import SEED, _admin, _pg_url, read_pages

PAGE_SIZE = 500  # the sync's default page


@contextmanager
def erp_database(products: int) -> Iterator[str]:
    """A fresh ERP database seeded as bench.run seeds it; dropped afterwards."""
    from emulators import sql_erp

    name = f"col_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        url = _pg_url(name)
        sql_erp.seed(url, products=products, customers=50, seed=SEED)
        yield url
    finally:
        from sqlalchemy import create_engine

        create_engine(_pg_url("postgres")).dispose()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def map_all(pages: list[list[dict[str, Any]]], columnar: bool) -> tuple[float, float, int, int]:
    """Map every page one way: (wall s, CPU s, items, quarantine entries)."""
    from workers.pipeline import map_records

    os.environ["S2S_COLUMNAR"] = "all" if columnar else "0"
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    items = errors = 0
    for records in pages:
        mapped, quarantined = map_records("sql", "products", records, {})
        items += len(mapped)
        errors += len(quarantined)
    return time.perf_counter() - wall, time.process_time() - cpu, items, errors


def same_output(pages: list[list[dict[str, Any]]]) -> bool:
    """Both paths give the same items and entries, page by page."""
    from workers.pipeline import map_records

    for records in pages:
        os.environ["S2S_COLUMNAR"] = "0"
        reference = map_records("sql", "products", records, {})
        os.environ["S2S_COLUMNAR"] = "all"
        if map_records("sql", "products", records, {}) != reference:
            return False
    return True


def measure(products: int, runs: int, page_size: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Seed, read, check both paths alike, then time each path ``runs`` times."""
    import polars as pl

    with erp_database(products) as url:
        say(f"seeded {products:,} products")
        pages, read_seconds = read_pages(url, page_size)
    rows = sum(len(p) for p in pages)
    say(f"read {rows:,} rows in {len(pages)} pages ({read_seconds:.2f} s)")
    alike = same_output(pages)
    say(f"outputs alike: {alike}")
    map_all(pages[:4], True)  # imports, compiled plans: not timed
    map_all(pages[:4], False)
    timed: dict[str, list[tuple[float, float, int, int]]] = {"per_record": [], "columnar": []}
    for run in range(runs):
        for path in ("per_record", "columnar"):
            timed[path].append(map_all(pages, path == "columnar"))
            wall, cpu = timed[path][-1][:2]
            say(f"run {run + 1} {path}: {wall:.3f} s wall, {cpu:.3f} s CPU")
    figures: dict[str, Any] = {}
    for path, each in timed.items():
        figures[path] = {
            "wall_s": round(statistics.median(t[0] for t in each), 3),
            "cpu_s": round(statistics.median(t[1] for t in each), 3),
            "items": each[0][2],
            "quarantined": each[0][3],
            "runs": [[round(t[0], 3), round(t[1], 3)] for t in each],
        }
    ref, col = figures["per_record"], figures["columnar"]
    return {
        "products": products,
        "rows": rows,
        "pages": len(pages),
        "page_size": page_size,
        "read_s": round(read_seconds, 3),
        "outputs_alike": alike,
        "polars": pl.__version__,
        "polars_threads": pl.thread_pool_size(),
        "load_before": os.getloadavg(),
        **figures,
        "speedup_wall": round(ref["wall_s"] / col["wall_s"], 2),
        "speedup_cpu": round(ref["cpu_s"] / col["cpu_s"], 2),
        "us_per_product": {
            path: round(figures[path]["cpu_s"] / products * 1e6, 1) for path in timed
        },
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['products']:,} products, {result['rows']:,} rows, {result['pages']} pages "
        f"of {result['page_size']}; read {result['read_s']} s; polars {result['polars']} "
        f"({result['polars_threads']} threads); outputs alike: {result['outputs_alike']}",
        f"{'path':<12} {'wall s':>8} {'CPU s':>8} {'µs/product (CPU)':>17} {'items':>8} "
        f"{'quarantined':>12}",
    ]
    for path in ("per_record", "columnar"):
        f = result[path]
        lines.append(
            f"{path:<12} {f['wall_s']:>8.3f} {f['cpu_s']:>8.3f} "
            f"{result['us_per_product'][path]:>17} {f['items']:>8,} {f['quarantined']:>12,}"
        )
    lines.append(
        f"columnar is {result['speedup_wall']}x faster (wall), {result['speedup_cpu']}x (CPU); "
        f"median of {len(result['columnar']['runs'])}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    result = measure(args.products, args.runs, args.page_size, say)
    print(table(result))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 0 if result["outputs_alike"] else 1


if __name__ == "__main__":
    sys.exit(main())
