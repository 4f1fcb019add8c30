"""The SQL template's customers: what a custom query's address aliases become.

The template's own customers table has no address columns, so addresses
come only from a query that aliases them (``billing_address1``,
``shipping_city``, ``phone`` ...); any alias the query leaves out is simply
a field the customer does not have.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text

from hub.schemas import load_customer
from mappings import get_map, map_records
from mappings.sql import ADDRESS_ALIASES

CUSTOMERS = get_map("sql", "customers")


def test_a_query_with_address_aliases_gives_billing_and_shipping_addresses() -> None:
    row = {
        "source_customer_code": "C001",
        "first_name": "Ann",
        "billing_address1": " 12 Long Street ",
        "billing_city": "Cape Town",
        "billing_province": "Western Cape",
        "billing_postal_code": 8001,  # a numeric column: its plain spelling
        "billing_country": "South Africa",
        "shipping_address1": "Unit 9, Montague Park",
        "shipping_address2": "Montague Gardens",
        "shipping_city": "Cape Town",
        "shipping_postal_code": "7441",
        "shipping_phone": "082 555 0101",
        "phone": "021 555 0100",
        "price_tier": "wholesale",
    }
    (customer,), errors = map_records(CUSTOMERS, [row])
    assert errors == []
    assert customer["price_tier"] == "wholesale"
    assert customer["addresses"] == [
        {
            "type": "billing",
            "address1": "12 Long Street",
            "city": "Cape Town",
            "province": "Western Cape",
            "zip": "8001",
            "country": "South Africa",
            "phone": "021 555 0100",  # the customer's phone: this address has none
        },
        {
            "type": "shipping",
            "address1": "Unit 9, Montague Park",
            "address2": "Montague Gardens",
            "city": "Cape Town",
            "zip": "7441",
            "phone": "082 555 0101",  # its own phone wins
        },
    ]
    record, action, problems = load_customer(customer)
    assert action == "active" and not problems and record is not None
    assert [a["type"] for a in record["addresses"]] == ["billing", "shipping"]
    assert record["price_tier"] == "wholesale"


def test_absent_aliases_are_absent_fields_not_errors() -> None:
    plain = {"Customer": "C001", "FirstName": "Ann", "Email": "ann@x.co"}
    (customer,), errors = map_records(CUSTOMERS, [plain])
    assert errors == []
    assert customer == {
        "customer_active": True,
        "source_customer_code": "C001",
        "first_name": "Ann",
        "email": "ann@x.co",
    }
    # A postal code, a country or a phone alone is not an address.
    lonely = {**plain, "billing_postal_code": "8001", "shipping_country": "ZA", "phone": "021"}
    (customer,), errors = map_records(CUSTOMERS, [lonely])
    assert errors == [] and "addresses" not in customer
    # Only the shipping lines: one address, the shipping one.
    (customer,), _ = map_records(CUSTOMERS, [{**lonely, "SHIPPING_CITY": "Paarl"}])
    assert customer["addresses"] == [
        {"type": "shipping", "city": "Paarl", "country": "ZA", "phone": "021"}
    ]


def test_aliases_of_an_untyped_address_still_come_through() -> None:
    """``"addresses.city"`` aliases (before typed addresses) give one address of no type."""
    row = {"source_customer_code": "C9", "addresses.city": "Durban", "billing_address1": "1 Rd"}
    (customer,), errors = map_records(CUSTOMERS, [row])
    assert errors == []
    assert customer["addresses"] == [
        {"type": "billing", "address1": "1 Rd"},
        {"city": "Durban"},
    ]
    record, _, problems = load_customer(customer)
    assert not problems and record is not None
    assert "type" not in record["addresses"][1]


def test_an_alias_that_is_not_text_quarantines_the_customer() -> None:
    rows = [
        {"Customer": "C1", "billing_address1": {"street": "x"}},
        {"Customer": "C2", "billing_address1": "2 Rd"},
    ]
    customers, errors = map_records(CUSTOMERS, rows)
    assert [c["source_customer_code"] for c in customers] == ["C2"]
    assert [(e.key, e.field) for e in errors] == [("C1", "addresses.address1")]
    assert "billing_address1" in errors[0].message


def test_every_alias_is_in_the_rendered_table() -> None:
    table = CUSTOMERS.render()
    for kind in ("billing", "shipping"):
        for alias, _, _ in ADDRESS_ALIASES:
            assert f"| {kind}_{alias} " in table
    assert "| phone " in table and "| price_tier " in table


def test_aliases_from_a_real_query_in_any_case() -> None:
    """A query's aliases as a database returns them: SQLite keeps the case
    written (``Shipping_Address1``), PostgreSQL folds unquoted ones to lower
    case; either is found."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        conn.execute(
            text(
                "CREATE TABLE debtors (account TEXT, name TEXT, addr1 TEXT, town TEXT, "
                "pcode INTEGER, tel TEXT, tier TEXT)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO debtors VALUES "
                "('D1', 'Karoo CC', '1 Main Road', 'Beaufort West', 6970, '023 555', 'trade'),"
                "('D2', 'Bare CC', NULL, NULL, NULL, NULL, NULL)"
            )
        )
        result = conn.execute(
            text(
                "SELECT account AS source_customer_code, name AS first_name, "
                "addr1 AS Shipping_Address1, town AS shipping_city, "
                "pcode AS shipping_postal_code, tel AS phone, tier AS price_tier "
                "FROM debtors ORDER BY account"
            )
        )
        rows: list[dict[str, Any]] = [dict(r._mapping) for r in result]
    customers, errors = map_records(CUSTOMERS, rows)
    assert errors == []
    assert customers[0]["addresses"] == [
        {
            "type": "shipping",
            "address1": "1 Main Road",
            "city": "Beaufort West",
            "zip": "6970",
            "phone": "023 555",
        }
    ]
    assert customers[0]["price_tier"] == "trade"
    assert "addresses" not in customers[1] and customers[1]["price_tier"] is None
