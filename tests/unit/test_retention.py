"""Retention of run history: exactly the runs the rule lets go, nothing else.

The history built here has, across two sources and three streams, old and
new runs; old runs with current and with no-longer-current quarantine rows
(and look-alikes on another source or stream that must not count); an old
run that is a stream's ``last_run_id``; more than ``keep_runs`` old runs in
a stream; a run with no ``finished_at``; an active run; and orders, order
events, dead letters and webhook deliveries far older than the cut-off.
``tests/integration/test_retention.py`` runs the same tests on PostgreSQL.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from hub import retention
from hub.db import get_engine, session_scope
from hub.models import (
    Client,
    Customer,
    DeadLetter,
    Order,
    OrderEvent,
    Product,
    Quarantined,
    Source,
    SourceStream,
    SyncPage,
    SyncRun,
    WebhookDelivery,
)
from tests.conftest import assert_one_line_error

RETENTION_DAYS = 30.0
KEEP_RUNS = 20
NOW = datetime.fromisoformat("2026-12-05T12:00:00+00:00")

# The runs the rule prunes, by label (see build_history):
# a1 (plain old run, two pages), a3 (its record was written later), a4 (its
# record was quarantined again later), b1 (customer written later), b3 (no
# finished_at, created long ago), bp2 (cancelled, outside the last 20).
PRUNED = frozenset({"a1", "a3", "a4", "b1", "b3", "bp2"})


@dataclass
class History:
    """Ids of everything built, by label, to assert on after a prune."""

    runs: dict[str, int] = field(default_factory=dict)
    pages: dict[str, list[int]] = field(default_factory=dict)
    quarantine: dict[str, list[int]] = field(default_factory=dict)
    untouchable: dict[str, set[int]] = field(default_factory=dict)

    def kept_runs(self) -> set[int]:
        return {run_id for label, run_id in self.runs.items() if label not in PRUNED}

    def kept_pages(self) -> set[int]:
        return {p for label, ids in self.pages.items() if label not in PRUNED for p in ids}

    def kept_quarantine(self) -> set[int]:
        return {q for label, ids in self.quarantine.items() if label not in PRUNED for q in ids}

    def pruned_counts(self) -> tuple[int, int, int]:
        return (
            len(PRUNED),
            sum(len(self.pages[label]) for label in PRUNED),
            sum(len(self.quarantine.get(label, [])) for label in PRUNED),
        )


def build_history(url: str, now: datetime = NOW) -> History:
    """The history described in the module docstring, relative to ``now``."""
    h = History()
    old = now - timedelta(days=40)
    with session_scope(url) as s:
        client = Client(code="ret", name="Retention")
        s.add(client)
        s.flush()
        a = Source(client_id=client.id, code="a", kind="sql", name="a", settings={})
        b = Source(client_id=client.id, code="b", kind="sql", name="b", settings={})
        s.add_all([a, b])
        s.flush()
        minute = 0

        def run(label: str, source: Source, stream: str, **values: Any) -> int:
            nonlocal minute
            minute += 1
            created = values.pop("created_at", old + timedelta(minutes=minute))
            values.setdefault("status", "succeeded")
            if "finished_at" not in values:
                values["finished_at"] = created + timedelta(minutes=1)
            row = SyncRun(
                client_id=client.id,
                source_id=source.id,
                stream=stream,
                created_at=created,
                heartbeat_at=created,
                **values,
            )
            s.add(row)
            s.flush()
            h.runs[label] = row.id
            pages = [SyncPage(run_id=row.id, seq=0, status="upserted", created_at=created)]
            if label == "a1":
                pages.append(SyncPage(run_id=row.id, seq=1, status="upserted"))
            s.add_all(pages)
            s.flush()
            h.pages[label] = [p.id for p in pages]
            return row.id

        def quarantine(label: str, source: Source, stream: str, key: str) -> None:
            q = Quarantined(
                run_id=h.runs[label],
                page_id=h.pages[label][0],
                client_id=client.id,
                source_id=source.id,
                stream=stream,
                record_key=key,
                field="price",
                message="not a number",
                created_at=old,
            )
            s.add(q)
            s.flush()
            h.quarantine.setdefault(label, []).append(q.id)

        # Source a, products: 25 old runs and 3 new ones; the last 20 by id
        # are n1..n3 and a9..a25, so a1..a8 are up to the other rules.
        for i in range(1, 26):
            if i == 8:  # created long ago, finished within retention: kept
                run("a8", a, "products", finished_at=now - timedelta(days=10))
            else:
                run(f"a{i}", a, "products")
        for i in range(1, 4):
            run(f"n{i}", a, "products", created_at=now - timedelta(days=1, minutes=-i))
        quarantine("a2", a, "products", "P-CUR")  # never fixed: current
        quarantine("a3", a, "products", "P-FIXED")  # written by n1 since: not current
        quarantine("a4", a, "products", "P-AGAIN")  # quarantined again by a6: not current
        quarantine("a5", a, "products", "P-NULL")  # stored with no last run: current
        quarantine("a6", a, "products", "P-AGAIN")  # stored by a1, earlier: current
        quarantine("a7", a, "products", "P-FIXED2")  # written by n2 since: not current ...
        quarantine("a7", a, "products", "P-CUR2")  # ... but this one is: a7 kept
        quarantine("a20", a, "products", "P-X")  # within the last 20 anyway

        # Source a, customers: fewer runs than keep_runs: all kept, however old.
        run("ac1", a, "customers")
        run("ac2", a, "customers")
        # Same source, later run, same key, other stream: does not make a2's
        # P-CUR non-current.
        quarantine("ac2", a, "customers", "P-CUR")

        # Source b, customers: 22 old runs, then (last) an active one; the
        # last 20 are the active run and b4..b22.
        for i in range(1, 23):
            if i == 3:  # failed without finished_at: its created_at counts
                run("b3", b, "customers", status="failed", finished_at=None)
            else:
                run(f"b{i}", b, "customers", status="failed" if i % 5 == 0 else "succeeded")
        quarantine("b1", b, "customers", "C-FIXED")  # written by b10 since: not current
        quarantine("b2", b, "customers", "C-CUR")  # stored by b1, earlier: current

        # Source b, products: bp1 succeeded and stays the stream's last run;
        # 21 runs after it were cancelled (which notes no last run).
        run("bp1", b, "products")
        for i in range(2, 23):
            run(f"bp{i}", b, "products", status="cancelled")
        # Other source, later run, same key: does not make a2's P-CUR non-current.
        quarantine("bp5", b, "products", "P-CUR")

        run(
            "active",
            b,
            "customers",
            status="running",
            lock_key=f"{b.id}:customers",
            created_at=now - timedelta(minutes=5),
            finished_at=None,
        )

        def stored(model: type[Product] | type[Customer], source: Source, key: str, by: str | None):
            code = "source_product_code" if model is Product else "source_customer_code"
            extra = {"title": key} if model is Product else {}
            s.add(
                model(
                    client_id=client.id,
                    source_id=source.id,
                    hash="h",
                    data={},
                    last_run_id=h.runs[by] if by else None,
                    **{code: key},
                    **extra,
                )
            )

        stored(Product, a, "P-FIXED", "n1")
        stored(Product, a, "P-NULL", None)
        stored(Product, a, "P-AGAIN", "a1")
        stored(Product, a, "P-FIXED2", "n2")
        stored(Product, b, "P-CUR", "bp22")  # other source: irrelevant to a2
        stored(Customer, a, "P-NULL", "n3")  # other stream: irrelevant to a5
        stored(Customer, b, "C-FIXED", "b10")
        stored(Customer, b, "C-CUR", "b1")
        stored(Product, b, "C-CUR", "bp22")  # other stream: irrelevant to b2

        for source, stream, last in (
            (a, "products", "n3"),
            (a, "customers", "ac2"),
            (b, "customers", "b22"),
            (b, "products", "bp1"),
        ):
            s.add(
                SourceStream(
                    source_id=source.id,
                    stream=stream,
                    interval_seconds=900,
                    last_run_id=h.runs[last],
                )
            )

        # Never pruned, however old.
        order = Order(
            client_id=client.id,
            channel="shopify",
            channel_order_code="1001",
            instruction="add",
            status="dead",
            source_id=a.id,
            order={},
            created_at=old - timedelta(days=400),
            updated_at=old - timedelta(days=400),
        )
        s.add(order)
        s.flush()
        event = OrderEvent(order_id=order.id, at=old - timedelta(days=400), status="dead")
        letter = DeadLetter(
            order_id=order.id,
            client_id=client.id,
            source_id=a.id,
            stage="raise",
            error_class="Rejected",
            message="no",
            fix="fix it",
            status="resolved",
            created_at=old - timedelta(days=400),
            resolved_at=old - timedelta(days=399),
        )
        delivery = WebhookDelivery(
            client_id=client.id,
            channel="shopify",
            delivery_id="d-1",
            order_id=order.id,
            received_at=old - timedelta(days=400),
        )
        s.add_all([event, letter, delivery])
        s.flush()
        h.untouchable = {
            "orders": {order.id},
            "order_events": {event.id},
            "dead_letters": {letter.id},
            "webhook_deliveries": {delivery.id},
        }
    return h


def remaining(url: str) -> dict[str, set[int]]:
    """Every id left in the tables retention may touch, and in those it must not."""
    with session_scope(url) as s:
        return {
            "runs": set(s.scalars(select(SyncRun.id))),
            "pages": set(s.scalars(select(SyncPage.id))),
            "quarantine": set(s.scalars(select(Quarantined.id))),
            "orders": set(s.scalars(select(Order.id))),
            "order_events": set(s.scalars(select(OrderEvent.id))),
            "dead_letters": set(s.scalars(select(DeadLetter.id))),
            "webhook_deliveries": set(s.scalars(select(WebhookDelivery.id))),
        }


def assert_pruned_exactly(url: str, h: History) -> None:
    left = remaining(url)
    labels = {run_id: label for label, run_id in h.runs.items()}
    assert sorted(labels[r] for r in left["runs"] ^ h.kept_runs()) == [], "runs differ"
    assert left["runs"] == h.kept_runs()
    assert left["pages"] == h.kept_pages()
    assert left["quarantine"] == h.kept_quarantine()
    for table, ids in h.untouchable.items():
        assert left[table] == ids, table


def prune(url: str, **kwargs: Any) -> retention.Pruned:
    options: dict[str, Any] = {"retention_days": RETENTION_DAYS, "keep_runs": KEEP_RUNS, "now": NOW}
    return retention.prune_history(get_engine(url), **(options | kwargs))


def test_prune_deletes_exactly_what_the_rule_lets_go(db: str) -> None:
    h = build_history(db)
    result = prune(db)
    assert (result.runs, result.pages, result.quarantine) == h.pruned_counts() == (6, 7, 3)
    assert result.complete
    assert_pruned_exactly(db, h)


def test_a_second_prune_deletes_nothing_more(db: str) -> None:
    h = build_history(db)
    prune(db)
    assert prune(db) == retention.Pruned(0, 0, 0, complete=True)
    assert_pruned_exactly(db, h)


def test_batches_smaller_than_the_work_still_prune_it_all(db: str) -> None:
    h = build_history(db)
    result = prune(db, batch_size=1)
    assert (result.runs, result.pages, result.quarantine) == h.pruned_counts()
    assert_pruned_exactly(db, h)


def test_a_spent_time_budget_stops_between_batches_and_the_next_prune_carries_on(
    db: str,
) -> None:
    h = build_history(db)
    first = prune(db, batch_size=2, budget_seconds=0)
    assert first.runs == 2 and not first.complete
    total = first.runs
    for _ in range(10):
        more = prune(db, batch_size=2, budget_seconds=0)
        total += more.runs
        if more.complete:
            break
    assert total == len(PRUNED)
    assert_pruned_exactly(db, h)


def test_a_shorter_retention_or_fewer_kept_runs_prune_more(db: str) -> None:
    """The settings are honoured, not constants: with 5 days and the last 3
    runs kept, a8 (ended 10 days ago) and the old runs beyond the last 3 go,
    unless a current quarantine row or a last_run_id keeps them."""
    h = build_history(db)
    prune(db, retention_days=5, keep_runs=3)
    labels = {run_id: label for label, run_id in h.runs.items()}
    assert {labels[r] for r in remaining(db)["runs"]} == {
        *("n1", "n2", "n3"),  # the last 3 of a/products, and a day old
        *("a2", "a5", "a6", "a7", "a20"),  # a current quarantine row each
        *("ac1", "ac2"),  # a/customers has only two runs
        *("active", "b22", "b21", "b2"),  # the last 3; b2's C-CUR is current
        *("bp1", "bp20", "bp21", "bp22"),  # bp1 is last_run_id; bp5's P-CUR was written by bp22
    }


def test_counters_survive_pruning(db: str) -> None:
    """/metrics' run and record counters are the same before and after a prune."""
    from s2s.metrics import collect

    build_history(db)

    def counters() -> list[str]:
        with session_scope(db) as s:
            text = collect(s, {}, None)
        return [ln for ln in text.splitlines() if ln.startswith("s2s_sync_")]

    before = counters()
    assert 's2s_sync_runs_total{stream="customers",status="succeeded"} 19' in before
    assert 's2s_sync_runs_active{stream="customers"} 1' in before
    result = prune(db)
    assert result.runs == len(PRUNED)
    assert counters() == before


