"""``s2s preview`` as an operator runs it: every record named by its code,
deletions included, and ``--limit`` counting whole products.

The ERPs are the emulators on local ports, read by the ``s2s`` command in a
process of its own, on the embedded hub (nothing else running).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from emulators import iq_retail, isync
from hub.db import session_scope
from tests.conftest import Hub, assert_one_line_error
from workers.sources import upsert_client, upsert_source

PASSWORD = "preview-Secret-4242"
PRODUCTS, VARIANTS = 10, 4
SUMMARY = re.compile(
    r"(\d+) raw records → (\d+) (\w+), (\d+) quarantined \((\d+) pages? of up to (\d+) rows read\)"
)


def _register(code: str, kind: str, settings: dict[str, Any]) -> None:
    with session_scope() as s:
        client, _ = upsert_client(s, "acme")
        upsert_source(s, client, code, kind, settings)


def _shown(stdout: str) -> tuple[list[dict[str, Any]], tuple[int, ...]]:
    """The JSON documents preview printed, and its summary line's numbers."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(stdout) and stdout[at].isspace():
            at += 1
        if at >= len(stdout) or stdout[at] != "{":
            break
        doc, at = decoder.raw_decode(stdout, at)
        docs.append(doc)
    found = SUMMARY.search(stdout[at:])
    assert found, stdout
    numbers = tuple(int(g) for i, g in enumerate(found.groups(), 1) if i != 3)
    assert found.group(3) == "products"
    return docs, numbers


@pytest.fixture
def isync_server() -> Iterator[Any]:
    """Ten products of four stock lines each; the second is flagged Delete."""
    lines = isync.generate_stock(PRODUCTS, VARIANTS, seed=4)
    jobs = list(dict.fromkeys(line["JobProductID"] for line in sorted(lines, key=_listed)))
    flags = {job: "Delete" if n == 1 else "Active" for n, job in enumerate(jobs)}
    data = isync.IsyncData([{**line, "WebSale": flags[line["JobProductID"]]} for line in lines])
    with isync.serve(data, password=PASSWORD) as server:
        server.jobs = jobs
        yield server


def _listed(line: dict[str, str]) -> tuple[str, str]:
    return (line["JobProductID"], line["SKU"])


def _isync_source(server: Any) -> None:
    _register(
        "isync",
        "isync",
        {
            "service_url": server.service_url,
            "username": server.username,
            "password": PASSWORD,
            "default_customer_code": "CASH01",
            "page_size": 500,
        },
    )


def test_isync_limit_counts_whole_products_and_names_deletions(
    embedded_hub: Hub, isync_server: Any
) -> None:
    _isync_source(isync_server)
    result = embedded_hub.run_cli("preview", "acme", "isync", "--limit", "3")
    assert result.returncode == 0, result.stderr
    docs, (raw, products, quarantined, pages, size) = _shown(result.stdout)
    # Three lines a page, four lines a product: read on until three are whole.
    first = isync_server.jobs[:3]
    assert [d["code"] for d in docs] == first
    assert (raw, products, quarantined, size) == (3 * VARIANTS, 3, 0, 3)
    assert pages >= 3 * VARIANTS // 3
    active = [d for d in docs if d["action"] == "active"]
    assert [d["record"]["source_product_code"] for d in active] == [first[0], first[2]]
    assert all(len(d["record"]["variants"]) == VARIANTS for d in active)
    # The Delete-flagged product is named, though it has no record to show.
    assert docs[1] == {"code": first[1], "action": "delete", "record": None}
    assert PASSWORD not in result.stdout + result.stderr


def test_isync_limit_beyond_the_catalogue_shows_every_product_once(
    embedded_hub: Hub, isync_server: Any
) -> None:
    _isync_source(isync_server)
    result = embedded_hub.run_cli("preview", "acme", "isync", "--limit", "50")
    assert result.returncode == 0, result.stderr
    docs, (raw, products, _, pages, _) = _shown(result.stdout)
    assert [d["code"] for d in docs] == isync_server.jobs
    assert (raw, products, pages) == (PRODUCTS * VARIANTS, PRODUCTS, 1)


@pytest.fixture
def iq_server(embedded_hub: Hub) -> Iterator[Any]:
    """Twenty IQ stock items, the second of them not a web item (Delete)."""
    url = f"sqlite:///{embedded_hub.var_dir / 'iq.sqlite'}"
    iq_retail.seed(url, products=20, seed=3)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE stock SET webitem = :off WHERE code = 'IQ000002'"), {"off": False}
        )
        conn.execute(text("UPDATE stock SET webitem = :on WHERE code <> 'IQ000002'"), {"on": True})
    engine.dispose()
    with iq_retail.serve(url, password=PASSWORD) as server:
        _register(
            "iq",
            "iq_retail",
            {
                "request_url": server.base_url,
                "company_number": "002",
                "user_number": "99",
                "user_password": PASSWORD,
                "default_debtor_account": "CASH01",
            },
        )
        yield server


def test_iq_preview_names_every_record_deletions_included(
    embedded_hub: Hub, iq_server: Any
) -> None:
    result = embedded_hub.run_cli("preview", "acme", "iq", "--limit", "3")
    assert result.returncode == 0, result.stderr
    docs, (raw, products, quarantined, pages, size) = _shown(result.stdout)
    assert [(d["code"], d["action"]) for d in docs] == [
        ("IQ000001", "active"),
        ("IQ000002", "delete"),
        ("IQ000003", "active"),
    ]
    assert docs[1]["record"] is None
    assert docs[2]["record"]["source_product_code"] == "IQ000003"
    assert (raw, products, quarantined, pages, size) == (3, 3, 0, 1, 3)


def test_preview_refuses_what_it_cannot_show_in_one_line(embedded_hub: Hub, iq_server: Any) -> None:
    # IQ Retail has no customers: the ERP's plain no, before any map is looked up.
    assert_one_line_error(
        embedded_hub.run_cli("preview", "acme", "iq", "--stream", "customers"),
        r"IQ Retail does not sync customers",
    )
    zero = embedded_hub.run_cli("preview", "acme", "iq", "--limit", "0")
    assert zero.returncode == 2 and "--limit" in zero.stderr and "Traceback" not in zero.stderr
