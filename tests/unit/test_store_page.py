"""How the fetch task stores a page: a resync's few changed records are
written in the page's own transaction, and a run that ended meanwhile gets
nothing, not even the page row."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from connectors.base import Page
from hub import runs
from hub.db import session_scope
from hub.models import Product, Quarantined, Source, SyncPage, SyncRun
from hub.settings import get_settings
from workers import pages as tasks

ROWS = [
    {
        "Prod": "P1",
        "SKU": "P1",
        "WebName": "Desk Lamp",
        "product_active": "1",
        "qty": "3",
        "price": "10.00",
    },
    {
        "Prod": "P2",
        "SKU": "P2",
        "WebName": "Floor Lamp",
        "product_active": "1",
        "qty": "x",
        "price": "20.00",
    },
]


@pytest.fixture
def hub_db(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The unit hub as the process's database (the fetch task opens its own sessions)."""
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _target(db: str) -> tasks._Target:
    with session_scope(db) as s:
        source = s.scalars(select(Source)).one()
        run = runs.start_run(s, source, "products").run
        s.flush()
        return tasks._Target.of(run, source)


def _count(db: str, model: type) -> int:
    with session_scope(db) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_few_changed_records_are_written_with_the_page(hub_db: str) -> None:
    target = _target(hub_db)
    stored = tasks._store_page(target, None, 0, None, Page(records=ROWS, next_cursor=None))
    assert stored is not None
    # Both records are new, 2 of a 500-record page: mapped and written here.
    assert stored.written is not None and stored.written.created == 1
    assert stored.quarantined == 1 and not stored.to_map and stored.finished
    with session_scope(hub_db) as s:
        page = s.scalars(select(SyncPage)).one()
        assert page.status == "upserted" and page.records is None
        product = s.scalars(select(Product)).one()
        assert product.source_product_code == "P1" and product.raw_hash
        bad = s.scalars(select(Quarantined)).one()
        assert (bad.record_key, bad.field) == ("P2", "variants.qty")
        run = s.get(SyncRun, target.run_id)
        assert (run.status, run.fetched, run.created, run.quarantined) == ("succeeded", 2, 1, 1)
        assert (run.pages_done, run.pages_total) == (1, 1)


def test_new_records_go_to_map_page_unless_the_page_is_the_runs_last(hub_db: str) -> None:
    """A full sync's pages are mapped in parallel by map_page; its last page
    (a small tenant's only one) is mapped by the fetch task itself. (A run
    that held records before: a fresh one's pages go unhashed, below.)"""
    target = replace(_target(hub_db), fresh=False)
    many = [
        {**ROWS[0], "Prod": f"P{i:03d}", "SKU": f"P{i:03d}"} for i in range(60)
    ]  # 60 new records: over INLINE_SHARE of a 500-record page
    first = tasks._store_page(target, None, 0, None, Page(records=many, next_cursor="P059"))
    assert first is not None and first.to_map and first.written is None
    assert first.in_flight == 1
    more = [{**r, "Prod": r["Prod"] + "b", "SKU": r["SKU"] + "b"} for r in many]
    last = tasks._store_page(target, None, 1, "P059", Page(records=more, next_cursor=None))
    assert last is not None and not last.to_map and last.written is not None
    assert last.written.created == 60 and not last.finished  # page 0 still to map
    with session_scope(hub_db) as s:
        pages = {p.seq: p for p in s.scalars(select(SyncPage))}
        assert pages[0].status == "fetched" and pages[0].records is None
        records, hashes = tasks.unpack_page(pages[0].packed)
        assert (
            len(records) == 60 and hashes is not None and set(hashes) == {r["Prod"] for r in many}
        )
        assert pages[1].status == "upserted" and pages[1].records is None
        assert pages[1].packed is None
        run = s.get(SyncRun, target.run_id)
        assert (run.created, run.pages_done, run.pages_total) == (60, 1, 2)


def test_a_page_of_a_run_that_ended_is_rolled_back_whole(hub_db: str) -> None:
    target = _target(hub_db)
    with session_scope(hub_db) as s:
        assert runs.fail_run(s, target.run_id, "the ERP refused the login")
    page = Page(records=ROWS, next_cursor="P2")
    assert tasks._store_page(target, None, 0, None, page) is None
    assert _count(hub_db, SyncPage) == 0
    assert _count(hub_db, Product) == 0
    assert _count(hub_db, Quarantined) == 0
    with session_scope(hub_db) as s:
        assert s.get(SyncRun, target.run_id).fetched == 0


def test_a_page_stored_twice_is_stored_once(hub_db: str) -> None:
    target = _target(hub_db)
    page = Page(records=ROWS, next_cursor="P2")
    assert tasks._store_page(target, None, 0, None, page) is not None
    # Another delivery of the same fetch: the unique (run, seq) refuses it whole.
    assert tasks._store_page(target, None, 0, None, page) is None
    with session_scope(hub_db) as s:
        assert s.get(SyncRun, target.run_id).fetched == 2
    assert _count(hub_db, Product) == 1
    assert _count(hub_db, Quarantined) == 1


