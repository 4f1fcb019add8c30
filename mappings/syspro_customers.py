"""What SYSPRO's customers carry beyond seed 003's table: price tier and addresses.

Seed 003 maps ArCustomer's code, name and email only, but the connector
reads the account's price code, telephone and two addresses too (issue 19:
customers lost what the ERP has). These are the declarations the customers
map in ``mappings.syspro`` applies and renders after the seed's rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mappings.addresses import AddressColumns, AddressField
from mappings.scalars import MappingError, shown
from mappings.syspro_settings import price_code_names


def price_tier(record: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """The customer's PriceCode as the products' tier name: the code itself, or
    with ``price_codes`` set the name given to it; a code not listed there is
    a price list that stays home (no product has that tier), so no tier."""
    value = record.get("PriceCode")
    if value is not None and not isinstance(value, str | int):
        raise MappingError(f'PriceCode "{shown(value)}" is not text')
    code = "" if value is None else str(value).strip()
    if not code:
        return None
    names = price_code_names(settings)
    if names is None:
        return code
    return names.get(code.upper())


def _lines(kind: str, first: str, postal: str) -> AddressColumns:
    """ArCustomer's five lines and postal code of one address.

    SYSPRO gives these lines no meaning of their own: its help calls them
    "Address line 1 - 5", and sites use lines 3 to 5 for suburb, city,
    region or country as they please. So lines 1 and 2 are the street lines
    (address1, address2) and lines 3 to 5 are kept whole, in order, as the
    locality (city, joined with ", "): naming one of them a province or a
    country would be a guess a channel could act on (tax, couriers), where
    the joined text loses nothing and claims nothing.
    """
    return AddressColumns(
        kind,
        (
            AddressField("address1", (f"{first}1",), "line 1"),
            AddressField("address2", (f"{first}2",), "line 2"),
            AddressField(
                "city",
                tuple(f"{first}{n}" for n in range(3, 6)),
                'lines 3 to 5 as they are, the non-blank ones joined with ", "',
                joined=True,
                shown=f"{first}3-5",
            ),
            AddressField("zip", (postal,), "postal code"),
        ),
    )


# ArCustomer's sold-to lines are the account's billing address and its
# ship-to lines the address goods go to. An address none of whose lines is
# filled in is left out; a column an older ArCustomer lacks is simply absent
# (the connector reads only the columns the site has).
ADDRESSES: Final = (
    _lines("billing", "SoldToAddr", "SoldPostalCode"),
    _lines("shipping", "ShipToAddr", "ShipPostalCode"),
)
# ArCustomer has one telephone, the account's: it goes on both addresses.
SHARED: Final = (
    AddressField("phone", ("Telephone",), "The account's telephone, on each of its addresses"),
)
