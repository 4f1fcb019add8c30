"""Retention on PostgreSQL: the unit tests' history and rule again, and the
maintenance task run by a real worker process.

The rule and the history are described in ``tests/unit/test_retention.py``;
the same tests here hold the PostgreSQL statements (row-value keyset,
hashed NOT IN, the expression index) to the same results.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hub.db import session_scope
from hub.models import SyncRun, utcnow
from tests.conftest import Hub, wait_for
from tests.unit.test_retention import (  # noqa: F401 - collected here against PostgreSQL
    PRUNED,
    assert_pruned_exactly,
    build_history,
    test_a_second_prune_deletes_nothing_more,
    test_a_shorter_retention_or_fewer_kept_runs_prune_more,
    test_a_spent_time_budget_stops_between_batches_and_the_next_prune_carries_on,
    test_batches_smaller_than_the_work_still_prune_it_all,
    test_counters_survive_pruning,
    test_prune_deletes_exactly_what_the_rule_lets_go,
    test_runs_above_an_active_run_wait_until_it_has_ended,
    test_runs_ended_within_the_grace_are_not_folded_yet,
    test_the_fold_counts_each_finished_run_once,
)

pytestmark = [pytest.mark.services]


def _run_count() -> int:
    with session_scope() as s:
        return int(s.scalar(select(func.count()).select_from(SyncRun)) or 0)


def test_the_task_prunes_in_a_worker_and_says_what_it_pruned(
    pg_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beat's message for s2s.maintenance.prune_history reaches a worker
    serving only the maintenance queue (the task is registered through the
    app's include), which prunes with the settings and logs the counts."""
    from hub.settings import get_settings
    from workers.retention import prune_history

    hub = pg_hub
    for key, value in {"S2S_RETENTION_DAYS": "30", "S2S_RETENTION_KEEP_RUNS": "20"}.items():
        monkeypatch.setenv(key, value)
        hub.env[key] = value
    get_settings.cache_clear()
    history = build_history(get_settings().database_url, now=utcnow())
    before = _run_count()
    hub.start_worker(queues="maintenance", name="keeper")
    prune_history.delay()
    wait_for(lambda: _run_count() == before - len(PRUNED), timeout=60, what="the prune")
    assert_pruned_exactly(get_settings().database_url, history)
    wait_for(lambda: "pruned run history: 6 runs, 7 pages, 3 quarantined records" in hub.logs())

    # Called again in-process (the task's own code path), nothing is left to do.
    assert prune_history.apply().get() == {
        "runs": 0,
        "pages": 0,
        "quarantine": 0,
        "complete": True,
    }
    assert_pruned_exactly(get_settings().database_url, history)
