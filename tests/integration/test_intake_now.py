"""Intake in one statement (``hub.intake.intake_now``): the same answers as
the session path on both databases, and one order however many deliveries
race for it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.db import session_scope
from hub.intake import intake_now
from hub.models import Order, OrderEvent, WebhookDelivery
from workers.sources import upsert_client

pytestmark = [pytest.mark.services]


def _order(code: str) -> dict[str, Any]:
    return {
        "channel": "shopify",
        "channel_order_code": code,
        "instruction": "add_order",
        "lines": [{"sku": "A-1", "quantity": 1}],
    }


def _client() -> int:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        return client.id


def _counts() -> tuple[int, int, list[tuple[str, int | None]]]:
    with session_scope() as s:
        orders = s.scalar(select(func.count()).select_from(Order)) or 0
        events = s.scalar(select(func.count()).select_from(OrderEvent)) or 0
        deliveries = s.execute(
            select(WebhookDelivery.delivery_id, WebhookDelivery.order_id).order_by(
                WebhookDelivery.delivery_id
            )
        ).all()
    return orders, events, [tuple(d) for d in deliveries]


@pytest.mark.parametrize("hub_kind", ["pg_hub", "embedded_hub"])
def test_new_repeat_and_redelivery(hub_kind: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue(hub_kind)
    client_id = _client()
    first = intake_now(client_id, _order("#1"), raw={"id": 1}, delivery_id="d-1")
    assert first.created and not first.duplicate_delivery and first.order.id
    assert first.order.status == "received"
    again = intake_now(client_id, _order("#1"), raw={"id": 1}, delivery_id="d-1")
    assert (again.created, again.duplicate_delivery, again.order.id) == (
        False,
        True,
        first.order.id,
    )
    other = intake_now(client_id, _order("#1"), raw={"id": 1}, delivery_id="d-2")
    assert (other.created, other.duplicate_delivery, other.order.id) == (
        False,
        False,
        first.order.id,
    )
    plain = intake_now(client_id, _order("#2"))
    assert plain.created and plain.order.id != first.order.id
    stored = intake_now(client_id, {**_order("#3"), "instruction": "sync_order"})
    assert stored.created and stored.order.status == "stored"
    # Three orders, each with its first event; both deliveries lead to #1.
    assert _counts() == (3, 3, [("d-1", first.order.id), ("d-2", first.order.id)])
    with session_scope() as s:
        kept = s.get(Order, first.order.id)
        assert kept is not None and kept.raw == {"id": 1} and kept.order["lines"]


def test_racing_deliveries_make_one_order(pg_hub: Any) -> None:
    client_id = _client()

    def deliver(n: int) -> tuple[bool, int]:
        got = intake_now(client_id, _order("#race"), delivery_id=f"d-{n % 4}")
        return got.created, got.order.id

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(deliver, range(40)))
    assert sum(created for created, _ in answers) == 1
    assert len({order_id for _, order_id in answers}) == 1
    orders, events, deliveries = _counts()
    assert (orders, events) == (1, 1)
    assert [d for d, _ in deliveries] == ["d-0", "d-1", "d-2", "d-3"]


@pytest.mark.parametrize("hub_kind", ["pg_hub", "embedded_hub"])
def test_intake_in_a_session_stores_once(hub_kind: str, request: pytest.FixtureRequest) -> None:
    from hub.intake import intake

    request.getfixturevalue(hub_kind)
    client_id = _client()
    with session_scope() as s:
        first = intake(s, client_id=client_id, order=_order("#9"), raw={"id": 9})
        again = intake(s, client_id=client_id, order=_order("#9"), raw={"id": 9})
    assert first.created and first.order.id and not again.created
    assert again.order.id == first.order.id
    assert _counts()[:2] == (1, 1)
