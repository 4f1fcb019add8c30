"""The HTTP intake bench's interleaved slices add up to the point they split.

``bench.http_intake`` sends each point in slices, the endpoints taking
turns, and reports the point from them: a figure merged wrongly (a mean of
the slices' rates instead of all their orders over all their time, a
latency percentile of one slice) would misstate the door's speed.
"""

from __future__ import annotations

import pytest

from bench.http_intake import Slice, merged


def _slice(latencies: list[float], wall: float, drain: float, api: float) -> Slice:
    samples = [(f"A{i}", 201, x, "", False) for i, x in enumerate(latencies)]
    cpu = {"api": api, "worker": 0.5, "load_generator": 0.1, "postgres": 0.25}
    return Slice(samples, wall, drain, cpu, busy=90, ticks=100, load=1.0)


def test_a_points_figures_are_all_its_slices_orders_over_all_their_time() -> None:
    fast = _slice([0.01] * 300, wall=1.0, drain=0.2, api=0.4)
    slow = _slice([0.03] * 100 + [4.0, 6.0], wall=3.0, drain=0.7, api=1.1)
    slow.samples.append(("A999", 503, 0.02, "", False))
    result, samples = merged([fast, slow])
    assert len(samples) == 403
    assert result["accepted"] == 402 and result["per_s"] == pytest.approx(402 / 4.0, abs=0.1)
    assert result["non_2xx"] == {"503": 1} and result["over_5s"] == 1
    assert result["max_ms"] == 6000.0 and result["p50_ms"] == 10.0
    assert result["cpu_s"] == {"api": 1.5, "worker": 1.0, "load_generator": 0.2, "postgres": 0.5}
    assert result["raised_within_s"] == 0.7 and result["slices"] == 2
    assert result["machine_busy"] == 0.9


def test_two_servers_are_compared_run_by_run_then_by_the_median() -> None:
    """With --versus-workers the two servers take turns within a run; a run
    in a slow spell must weigh on both sides of its own ratio only, so the
    gain is the median of each run's ratio, not a ratio of medians."""
    from bench.http_report import _versus_gains

    def run(one: float, two: float) -> dict[str, object]:
        points = {"api": {"128": {"per_s": one}}, "api, 2 API processes": {"128": {"per_s": two}}}
        return {"phases": {"points": points}}

    results = {"each_run": [run(960, 1036), run(570, 755), run(594, 650)]}
    assert _versus_gains(results, "api", "api, 2 API processes") == {
        "128": pytest.approx(650 / 594)
    }
