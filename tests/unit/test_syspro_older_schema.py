"""SYSPRO customers from an ArCustomer that lacks some of the columns the hub reads.

Older SYSPRO schemas have fewer ArCustomer columns; a site without, say,
ShipToAddr3-5 and the postal codes still syncs its customers, with one
warning naming what it lacks, instead of every customers run failing on
"no such column". The table is built here, as such a site has it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert

import mappings.syspro as maps
from connectors.base import SettingsError
from connectors.syspro import SysproConnector
from connectors.syspro.reads import CUSTOMER_COLUMNS
from emulators.syspro import seed
from mappings import map_records

# In ArCustomer's column order, as the warning names them.
LACKING = ("SoldPostalCode", "ShipToAddr3", "ShipToAddr4", "ShipToAddr5", "ShipPostalCode")
LOGGER = "s2s.connectors.syspro"


def settings(url: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "database_url": url,
        "operator": "ADMIN",
        "operator_password": "Op-s3cret!pw",
        "company_id": "EDU1",
        "enet_url": "http://127.0.0.1:1/Rest",
        "timeout": 5,
    }
    base.update(over)
    return base


def company(path: Path, columns: tuple[str, ...], accounts: int = 7) -> str:
    """A company database whose ArCustomer has only ``columns`` (text), with ``accounts`` rows."""
    url = f"sqlite:///{path / 'old.sqlite'}"
    table = Table("ArCustomer", MetaData(), *(Column(c, String(60)) for c in columns))
    rows = []
    for n in range(1, accounts + 1):
        row = {c: None for c in columns}
        row.update(
            Customer=f"C{n:03d}",
            Name=f"Account {n}",
            Telephone=f"021 555 01{n:02d}",
            PriceCode="A",
            SoldToAddr1=f"{n} Main Road",
            SoldToAddr3="Claremont",
            SoldToAddr4="Cape Town",
            ShipToAddr1=f"{n} Depot Street",
            ShipToAddr2="Epping",
        )
        rows.append({k: v for k, v in row.items() if k in columns})
    engine = create_engine(url)
    with engine.begin() as conn:
        table.create(conn)
        if rows:
            conn.execute(insert(table), rows)
    engine.dispose()
    return url


def read_all(connector: SysproConnector, limit: int) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        page = connector.read("customers", cursor, limit)
        pages.append(page.records)
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


OLDER = tuple(c for c in CUSTOMER_COLUMNS if c not in LACKING)


def test_an_older_arcustomer_syncs_without_the_columns_it_lacks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = company(tmp_path, OLDER)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with SysproConnector(settings(url)) as connector:
        pages = read_all(connector, 3)
        again = read_all(connector, 3)  # a second run of the same connector
        queries = connector.queries
    records = [r for page in pages for r in page]
    assert [r["Customer"] for r in records] == [f"C{n:03d}" for n in range(1, 8)]
    assert set(records[0]) == set(OLDER)
    assert again == pages
    # One probe, then one SELECT a page: 3 + 3 pages of 3, 3 and 1 rows.
    assert queries == 1 + len(pages) + len(again)

    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1, "one warning per connector, not per page or run"
    message = warnings[0].getMessage()
    assert "ArCustomer" in message and ", ".join(LACKING) in message
    assert warnings[0].levelno == logging.WARNING

    customers, errors = map_records(maps.CUSTOMERS, records, {})
    assert errors == []
    assert customers[0]["addresses"] == [
        {
            "type": "billing",
            "address1": "1 Main Road",
            "city": "Claremont, Cape Town",
            "phone": "021 555 0101",
        },
        {
            "type": "shipping",
            "address1": "1 Depot Street",
            "address2": "Epping",
            "phone": "021 555 0101",
        },
    ]
    assert customers[0]["price_tier"] == "A"


def test_the_bare_minimum_arcustomer_still_syncs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the key and the name: customers without addresses, one warning."""
    url = company(tmp_path, ("Customer", "Name"))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with SysproConnector(settings(url)) as connector:
        (records,) = read_all(connector, 50)
    assert len(records) == 7 and set(records[0]) == {"Customer", "Name"}
    (warning,) = [r for r in caplog.records if r.name == LOGGER]
    assert "Email, Telephone" in warning.getMessage()
    customers, errors = map_records(maps.CUSTOMERS, records, {})
    assert errors == [] and all("addresses" not in c for c in customers)


def test_columns_match_whatever_their_case(tmp_path: Path) -> None:
    """A site whose columns are spelt otherwise gives records in the hub's spelling."""
    url = company(tmp_path, tuple(c.upper() for c in OLDER))
    # company() fills the columns by their usual names: fill these by hand.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ArCustomer SET CUSTOMER = 'K' || rowid, SOLDTOADDR1 = 'x'")
    engine.dispose()
    with SysproConnector(settings(url)) as connector:
        pages = read_all(connector, 4)
    records = [r for page in pages for r in page]
    assert len(records) == 7 and set(records[0]) == set(OLDER)
    assert records[0]["Customer"] == "K1" and records[0]["SoldToAddr1"] == "x"


def test_the_full_schema_reads_every_column_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'company.sqlite'}"
    seed(url, stock=2, price_codes=1, warehouses=1, customers=4, seed=2)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with SysproConnector(settings(url)) as connector:
        records = [r for page in read_all(connector, 50) for r in page]
    assert records and set(records[0]) == set(CUSTOMER_COLUMNS)
    assert [r for r in caplog.records if r.name == LOGGER] == []


def test_without_the_key_or_the_active_column_it_is_a_settings_error(tmp_path: Path) -> None:
    url = company(tmp_path, OLDER)
    with (
        SysproConnector(settings(url, customer_active_field="WebActive")) as connector,
        pytest.raises(SettingsError, match="customer_active_field names WebActive") as info,
    ):
        connector.read("customers", None, 5)
    assert "ArCustomer" in str(info.value) and info.value.hint

    other = tmp_path / "other"
    other.mkdir()
    keyless = company(other, ("Name", "Email"), accounts=0)
    with (
        SysproConnector(settings(keyless)) as connector,
        pytest.raises(SettingsError, match="no Customer column"),
    ):
        connector.read("customers", None, 5)
