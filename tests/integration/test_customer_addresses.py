"""SYSPRO customers in the hub keep their addresses, telephone and price tier.

End to end: an emulated SYSPRO company database in PostgreSQL, a real worker
process, the hub's PostgreSQL. What a synced customer holds is checked
against the ArCustomer rows the emulator seeded, and a site whose older
ArCustomer lacks some columns syncs all the same, with one warning.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from emulators import syspro
from hub.db import session_scope
from hub.models import Customer, SyncRun
from tests.conftest import Hub, wait_for
from tests.integration.test_orders_e2e import orders_hub as orders_hub
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

ACCOUNTS = 60
PAGE = 25
SEED = 6
# Price code C is left out: a price list that does not go to the channels.
TIERS = {"A": "retail", "B": "wholesale"}
LACKING = ("SoldPostalCode", "ShipToAddr3", "ShipToAddr4", "ShipToAddr5", "ShipPostalCode")
# The connector's warning about columns a site's ArCustomer lacks.
MISSING = re.compile(r"ArCustomer .*? has no ([A-Za-z0-9, ]+) columns?:")


def _company(postgres_db: Any) -> str:
    url = postgres_db("s2s_syspro")
    syspro.seed(url, stock=3, price_codes=3, warehouses=1, customers=ACCOUNTS, seed=SEED)
    return str(url)


def _sync_customers(database_url: str) -> SyncRun:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        source = upsert_source(
            s,
            client,
            "syspro",
            "syspro",
            {
                "database_url": database_url,
                "operator": "ADMIN",
                "operator_password": "not-used-by-reads",
                "company_id": "EDU1",
                "enet_url": "http://127.0.0.1:9/SYSPROWCFService/Rest",
                "price_codes": TIERS,
                "page_size": PAGE,
            },
        )
        source_id = source.id
    run_id = start_sync(source_id, "customers", requested_by="test").run.id

    def done() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run.status != "running" else None

    return wait_for(done, timeout=300, what=f"run {run_id}")


def _stored() -> dict[str, dict[str, Any]]:
    with session_scope() as s:
        return {c.source_customer_code: c.data for c in s.scalars(select(Customer))}


def _filled(address: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in address.items() if v is not None}


def _expected(account: dict[str, Any], lacking: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The addresses an ArCustomer row should give, written out from the row itself."""

    def col(name: str) -> str | None:
        value = None if name in lacking else account.get(name)
        return (value.strip() or None) if isinstance(value, str) else value

    out = []
    for kind, prefix, postal in (
        ("billing", "SoldToAddr", "SoldPostalCode"),
        ("shipping", "ShipToAddr", "ShipPostalCode"),
    ):
        locality = ", ".join(v for n in (3, 4, 5) if (v := col(f"{prefix}{n}")))
        address = {
            "type": kind,
            "address1": col(f"{prefix}1"),
            "address2": col(f"{prefix}2"),
            "city": locality or None,
            "zip": col(postal),
            "phone": col("Telephone"),
        }
        if address["address1"] or address["address2"] or address["city"]:
            out.append(_filled(address))
    return out


def test_synced_customers_keep_addresses_telephone_and_price_tier(
    orders_hub: Hub, postgres_db: Any
) -> None:
    url = _company(postgres_db)
    orders_hub.start_worker(concurrency=1)
    run = _sync_customers(url)
    assert run.status == "succeeded", run.error
    accounts = {a["Customer"]: a for a in syspro.generate_customers(ACCOUNTS, SEED)}
    assert run.created == len(accounts) and run.quarantined == 0
    stored = _stored()
    assert set(stored) == set(accounts)
    with_addresses = 0
    for code, account in accounts.items():
        data = stored[code]
        assert [_filled(a) for a in data["addresses"]] == _expected(account), code
        assert data["price_tier"] == TIERS.get(account["PriceCode"]), code
        with_addresses += bool(data["addresses"])
    # The generated accounts have both addresses; the fixed ones have none.
    assert with_addresses == ACCOUNTS
    sample = stored["C000001"]["addresses"]
    assert [a["type"] for a in sample] == ["billing", "shipping"]
    assert sample[0]["zip"] == accounts["C000001"]["SoldPostalCode"]
    assert MISSING.findall(orders_hub.logs()) == []  # the full schema: no warning


def test_an_older_arcustomer_syncs_with_one_warning(orders_hub: Hub, postgres_db: Any) -> None:
    url = _company(postgres_db)
    engine = create_engine(url)
    with engine.begin() as conn:
        for name in LACKING:
            conn.exec_driver_sql(f'ALTER TABLE "ArCustomer" DROP COLUMN "{name}"')
    engine.dispose()
    orders_hub.start_worker(concurrency=1)
    run = _sync_customers(url)
    assert run.status == "succeeded", run.error
    accounts = {a["Customer"]: a for a in syspro.generate_customers(ACCOUNTS, SEED)}
    assert run.created == len(accounts) and run.quarantined == 0
    assert run.fetched == len(accounts)
    stored = _stored()
    for code, account in accounts.items():
        addresses = [_filled(a) for a in stored[code]["addresses"]]
        assert addresses == _expected(account, LACKING), code
        assert all("zip" not in a for a in addresses)
    # Several pages, one warning naming every column the site lacks.
    assert MISSING.findall(orders_hub.logs()) == [", ".join(LACKING)]
