"""The SQL ERP template: its emulator is a seeded SQLite file, no server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emulators import sql_erp
from tests.contract.fixtures import KindFixtures, Served, add


def settings(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "connect_timeout": 2,
        "default_customer_code": "CASH",
        "shipping_code": "SHIP",
    }


def order(sku: str) -> dict[str, Any]:
    return {
        "channel_order_code": "#CONTRACT-1",
        "ordered_date": "2026-11-22T10:00:00Z",
        "customer": {"first_name": "Thandi", "email": "thandi@example.com"},
        "line_items": [{"sku": sku, "title": "Kettle", "qty": 2, "price": 120.0}],
        "shipping_lines": [{"title": "Courier", "price": 95.0}],
    }


@contextmanager
def serve(folder: Path) -> Iterator[Served]:
    url = f"sqlite:///{folder / 'erp.sqlite'}"
    sql_erp.seed(url, products=20, customers=5, seed=1)
    sku = sql_erp.generate_rows(20, 1)[0]["SKU"]
    yield Served(settings(url), order(sku))


FIXTURES = add(
    KindFixtures(
        kind="sql",
        # The URL is the secret (it may carry the database password).
        settings=settings("postgresql+psycopg://reader:contract-Secret-0s1@127.0.0.1:1/erp"),
        bad_settings=[
            ("page_size", 0),
            ("page_size", "many"),
            ("port", 70000),
            ("order_table", "orders; drop"),
            ("url", "nonsense-with-contract-Secret-0s2"),
        ],
        serve=serve,
        # A database file in a folder that does not exist cannot be opened.
        refused={"url": "sqlite:////nonexistent/contract-Secret-0s3/erp.sqlite"},
    )
)
