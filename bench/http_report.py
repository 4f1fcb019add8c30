"""The figures of ``bench.http_intake``: several runs into one, the table, the
issue's targets beside them."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from bench.run import combine

# Targets from issue #20 (printed, not asserted).
TARGET_PER_S_AT_32 = 500.0
TARGET_P99_AT_32_MS = 100.0
TARGET_WEBHOOK_RATIO = 0.8


def held(check: dict[str, Any]) -> bool:
    """Whether the exactly-once check held."""
    keys = ("duplicates_in_erp", "duplicates_in_hub", "missing_from_erp", "refused_yet_stored")
    return not any(check[k] for k in (*keys, "unexpected_in_erp"))


def combine_runs(each: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every figure over the runs (``bench.run.combine``), except
    what must not hide in a median: answers that were not 2xx and answers
    over 5 s are summed over the runs per point, and so is the exactly-once
    check (one duplicate in any run is one too many)."""
    combined = combine(each)
    if len(each) == 1:
        return combined
    for endpoint, by_lanes in combined["phases"]["points"].items():
        for lanes, point in by_lanes.items():
            found = [r["phases"]["points"][endpoint][lanes] for r in each]
            non_2xx = Counter[str]()
            for one in found:
                non_2xx.update(one["non_2xx"])
            point["non_2xx"] = dict(sorted(non_2xx.items()))
            point["over_5s"] = sum(one["over_5s"] for one in found)
    checks = [r["phases"]["exactly_once"] for r in each]
    summed = {k: sum(c[k] for c in checks) for k in checks[0] if k != "hub_statuses"}
    in_hub = Counter[str]()
    for c in checks:
        in_hub.update(c["hub_statuses"])
    combined["phases"]["exactly_once"] = {**summed, "hub_statuses": dict(in_hub)}
    combined["summed_over_runs"] = ["non_2xx", "over_5s", "exactly_once"]
    return combined


def _statuses(counts: dict[str, int]) -> str:
    shown = [f"{n:,}x {status}" for status, n in counts.items() if n]
    return ", ".join(shown) or "0"


def _point_rows(points: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    head = "endpoint conns orders/s p50_ms p99_ms max_ms >5_s non-2xx raised_in busy"
    rows: list[tuple[str, ...]] = [
        (*(h.replace("_", " ") for h in head.split()), "CPU s: api / worker / generator / postgres")
    ]
    for endpoint, by_lanes in points.items():
        for lanes, p in by_lanes.items():
            cpu = p["cpu_s"]
            rows.append(
                (
                    endpoint,
                    lanes,
                    f"{p['per_s']:,.0f}",
                    f"{p['p50_ms']:,.1f}",
                    f"{p['p99_ms']:,.1f}",
                    f"{p['max_ms']:,.1f}",
                    str(p["over_5s"]),
                    _statuses(p["non_2xx"]),
                    f"{p['raised_within_s']:.1f} s",
                    f"{p['machine_busy']:.0%}" if p.get("machine_busy") is not None else "",
                    f"{cpu['api']:.1f} / {cpu['worker']:.1f} / {cpu['load_generator']:.1f}"
                    + (f" / {cpu['postgres']:.1f}" if "postgres" in cpu else ""),
                )
            )
    return rows


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "MISS")


def _target_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    points = results["phases"]["points"]
    api, hook = points.get("api", {}), points.get("webhook", {})
    one_process = results["config"]["api_workers"] in (None, 1)
    at32 = api.get("32")
    rows = [
        (
            f"one API process >= {TARGET_PER_S_AT_32:.0f} orders/s at 32, "
            f"p99 <= {TARGET_P99_AT_32_MS:.0f} ms",
            f"{at32['per_s']:,.0f}/s, p99 {at32['p99_ms']:,.0f} ms" if at32 else "not measured",
            _verdict(
                at32["per_s"] >= TARGET_PER_S_AT_32 and at32["p99_ms"] <= TARGET_P99_AT_32_MS
                if at32 and one_process
                else None
            ),
        )
    ]
    for name, by in (("api", api), ("webhook", hook)):
        if "8" in by and "128" in by:
            low, high = by["8"]["per_s"], by["128"]["per_s"]
            rows.append(
                (
                    f"{name}: orders/s at 128 >= at 8",
                    f"{high:,.0f} vs {low:,.0f}",
                    _verdict(high >= low),
                )
            )
    for other, which in (("api", "its lighter order"), ("api-same", "the same order")):
        base = points.get(other, {})
        ratios = {
            k: hook[k]["per_s"] / base[k]["per_s"] for k in hook if base.get(k, {}).get("per_s")
        }
        if not ratios:
            continue
        worst = min(ratios, key=lambda k: ratios[k])
        rows.append(
            (
                f"webhook orders/s within {1 - TARGET_WEBHOOK_RATIO:.0%} of the API's ({which})",
                f"lowest at {worst} conns: {ratios[worst]:.2f}x",
                _verdict(ratios[worst] >= TARGET_WEBHOOK_RATIO),
            )
        )
    versus = results["config"].get("versus_workers")
    for endpoint in ("api", "webhook", "api-same"):
        gains = _versus_gains(results, endpoint, f"{endpoint}, {versus} API processes")
        if not versus or not gains:
            continue
        # Judged where one process is loaded most: the sweep's highest concurrency.
        top = max(gains, key=int)
        rows.append(
            (
                f"{endpoint}: {versus} API processes above one (at the most connections)",
                ", ".join(f"{gains[k]:.2f}x at {k}" for k in gains),
                _verdict(gains[top] > 1.0),
            )
        )
    slow = sum(p["over_5s"] for by in points.values() for p in by.values())
    rows.append(("no answer over 5 s", f"{slow:,} over", _verdict(slow == 0)))
    check = results["phases"]["exactly_once"]
    rows.append(
        (
            "every accepted order in the ERP exactly once",
            f"{check['accepted']:,} accepted, {check['in_erp']:,} in the ERP; "
            f"{check['duplicates_in_erp']} duplicates, {check['missing_from_erp']} missing, "
            f"{check['refused_yet_stored']} refused yet stored",
            _verdict(held(check)),
        )
    )
    return rows


