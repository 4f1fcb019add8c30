"""Prometheus metrics, written in the text exposition format (version 0.0.4).

Everything is read from the hub's database and the broker at scrape time:
the database is the source of truth, so the figures are the same whichever
API process is scraped, and nothing is lost when a process restarts. Run
and record counters come from the totals that retention folds old runs into
plus the runs since (``hub.retention.run_totals``): they never go down when
history is pruned, and a scrape reads only recent run rows. The
endpoint carries aggregates only — no client or source names, no settings —
because it is meant to be scraped without a client's token.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from hub import queries
from hub.retention import run_totals
from hub.runs import ACTIVE, RECORD_OUTCOMES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


class Exposition:
    """Collects metric families and renders them; each family once, HELP and TYPE first."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[dict[str, str], float | int]],
    ) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                body = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
                self._lines.append(f"{name}{{{body}}} {_number(value)}")
            else:
                self._lines.append(f"{name} {_number(value)}")

    def render(self) -> str:
        return "\n".join(self._lines) + "\n"


def collect(
    session: Session,
    depths: dict[str, int | None],
    workers: dict[str, list[str]] | None,
) -> str:
    """The whole scrape: runs, records by outcome, orders by state, dead
    letters, queue depths, workers online, schedules paused or queued."""
    out = Exposition()
    _runs(out, session)
    _pushes(out, session)
    _hub_state(out, session)
    _broker(out, depths, workers)
    return out.render()


def _runs(out: Exposition, session: Session) -> None:
    # Folded totals plus the runs since the last fold (hub.retention): the
    # counters survive pruning and a scrape does not recount the history.
    totals = run_totals(session)
    out.family(
        "s2s_sync_runs_total",
        "counter",
        "Sync runs that ended, by stream and outcome.",
        (({"stream": t.stream, "status": t.status}, t.runs) for t in totals if t.status != ACTIVE),
    )
    out.family(
        "s2s_sync_runs_active",
        "gauge",
        "Sync runs in progress, by stream.",
        (({"stream": t.stream}, t.runs) for t in totals if t.status == ACTIVE),
    )
    # Every outcome of hub.runs.RECORD_OUTCOMES (their meanings: hub.store.Counts).
    records: dict[str, dict[str, int]] = {}
    for t in totals:
        by_outcome = records.setdefault(t.stream, dict.fromkeys(RECORD_OUTCOMES, 0))
        for outcome, n in t.outcomes.items():
            by_outcome[outcome] += n
    out.family(
        "s2s_sync_records_total",
        "counter",
        "Records handled by sync runs, by stream and outcome (fetched counts raw rows; "
        "skipped: Delete or inactive rows for records the hub never stored).",
        (
            ({"stream": stream, "outcome": outcome}, n)
            for stream, by_outcome in records.items()
            for outcome, n in by_outcome.items()
        ),
    )


def _pushes(out: Exposition, session: Session) -> None:
    # Per channel kind, never per client: the lag and refusals summed over
    # the stores of a kind, and what push runs did.
    stats = queries.push_stats(session)
    out.family(
        "s2s_push_runs_total",
        "counter",
        "Push runs, by channel kind and outcome (running ones included as 'running').",
        (({"kind": k, "status": st}, n) for (k, st), n in stats.runs.items()),
    )
    out.family(
        "s2s_push_products_total",
        "counter",
        "Products handled by push runs, by channel kind and outcome.",
        (({"kind": k, "outcome": o}, n) for (k, o), n in stats.products.items()),
    )
    out.family(
        "s2s_push_lag_products",
        "gauge",
        "Products changed in the hub and not yet brought to the store, by channel kind.",
        (({"kind": k}, n) for k, n in stats.lag.items()),
    )
    out.family(
        "s2s_push_refused_products",
        "gauge",
        "Products the stores refused and that wait for a change or a retry, by channel kind.",
        (({"kind": k}, n) for k, n in stats.refused.items()),
    )


def _hub_state(out: Exposition, session: Session) -> None:
    out.family(
        "s2s_orders",
        "gauge",
        "Orders by state.",
        (({"state": state}, n) for state, n in queries.orders_by_state(session)),
    )
    out.family(
        "s2s_dead_letters",
        "gauge",
        "Dead letters by status (open ones need a person).",
        (({"status": status}, n) for status, n in queries.letters_by_status(session)),
    )
    paused, queued = queries.stream_flags(session)
    out.family(
        "s2s_streams_paused",
        "gauge",
        "Source streams whose schedule is paused.",
        [({}, paused)],
    )
    out.family(
        "s2s_resyncs_queued",
        "gauge",
        "Resyncs waiting for an active run of their stream to end.",
        [({}, queued)],
    )


def _broker(
    out: Exposition, depths: dict[str, int | None], workers: dict[str, list[str]] | None
) -> None:
    out.family(
        "s2s_queue_depth",
        "gauge",
        "Messages waiting in each broker queue.",
        (({"queue": q}, n) for q, n in depths.items() if n is not None),
    )
    out.family(
        "s2s_broker_up",
        "gauge",
        "1 if the broker answered the queue-depth query.",
        [({}, int(any(n is not None for n in depths.values())))],
    )
    if workers is None:
        return
    out.family("s2s_workers_online", "gauge", "Worker processes answering.", [({}, len(workers))])
    serving: dict[str, int] = {q: 0 for q in depths}
    for queues in workers.values():
        for q in queues:
            serving[q] = serving.get(q, 0) + 1
    out.family(
        "s2s_queue_workers",
        "gauge",
        "Workers consuming each queue (0: nothing will run its tasks).",
        (({"queue": q}, n) for q, n in serving.items()),
    )
