"""Beat's dispatcher without Celery: due schedules start once, a run still
active skips its turn, queued resyncs start when their stream is free."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub import runs
from hub.db import session_scope
from hub.models import Client, Source, SourceStream, SyncRun, utcnow
from hub.settings import get_settings
from workers.dispatch import dispatch


@pytest.fixture
def hub_db(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    monkeypatch.delenv("S2S_PAGE_SIZE", raising=False)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


class _Starts:
    """What the task would publish and start, written down instead."""

    def __init__(self) -> None:
        self.fetches: list[int] = []
        self.queued: list[tuple[int, str, dict[str, Any]]] = []

    def start_fetches(self, run_ids: list[int]) -> None:
        self.fetches.extend(run_ids)

    def start_queued(self, source_id: int, stream: str, **options: Any) -> runs.StartResult:
        self.queued.append((source_id, stream, options))
        with session_scope() as s:
            source = s.get(Source, source_id)
            assert source is not None
            return runs.start_run(s, source, stream, requested_by="queued")

    def __call__(self, batch: int = 250) -> int:
        return dispatch(
            utcnow(),
            start_fetches=self.start_fetches,
            start_queued=self.start_queued,
            batch=batch,
        )


def _streams(db: str, count: int, **values: Any) -> list[int]:
    """``count`` sources of client c1, each with a products stream."""
    ids = []
    with session_scope(db) as s:
        client = s.scalars(select(Client)).one()
        taken = len(s.scalars(select(Source.id)).all())
        for i in range(taken, taken + count):
            source = Source(client_id=client.id, code=f"s{i}", kind="sql", name="s", settings={})
            s.add(source)
            s.flush()
            row = SourceStream(source_id=source.id, stream="products", **values)
            s.add(row)
            s.flush()
            ids.append(source.id)
    return ids


def test_due_schedules_start_once_in_batches(hub_db: str) -> None:
    due = utcnow() - timedelta(seconds=5)
    sources = _streams(hub_db, 7, interval_seconds=600, next_due_at=due)
    _streams(hub_db, 1, interval_seconds=600, next_due_at=due, paused=True)
    _streams(hub_db, 1, interval_seconds=600, next_due_at=utcnow() + timedelta(hours=1))
    starts = _Starts()
    assert starts(batch=3) == 7
    assert len(starts.fetches) == 7
    with session_scope(hub_db) as s:
        started = s.execute(select(SyncRun.id, SyncRun.source_id, SyncRun.requested_by)).all()
        assert sorted(r.source_id for r in started) == sorted(sources)
        assert {r.requested_by for r in started} == {"schedule"}
        assert sorted(r.id for r in started) == sorted(starts.fetches)
        later = s.scalars(
            select(SourceStream.next_due_at).where(SourceStream.source_id == sources[0])
        )
        assert later.one() > utcnow() + timedelta(seconds=590)
    # Claimed: a second dispatcher (or the next beat) starts nothing more.
    assert starts() == 0 and len(starts.fetches) == 7


def test_a_run_still_active_skips_its_turn(hub_db: str) -> None:
    (source_id,) = _streams(
        hub_db, 1, interval_seconds=60, next_due_at=utcnow() - timedelta(seconds=1)
    )
    with session_scope(hub_db) as s:
        source = s.get(Source, source_id)
        assert source is not None
        active = runs.start_run(s, source, "products").run.id
    starts = _Starts()
    assert starts() == 0 and starts.fetches == []
    with session_scope(hub_db) as s:
        assert s.scalars(select(SyncRun.id)).all() == [active]
        row = s.scalars(select(SourceStream).where(SourceStream.source_id == source_id)).one()
        assert row.next_due_at is not None and row.next_due_at > utcnow()  # its turn is spent


def test_a_queued_resync_starts_once_its_stream_is_free(hub_db: str) -> None:
    (source_id,) = _streams(hub_db, 1)
    with session_scope(hub_db) as s:
        source = s.get(Source, source_id)
        assert source is not None
        active = runs.start_run(s, source, "products").run.id
        runs.queue_resync(
            s, source_id, "products", full=True, since=None, requested_by="api:someone"
        )
    starts = _Starts()
    assert starts() == 0 and starts.queued == []  # behind the active run
    with session_scope(hub_db) as s:
        runs.fail_run(s, active, "the ERP refused the login")
    assert starts() == 1
    assert starts.queued == [
        (
            source_id,
            "products",
            {"full": True, "since": None, "requested_by": "api:someone", "queue_behind": True},
        )
    ]
    with session_scope(hub_db) as s:
        row = s.scalars(select(SourceStream).where(SourceStream.source_id == source_id)).one()
        assert (row.queued_at, row.queued_full, row.queued_by) == (None, None, None)
    assert starts() == 0 and len(starts.queued) == 1  # taken off the row: once


def test_queued_resyncs_merge_full_wins_and_the_earliest_since(hub_db: str) -> None:
    (source_id,) = _streams(hub_db, 1)
    with session_scope(hub_db) as s:
        for full, since in ((False, "2026-03-01"), (False, "2026-02-01"), (True, "2026-04-01")):
            runs.queue_resync(s, source_id, "products", full=full, since=since, requested_by="cli")
        row = s.scalars(select(SourceStream).where(SourceStream.source_id == source_id)).one()
        assert (row.queued_full, row.queued_since) == (True, "2026-02-01")
        runs.queue_resync(s, source_id, "products", full=False, since=None, requested_by="cli")
        assert row.queued_since is None  # one of them reads from the watermark


def test_page_size_is_the_sources_then_the_hubs_then_the_connectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SQL ERP reads 2,000 rows a page unless told otherwise; an HTTP ERP's
    API keeps 500; S2S_PAGE_SIZE, when set, is every source's default; a
    source's own page_size wins over both."""
    from connectors.sql.settings import SQL_PAGE_SIZE
    from workers.dispatch import page_size_of

    monkeypatch.delenv("S2S_PAGE_SIZE", raising=False)
    get_settings.cache_clear()
    try:
        assert page_size_of("sql", {}) == SQL_PAGE_SIZE == 2000
        assert page_size_of("iq_retail", None) == 500
        assert page_size_of("sql", {"page_size": 250}) == 250
        monkeypatch.setenv("S2S_PAGE_SIZE", "750")
        get_settings.cache_clear()
        assert page_size_of("sql", {}) == 750
        assert page_size_of("isync", {}) == 750
        assert page_size_of("sql", {"page_size": 250}) == 250
        monkeypatch.setenv("S2S_PAGE_SIZE", "0")
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="S2S_PAGE_SIZE must be a positive"):
            get_settings()
    finally:
        get_settings.cache_clear()
