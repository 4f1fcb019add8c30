"""The raw hash decides which records a resync skips without mapping them.

A false "unchanged" would leave a stale product in the hub, so these check
that any difference in a record's rows, its source's settings or its map
gives another hash, and that rows the hash cannot represent are never
skipped.
"""

from __future__ import annotations

from decimal import Decimal

from workers.pipeline import raw_hasher

SETTINGS = {"url": "postgresql://erp/db", "page_size": 500, "default_customer_code": "CASH"}
ROWS = [
    {"Prod": "P1", "SKU": "P1-RED", "qty": "5", "price": "10.00", "product_active": "1"},
    {"Prod": "P1", "SKU": "P1-BLUE", "qty": "0", "price": "10.00", "product_active": "1"},
]


def test_the_same_rows_hash_the_same_across_hashers() -> None:
    first = raw_hasher("sql", "products", SETTINGS)(ROWS)
    again = raw_hasher("sql", "products", dict(SETTINGS))([dict(r) for r in ROWS])
    assert first is not None and first == again
    assert len(first) == 64


def test_any_changed_value_changes_the_hash() -> None:
    digest = raw_hasher("sql", "products", SETTINGS)
    base = digest(ROWS)
    variants = [
        [{**ROWS[0], "qty": "6"}, ROWS[1]],
        [{**ROWS[0], "qty": 5}, ROWS[1]],  # a number where text was
        [{**ROWS[0], "product_active": True}, ROWS[1]],
        [{**ROWS[0], "price": None}, ROWS[1]],
        [{**ROWS[0], "extra": ""}, ROWS[1]],  # a column added
        [ROWS[0]],  # a variant line gone
        [ROWS[1], ROWS[0]],  # the ERP's order of lines is part of the record
        [{**ROWS[0], "SKU": "P1-RED "}, ROWS[1]],
    ]
    hashes = [digest(rows) for rows in variants]
    assert None not in hashes
    assert base not in hashes
    assert len(set(hashes)) == len(hashes)


def test_settings_stream_and_kind_are_part_of_the_hash() -> None:
    base = raw_hasher("sql", "products", SETTINGS)(ROWS)
    assert raw_hasher("sql", "products", {**SETTINGS, "default_customer_code": "X"})(ROWS) != base
    assert raw_hasher("sql", "customers", SETTINGS)(ROWS) != base
    assert raw_hasher("iq_retail", "products", SETTINGS)(ROWS) != base


def test_rows_that_are_not_plain_values_are_never_skipped() -> None:
    digest = raw_hasher("sql", "products", SETTINGS)
    assert digest([{**ROWS[0], "price": Decimal("10.00")}]) is None

    class Code(str):
        """A str subclass whose text need not be its whole value."""

    assert digest([{**ROWS[0], "Prod": Code("P1")}]) is None


def test_nested_records_from_json_apis_hash() -> None:
    digest = raw_hasher("isync", "products", SETTINGS)
    record = {"Code": "A", "Lines": [{"Qty": 1.5, "Ok": False}, {"Qty": 2}], "Meta": None}
    changed = {"Code": "A", "Lines": [{"Qty": 1.5, "Ok": True}, {"Qty": 2}], "Meta": None}
    assert digest([record]) is not None
    assert digest([record]) == digest([dict(record)])
    assert digest([record]) != digest([changed])
