"""``skipped`` through real syncs: IQ Retail stock items that are not web
items (Delete rows) for products the hub never stored.

Real worker processes, PostgreSQL and Redis, the IQ API emulator over HTTP.
Three pages a sync: the first two are mapped by map_page, the last by the
fetch itself, so both ways of adding a page's counts to the run are in play.
The second full sync reads the same rows: the web items are passed over by
their raw hash (unchanged), while the never-stored Delete rows have no stored
raw hash, are mapped again and must be skipped again, not turn unchanged. A
product taken off the web afterwards is deleted once, then unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select, text
from starlette.testclient import TestClient

from emulators import iq_retail
from hub.db import session_scope
from hub.models import Product, SyncRun
from hub.runs import RECORD_OUTCOMES
from tests.conftest import Hub, wait_for
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

PASSWORD = "iq-skip-Secret-19"
ITEMS = 1_400  # three pages of 500


@pytest.fixture
def iq(tmp_path: Path) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path / 'iq.sqlite'}"
    summary = iq_retail.seed(url, products=ITEMS, seed=3)
    assert summary.hidden > 0  # the emulator's share of items off the web
    with iq_retail.serve(url, password=PASSWORD) as server:
        server.db_url = url
        server.summary = summary
        yield server


def _source(iq: Any) -> tuple[int, str]:
    with session_scope() as s:
        client, token = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "iq",
            "iq_retail",
            {
                "request_url": iq.base_url,
                "company_number": "002",
                "user_number": "99",
                "user_password": PASSWORD,
                "default_debtor_account": "CASH01",
                "page_size": 500,
            },
        )
        assert token is not None
        return source.id, token


def _full_sync(source_id: int) -> SyncRun:
    run_id = start_sync(source_id, "products", requested_by="test", full=True).run.id

    def done() -> SyncRun | None:
        with session_scope() as s:
            r = s.get(SyncRun, run_id)
            return r if r is not None and r.status != "running" else None

    run = wait_for(done, timeout=300, what=f"run {run_id}")
    assert run.status == "succeeded", run.error
    assert run.pages_done == run.pages_total == 3
    return run


def _counts(run: SyncRun) -> dict[str, int]:
    return {name: getattr(run, name) for name in RECORD_OUTCOMES}


def _outcomes(**counts: int) -> dict[str, int]:
    return {name: counts.get(name, 0) for name in RECORD_OUTCOMES}


def test_never_stored_deletes_are_skipped_at_every_sync(pg_hub: Hub, iq: Any) -> None:
    web, hidden = iq.summary.web_items, iq.summary.hidden
    source_id, token = _source(iq)
    pg_hub.start_worker(concurrency=2)

    first = _full_sync(source_id)
    assert _counts(first) == _outcomes(fetched=ITEMS, created=web, skipped=hidden)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == web

    second = _full_sync(source_id)
    assert _counts(second) == _outcomes(fetched=ITEMS, unchanged=web, skipped=hidden)

    # A web item taken off the web: the hub held it, so it is deleted, once.
    with session_scope() as s:
        gone = s.scalars(select(Product.source_product_code).order_by(Product.id).limit(1)).one()
    engine = create_engine(iq.db_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE stock SET webitem = :off WHERE code = :c"), {"off": False, "c": gone}
        )
    engine.dispose()
    third = _full_sync(source_id)
    assert _counts(third) == _outcomes(fetched=ITEMS, unchanged=web - 1, deleted=1, skipped=hidden)
    # Held deleted now: unchanged from here on, while the others stay skipped.
    fourth = _full_sync(source_id)
    assert _counts(fourth) == _outcomes(fetched=ITEMS, unchanged=web, skipped=hidden)

    _the_api_and_metrics_say_so(token, [first, second, third, fourth])


def _the_api_and_metrics_say_so(token: str, ran: list[SyncRun]) -> None:
    from s2s.api import create_app

    client = TestClient(create_app())
    listed = client.get(
        "/api/v1/clients/acme/sources/iq/runs", headers={"Authorization": f"Bearer {token}"}
    )
    assert listed.status_code == 200, listed.text
    by_id = {r["id"]: r for r in listed.json()["runs"]}
    for run in ran:
        assert {k: by_id[run.id][k] for k in RECORD_OUTCOMES} == _counts(run)

    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    samples = {
        s.labels["outcome"]: s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
        if s.name == "s2s_sync_records_total" and s.labels.get("stream") == "products"
    }
    for outcome in RECORD_OUTCOMES:
        assert samples[outcome] == sum(getattr(run, outcome) for run in ran), outcome
