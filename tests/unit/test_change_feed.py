"""The change feed: every write of a product or customer once, in order.

Run on SQLite here; ``tests/integration/test_catalogue.py`` runs the same
tests on PostgreSQL (the COPY path) with its own ``db`` fixture.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from hub import catalogue
from hub.catalogue import CursorError, decode_cursor, encode_cursor
from hub.db import dispose_all, session_scope
from hub.migrate import upgrade
from hub.models import ChangeCounter, Client, Product, Source
from hub.schemas import canonical_hash
from hub.store import StoreItem, upsert_customers, upsert_products


def product(code: str, price: float = 10.0, skus: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {
        "source_product_code": code,
        "title": f"Product {code}",
        "variants": [
            {"source_variant_code": s, "sku": s, "qty": 1, "price": price}
            for s in (skus or (f"{code}-1",))
        ],
    }


def active(code: str, price: float = 10.0, skus: tuple[str, ...] | None = None) -> StoreItem:
    data = product(code, price, skus)
    return StoreItem(code, "active", data, canonical_hash(data))


def gone(code: str) -> StoreItem:
    return StoreItem(code, "delete")


def write(url: str, items: list[StoreItem], run_id: int = 1, client_id: int = 1) -> None:
    with session_scope(url) as s:
        upsert_products(s, client_id=client_id, source_id=client_id, run_id=run_id, items=items)


def read_all(url: str, stream: str = "products", limit: int = 1000, after: str | None = None):
    """Every item after ``after``, paging by ``limit``; and the final cursor."""
    items: list[dict[str, Any]] = []
    while True:
        with session_scope(url) as s:
            page = catalogue.feed(s, 1, stream, after, limit)
        items.extend(page["items"])
        after = page["next"]
        assert len(page["items"]) <= limit
        if not page["more"]:
            return items, after


def codes(items: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(i["code"], i["deleted"]) for i in items]


def test_inserts_updates_deletes_appear_once_each_in_order(db: str) -> None:
    write(db, [active("A"), active("B"), active("C")])
    items, cursor = read_all(db)
    assert codes(items) == [("A", False), ("B", False), ("C", False)]
    assert items[0] == {
        "source": "erp",
        "code": "A",
        "deleted": False,
        "changed_at": items[0]["changed_at"],
        "product": product("A"),
    }
    datetime.fromisoformat(items[0]["changed_at"])

    write(db, [active("B", price=12.0), gone("A")], run_id=2)
    later, cursor = read_all(db, after=cursor)
    assert codes(later) == [("B", False), ("A", True)]
    assert later[0]["product"]["variants"][0]["price"] == 12.0
    assert later[1]["product"] is None  # a tombstone
    # Re-activation is a change too.
    write(db, [active("A")], run_id=3)
    again, cursor = read_all(db, after=cursor)
    assert codes(again) == [("A", False)]
    assert read_all(db, after=cursor)[0] == []
    # From the start: each row once, at its last change.
    everything, _ = read_all(db)
    assert codes(everything) == [("C", False), ("B", False), ("A", False)]


def test_an_unchanged_resync_adds_nothing_to_the_feed(db: str) -> None:
    page = [active(c) for c in "ABCDE"]
    write(db, page)
    _, cursor = read_all(db)
    with session_scope(db) as s:
        before = s.scalars(select(ChangeCounter.value)).all()
    write(db, page, run_id=2)
    write(db, [gone("Z")], run_id=3)  # deleting an unknown record changes nothing
    assert read_all(db, after=cursor)[0] == []
    with session_scope(db) as s:
        assert s.scalars(select(ChangeCounter.value)).all() == before == [5]


def test_paging_with_small_limits_returns_every_change_exactly_once(db: str) -> None:
    write(db, [active(f"P{i:02}") for i in range(17)])
    write(db, [active(f"P{i:02}", price=11.0) for i in range(0, 17, 3)], run_id=2)
    write(db, [gone(f"P{i:02}") for i in range(1, 17, 4)], run_id=3)
    whole, _ = read_all(db)
    assert len(whole) == 17 and len({i["code"] for i in whole}) == 17
    for limit in (1, 2, 3, 5, 16, 17, 18):
        paged, _ = read_all(db, limit=limit)
        assert paged == whole, limit
    # Read in pieces across writes: every write seen once, none twice.
    seen: list[str] = []
    _, cursor = read_all(db)
    for run_id, batch in enumerate((["P00", "P05"], ["P07"], ["P05", "P16"]), start=4):
        write(db, [active(c, price=float(run_id)) for c in batch], run_id=run_id)
        got, cursor = read_all(db, limit=1, after=cursor)
        seen.extend(i["code"] for i in got)
    assert seen == ["P00", "P05", "P07", "P05", "P16"]


def test_customers_have_their_own_feed(db: str) -> None:
    data = {"source_customer_code": "C1", "name": "One"}
    with session_scope(db) as s:
        upsert_customers(
            s,
            client_id=1,
            source_id=1,
            run_id=1,
            items=[StoreItem("C1", "active", data, canonical_hash(data))],
        )
    write(db, [active("A")])
    items, cursor = read_all(db, "customers")
    assert items == [
        {
            "source": "erp",
            "code": "C1",
            "deleted": False,
            "changed_at": items[0]["changed_at"],
            "customer": data,
        }
    ]
    with session_scope(db) as s:
        upsert_customers(s, client_id=1, source_id=1, run_id=2, items=[StoreItem("C1", "delete")])
    tomb, _ = read_all(db, "customers", after=cursor)
    assert [(i["code"], i["deleted"], i["customer"]) for i in tomb] == [("C1", True, None)]
    with pytest.raises(CursorError, match="after: a cursor of the customers feed"):
        read_all(db, "products", after=cursor)


@pytest.mark.parametrize(
    "cursor", ["garbage!", "e30", encode_cursor("products", -1), "eyJzIjoicHJvZHVjdHMifQ"]
)
def test_a_bad_cursor_is_refused_naming_after(cursor: str) -> None:
    with pytest.raises(CursorError, match=r"^after: "):
        decode_cursor("products", cursor)


def test_a_cursor_round_trips() -> None:
    assert decode_cursor("products", encode_cursor("products", 42)) == 42
    assert decode_cursor("products", None) == decode_cursor("products", "") == 0


def test_listing_filters_and_one_by_code_or_sku(db: str) -> None:
    write(db, [active("A", skus=("A-RED", "A-BLUE")), active("B"), active("C")])
    write(db, [gone("C")], run_id=2)
    with session_scope(db) as s:
        listed = catalogue.listing(s, 1, "products")
        assert [i["code"] for i in listed] == ["A", "B", "C"]
        assert [i["code"] for i in catalogue.listing(s, 1, "products", active=True)] == ["A", "B"]
        assert [i["code"] for i in catalogue.listing(s, 1, "products", active=False)] == ["C"]
        assert [i["code"] for i in catalogue.listing(s, 1, "products", code="A-BLUE")] == ["A"]
        assert catalogue.listing(s, 1, "products", source="other") == []
        assert len(catalogue.listing(s, 1, "products", limit=2)) == 2
        future = datetime.now(UTC) + timedelta(minutes=5)
        assert catalogue.listing(s, 1, "products", changed_since=future) == []
        one = catalogue.one(s, 1, "products", "A-RED")
        assert one is not None and one["code"] == "A"
        assert catalogue.one(s, 1, "products", "B")["product"] == product("B")  # type: ignore[index]
        assert catalogue.one(s, 1, "products", "NOPE") is None
        assert catalogue.one(s, 2, "products", "A") is None  # another client's code


def test_two_clients_number_and_read_their_own_changes(db: str) -> None:
    with session_scope(db) as s:
        other = Client(code="c2", name="c2")
        s.add(other)
        s.flush()
        s.add(Source(id=2, client_id=other.id, code="erp", kind="sql", name="erp", settings={}))
    write(db, [active("A")], client_id=1)
    write(db, [active("A"), active("B")], client_id=2)
    with session_scope(db) as s:
        mine = catalogue.feed(s, 1, "products", None, 10)["items"]
        theirs = catalogue.feed(s, 2, "products", None, 10)["items"]
        seqs = dict(s.execute(select(Product.source_id, Product.change_seq)).all())
    assert codes(mine) == [("A", False)] and codes(theirs) == [("A", False), ("B", False)]
    assert seqs[1] == 1  # numbers are per client


def test_the_migration_numbers_existing_rows_in_id_order(tmp_path: Any) -> None:
    migration_numbers_existing_rows(f"sqlite:///{tmp_path / 'old.sqlite'}")


def migration_numbers_existing_rows(url: str) -> None:
    """Rows written before the feed existed are numbered per client in id
    order, and the counters go on after them."""
    upgrade(url, "0007")
    now = datetime.now(UTC)
    with session_scope(url) as s:
        # Clients and sources have the same columns at 0007; products do not.
        s.add_all(Client(id=i, code=f"c{i}", name=f"c{i}") for i in (1, 2))
        s.flush()
        s.add_all(
            Source(id=i, client_id=i, code="erp", kind="sql", name="erp", settings={})
            for i in (1, 2)
        )
        s.flush()
        for client, code in ((1, "X"), (2, "X"), (1, "Y")):
            s.execute(
                text(
                    "INSERT INTO products (client_id, source_id, source_product_code, title, "
                    "active, hash, data, created_at, updated_at) "
                    "VALUES (:c, :c, :code, '', true, 'h', '{}', :now, :now)"
                ),
                {"c": client, "code": code, "now": now},
            )
    dispose_all()
    upgrade(url)
    with session_scope(url) as s:
        numbered = s.execute(select(Product.id, Product.change_seq).order_by(Product.id)).all()
        counters = s.execute(select(ChangeCounter.client_id, ChangeCounter.value)).all()
    assert [seq for _, seq in numbered] == [1, 1, 2]
    assert sorted(counters) == [(1, 2), (2, 1)]
    write(url, [active("Z")])
    with session_scope(url) as s:
        assert [i["code"] for i in catalogue.feed(s, 1, "products", None, 10)["items"]] == [
            "X",
            "Y",
            "Z",
        ]
    dispose_all()
