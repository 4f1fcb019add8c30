"""Batched raising without services: the connector's batch method and the
batch transitions of the order state machine, on SQLite."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import marshmallow
import pytest
from sqlalchemy import create_engine, select, text

from connectors.base import Connector, Page, RejectedError, TransientError
from connectors.sql import SqlConnector
from emulators.sql_erp import order_counts, seed
from hub import orders
from hub.db import session_scope
from hub.models import Order, OrderEvent, Source, utcnow
from tests.unit.test_connector_sql import order


@pytest.fixture
def erp(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    seed(url, products=20, customers=5, seed=1)
    return url


def test_sql_batch_inserts_every_order_once(erp: str) -> None:
    with SqlConnector({"url": erp}) as connector:
        outcomes = connector.raise_orders([order("B1"), order("B2", lines=1), order("B3")])
        assert all(isinstance(o, str) for o in outcomes) and len(set(outcomes)) == 3
        assert [connector.find_order(c) for c in ("B1", "B2", "B3")] == outcomes
    counts = order_counts(erp)
    assert (counts.headers, counts.lines, counts.orders) == (3, 5, 3)


def test_sql_batch_refused_order_sinks_no_other(erp: str) -> None:
    engine = create_engine(erp)
    with engine.begin() as conn:
        # This ERP refuses one stock code at import, as a constraint would.
        conn.execute(
            text(
                "CREATE TRIGGER no_withdrawn BEFORE INSERT ON s2s_order_line "
                "WHEN NEW.sku = 'WITHDRAWN' BEGIN "
                "SELECT RAISE(ABORT, 'stock code WITHDRAWN is not known'); END"
            )
        )
    engine.dispose()
    withdrawn = order("R3", lines=1)
    withdrawn["lines"][0]["sku"] = "WITHDRAWN"
    too_long = order("R4")
    too_long["header"]["customer_code"] = "C" * 65
    with SqlConnector({"url": erp}) as connector:
        earlier = connector.raise_order(order("R2"))
        outcomes = connector.raise_orders(
            [order("R1"), order("R2"), withdrawn, too_long, order("R5")]
        )
    first, again, refused, invalid, last = outcomes
    assert isinstance(first, str) and isinstance(last, str)
    assert again == earlier  # already in the ERP: its document, not a second copy
    assert isinstance(refused, RejectedError) and "WITHDRAWN is not known" in refused.message
    assert "R3" in refused.message
    assert isinstance(invalid, RejectedError) and "customer_code" in invalid.message
    counts = order_counts(erp)
    assert (counts.headers, counts.orders) == (3, 3)


class _Fake(Connector):
    """A connector that answers from a script: document numbers or errors."""

    kind = "fake"
    title = "Fake ERP"
    streams = frozenset()
    settings_schema = marshmallow.Schema

    def __init__(self, script: dict[str, Any]) -> None:
        super().__init__({})
        self.script = script
        self.sent: list[str] = []

    def check(self) -> str:
        return "ok"

    def _read(self, stream: str, cursor: Any, limit: int, since: Any) -> Page:
        raise AssertionError("not read")

    def raise_order(self, payload: dict[str, Any]) -> str:
        self.sent.append(payload["ref"])
        answer = self.script[payload["ref"]]
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    def find_order(self, reference: str) -> str | None:
        return None


def test_default_batch_isolates_refusals_and_stops_at_a_transient_failure() -> None:
    down = TransientError("the ERP timed out")
    fake = _Fake({"a": "D1", "b": RejectedError("bad"), "c": KeyError("bug"), "d": down, "e": "D5"})
    outcomes = fake.raise_orders([{"ref": r} for r in "abcde"])
    assert outcomes[0] == "D1"
    assert isinstance(outcomes[1], RejectedError) and isinstance(outcomes[2], KeyError)
    assert outcomes[3] is down and outcomes[4] is None
    assert fake.sent == ["a", "b", "c", "d"]  # nothing sent after the ERP went away


def _queued(url: str, n: int) -> list[int]:
    with session_scope(url) as s:
        source = s.scalars(select(Source)).one()
        rows = [
            Order(
                client_id=source.client_id,
                channel="api",
                channel_order_code=f"Q{i}",
                instruction="add_order",
                status=orders.QUEUED,
                source_id=source.id,
                order={"channel_order_code": f"Q{i}"},
            )
            for i in range(n)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def test_claim_batch_settle_and_give_back(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    ids = _queued(db, 5)
    lease = timedelta(seconds=60)
    with session_scope(db) as s:
        source_id = s.scalars(select(Source.id)).one()
        first = orders.claim_batch(s, source_id, 3, lease)
    assert [c.id for c in first] == ids[:3]
    assert all(c.attempt == 1 and not c.ask_erp_first for c in first)
    with session_scope(db) as s:
        rest = orders.claim_batch(s, source_id, 10, lease)
        assert [c.id for c in rest] == ids[3:]  # the first three are held
        assert orders.claim_batch(s, source_id, 10, lease) == []
    a, b, c = first
    with session_scope(db) as s:
        assert orders.raised_many(s, [(a.id, a.attempt, "DOC-A", False)]) == [a.id]
        # An attempt that no longer holds the order changes nothing.
        assert orders.raised_many(s, [(b.id, b.attempt + 1, "DOC-B", False)]) == []
        assert orders.retry_many(s, [(b.id, b.attempt, "timed out", 30.0)]) == [b.id]
        assert orders.give_back(s, [(c.id, c.attempt, c.reached_before)], 30.0, "why") == [c.id]
    with session_scope(db) as s:
        got = {o.id: o for o in s.scalars(select(Order).where(Order.id.in_(ids[:3])))}
        assert (got[a.id].status, got[a.id].document_number) == (orders.RAISED, "DOC-A")
        assert (got[b.id].status, got[b.id].attempts, got[b.id].reached_erp) == (
            orders.QUEUED,
            1,
            True,
        )
        # Not sent: its attempt is handed back, and it never reached the ERP.
        assert (got[c.id].status, got[c.id].attempts, got[c.id].reached_erp) == (
            orders.QUEUED,
            0,
            False,
        )
        # Both wait out their backoff before they can be claimed again.
        assert orders.claim_batch(s, source_id, 10, lease) == []
        due, later = orders.pending(s, source_id)
        assert not due and later is not None and later > utcnow()
        messages = list(s.scalars(select(OrderEvent.message).where(OrderEvent.order_id == a.id)))
        assert messages == ["attempt 1 (batch)", "raised as DOC-A"]
    with session_scope(db) as s:
        s.execute(
            Order.__table__.update()
            .where(Order.id.in_([b.id, c.id]))
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )
    with session_scope(db) as s:
        again = {x.id: x for x in orders.claim_batch(s, source_id, 10, lease)}
    assert set(again) == {b.id, c.id}
    assert again[b.id].attempt == 2 and again[b.id].ask_erp_first  # it may have landed
    assert again[c.id].attempt == 1 and not again[c.id].ask_erp_first  # it was never sent


def test_raised_many_settles_a_large_batch_each_order_by_its_own_attempt(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixty orders settled at once, as a drain under a flood does: each gets
    its own document, only attempts that still hold their order move, and
    each moved order gets the event its outcome says."""
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    ids = _queued(db, 60)
    with session_scope(db) as s:
        source_id = s.scalars(select(Source.id)).one()
        claimed = orders.claim_batch(s, source_id, 60, timedelta(seconds=60))
    assert [c.id for c in claimed] == ids
    stale = {c.id for c in claimed[::7]}  # another attempt holds these now
    done = [
        (c.id, c.attempt + (1 if c.id in stale else 0), f"DOC-{c.id}", c.id % 2 == 0)
        for c in claimed
    ]
    with session_scope(db) as s:
        moved = orders.raised_many(s, done)
    assert moved == sorted(set(ids) - stale)
    with session_scope(db) as s:
        got = {o.id: o for o in s.scalars(select(Order).where(Order.id.in_(ids)))}
        last = {
            oid: message
            for oid, message in s.execute(
                select(OrderEvent.order_id, OrderEvent.message)
                .where(OrderEvent.order_id.in_(ids))
                .order_by(OrderEvent.id)
            )
        }
    for oid in ids:
        if oid in stale:
            assert (got[oid].status, got[oid].document_number) == (orders.RAISING, None)
            assert last[oid] == "attempt 1 (batch)"
        else:
            assert (got[oid].status, got[oid].document_number) == (orders.RAISED, f"DOC-{oid}")
            assert got[oid].raised_at is not None and got[oid].lease_until is None
            how = "found already in the ERP as" if oid % 2 == 0 else "raised as"
            assert last[oid] == f"{how} DOC-{oid}"


def test_a_batchs_events_are_written_in_its_order_with_long_messages_cut(db: str) -> None:
    """History rows of a batch: one per order in the order given (``s2s
    orders show`` reads them by id), at one time, messages cut at 2,000
    characters, quotes and non-ASCII kept."""
    ids = _queued(db, 30)
    given = [(oid, orders.QUEUED, f"routed «{oid}» to 'erp'") for oid in reversed(ids)]
    given[3] = (given[3][0], orders.QUEUED, "x" * 2500)
    with session_scope(db) as s:
        orders.events(s, given)
        orders.events(s, [])
    with session_scope(db) as s:
        rows = s.scalars(select(OrderEvent).order_by(OrderEvent.id)).all()
    assert [(r.order_id, r.status, r.message) for r in rows] == [
        (oid, status, message[:2000]) for oid, status, message in given
    ]
    assert len({r.at for r in rows}) == 1 and rows[0].at is not None
