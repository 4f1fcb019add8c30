"""The fetch loop without Celery: an in-memory ERP, the unit hub database
(SQLite), and the loop's answer to "what next?"."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import marshmallow
import pytest
from sqlalchemy import select

from connectors.base import Connector, Page, TransientError
from hub import runs
from hub.db import session_scope
from hub.models import Product, Source, SyncPage, SyncRun
from hub.settings import get_settings
from workers import limits
from workers.fetching import PageLoop, Stop, position
from workers.pages import _store_page


def _rows(page: int, count: int = 5) -> list[dict[str, Any]]:
    """Raw rows of the SQL ERP's products (the unit hub's source is of that kind)."""
    return [
        {
            "Prod": f"P{page}-{i}",
            "SKU": f"P{page}-{i}",
            "WebName": f"Lamp {page}-{i}",
            "product_active": "1",
            "qty": "3",
            "price": "10.00",
            "modified": f"2026-01-0{page + 1}T00:00:0{i}",
        }
        for i in range(count)
    ]


class _Settings(marshmallow.Schema):
    pass


class _Erp(Connector):
    """Pages in memory; the cursor is the next page's index. Notes every read,
    whether two ever overlapped, and fails at ``fail_at`` when asked."""

    kind, title, streams, settings_schema = "fake", "Fake ERP", frozenset({"products"}), _Settings

    def __init__(self, pages: list[list[dict[str, Any]]], account: str | None = None) -> None:
        super().__init__({})
        self.pages, self.account = pages, account
        self.fail_at: int | None = None
        self.reads: list[int] = []
        self.read_started = {i: threading.Event() for i in range(len(pages))}
        self.overlapped = False
        self.queries = 0
        self._busy = threading.Lock()

    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        if not self._busy.acquire(blocking=False):
            self.overlapped = True
            self._busy.acquire()
        try:
            index = 0 if cursor is None else int(cursor)
            self.reads.append(index)
            self.read_started[index].set()
            if index == self.fail_at:
                raise TransientError("the ERP timed out")
            time.sleep(0.01)
            self.queries += 3
            last = index + 1 == len(self.pages)
            return Page(self.pages[index], None if last else index + 1)
        finally:
            self._busy.release()

    def high_water(self, records: Any) -> str | None:
        return max(str(r["modified"]) for r in records)

    def session_key(self) -> str | None:
        return self.account

    def check(self) -> str:
        return "ok"

    def raise_order(self, payload: dict[str, Any]) -> str:
        raise NotImplementedError

    def find_order(self, reference: str) -> str | None:
        return None


@pytest.fixture
def hub_db(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The unit hub as the process's database, with the embedded broker's
    slots (rows in the hub database)."""
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    for name in ("S2S_BROKER_URL", "S2S_RUN_PAGES_IN_FLIGHT", "S2S_TASK_TIME_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _start(db: str, page_size: int) -> int:
    with session_scope(db) as s:
        source = s.scalars(select(Source)).one()
        return runs.start_run(s, source, "products", page_size=page_size).run.id


def _loop(run_id: int, erp: _Erp, seq: int = 0, **options: Any) -> tuple[PageLoop, list[int]]:
    mapped: list[int] = []
    loop = PageLoop.resume(
        run_id, seq, to_map=mapped.append, connector_of=lambda source: erp, **options
    )
    assert loop is not None
    return loop, mapped


def _run(db: str, run_id: int) -> SyncRun:
    with session_scope(db) as s:
        run = s.get(SyncRun, run_id)
        assert run is not None
        return run


def _pages(db: str, run_id: int) -> dict[int, str]:
    with session_scope(db) as s:
        rows = s.execute(select(SyncPage.seq, SyncPage.status).where(SyncPage.run_id == run_id))
        return {seq: status for seq, status in rows}


def test_a_full_sync_reads_every_page_once_and_hands_big_pages_to_map_page(hub_db: str) -> None:
    erp = _Erp([_rows(0), _rows(1), _rows(2)])
    run_id = _start(hub_db, page_size=10)  # 5 new records: over a tenth of the page
    loop, mapped = _loop(run_id, erp)
    assert loop.run() == Stop("last", 2)
    assert erp.reads == [0, 1, 2] and not erp.overlapped
    # The first two wait for map_page; the run's last page is written here.
    assert _pages(hub_db, run_id) == {0: "fetched", 1: "fetched", 2: "upserted"}
    with session_scope(hub_db) as s:
        query = select(SyncPage.seq, SyncPage.id).where(SyncPage.run_id == run_id)
        ids = {seq: page_id for seq, page_id in s.execute(query)}
        assert mapped == [ids[0], ids[1]]
        assert len(list(s.scalars(select(Product)))) == 5
    run = _run(hub_db, run_id)
    assert (run.status, run.fetched, run.pages_total, run.pages_done) == (runs.ACTIVE, 15, 3, 1)
    assert run.high_water == "2026-01-03T00:00:04"  # from the connector's hook


def test_the_next_page_is_read_while_a_page_is_stored(hub_db: str) -> None:
    erp = _Erp([_rows(0), _rows(1), _rows(2)])
    run_id = _start(hub_db, page_size=100)
    stored_while_reading: list[bool] = []

    def store(*args: Any, **kwargs: Any) -> Any:
        seq = args[2]
        if seq + 1 < len(erp.pages):
            # The read of the next page starts before this page is stored.
            stored_while_reading.append(erp.read_started[seq + 1].wait(5))
        return _store_page(*args, **kwargs)

    loop, _ = _loop(run_id, erp, store=store)
    assert loop.run().why == "last"
    assert stored_while_reading == [True, True]
    assert erp.reads == [0, 1, 2] and not erp.overlapped  # one read at a time


def test_a_resync_of_unchanged_records_writes_nothing(hub_db: str) -> None:
    erp = _Erp([_rows(0), _rows(1), _rows(2)])
    first = _start(hub_db, page_size=100)  # 5 of 100: few enough to write at once
    loop, mapped = _loop(first, erp)
    assert loop.run() == Stop("last", 2) and mapped == []
    assert (_run(hub_db, first).status, _run(hub_db, first).created) == (runs.SUCCEEDED, 15)
    again = _start(hub_db, page_size=100)
    loop, mapped = _loop(again, erp)
    assert loop.run() == Stop("last", 2) and mapped == []
    run = _run(hub_db, again)
    assert (run.status, run.unchanged, run.created, run.updated) == (runs.SUCCEEDED, 15, 0, 0)


def test_the_fetch_parks_at_the_runs_cap_of_pages_in_flight(
    hub_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2S_RUN_PAGES_IN_FLIGHT", "2")
    get_settings.cache_clear()
    erp = _Erp([_rows(i) for i in range(5)])
    run_id = _start(hub_db, page_size=10)
    loop, mapped = _loop(run_id, erp)
    assert loop.run() == Stop("parked", 2)
    assert len(mapped) == 2
    assert erp.reads == [0, 1]  # nothing read ahead beyond the cap
    assert _run(hub_db, run_id).fetch_parked_at is not None
    # The map task that brings the run down hands the fetch on from page 2.
    with session_scope(hub_db) as s:
        done = SyncPage.__table__.update().where(SyncPage.id == mapped[0])
        s.execute(done.values(status="upserted"))
        assert runs.unpark_fetch(s, run_id, 2) == 2
    loop, mapped = _loop(run_id, erp, seq=2)
    # It starts with one page in flight: one more page, and it parks again.
    assert loop.in_flight == 1
    assert loop.run() == Stop("parked", 3)
    assert erp.reads == [0, 1, 2] and len(mapped) == 1


def test_a_task_hands_on_when_its_share_of_time_is_spent(hub_db: str) -> None:
    erp = _Erp([_rows(0), _rows(1), _rows(2)])
    run_id = _start(hub_db, page_size=100)
    ticks = iter([0.0])  # the loop's start; every later look at the clock is too late

    def clock() -> float:
        return next(ticks, 10_000.0)

    loop, _ = _loop(run_id, erp, clock=clock)
    assert loop.run() == Stop("span", 1)
    assert erp.reads == [0]  # and nothing was read ahead
    assert _pages(hub_db, run_id) == {0: "upserted"}


def test_a_busy_account_stops_the_loop_without_reading(hub_db: str) -> None:
    erp = _Erp([_rows(0)], account="fake:one-session")
    run_id = _start(hub_db, page_size=100)
    other = limits.acquire("account:fake:one-session", 1, 60)  # another task's session
    assert other is not None
    loop, _ = _loop(run_id, erp)
    stop = loop.run()
    assert (stop.why, stop.seq) == ("busy", 0) and 0.2 <= stop.delay <= 1.5
    assert erp.reads == [] and _pages(hub_db, run_id) == {}
    limits.release("account:fake:one-session", other)
    loop, _ = _loop(run_id, erp)
    assert loop.run() == Stop("last", 0)
    # The loop let the account go when it was done.
    assert limits.acquire("account:fake:one-session", 1, 60) is not None


def test_a_transient_failure_leaves_the_loop_at_the_page_to_retry(hub_db: str) -> None:
    erp = _Erp([_rows(0), _rows(1), _rows(2)])
    erp.fail_at = 1
    run_id = _start(hub_db, page_size=100)
    loop, _ = _loop(run_id, erp)
    with pytest.raises(TransientError):
        loop.run()
    assert loop.seq == 1 and _pages(hub_db, run_id) == {0: "upserted"}
    # The retry (fetch_page(run, 1)) reads on from page 0's cursor.
    erp.fail_at = None
    loop, _ = _loop(run_id, erp, seq=1)
    assert loop.run() == Stop("last", 2)
    assert erp.reads == [0, 1, 1, 2]
    assert _run(hub_db, run_id).status == runs.SUCCEEDED


def test_a_run_that_ends_meanwhile_stops_the_loop(hub_db: str) -> None:
    erp = _Erp([_rows(0), _rows(1), _rows(2)])
    run_id = _start(hub_db, page_size=100)

    def store(*args: Any, **kwargs: Any) -> Any:
        if args[2] == 1:
            with session_scope(hub_db) as s:
                runs.cancel_run(s, run_id, "cancelled by an operator")
        return _store_page(*args, **kwargs)

    loop, _ = _loop(run_id, erp, store=store)
    assert loop.run() == Stop("ended", 1)
    assert _pages(hub_db, run_id) == {0: "upserted"}


def test_a_fetch_with_nothing_to_do_gives_no_loop(hub_db: str) -> None:
    erp = _Erp([_rows(0), _rows(1)])
    run_id = _start(hub_db, page_size=100)
    loop, _ = _loop(run_id, erp)
    assert loop.run() == Stop("last", 1)

    def resume(seq: int, run: int = run_id) -> PageLoop | None:
        return PageLoop.resume(run, seq, to_map=lambda _: None, connector_of=lambda _: erp)

    assert resume(0) is None  # stored already: a duplicate message
    assert resume(2) is None  # the page before was the run's last
    assert position(run_id, 1) is None
    other = _start(hub_db, page_size=100)
    assert resume(1, other) is None  # out of order: page 0 is not stored yet
    start = position(other, 0)
    assert start is not None and (start.seq, start.cursor, start.in_flight) == (0, None, 0)
    with session_scope(hub_db) as s:
        runs.cancel_run(s, other, "cancelled by an operator")
    assert resume(0, other) is None  # the run is no longer active


def test_the_queries_a_page_cost_are_logged(hub_db: str, caplog: pytest.LogCaptureFixture) -> None:
    erp = _Erp([_rows(0), _rows(1)])
    run_id = _start(hub_db, page_size=100)
    loop, _ = _loop(run_id, erp)
    with caplog.at_level(logging.INFO, logger="s2s.sync"):
        loop.run()
    fetched = [r for r in caplog.records if r.getMessage().startswith("fetched")]
    assert [r.getMessage() for r in fetched] == ["fetched 5 records in 3 queries"] * 2
    assert [getattr(r, "page", None) for r in fetched] == [0, 1]
