"""The toy kind's contract fixtures, as a real kind's ``kinds/<kind>.py`` gives them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.contract.fixtures import KindFixtures, Served
from tests.contract.toy import KIND, erp

PASSWORD = "contract-toy-Secret-1t"
_names = itertools.count(1)


def settings(name: str) -> dict[str, Any]:
    return {"erp": name, "password": PASSWORD, "page_size": 10}


@contextmanager
def serve(folder: Path) -> Iterator[Served]:
    name = f"toy-{next(_names)}"  # the toy ERP keeps nothing on disk
    with erp.serve(name, password=PASSWORD) as running:
        order = {
            "channel_order_code": "#CONTRACT-1",
            "line_items": [{"sku": running.stock[0]["code"], "qty": 2, "price": 10.0}],
        }
        yield Served(settings(name), order)


FIXTURES = KindFixtures(
    kind=KIND,
    settings=settings("not-running"),
    bad_settings=[("erp", "Not A Name!"), ("page_size", 0)],
    serve=serve,
    refused={"password": "contract-toy-Wrong-2t"},
)