def _many(prefix: str, count: int = 60) -> list[dict[str, object]]:
    """New records enough for the page to go to map_page."""
    return [
        {**ROWS[0], "Prod": f"{prefix}{i:03d}", "SKU": f"{prefix}{i:03d}"} for i in range(count)
    ]


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "json"])
def test_map_page_writes_a_packed_page_and_one_stored_as_json(
    hub_db: str, packed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records marshal cannot hold (or a page an earlier version stored)
    travel as JSON; both kinds of page are mapped, written and cleared."""
    from workers import tasks as task_module

    if not packed:
        monkeypatch.setattr(tasks, "pack_page", lambda records, raw_hashes: None)
    target = _target(hub_db)
    stored = tasks._store_page(target, None, 0, None, Page(_many("Q"), "more"))
    assert stored is not None and stored.to_map
    with session_scope(hub_db) as s:
        page = s.get(SyncPage, stored.page_id)
        assert (page.packed is not None) is packed and (page.records is None) is packed
    task_module.map_page(stored.page_id)
    with session_scope(hub_db) as s:
        page = s.get(SyncPage, stored.page_id)
        assert page.status == "upserted"
        assert (page.packed, page.records, page.raw_hashes) == (None, None, None)
        assert s.get(SyncRun, target.run_id).created == 60
        # The raw hashes rode along: the next fetch can pass these over.
        assert s.scalar(select(func.count()).where(Product.raw_hash.is_not(None))) == 60


def test_pack_page_refuses_what_marshal_cannot_hold_and_knows_its_format() -> None:
    from decimal import Decimal

    records = [{"Prod": "P1", "qty": 3, "price": 1.5, "flag": None, "tags": ["a", "b"]}]
    packed = tasks.pack_page(records, {"P1": "h1"})
    assert packed is not None
    assert tasks.unpack_page(packed) == (records, {"P1": "h1"})
    assert tasks.unpack_page(memoryview(packed)) == (records, {"P1": "h1"})
    assert tasks.pack_page([{"Prod": "P1", "price": Decimal("1.5")}], None) is None
    with pytest.raises(ValueError, match="unknown format"):
        tasks.unpack_page(b"not a page")


def test_a_fresh_sources_page_is_hashed_by_map_page_with_the_same_hashes(hub_db: str) -> None:
    """A source with nothing stored: its full pages go to map_page as read
    (no hashing on the run's sequential path); map_page makes the raw hashes,
    the same ones the fetch would have made, so the next fetch skips them."""
    from workers import tasks as task_module

    target = _target(hub_db)
    records = _many("F", 60)
    assert target.fresh
    stored = tasks._store_page(target, None, 0, None, Page(records, "more"))
    assert stored is not None and stored.to_map and stored.unchanged == 0
    with session_scope(hub_db) as s:
        packed = s.get(SyncPage, stored.page_id).packed
    assert tasks.unpack_page(packed)[1] in (None, {})  # not hashed by the fetch
    task_module.map_page(stored.page_id)
    expected = tasks.raw_hashes_of(target.kind, target.stream, target.settings, records)
    with session_scope(hub_db) as s:
        got = dict(s.execute(select(Product.source_product_code, Product.raw_hash)).all())
    assert len(got) == 60 and got == expected
    # A resync's fetch finds every record unchanged by its raw hash.
    with session_scope(hub_db) as s:
        runs.cancel_run(s, target.run_id, "test: the first run's other pages do not matter")
    again = _target(hub_db)
    resync = tasks._store_page(again, None, 0, None, Page(records, None))
    assert resync is not None and resync.unchanged == 60 and not resync.to_map


def test_a_fetch_is_fresh_only_while_no_other_run_wrote_the_stream(hub_db: str) -> None:
    from workers.fetching import position

    target = _target(hub_db)
    assert position(target.run_id, 0).target.fresh
    stored = tasks._store_page(target, None, 0, None, Page(_many("G", 60), "G059"))
    assert stored is not None and stored.to_map
    from workers import tasks as task_module

    task_module.map_page(stored.page_id)
    # This run's own records do not count: page 1 cannot hold them again.
    assert position(target.run_id, 1).target.fresh
    with session_scope(hub_db) as s:
        runs.cancel_run(s, target.run_id, "test")
    later = _target(hub_db)
    assert not position(later.run_id, 0).target.fresh


def test_runs_started_together_know_which_sources_are_fresh(hub_db: str) -> None:
    """Beat's dispatcher starts many runs in one statement: each is fresh
    only if its own source holds nothing of its stream."""
    from hub.models import Client
    from hub.store import StoreItem, upsert_products

    with session_scope(hub_db) as s:
        client = s.scalars(select(Client)).first()
        holding = s.scalars(select(Source)).one()
        empty = Source(client_id=client.id, code="other", kind="sql", name="o", settings={})
        s.add(empty)
        s.flush()
        upsert_products(
            s,
            client_id=client.id,
            source_id=holding.id,
            run_id=0,
            items=[StoreItem("A", "active", {"source_product_code": "A", "title": "A"}, "h")],
        )
        ids = runs.start_runs(
            s,
            [
                runs.RunRequest(client.id, sid, stream, True, None, "schedule", 100)
                for sid in (holding.id, empty.id)
                for stream in ("products", "customers")
            ],
        )
        s.flush()
        fresh = {
            (r.source_id, r.stream): r.fresh
            for r in s.scalars(select(SyncRun).where(SyncRun.id.in_(ids)))
        }
    assert fresh == {
        (holding.id, "products"): False,
        (holding.id, "customers"): True,
        (empty.id, "products"): True,
        (empty.id, "customers"): True,
    }
