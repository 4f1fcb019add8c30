"""The maintenance task that prunes old run history (the rule is in ``hub.retention``).

Thin glue: read the settings, prune, say what went. Beat sends it every
``S2S_PRUNE_EVERY`` seconds; a prune that runs out of its time budget stops
between two batches and the next one carries on, so no task outlives its
time limit and no transaction holds its locks for long.
"""

from __future__ import annotations

import logging

from hub import retention
from hub.db import get_engine
from hub.models import utcnow
from hub.settings import get_settings
from workers.app import app

log = logging.getLogger("s2s.maintenance")


@app.task(name="s2s.maintenance.prune_history")
def prune_history() -> dict[str, int | bool]:
    """Prune finished runs past retention, with their pages and quarantine rows.

    The time budget is half the task time limit: the soft limit (30 s
    before the hard one) is never reached in the middle of a batch.
    """
    settings = get_settings()
    pruned = retention.prune_history(
        get_engine(),
        retention_days=settings.retention_days,
        keep_runs=settings.retention_keep_runs,
        now=utcnow(),
        budget_seconds=settings.task_time_limit / 2,
    )
    counts: dict[str, int | bool] = {
        "runs": pruned.runs,
        "pages": pruned.pages,
        "quarantine": pruned.quarantine,
        "complete": pruned.complete,
    }
    log.info(
        "pruned run history: %s runs, %s pages, %s quarantined records%s",
        pruned.runs,
        pruned.pages,
        pruned.quarantine,
        "" if pruned.complete else " (time budget spent; the next prune carries on)",
    )
    return counts