def test_the_fold_counts_each_finished_run_once(db: str) -> None:
    build_history(db)
    engine = get_engine(db)
    with session_scope(db) as s:
        live = retention.run_totals(s)
    mark = retention.fold_totals(engine, now=NOW)
    with session_scope(db) as s:
        active_id = s.scalar(select(SyncRun.id).where(SyncRun.status == "running"))
        assert retention.run_totals(s) == live
    assert mark == active_id - 1  # stops below the active run
    assert retention.fold_totals(engine, now=NOW) == mark  # nothing more to fold
    with session_scope(db) as s:
        assert retention.run_totals(s) == live


def test_runs_ended_within_the_grace_are_not_folded_yet(db: str) -> None:
    with session_scope(db) as s:
        for minutes in (120, 30):
            s.add(
                SyncRun(
                    client_id=1,
                    source_id=1,
                    stream="products",
                    status="succeeded",
                    fetched=10,
                    created_at=NOW - timedelta(minutes=minutes + 1),
                    finished_at=NOW - timedelta(minutes=minutes),
                )
            )
    with session_scope(db) as s:
        first, second = s.scalars(select(SyncRun.id).order_by(SyncRun.id)).all()
    assert retention.fold_totals(get_engine(db), now=NOW) == first
    with session_scope(db) as s:
        # A page task may still add counts to the second: it stays live.
        s.execute(update(SyncRun).where(SyncRun.id == second).values(fetched=15))
        (total,) = retention.run_totals(s)
    assert (total.runs, total.outcomes["fetched"]) == (2, 25)


