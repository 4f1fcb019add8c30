"""One active run per source and stream, enforced by the database."""

from __future__ import annotations

import pytest

from hub import runs
from hub.db import session_scope
from hub.models import Source, SyncRun


def start(url: str, stream: str = "products") -> runs.StartResult:
    with session_scope(url) as s:
        return runs.start_run(s, s.get(Source, 1), stream)


def test_second_start_returns_the_active_run(db: str) -> None:
    first, second = start(db), start(db)
    assert first.created and not second.created
    assert second.run.id == first.run.id
    assert start(db, "customers").created  # another stream is independent


def test_a_finished_run_frees_the_slot(db: str) -> None:
    first = start(db)
    with session_scope(db) as s:
        s.get(SyncRun, first.run.id).pages_total = 1
        runs.add_counts(s, first.run.id, pages_done=1)
    with session_scope(db) as s:
        assert runs.finish_if_done(s, first.run.id) is True
        assert runs.finish_if_done(s, first.run.id) is False  # only once
    again = start(db)
    assert again.created and again.run.id != first.run.id


def test_not_finished_until_every_page_landed(db: str) -> None:
    r = start(db)
    with session_scope(db) as s:
        runs.add_counts(s, r.run.id, pages_done=2)
        assert runs.finish_if_done(s, r.run.id) is False  # total unknown yet
        s.get(SyncRun, r.run.id).pages_total = 3
    with session_scope(db) as s:
        assert runs.finish_if_done(s, r.run.id) is False


def test_failed_run_records_reason_and_frees_slot(db: str) -> None:
    r = start(db)
    with session_scope(db) as s:
        assert runs.fail_run(s, r.run.id, "settings: login refused")
    with session_scope(db) as s:
        row = s.get(SyncRun, r.run.id)
        assert row.status == "failed" and row.error == "settings: login refused"
        assert row.lock_key is None
    assert start(db).created


def test_counts_are_added_only_to_an_active_run_when_asked(db: str) -> None:
    r = start(db)
    with session_scope(db) as s:
        assert runs.add_counts(s, r.run.id, active_only=True, fetched=500, unchanged=480)
        assert runs.add_counts(s, r.run.id, fetched=20, created=0)
    with session_scope(db) as s:
        assert runs.fail_run(s, r.run.id, "the ERP refused the login")
    with session_scope(db) as s:
        # A fetch that finishes after the run failed adds nothing, and is told so.
        assert runs.add_counts(s, r.run.id, active_only=True, fetched=500) is False
    with session_scope(db) as s:
        run = s.get(SyncRun, r.run.id)
        assert (run.fetched, run.unchanged, run.created) == (520, 480, 0)


def test_an_unknown_counter_is_refused_by_name(db: str) -> None:
    r = start(db)
    with session_scope(db) as s, pytest.raises(ValueError, match="not a run counter: fetchd"):
        runs.add_counts(s, r.run.id, fetchd=1)
