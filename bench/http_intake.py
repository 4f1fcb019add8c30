"""Order intake through the HTTP door, as channels use it (issue #20, item 1).

``python -m bench.http_intake [--size smoke|full] [--runs 3] [--api-workers N]
[--client raw|httpx] [--json PATH]``

Why this shape: ``bench.run`` measures orders from ``workers.orders.submit``
called in-process, but channels never call that: they POST over HTTP, many
at once, and a flash sale sends webhooks in a flood. So the hub is started as
a user starts it, and loaded as channels load it:

- a fresh hub database, migrated, with one client (its API token issued by
  the hub) whose SQL source is the SQL ERP emulator in a database of its own,
  its products synced so that their SKUs can be ordered, and a ``shopify``
  channel holding the webhook secret;
- ``python -m s2s.cli api --host 127.0.0.1 --port N`` as a subprocess (with
  ``--workers N`` when asked and the command has it), and one ``s2s worker``
  (``--profile all``) raising the orders into the ERP meanwhile;
- a load generator in a process of its own (``bench.http_load``), which for
  each concurrency C of the sweep posts N orders over C keep-alive
  connections (its own lean HTTP/1.1 client on asyncio streams, or httpx
  with ``--client httpx``): canonical orders to ``POST /api/v1/clients/{c}/orders`` with
  the bearer token, then Shopify ``orders/create`` bodies to ``POST
  /webhooks/shopify/{c}``, signed as Shopify signs them (HMAC-SHA256 over the
  raw body, base64, with the channel's secret; computed with the standard
  library, not the hub's code), then (``api-same``) the same sales as
  canonical orders to the order API: the webhook's order is about three
  times the plain API order's size (two full addresses, the customer's id,
  the channel's meta), so only this pair compares the doors on one order.

Per endpoint and concurrency: orders/s (2xx answers / wall time from the
first request to the last answer), latency p50 / p99 / max of every request
(the client's view: connect, send, the hub's work, answer), answers by
status, answers over 5 s (Shopify's wait), CPU seconds of the API, worker,
load generator and PostgreSQL (every server process: hub and ERP). After
each point the bench waits until the worker has raised its orders, so the
next point starts with no backlog (the worker does raise the point's orders
during it, as it would in production). Before the points of each
concurrency, every endpoint is sent 4 orders a connection, unmeasured (but
checked below), so that the API's pool and PostgreSQL's backends grow to the
new concurrency there and not in whichever endpoint is measured first.
With ``--raise-after`` the worker's process group is stopped (SIGSTOP)
while each slice is sent and continued after its last answer: the point then
measures the door alone, what intake absorbs in a flood the worker has not
caught up with, and the drain raises the slice's orders before the next.
Each point is then sent in 4 slices (``--rounds``), the endpoints taking
turns, so that a slower spell of this shared machine falls on all of them
alike; a point's orders/s are its slices' orders over their summed wall
time, its latencies those of all its requests.

At the end every order answered 2xx must be in the ERP's ``s2s_order`` table
exactly once; an order refused (4xx / 5xx) must not be stored at all. The
bench exits 1 when either does not hold.

Everything created is removed on exit, Ctrl-C, SIGTERM or failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.http_load import Door, Sample, drive, figures, warm_generator
from bench.http_report import combine_runs, held, table
from bench.run import (
    ROOT,
    SEED,
    Env,
    _children,
    _git_commit,
    _pg_dsn,
    _pg_url,
    _say,
    _terminate_as_interrupt,
    _timed,
    _versions,
    cleaned_up,
    machine_facts,
    run_sync,
)
from bench.tenants import _free_port

CLIENT = "door"
ENDPOINTS = ("api", "webhook", "api-same")
# What ``--endpoint`` accepts beyond one endpoint: "both" as before the twin.
ENDPOINT_SETS = {"all": ENDPOINTS, "both": ("api", "webhook")}
WARM_UP_ORDERS = 20
WARM_UP_PER_LANE = 4
# Each point is sent in this many slices, the endpoints taking turns.
ROUNDS = 4
GENERATOR_CLIENTS = {
    "raw": "own HTTP/1.1 client on asyncio streams",
    "httpx": "one shared httpx.AsyncClient",
}


@dataclass(frozen=True)
class Size:
    """The sweep: concurrencies, orders per point, ERP products."""

    concurrency: tuple[int, ...]
    orders: int
    products: int


SIZES = {
    "smoke": Size(concurrency=(1, 8), orders=50, products=100),
    "full": Size(concurrency=(1, 8, 32, 128), orders=2_000, products=500),
}


# --------------------------------------------------------------------------
# The hub as a user runs it
# --------------------------------------------------------------------------


def api_has_workers() -> bool:
    """Whether this tree's ``s2s api`` takes ``--workers`` (read from its --help)."""
    shown = subprocess.run(
        [sys.executable, "-m", "s2s.cli", "api", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return re.search(r"--workers\b", shown.stdout) is not None


def start_api(
    env: Env, workers: int | None, name: str = "api"
) -> tuple[str, subprocess.Popen[bytes]]:
    """``s2s api`` on a free port, in its own process group, once /health answers.

    Kept in ``env.workers`` so that ``Env.close`` stops it whatever happens.
    """
    import httpx

    port = _free_port()
    log_path = env.var_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "s2s.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env.env, cwd=ROOT, start_new_session=True
        )
    env.workers.append(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"s2s api exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return base, proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"s2s api not healthy:\n{log_path.read_text()[-3000:]}")


def set_up(env: Env, products: int) -> tuple[str, str, list[str]]:
    """The ERP seeded, one client with its source synced and a Shopify channel.

    Returns the client's API token, its webhook secret and the orderable SKUs.
    """
    from sqlalchemy import select

    from emulators import sql_erp
    from hub.db import session_scope
    from hub.models import Client, Product, Variant
    from workers.sources import set_channels, upsert_client, upsert_source

    erp_url = _pg_url(env.erp_db)
    sql_erp.seed(erp_url, products=products, customers=10, seed=SEED)
    settings = {"url": erp_url, "default_customer_code": "CASH", "shipping_code": "SHIP"}
    with session_scope() as s:
        client, token = upsert_client(s, CLIENT, "Door Trading")
        if token is None:
            raise RuntimeError(f"client {CLIENT} already existed: the hub database is not fresh")
        source_id = upsert_source(s, client, "erp", "sql", settings).id
    synced = run_sync(source_id, full=True, timeout=600)
    if synced.status != "succeeded":
        raise RuntimeError(f"the product sync ended {synced.status}: {synced.counts}")
    secret = "shpss_bench_" + uuid.uuid4().hex
    with session_scope() as s:
        client = s.scalars(select(Client).where(Client.code == CLIENT)).one()
        set_channels(s, client, {"shopify": {"secret": secret}})
        skus = list(
            s.scalars(
                select(Variant.sku)
                .join(Product, Product.id == Variant.product_id)
                .where(Variant.source_id == source_id, Product.deleted_at.is_(None))
                .order_by(Variant.sku)
            )
        )
    if not skus:
        raise RuntimeError("the sync stored no products: no SKU to order")
    return token, secret, skus


# --------------------------------------------------------------------------
# Measuring one point, and waiting for the worker
# --------------------------------------------------------------------------


def _ticks(stat: Path, name: str | None = None) -> int:
    """utime + stime of the process whose ``/proc/<pid>/stat`` this is, in
    clock ticks; 0 when it is gone, or its command is not ``name``."""
    try:
        head, rest = stat.read_text().rsplit(")", 1)
    except OSError:
        return 0
    if name is not None and not head.endswith(f"({name}"):
        return 0
    fields = rest.split()
    return int(fields[11]) + int(fields[12])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (a pool, uvicorn's workers)."""
    total = sum(_ticks(Path(f"/proc/{p}/stat")) for p in (pid, *_children(pid)))
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds() -> float:
    """utime + stime of every PostgreSQL server process on this machine (the
    hub's and the ERP's databases share the server): read beside the API's
    and the worker's, it says where a door's cost per order lands."""
    total = sum(_ticks(stat, "postgres") for stat in Path("/proc").glob("[0-9]*/stat"))
    return total / os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(busy, all) jiffies of every core since boot, from /proc/stat: whether
    the machine was saturated during a point (PostgreSQL's and Redis's work
    and anyone else's included)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def unfinished() -> tuple[int, int]:
    """(orders stored, orders not yet raised or dead) in the hub."""
    from sqlalchemy import func, select

    from hub import orders as states
    from hub.db import session_scope
    from hub.models import Order

    with session_scope() as s:
        total = s.scalar(select(func.count()).select_from(Order)) or 0
        waiting = s.scalar(
            select(func.count()).select_from(Order).where(Order.status.in_(states.UNFINISHED))
        )
    return total, waiting or 0


def wait_raised(at_least: int, timeout: float) -> float:
    """Seconds until the hub holds ``at_least`` orders and none is unfinished."""
    t0 = time.perf_counter()
    while True:
        total, waiting = unfinished()
        if total >= at_least and waiting == 0:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{waiting} of {total} orders still unfinished after {timeout:.0f}s")
        time.sleep(0.1)


@dataclass
class Sweep:
    """The running state of one run's sweep: processes, numbers, what was sent."""

    # The API servers measured, by label ("" for the first): where each
    # listens, and its pid (its --workers children's CPU counts as its own).
    apis: dict[str, tuple[Door, int]]
    skus: list[str]
    pool: Any
    worker_pid: int
    timeout: float
    client: str
    raise_after: bool = False
    next_number: int = 1
    accepted: int = 0

    def slice(self, endpoint: str, lanes: int, count: int, via: str = "") -> Slice:
        """``count`` orders over ``lanes`` connections; then the worker's drain.

        With ``raise_after`` the worker's process group is stopped while the
        orders are sent and continued after the last answer: the slice then
        measures what the door absorbs while raising waits, as in a flood
        the worker has not caught up with (the orders wait, queued in the
        database, and are raised in the drain).
        """
        door, api_pid = self.apis[via]
        first, self.next_number = self.next_number, self.next_number + count
        cpu = (_cpu_seconds(api_pid), _cpu_seconds(self.worker_pid), _postgres_cpu_seconds())
        load, machine = os.getloadavg()[0], _machine_ticks()
        if self.raise_after:
            os.killpg(self.worker_pid, signal.SIGSTOP)
        try:
            job = self.pool.submit(
                drive,
                door,
                endpoint,
                first,
                count,
                self.skus,
                lanes,
                self.timeout,
                self.client,
            )
            done = job.result()
        finally:
            if self.raise_after:
                os.killpg(self.worker_pid, signal.SIGCONT)
        api_cpu = _cpu_seconds(api_pid) - cpu[0]
        busy, ticks = (b - a for a, b in zip(machine, _machine_ticks(), strict=True))
        samples: list[Sample] = done["samples"]
        self.accepted += sum(1 for s in samples if 200 <= s[1] < 300)
        drain = wait_raised(self.accepted, timeout=max(300.0, count / 10))
        return Slice(
            samples=samples,
            wall=done["wall"],
            drain=drain,
            # The worker's and PostgreSQL's over the slice and the drain
            # (the ERP's share included).
            cpu={
                "api": api_cpu,
                "worker": _cpu_seconds(self.worker_pid) - cpu[1],
                "load_generator": done["cpu"],
                "postgres": _postgres_cpu_seconds() - cpu[2],
            },
            busy=busy,
            ticks=ticks,
            load=load,
        )

    def points(
        self, endpoints: tuple[str, ...], lanes: int, count: int, rounds: int
    ) -> dict[str, tuple[dict[str, Any], list[Sample]]]:
        """Each endpoint's point at ``lanes`` on each API server: ``count``
        orders sent as ``rounds`` slices, the endpoints (and servers) taking
        turns.

        Why turns: this machine's speed drifts by a third within a minute
        (other tenants, disk flushes). Measured one after the other, each
        endpoint's point got whatever spell it fell in, and the ratio of two
        endpoints moved between 0.65 and 1.1 from run to run; interleaved,
        every endpoint sees the same spells.
        """
        keys = [(endpoint, via) for endpoint in endpoints for via in self.apis]
        sliced: dict[tuple[str, str], list[Slice]] = {key: [] for key in keys}
        sizes = [count // rounds + (1 if i < count % rounds else 0) for i in range(rounds)]
        for size in sizes:
            for endpoint, via in keys:
                if size:
                    sliced[endpoint, via].append(self.slice(endpoint, lanes, size, via))
        return {point_name(*key): merged(parts) for key, parts in sliced.items()}


def versus_label(workers: int) -> str:
    """The label of the second API server's points."""
    return f"{workers} API processes"


def point_name(endpoint: str, via: str) -> str:
    """An endpoint's name in the results, with the API server's label if not the first."""
    return f"{endpoint}, {via}" if via else endpoint


@dataclass(frozen=True)
class Slice:
    """One stretch of one endpoint's point, as measured."""

    samples: list[Sample]
    wall: float
    drain: float
    cpu: dict[str, float]
    busy: int
    ticks: int
    load: float


def merged(parts: list[Slice]) -> tuple[dict[str, Any], list[Sample]]:
    """A point's figures over its slices: orders/s over their summed wall
    time, latencies over every request, CPU summed, the slowest drain."""
    samples = [sample for part in parts for sample in part.samples]
    busy, ticks = sum(p.busy for p in parts), sum(p.ticks for p in parts)
    result = {
        **figures(samples, sum(p.wall for p in parts)),
        "slices": len(parts),
        "raised_within_s": round(max(p.drain for p in parts), 3),
        "cpu_s": {k: round(sum(p.cpu[k] for p in parts), 2) for k in parts[0].cpu},
        "machine_busy": round(busy / ticks, 3) if ticks else None,
        "load_1m_before": round(parts[0].load, 2),
    }
    return result, samples


# --------------------------------------------------------------------------
# Exactly once
# --------------------------------------------------------------------------


def exactly_once(erp_db: str, sent: list[Sample]) -> dict[str, Any]:
    """Every order answered 2xx in the ERP once; every refused one stored nowhere."""
    import psycopg
    from sqlalchemy import select

    from hub.db import session_scope
    from hub.models import Order

    with psycopg.connect(_pg_dsn(erp_db)) as conn:
        rows = conn.execute("SELECT channel_order_code, count(*) FROM s2s_order GROUP BY 1")
        in_erp: dict[str, int] = {str(code): int(n) for code, n in rows.fetchall()}
    with session_scope() as s:
        hub_rows = s.execute(select(Order.channel_order_code, Order.status)).all()
    held = Counter(code for code, _ in hub_rows)
    statuses = Counter(status for _, status in hub_rows)
    accepted = {s[0] for s in sent if 200 <= s[1] < 300}
    refused = {s[0] for s in sent if s[1] >= 300}
    unanswered = {s[0] for s in sent if s[1] == 0}
    return {
        "sent": len(sent),
        "accepted": len(accepted),
        "in_erp": len(in_erp),
        "duplicates_in_erp": sum(1 for n in in_erp.values() if n > 1),
        "duplicates_in_hub": sum(1 for n in held.values() if n > 1),
        "missing_from_erp": len(accepted - in_erp.keys()),
        "refused_yet_stored": len(refused & held.keys()),
        "unanswered_stored": len(unanswered & held.keys()),
        "unexpected_in_erp": len(in_erp.keys() - accepted - unanswered),
        "hub_statuses": dict(sorted(statuses.items())),
    }


# --------------------------------------------------------------------------
# One whole run
# --------------------------------------------------------------------------


def _passed_through() -> dict[str, str]:
    """S2S settings from the caller's environment that reach the API and worker
    (recorded with the figures; anything that may hold a secret by name only)."""
    out = {}
    for name, value in sorted(os.environ.items()):
        if name.startswith("S2S_") and name not in ("S2S_DATABASE_URL", "S2S_BROKER_URL"):
            hidden = any(w in name for w in ("SECRET", "KEY", "TOKEN", "PASSWORD", "URL"))
            out[name] = "(set)" if hidden else value
    return out


def _file_sha(relative: str) -> str:
    try:
        return hashlib.sha256((ROOT / relative).read_bytes()).hexdigest()[:12]
    except OSError:
        return "missing"


def _uncommitted() -> list[str]:
    """The hub's files that differ from the commit when the API starts: others
    may be changing them while the bench runs, and the figures are theirs."""
    shown = subprocess.run(
        ["git", "status", "--porcelain", "--", "s2s", "hub", "workers", "connectors"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return [line[3:] for line in shown.stdout.splitlines()]


def sweep(env: Env, args: argparse.Namespace, size: Size) -> dict[str, Any]:
    """Set up the hub, warm it, measure each endpoint at each concurrency, check."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    token, secret, skus = _timed(
        f"ERP seeded, {size.products} products synced", lambda: set_up(env, size.products)
    )
    worker = env.workers[0]
    code = {"api_source_sha": _file_sha("s2s/api.py"), "uncommitted": _uncommitted()}
    base, api = _timed("s2s api healthy", lambda: start_api(env, args.api_workers))
    apis = {"": (Door(base, CLIENT, token, secret), api.pid)}
    if args.versus_workers:
        label = versus_label(args.versus_workers)
        base2, api2 = _timed(
            f"s2s api --workers {args.versus_workers} healthy",
            lambda: start_api(env, args.versus_workers, "api-versus"),
        )
        apis[label] = (Door(base2, CLIENT, token, secret), api2.pid)
    context = multiprocessing.get_context("spawn")
    points: dict[str, dict[str, Any]] = {
        point_name(e, via): {} for e in args.endpoints for via in apis
    }
    sent: list[Sample] = []
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        pool.submit(warm_generator, args.client).result()
        run = Sweep(apis, skus, pool, worker.pid, args.timeout, args.client, args.raise_after)
        for endpoint in args.endpoints:
            for via in apis:
                sent += run.slice(endpoint, 4, WARM_UP_ORDERS, via).samples
        for lanes in size.concurrency:
            for endpoint in args.endpoints:
                for via in apis:
                    # Unmeasured: the API's pool and PostgreSQL's backends
                    # grow to this concurrency here, not in the first point.
                    sent += run.slice(endpoint, lanes, lanes * WARM_UP_PER_LANE, via).samples
            measured = run.points(args.endpoints, lanes, size.orders, args.rounds)
            for endpoint, (result, samples) in measured.items():
                sent += samples
                points[endpoint][str(lanes)] = result
                _say(
                    f"{endpoint} x{lanes}: {result['per_s']:,.0f} orders/s, "
                    f"p99 {result['p99_ms']:,.0f} ms, non-2xx {result['non_2xx'] or 0}"
                )
    check = exactly_once(env.erp_db, sent)
    return {"points": points, "exactly_once": check, **code}


def benchmark(args: argparse.Namespace, size: Size) -> dict[str, Any]:
    """One run on fresh databases; the results as plain data."""
    env = Env(page_size=500, concurrency=args.worker_pool, keep_logs=args.keep_logs)
    results: dict[str, Any] = {
        "benchmark": "http_intake",
        "size": args.size,
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_facts(),
        "git_commit": _git_commit(),
        "config": {
            "concurrency": list(size.concurrency),
            "orders_per_point": size.orders,
            "rounds": args.rounds,
            "raise_after": args.raise_after,
            "erp_products": size.products,
            "endpoints": list(args.endpoints),
            "api_workers": args.api_workers,
            "versus_workers": args.versus_workers,
            "worker": f"s2s worker --profile all -c {args.worker_pool}",
            "load_generator": f"one process, asyncio + {GENERATOR_CLIENTS[args.client]}, "
            "closed loop",
            "request_timeout_s": args.timeout,
            "passed_through": _passed_through(),
        },
    }
    with (
        cleaned_up(env, "cleaning up (api, worker, databases, redis db)"),
        _terminate_as_interrupt(),
    ):
        _timed("databases created and migrated", env.open)
        results["versions"] = _versions()
        env.start_worker("all")
        results["phases"] = sweep(env, args, size)
    results["git_commit_at_end"] = _git_commit()
    return results


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def _sweep_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("each concurrency must be at least 1")
    return values


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Size]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http_intake",
        description="Benchmark order intake over HTTP (order API and Shopify webhook).",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--runs", type=int, default=1, help="whole runs; figures are medians")
    parser.add_argument(
        "--api-workers", type=int, metavar="N", help="s2s api --workers N (if the command has it)"
    )
    parser.add_argument("--concurrency", type=_sweep_list, help="the sweep, e.g. 1,8,32,128")
    parser.add_argument("--orders", type=int, help="orders per endpoint and concurrency")
    parser.add_argument(
        "--versus-workers",
        type=int,
        metavar="N",
        help="also start `s2s api --workers N` and measure every point on both, taking turns",
    )
    parser.add_argument(
        "--raise-after",
        action="store_true",
        help="stop the worker while each slice is sent (intake alone; raised in the drain)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help="slices each point is sent in, the endpoints taking turns (1: one after the other)",
    )
    parser.add_argument(
        "--endpoint",
        choices=(*ENDPOINTS, *ENDPOINT_SETS),
        default="all",
        help="which doors to load: api-same is the order API posting the webhook's order",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument(
        "--client",
        choices=sorted(GENERATOR_CLIENTS),
        default="raw",
        help="the load generator's HTTP client: our own lean one (raw), or httpx to compare",
    )
    parser.add_argument(
        "-c", dest="worker_pool", type=int, default=2, metavar="N", help="worker pool size"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the API and worker logs")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "http-intake.json",
        help="where to write results",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rounds < 1 or (args.orders is not None and args.orders < 1):
        parser.error("--runs, --rounds and --orders must be at least 1")
    if args.versus_workers is not None and args.versus_workers < 2:
        parser.error("--versus-workers must be at least 2")
    if (args.api_workers or args.versus_workers) and not api_has_workers():
        parser.error(
            "this tree's `s2s api` has no --workers option (see `python -m s2s.cli api "
            "--help`): run without --api-workers or --versus-workers"
        )
    if args.api_workers is not None and args.api_workers < 1:
        parser.error("--api-workers must be at least 1")
    base = SIZES[args.size]
    size = Size(args.concurrency or base.concurrency, args.orders or base.orders, base.products)
    args.endpoints = ENDPOINT_SETS.get(args.endpoint, (args.endpoint,))
    return args, size


def main(argv: list[str] | None = None) -> int:
    args, size = parse(argv)
    each = []
    for i in range(args.runs):
        if args.runs > 1:
            _say(f"run {i + 1} of {args.runs}")
        each.append(benchmark(args, size))
    results = combine_runs(each)
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.json}")
    if not all(held(run["phases"]["exactly_once"]) for run in each):
        print("exactly once did NOT hold: see the check above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