def _versus_gains(results: dict[str, Any], one: str, more: str) -> dict[str, float]:
    """``more``'s orders/s over ``one``'s at each concurrency: within each run
    (the two servers took turns there), then the median over the runs, so a
    run in a slower spell weighs on both sides of its own ratio only."""
    runs = [r["phases"]["points"] for r in results.get("each_run", [])] or [
        results["phases"]["points"]
    ]
    ratios: dict[str, list[float]] = {}
    for points in runs:
        for lanes, point in points.get(one, {}).items():
            other = points.get(more, {}).get(lanes)
            if other and point["per_s"]:
                ratios.setdefault(lanes, []).append(other["per_s"] / point["per_s"])
    return {lanes: statistics.median(values) for lanes, values in ratios.items()}


def _aligned(rows: list[tuple[str, ...]], right: int = 0) -> list[str]:
    """Columns padded to width; the first ``right`` columns after the first right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if 0 < i <= right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]


def table(results: dict[str, Any]) -> str:
    """The sweep as a fixed-width table, then the issue's targets and each run."""
    m, v, c = results["machine"], results["versions"], results["config"]
    api = f"s2s api --workers {c['api_workers']}" if c["api_workers"] else "s2s api (one process)"
    if c.get("versus_workers"):
        api += f", then s2s api --workers {c['versus_workers']} beside it, taking turns"
    load = " ".join(f"{x:.2f}" for x in results["load_average_at_start"])
    head = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, kernel {m['kernel']}",
        f"versions: python {v['python']}, postgresql {v['postgresql']}, redis {v['redis']}",
        f"commit {results['git_commit']}; size {results['size']}; {c['orders_per_point']:,} "
        f"orders per point"
        + (f" in {c['rounds']} interleaved slices" if c.get("rounds", 1) > 1 else "")
        + f"; {api}; {c['worker']}"
        + (", stopped while each slice is sent (--raise-after)" if c.get("raise_after") else "")
        + f"; load average at start {load}"
        + (
            f"; median of {results['runs']} runs (>5 s, non-2xx and exactly once: "
            "summed over the runs)"
            if results.get("runs")
            else ""
        ),
        f"load generator: {c.get('load_generator', 'not recorded')}",
        _code_line(results),
        "",
    ]
    body = _aligned(_point_rows(results["phases"]["points"]), right=6)
    body += ["", "targets (issue #20; printed, not asserted):"]
    body += ["  " + line for line in _aligned(list(_target_rows(results)))]
    body += [_run_line(i, run["phases"]) for i, run in enumerate(results.get("each_run", []), 1)]
    return "\n".join(head + body)


def _code_line(results: dict[str, Any]) -> str:
    """Which API code the figures are of: s2s/api.py's hash (as each run found
    it) and the hub's files that differed from the commit."""
    runs = [r["phases"] for r in results.get("each_run", [])] or [results["phases"]]
    shas = sorted({str(p.get("api_source_sha")) for p in runs})
    changed = sorted({f for p in runs for f in p.get("uncommitted", [])})
    return f"s2s/api.py sha256 {', '.join(shas)}; uncommitted: {', '.join(changed) or 'none'}"


def _run_line(number: int, p: dict[str, Any]) -> str:
    """One run's figures on a line, with what went wrong at each point and the
    machine's load (1 min) before its points: runs on a shared VM differ."""
    points = [(e, lanes, f) for e, by in p["points"].items() for lanes, f in by.items()]
    loads = [f["load_1m_before"] for _, _, f in points]
    rates = ", ".join(
        f"{e} x{lanes} {f['per_s']:,.0f}/s p99 {f['p99_ms']:,.0f} ms"
        + (f" [{_statuses(f['non_2xx'])}]" if any(f["non_2xx"].values()) else "")
        for e, lanes, f in points
    )
    check = p["exactly_once"]
    return (
        f"run {number} (load {min(loads):.1f}-{max(loads):.1f}): {rates}; exactly once "
        f"{'held' if held(check) else 'FAILED'} ({check['accepted']:,} accepted); "
        f"api.py {p.get('api_source_sha')}"
    )
