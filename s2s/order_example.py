"""One complete canonical order, the example every edge shows.

``s2s orders template`` prints it, the OpenAPI document gives it as the order
intake's example, and the README's "Using it" shows it: one source, so that
what a new user copies is what the intake accepts (the tests submit it and
hold the README's copy to it). Every field ``hub.schemas.orders`` accepts is
here, so nothing has to be found by reading the schema.

The figures add up: each tax line is 15% of what it taxes, after the line's
discount (prices are per unit, ex tax and ex discount).
"""

from __future__ import annotations

import json
from typing import Any, Final

_ADDRESS: Final[dict[str, str]] = {
    "first_name": "Thandi",
    "last_name": "Mokoena",
    "company": "Mokoena Trading",
    "address1": "12 Long Street",
    "address2": "Unit 4",
    "city": "Cape Town",
    "province": "Western Cape",
    "province_code": "WC",
    "country": "South Africa",
    "country_code": "ZA",
    "zip": "8001",
    "phone": "+27 21 555 0100",
}


def _vat(amount: str) -> list[dict[str, Any]]:
    return [{"code": "VAT", "title": "VAT 15%", "price": amount, "rate": 0.15}]


ORDER_EXAMPLE: Final[dict[str, Any]] = {
    "channel_order_code": "1001",
    "channel": "api",
    "instruction": "add_order",
    "ordered_date": "2026-11-02T09:30:00+02:00",
    "notes": "Please deliver before noon",
    "customer": {
        "source_customer_code": "C00001",
        "channel_customer_code": "7310",
        "first_name": "Thandi",
        "last_name": "Mokoena",
        "email": "thandi@example.com",
    },
    "billing_address": dict(_ADDRESS),
    "shipping_address": {**_ADDRESS, "company": None, "address2": None},
    "line_items": [
        {
            "sku": "TSHIRT-RED-M",
            "title": "T-shirt, red, M",
            "qty": 2,
            "price": "199.00",
            "total_discount": "20.00",
            "tax_lines": _vat("56.70"),
        },
        {
            "sku": "MUG-01",
            "title": "Mug",
            "qty": 1,
            "price": "85.50",
            "total_discount": "0.00",
            "tax_lines": _vat("12.83"),
        },
    ],
    "shipping_lines": [{"title": "Courier", "price": "95.00", "tax_lines": _vat("14.25")}],
    "total_discount": "20.00",
    "meta": [{"key": "sales_rep_id", "value": "SR01"}],
}


def order_example_json() -> str:
    """The example as a user's file would hold it: indented, keys in the schema's order."""
    return json.dumps(ORDER_EXAMPLE, indent=2, ensure_ascii=False)


def order_example() -> dict[str, Any]:
    """A fresh copy, so that no caller can change the one every edge shows."""
    out: dict[str, Any] = json.loads(order_example_json())
    return out
