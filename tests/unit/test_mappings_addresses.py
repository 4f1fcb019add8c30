"""Typed customer addresses: the maps' vocabulary and the hub's schema.

``AddressesMap`` turns an ERP's address columns into a list of addresses,
each marked billing or shipping; the hub's customer schema keeps that mark
(and refuses any other), the fast loader and marshmallow alike.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hub.schemas import canonical_hash, load_customer, load_customer_via_schema
from mappings import Row, map_records
from mappings.addresses import AddressColumns, AddressesMap, AddressField


def _map(**over: Any) -> AddressesMap:
    base: dict[str, Any] = {
        "erp": "test",
        "erp_title": "Test",
        "stream": "customers",
        "rows": (Row("Code", "source_customer_code", "The key"),),
        "addresses": (
            AddressColumns(
                "billing",
                (
                    AddressField("address1", ("B1",), "line 1"),
                    AddressField("city", ("B3", "B4"), "lines 3-4", joined=True, shown="B3-4"),
                ),
            ),
        ),
    }
    base.update(over)
    return AddressesMap(**base)


def test_joined_lines_and_rendered_rows() -> None:
    m = _map()
    (customer,), errors = map_records(m, [{"Code": "C1", "B1": "1 Rd", "B3": "", "B4": "Durban"}])
    assert errors == []
    assert customer == {
        "source_customer_code": "C1",
        "addresses": [{"type": "billing", "address1": "1 Rd", "city": "Durban"}],
    }
    table = m.render()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    assert rows[-2:] == [
        ["B1", "addresses.address1", "Billing address: line 1"],
        ["B3-4", "addresses.city", "Billing address: lines 3-4"],
    ]
    assert table.index("source_customer_code") < table.index("addresses.address1")


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: AddressField("street", ("S",), ""), "'street' is not a field of an address"),
        (lambda: AddressField("city", (), ""), "reads no column"),
        (lambda: AddressColumns("home", ()), "'home' is not one of"),
        (
            lambda: AddressColumns("billing", (AddressField("zip", ("Z",), ""),)),
            "has none of",
        ),
        (lambda: _map(stream="products"), "only a customers map has addresses"),
        (
            lambda: _map(addresses=_map().addresses * 2),
            "an address type appears twice",
        ),
    ],
)
def test_a_map_that_cannot_mean_anything_fails_when_built(build: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        build()


def test_the_hub_keeps_the_type_and_refuses_another() -> None:
    raw = {
        "source_customer_code": "C1",
        "addresses": [
            {"type": " Shipping ", "city": "Paarl"},
            {"type": "home", "city": "Paarl"},
        ],
    }
    for load in (load_customer, load_customer_via_schema):
        loaded = load(copy.deepcopy(raw))
        assert loaded.record is None
        assert loaded.errors == [("addresses[1].type", 'type "home" is not billing or shipping')]
    raw["addresses"] = raw["addresses"][:1]
    fast, slow = load_customer(copy.deepcopy(raw)), load_customer_via_schema(copy.deepcopy(raw))
    assert fast == slow and fast.errors == []
    assert fast.record is not None and fast.record["addresses"][0]["type"] == "shipping"


def test_an_address_without_a_type_is_as_it_was() -> None:
    """Records stored before addresses had a type keep their hash: no key is added."""
    raw = {"source_customer_code": "C1", "addresses": [{"city": "Paarl"}]}
    fast, slow = load_customer(copy.deepcopy(raw)), load_customer_via_schema(copy.deepcopy(raw))
    assert fast == slow
    assert fast.record is not None and "type" not in fast.record["addresses"][0]
    typed = load_customer({**raw, "addresses": [{"city": "Paarl", "type": "billing"}]}).record
    assert typed is not None and canonical_hash(typed) != canonical_hash(fast.record)
