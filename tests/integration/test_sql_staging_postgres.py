"""A batch of orders staged in a PostgreSQL ERP (``connectors.sql.batch_pg``).

On PostgreSQL the SQL connector sends a batch's headers and lines as JSON
arrays read into the staging tables' own row types. These tests hold that
path to what the portable one does: every order once, each document to its
own order, the ERP's real column types and defaults applied, and a refused
order sinking no other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from connectors.base import RejectedError
from connectors.sql import SqlConnector
from emulators.sql_erp import _tables, order_counts, seed
from tests.unit.test_connector_sql import order

pytestmark = [pytest.mark.services]


@pytest.fixture
def erp(postgres_db: Any) -> Iterator[str]:
    url: str = postgres_db("s2s_erp")
    seed(url, products=20, customers=5, seed=1)
    yield url


def _alter(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def _headers(url: str) -> dict[str, dict[str, Any]]:
    *_, header, _ = _tables()
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(header)).mappings().all()
    engine.dispose()
    return {row["channel_order_code"]: dict(row) for row in rows}


def test_a_batch_lands_once_each_document_its_own_orders(erp: str) -> None:
    payloads = [order(f"B{i}", lines=1 + i % 3) for i in range(40)]
    with SqlConnector({"url": erp}) as connector:
        outcomes = connector.raise_orders(payloads)
        assert [connector.find_order(f"B{i}") for i in range(40)] == outcomes
    assert all(isinstance(o, str) for o in outcomes) and len(set(outcomes)) == 40
    counts = order_counts(erp)
    assert (counts.headers, counts.orders, counts.lines) == (
        40,
        40,
        sum(1 + i % 3 for i in range(40)),
    )


def test_a_batched_order_is_stored_as_one_raised_alone(erp: str) -> None:
    """Dates to UTC, amounts to the column's scale, text as sent (quotes,
    non-ASCII), columns left out keeping the ERP's default: the same row
    whichever path wrote it."""
    _alter(erp, "ALTER TABLE s2s_order ALTER COLUMN ship_phone SET DEFAULT 'none given'")

    def made(code: str) -> dict[str, Any]:
        payload = order(code, lines=2)
        payload["header"].update(
            total_ex_tax="310.555", notes='Thandi\'s "gate" — Ümlaut ✓', ship_address2=None
        )
        return payload

    with SqlConnector({"url": erp}) as connector:
        alone = connector.raise_order(made("ONE"))
        batched = connector.raise_orders([made("TWO"), made("THREE")])
    assert all(isinstance(o, str) for o in batched)
    rows = _headers(erp)
    ignore = ("id", "channel_order_code", "created_at")
    one = {k: v for k, v in rows["ONE"].items() if k not in ignore}
    for code in ("TWO", "THREE"):
        assert {k: v for k, v in rows[code].items() if k not in ignore} == one
    assert str(one["total_ex_tax"]) == "310.56"
    assert one["ship_phone"] == "none given"
    assert one["ordered_date"].isoformat() == "2024-05-01T08:30:00"
    assert str(rows["ONE"]["id"]) == alone


def test_a_value_the_erps_own_column_refuses_sinks_no_other_order(erp: str) -> None:
    """The ERP's column is narrower than the hub declares, and the ERP
    refuses one stock code: the batch falls back to one order at a time,
    and only those two are refused, each with the ERP's words."""
    _alter(
        erp,
        "ALTER TABLE s2s_order ALTER COLUMN ship_city TYPE varchar(8)",
        "ALTER TABLE s2s_order_line ADD CONSTRAINT known_sku CHECK (sku <> 'WITHDRAWN')",
    )
    far = order("R2")
    far["header"]["ship_city"] = "Pietermaritzburg"
    withdrawn = order("R3", lines=1)
    withdrawn["lines"][0]["sku"] = "WITHDRAWN"
    with SqlConnector({"url": erp}) as connector:
        first, long_city, refused, last = connector.raise_orders(
            [order("R1"), far, withdrawn, order("R4")]
        )
        assert connector.find_order("R1") == first and connector.find_order("R4") == last
    assert isinstance(long_city, RejectedError) and "R2" in long_city.message
    assert "character varying(8)" in long_city.message
    assert isinstance(refused, RejectedError) and "known_sku" in refused.message
    counts = order_counts(erp)
    assert (counts.headers, counts.orders) == (2, 2)
