"""The change feed never skips and never repeats, whatever the interleaving.

Two transactions of one client (two sources, as two ERPs or two pages of a
run would write) write products concurrently on PostgreSQL, each on its own
connection and thread, and commit in either order; a reader pages through
the feed with small limits after every step and, at the end, again from
cursors it was given along the way. Every committed change must reach the
reader exactly once, in commit order, and a read from any earlier cursor
must return exactly the records changed since.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from hub import catalogue
from hub.db import get_engine, session_scope
from hub.models import Client, Source
from hub.schemas import canonical_hash
from hub.store import StoreItem, upsert_products
from tests.conftest import one_source_hub

pytestmark = [pytest.mark.services]

Key = tuple[str, str]  # (source code, product code)
Write = tuple[int, bool]  # (product number, delete?)


@pytest.fixture
def pg(postgres_db: Any) -> Iterator[str]:
    """One migrated database for all examples: each example is a new client."""
    yield one_source_hub(postgres_db("s2s_feedprop"))


class Txn:
    """One writer: a page of products upserted on its own connection, in a
    thread (it may wait on the other writer's lock), committed on demand."""

    def __init__(self, url: str, client_id: int, source_id: int, items: list[StoreItem]) -> None:
        self.session = Session(get_engine(url))
        self.items, self.client_id, self.source_id = items, client_id, source_id
        self.written = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        try:
            upsert_products(
                self.session,
                client_id=self.client_id,
                source_id=self.source_id,
                run_id=1,
                items=self.items,
            )
        except BaseException as exc:  # reported by commit()
            self.error = exc
        finally:
            self.written.set()

    def start(self) -> None:
        self.thread.start()

    def commit(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the writer is still waiting"
        if self.error is not None:
            raise self.error
        self.session.commit()
        self.session.close()


@dataclass
class Model:
    """What has been committed: per key its history of versions (a price, or
    None for a deletion), and what the reader has seen."""

    history: dict[Key, list[float | None]] = field(default_factory=dict)
    seen: list[tuple[Key, float | None]] = field(default_factory=list)
    cursor: str | None = None
    # (cursor, how long each key's history was when it was given)
    cursors: list[tuple[str | None, dict[Key, int]]] = field(default_factory=list)
    price: float = 0.0

    def page(self, source: str, writes: list[Write]) -> tuple[list[StoreItem], Callable[[], None]]:
        """The page's items, and the change to the model when it commits."""
        items: list[StoreItem] = []
        effects: list[tuple[Key, float | None]] = []
        for number, delete in writes:
            code, key = f"P{number}", (source, f"P{number}")
            past = self.history.get(key, [])
            if delete:
                items.append(StoreItem(code, "delete"))
                if past and past[-1] is not None:
                    effects.append((key, None))
                continue
            self.price += 1.0
            data = {
                "source_product_code": code,
                "title": code,
                "variants": [{"source_variant_code": code, "sku": code, "price": self.price}],
            }
            items.append(StoreItem(code, "active", data, canonical_hash(data)))
            effects.append((key, self.price))

        def apply() -> None:
            for key, version in effects:
                self.history.setdefault(key, []).append(version)

        return items, apply


def _version(item: dict[str, Any]) -> float | None:
    return None if item["deleted"] else item["product"]["variants"][0]["price"]


def read(url: str, client_id: int, after: str | None, limit: int) -> tuple[list[Any], str]:
    """Everything after a cursor, paged by ``limit``; and the cursor at the end."""
    out: list[Any] = []
    while True:
        with session_scope(url) as s:
            page = catalogue.feed(s, client_id, "products", after, limit)
        assert len(page["items"]) <= limit
        out.extend(((i["source"], i["code"]), _version(i)) for i in page["items"])
        after = page["next"]
        if not page["more"]:
            return out, after


def _new_client(url: str) -> tuple[int, dict[str, int]]:
    with session_scope(url) as s:
        client = Client(code=f"p{uuid.uuid4().hex[:12]}", name="property")
        s.add(client)
        s.flush()
        sources = [
            Source(client_id=client.id, code=code, kind="sql", name=code, settings={})
            for code in ("a", "b")
        ]
        s.add_all(sources)
        s.flush()
        return client.id, {src.code: src.id for src in sources}


writes = st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=4, unique_by=lambda w: w[0])
rounds = st.lists(
    st.tuples(
        st.sampled_from(("a", "b")),  # which writer goes (and commits) first
        writes,
        writes,
        st.booleans(),  # the second writes while the first is uncommitted
        st.integers(1, 4),  # the reader's page size
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds=rounds, picks=st.lists(st.integers(0, 100), min_size=1, max_size=4))
def test_concurrent_writers_never_make_the_feed_skip_or_repeat(
    pg: str, rounds: list[Any], picks: list[int]
) -> None:
    client_id, sources = _new_client(pg)
    model = Model(cursors=[(None, {})])

    def catch_up(limit: int) -> None:
        got, model.cursor = read(pg, client_id, model.cursor, limit)
        model.seen.extend(got)
        # No commit happens during the read: the cursor stands for this state.
        model.cursors.append((model.cursor, {k: len(v) for k, v in model.history.items()}))

    for first, first_writes, second_writes, concurrent, limit in rounds:
        second = "b" if first == "a" else "a"
        txns: list[tuple[Txn, Callable[[], None]]] = []
        for src, page_writes in ((first, first_writes), (second, second_writes)):
            items, apply = model.page(src, page_writes)
            txns.append((Txn(pg, client_id, sources[src], items), apply))
        one, two = txns
        one[0].start()
        assert one[0].written.wait(30)
        if concurrent:
            two[0].start()
            # A writer that need not wait (it writes nothing, or the other
            # wrote nothing) commits first: the later writer commits first.
            if two[0].written.wait(0.2):
                one, two = two, one
        catch_up(limit)
        for txn, apply in (one, two):
            if not txn.thread.is_alive() and not txn.written.is_set():
                txn.start()
            txn.commit()
            apply()
            catch_up(limit)

    # Read after every commit: each change seen exactly once, in order.
    per_key: dict[Key, list[float | None]] = {}
    for key, version in model.seen:
        per_key.setdefault(key, []).append(version)
    assert per_key == {k: v for k, v in model.history.items() if v}
    # From any cursor given along the way: exactly the records changed since.
    for pick in picks:
        cursor, lengths = model.cursors[pick % len(model.cursors)]
        got, _ = read(pg, client_id, cursor, 3)
        keys = [key for key, _ in got]
        assert len(keys) == len(set(keys))
        changed = {k for k, v in model.history.items() if len(v) > lengths.get(k, 0)}
        assert set(keys) == changed
        assert all(version == model.history[key][-1] for key, version in got)
