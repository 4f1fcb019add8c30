"""IQ Retail: the emulated IQ API Interface on a local port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emulators import iq_retail
from tests.contract.fixtures import KindFixtures, Served, add

PASSWORD = "contract-iq-Secret-1q"


def settings(request_url: str) -> dict[str, Any]:
    return {
        "request_url": request_url,
        "company_number": "002",
        "user_number": "99",
        "user_password": PASSWORD,
        "partner_passphrase": "contract-iq-Phrase-2q",
        "default_debtor_account": "CASH01",
        "shipping_code": "SHIP",
        "timeout": 5,
    }


@contextmanager
def serve(folder: Path) -> Iterator[Served]:
    url = f"sqlite:///{folder / 'iq.sqlite'}"
    iq_retail.seed(url, products=20, seed=5)
    iq_retail.add_service_item(url, "SHIP")
    sku = iq_retail.generate_stock(20, 5)[0]["code"]
    order = {
        "channel_order_code": "#CONTRACT-1",
        "ordered_date": "2026-11-22T10:00:00Z",
        "customer": {"first_name": "Thandi", "email": "thandi@example.com"},
        "line_items": [{"sku": sku, "title": "Toolbox", "qty": 2, "price": 120.0}],
        "shipping_lines": [{"title": "Courier", "price": 95.0}],
    }
    with iq_retail.serve(url, password=PASSWORD) as server:
        yield Served(settings(server.base_url), order)


FIXTURES = add(
    KindFixtures(
        kind="iq_retail",
        settings=settings("http://127.0.0.1:1"),
        bad_settings=[
            ("request_url", "ftp://iq.local"),
            ("request_url", f"http://99:{PASSWORD}@iq.local"),
            ("company_number", 2),
            ("user_password", ""),
            ("page_size", 0),
            ("stock_table", "Stock; DROP TABLE Stock"),
        ],
        serve=serve,
        refused={"user_password": "contract-iq-Wrong-3q"},
    )
)
