"""``skipped``: Delete / inactive rows for records the hub never stored.

They used to be counted ``unchanged``, which made a catalogue with many
withdrawn items look as if the hub held them. Here each count is checked
against what the hub holds: in the store's plan, through the fetch's raw-hash
path on a first and a second sync (a never-stored record has no row to keep
a raw hash on, so it is mapped again and must be skipped again, not turn
``unchanged``), through map_page, and on to the run's totals and metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import Page
from hub import retention, runs
from hub.db import get_engine, session_scope
from hub.models import Product, Source, SyncPage, SyncRun, utcnow
from hub.settings import get_settings
from hub.store import Counts, StoreItem, upsert_products
from s2s import metrics
from tests.unit.test_hub_store import item
from workers import pages

# Every count a write reports, in the run's order: a record is in exactly one.
WRITE_COUNTS = ("created", "updated", "unchanged", "deleted", "skipped", "ignored")


def _write(url: str, items: list[StoreItem], run_id: int) -> Counts:
    with session_scope(url) as s:
        return upsert_products(s, client_id=1, source_id=1, run_id=run_id, items=items)


def _delete(code: str) -> StoreItem:
    return StoreItem(code, "delete", raw_hash=f"raw-{code}-delete")


def test_the_write_reports_skipped_beside_the_other_counts() -> None:
    assert tuple(Counts().as_dict()) == WRITE_COUNTS
    assert ("fetched", *WRITE_COUNTS, "quarantined") == runs.RECORD_OUTCOMES


def test_each_delete_is_counted_by_what_the_hub_holds(db: str) -> None:
    first = _write(db, [item("A"), item("B")], run_id=1)
    assert (first.created, first.skipped) == (2, 0)

    # A is held active: deleted. X was never stored: skipped. Ignore rows
    # are ignored whether the hub holds the record (B) or not (Y).
    second = _write(
        db,
        [_delete("A"), _delete("X"), StoreItem("B", "ignore"), StoreItem("Y", "ignore")],
        run_id=2,
    )
    assert second.as_dict() == {
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "deleted": 1,
        "skipped": 1,
        "ignored": 2,
    }
    with session_scope(db) as s:
        held = {p.source_product_code: p.deleted_at for p in s.scalars(select(Product))}
    assert set(held) == {"A", "B"}  # nothing was stored for X or Y
    assert held["A"] is not None and held["B"] is None

    # A is held deleted already: unchanged (the hub holds it as the ERP
    # says). X is still a record the hub never stored: skipped again.
    third = _write(db, [_delete("A"), _delete("X")], run_id=3)
    assert (third.unchanged, third.skipped, third.deleted) == (1, 1, 0)
    with session_scope(db) as s:
        a = s.scalars(select(Product).where(Product.source_product_code == "A")).one()
        assert a.last_run_id == 2  # not written again


# SQL-template stock rows: P1 on the web; D1 flagged Delete and never stored.
def _row(code: str, active: str) -> dict[str, Any]:
    return {
        "Prod": code,
        "SKU": code,
        "WebName": f"Lamp {code}",
        "product_active": active,
        "qty": "3",
        "price": "10.00",
    }


@pytest.fixture
def hub_db(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The unit hub as the process's database (the fetch opens its own sessions)."""
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _sync(db: str, rows: list[dict[str, Any]]) -> SyncRun:
    """A one-page run through the fetch's store step, raw hashes on."""
    with session_scope(db) as s:
        source = s.scalars(select(Source)).one()
        target = pages._Target.of(runs.start_run(s, source, "products").run, source)
    stored = pages._store_page(target, None, 0, None, Page(rows, None))
    assert stored is not None and stored.finished
    with session_scope(db) as s:
        run = s.get(SyncRun, target.run_id)
        assert run is not None
        s.expunge(run)
        return run


def _counts(run: SyncRun) -> dict[str, int]:
    return {name: getattr(run, name) for name in runs.RECORD_OUTCOMES}


def test_a_never_stored_delete_is_skipped_on_the_second_sync_too(hub_db: str) -> None:
    rows = [_row("P1", "1"), _row("D1", "0")]
    first = _sync(hub_db, rows)
    assert _counts(first) == {
        "fetched": 2,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "skipped": 1,
        "ignored": 0,
        "quarantined": 0,
    }
    with session_scope(hub_db) as s:
        # No row for D1, so no raw hash to skip it by next time.
        assert list(s.scalars(select(Product.source_product_code))) == ["P1"]

    # P1 hashes as before and is not mapped; D1 is mapped again and skipped
    # again: the same rows give the same count.
    second = _sync(hub_db, rows)
    assert (second.unchanged, second.skipped, second.created) == (1, 1, 0)


def test_a_stored_record_flagged_delete_is_deleted_then_unchanged(hub_db: str) -> None:
    _sync(hub_db, [_row("P1", "1")])
    deleted = _sync(hub_db, [_row("P1", "0")])
    assert (deleted.deleted, deleted.skipped, deleted.unchanged) == (1, 0, 0)
    # Held deleted with the Delete row's raw hash: the next fetch passes it
    # over unmapped, as unchanged, which is what the store counts it too.
    with session_scope(hub_db) as s:
        assert s.scalars(select(Product.raw_hash)).one() is not None
    again = _sync(hub_db, [_row("P1", "0")])
    assert (again.unchanged, again.skipped, again.deleted) == (1, 0, 0)


def test_map_page_adds_skipped_to_the_run(hub_db: str) -> None:
    """A full sync's big pages are written by map_page, in another task."""
    from workers import tasks

    rows = [_row(f"P{i:03d}", "1") for i in range(60)] + [_row(f"D{i:03d}", "0") for i in range(7)]
    with session_scope(hub_db) as s:
        source = s.scalars(select(Source)).one()
        target = pages._Target.of(runs.start_run(s, source, "products").run, source)
    stored = pages._store_page(target, None, 0, None, Page(rows, "more"))
    assert stored is not None and stored.to_map  # too many to write with the fetch
    tasks.map_page(stored.page_id)
    with session_scope(hub_db) as s:
        run = s.get(SyncRun, target.run_id)
        assert run is not None and (run.created, run.skipped, run.unchanged) == (60, 7, 0)
        assert s.get(SyncPage, stored.page_id).status == "upserted"


def test_skipped_reaches_the_folded_totals_and_the_metrics(db: str) -> None:
    with session_scope(db) as s:
        old = runs.start_run(s, s.get(Source, 1), "products").run.id
        runs.add_counts(s, old, fetched=10, created=6, skipped=4, pages_done=1)
        s.get(SyncRun, old).pages_total = 1
    with session_scope(db) as s:
        assert runs.finish_if_done(s, old)
    later = utcnow() + timedelta(days=2)
    assert retention.fold_totals(get_engine(db), now=later) == old  # folded
    with session_scope(db) as s:
        recent = runs.start_run(s, s.get(Source, 1), "products").run.id
        runs.add_counts(s, recent, fetched=3, skipped=3)  # active, not folded
    with session_scope(db) as s:
        totals = {(t.stream, t.status): t.outcomes for t in retention.run_totals(s)}
        assert totals[("products", "succeeded")]["skipped"] == 4
        assert totals[("products", runs.ACTIVE)]["skipped"] == 3
        text = metrics.collect(s, {}, None)
    assert 's2s_sync_records_total{stream="products",outcome="skipped"} 7' in text
    assert 's2s_sync_records_total{stream="products",outcome="unchanged"} 0' in text