def test_runs_above_an_active_run_wait_until_it_has_ended(db: str) -> None:
    """Pruning deletes folded runs only, and the fold stops below an active
    run: an old run with a higher id waits for the next prune after it."""
    old = NOW - timedelta(days=60)
    with session_scope(db) as s:
        rows = [
            SyncRun(
                client_id=1,
                source_id=1,
                stream="customers",
                status="running",
                lock_key="1:customers",
                created_at=old,
                finished_at=None,
            ),
            *(
                SyncRun(
                    client_id=1,
                    source_id=1,
                    stream="products",
                    status="succeeded",
                    created_at=old,
                    finished_at=old,
                )
                for _ in range(3)
            ),
        ]
        s.add_all(rows)
        s.flush()
        active, *done = (r.id for r in rows)
    assert prune(db, keep_runs=1).runs == 0
    with session_scope(db) as s:
        s.execute(
            update(SyncRun)
            .where(SyncRun.id == active)
            .values(status="failed", lock_key=None, finished_at=old)
        )
    assert prune(db, keep_runs=1).runs == 2  # the active run's own stream keeps it as last
    with session_scope(db) as s:
        assert set(s.scalars(select(SyncRun.id))) == {active, done[-1]}


def test_bad_arguments_are_refused(db: str) -> None:
    with pytest.raises(ValueError, match="retention_days"):
        prune(db, retention_days=0)
    with pytest.raises(ValueError, match="keep_runs"):
        prune(db, keep_runs=0)


