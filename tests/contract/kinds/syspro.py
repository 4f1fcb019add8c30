"""SYSPRO: the emulated company database (SQLite) and e.net on a local port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emulators import syspro
from tests.contract.fixtures import KindFixtures, Served, add

PASSWORD = "contract-syspro-Secret-1s"


def settings(database_url: str, enet_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "operator": "ADMIN",
        "operator_password": PASSWORD,
        "company_id": "EDU1",
        "company_password": "contract-syspro-Company-2s",
        "enet_url": enet_url,
        "default_customer_code": "CASH01",
        "timeout": 5,
    }


@contextmanager
def serve(folder: Path) -> Iterator[Served]:
    url = f"sqlite:///{folder / 'company.sqlite'}"
    syspro.seed(url, stock=10, price_codes=2, warehouses=2, customers=3, seed=1)
    sku = syspro.generate_stock(10, 1, 2, 2).master[0]["StockCode"]
    order = {
        "channel_order_code": "#CONTRACT-1",
        "ordered_date": "2026-11-22T10:00:00Z",
        "customer": {"first_name": "Thandi", "email": "thandi@example.com"},
        "shipping_address": {"first_name": "Thandi", "address1": "86 Beach Road"},
        "line_items": [{"sku": sku, "title": "Drill", "qty": 2, "price": 120.0}],
        "shipping_lines": [{"title": "Courier", "price": 95.0}],
    }
    with syspro.serve(url, operator_password=PASSWORD) as server:
        yield Served({**settings(url, server.enet_url), "company_password": ""}, order)


FIXTURES = add(
    KindFixtures(
        kind="syspro",
        settings=settings(
            "mssql+pymssql://reader:contract-syspro-Db-3s@127.0.0.1:1/SysproCompanyEDU1",
            "http://127.0.0.1:1/SYSPROWCFService/Rest",
        ),
        bad_settings=[
            ("database_url", "not a url contract-syspro-Db-5s"),
            ("enet_url", "ftp://syspro"),
            ("enet_url", f"http://admin:{PASSWORD}@syspro/Rest"),
            ("active_user_field", 6),
            ("active_values", []),
            ("customer_active_field", "Name; DROP TABLE x"),
            ("page_size", 5000),
            ("order_type", 0),  # YAML's 00, zeros lost
            ("warehouses", ["WH01", 1]),
            ("operator", ""),
        ],
        serve=serve,
        refused={"operator_password": "contract-syspro-Wrong-4s"},
    )
)
