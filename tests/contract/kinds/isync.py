"""iSync: the emulated SOAP messaging service on a local port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emulators import isync
from tests.contract.fixtures import KindFixtures, Served, add

PASSWORD = "contract&isync<Secret-1i>"  # XML's own characters, escaped on the wire


def settings(service_url: str, username: str = "hub@example.co.za") -> dict[str, Any]:
    return {
        "service_url": service_url,
        "username": username,
        "password": PASSWORD,
        "default_customer_code": "CASH01",
        "shipping_code": "SHIP",
        "timeout": 5,
    }


@contextmanager
def serve(folder: Path) -> Iterator[Served]:
    data = isync.IsyncData.generated(products=6, variants_per_product=2, seed=4)
    data.add_service_item("SHIP")
    sku = data.stock_lines()[0]["SKU"]
    order = {
        "channel_order_code": "#CONTRACT-1",
        "ordered_date": "2026-11-22T10:00:00Z",
        "customer": {"first_name": "Thandi", "email": "thandi@example.com"},
        "line_items": [{"sku": sku, "title": "Shirt", "qty": 2, "price": 120.0}],
        "shipping_lines": [{"title": "Courier", "price": 95.0}],
    }
    with isync.serve(data, password=PASSWORD) as server:
        yield Served(settings(server.service_url, server.username), order)


FIXTURES = add(
    KindFixtures(
        kind="isync",
        settings=settings("http://127.0.0.1:1/MessageService.svc"),
        bad_settings=[
            ("service_url", "ftp://isync.example.com"),
            ("service_url", f"https://shop:{PASSWORD}@isync.example.com/x.svc"),
            ("service_url", "https://isync.example.com/x.svc?user=a"),
            ("username", "  "),
            ("password", ""),
            ("page_size", 0),
            ("op_get_products", "Get Products<"),
        ],
        serve=serve,
        refused={"password": "contract-isync-Wrong-2i"},
    )
)