def test_the_beat_schedule_sends_the_prune() -> None:
    from hub.settings import load_settings
    from workers.app import app, config_for

    env = {"S2S_PRUNE_EVERY": "120"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        config = config_for(load_settings())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    entry = config["beat_schedule"]["prune-history"]  # type: ignore[index]
    assert entry == {
        "task": "s2s.maintenance.prune_history",
        "schedule": 120.0,
        "options": {"expires": 120.0},
    }
    assert "workers.retention" in app.conf.include
    import workers.retention  # noqa: F401 - registers the task

    assert "s2s.maintenance.prune_history" in app.tasks
    assert app.amqp.router.route({}, "s2s.maintenance.prune_history")["queue"].name == (
        "maintenance"
    )


def _s2s() -> str:
    path = Path(sys.executable).parent / "s2s"
    if not path.exists():
        pytest.fail(f"the s2s entry point is not installed beside {sys.executable}")
    return str(path)


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
@pytest.mark.parametrize("command", [["status"], ["worker"], ["beat"], ["db", "upgrade"]])
def test_a_bad_retention_setting_is_one_line_at_start_up(
    value: str, command: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    env |= {"S2S_VAR_DIR": str(tmp_path), "S2S_RETENTION_DAYS": value}
    result = subprocess.run(
        [_s2s(), *command], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert_one_line_error(result, rf"S2S_RETENTION_DAYS .*{re.escape(repr(value))}")
    assert "Traceback" not in result.stdout
    assert not (tmp_path / "hub.sqlite").exists()  # stopped before touching anything
