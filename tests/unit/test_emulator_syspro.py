"""The SYSPRO emulator answers as the wire reference says e.net and SORTOI do.

The connector is tested against this emulator, so every shape here is one a
connector meets at a site: HTTP 200 for everything, ``ERROR:`` text bodies,
one session per operator, SORTOI's rejections under the failing line, and
the faults that sit between the hub and a site.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, Table, create_engine, func, select, text
from starlette.testclient import TestClient

from emulators.syspro import (
    BASE_PATH,
    CUSTOMERS,
    ConnectionDropped,
    Faults,
    create_app,
    generate_customers,
    generate_stock,
    main,
    order_counts,
    read_orders,
    seed,
    serve,
)

PASSWORD = "op-Secret1"
PARAMETERS = (
    "<SalesOrders><Parameters><Process>Import</Process><ValidateOnly>N</ValidateOnly>"
    "<AllowDuplicateOrderNumbers>N</AllowDuplicateOrderNumbers>"
    "<CheckForCustomerPoNumbers>{check}</CheckForCustomerPoNumbers>"
    "<OrderStatus>1</OrderStatus></Parameters></SalesOrders>"
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'syspro.sqlite'}"
    seed(url, stock=30, price_codes=3, warehouses=2, customers=5, seed=3)
    return url


@pytest.fixture
def client(url: str) -> Iterator[TestClient]:
    with TestClient(create_app(url, operator_password=PASSWORD)) as test_client:
        yield test_client


def logon(client: TestClient, password: str = PASSWORD, operator: str = "admin") -> str:
    response = client.get(
        f"{BASE_PATH}/Logon",
        params={
            "Operator": operator,
            "OperatorPassword": password,
            "CompanyId": "EDU1",
            "CompanyPassword": "",
        },
    )
    assert response.status_code == 200
    return response.text


def sortoidoc(
    po: str = "#1001",
    customer: str = "WEB001",
    lines: list[tuple[str, str, str]] | None = None,
    freight: str | None = None,
    **header: str,
) -> str:
    stock = "".join(
        f"<StockLine><CustomerPoLine>{n}</CustomerPoLine><LineActionType>A</LineActionType>"
        f"<StockCode>{code}</StockCode><OrderQty>{qty}</OrderQty><Price>{price}</Price>"
        "</StockLine>"
        for n, (code, qty, price) in enumerate(lines or [("SC000001", "2", "460.00")], 1)
    )
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in header.items())
    freight_line = f"<FreightLine><FreightValue>{freight}</FreightValue></FreightLine>"
    return (
        "<SalesOrders><Orders><OrderHeader>"
        f"<CustomerPoNumber>{po}</CustomerPoNumber><OrderActionType>A</OrderActionType>"
        f"<Customer>{customer}</Customer><OrderDate>2026-11-22</OrderDate>{extra}"
        f"</OrderHeader><OrderDetails>{stock}{freight_line if freight else ''}</OrderDetails>"
        "</Orders></SalesOrders>"
    )


def post(
    client: TestClient, session: str, xml_in: str, check: str = "Y", validate_only: bool = False
) -> httpx.Response:
    parameters = PARAMETERS.format(check=check)
    if validate_only:
        parameters = parameters.replace("<ValidateOnly>N<", "<ValidateOnly>Y<")
    return client.get(
        f"{BASE_PATH}/Transaction/Post",
        params={
            "UserId": session,
            "BusinessObject": "SORTOI",
            "XmlParameters": parameters,
            "XmlIn": xml_in,
        },
    )


def answer(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200
    assert response.content.startswith(b'<?xml version="1.0" encoding="Windows-1252"?>')
    return ET.fromstring(response.content)


def errors(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter("ErrorDescription")]


# ---- seeding -------------------------------------------------------------------


def test_seed_is_deterministic_and_matches_generate(url: str, tmp_path: Path) -> None:
    rows = generate_stock(30, 3, 3, 2)
    engine = create_engine(url)
    with engine.connect() as conn:
        codes = [r[0] for r in conn.execute(text('SELECT "StockCode" FROM "InvMaster" ORDER BY 1'))]
        prices = conn.execute(text('SELECT COUNT(*) FROM "InvPrice"')).scalar_one()
        stock = conn.execute(text('SELECT COUNT(*) FROM "InvWarehouse"')).scalar_one()
        accounts = conn.execute(text('SELECT COUNT(*) FROM "ArCustomer"')).scalar_one()
    engine.dispose()
    assert codes == [r["StockCode"] for r in rows.master] == sorted(codes)
    assert prices == len(rows.prices) and stock == len(rows.warehouses) == 60
    assert accounts == len(generate_customers(5, 3)) == 5 + len(CUSTOMERS)
    assert generate_stock(30, 3, 3, 2) == rows
    again = seed(url, stock=30, price_codes=3, warehouses=2, customers=5, seed=3)
    assert again.stock == 30 and again.price_rows == len(rows.prices)


def test_seeding_50000_stock_codes_is_quick(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.sqlite'}"
    started = time.monotonic()
    summary = seed(url, stock=50_000, price_codes=3, warehouses=3, customers=100)
    elapsed = time.monotonic() - started
    assert summary.stock == 50_000 and summary.warehouse_rows == 150_000
    assert summary.last_code == "SC050000"
    assert elapsed < 30, f"seeding took {elapsed:.1f} s"


# ---- sessions --------------------------------------------------------------------


def test_logon_gives_34_hex_digits_and_two_spaces(client: TestClient) -> None:
    session = logon(client)
    assert re.fullmatch(r"[0-9A-F]{34}  ", session)
    assert client.get(f"{BASE_PATH}/Logoff", params={"UserId": session}).text == "0"


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"OperatorPassword": "wrong"}, "ERROR: Invalid operator password"),
        ({"Operator": "nobody"}, "ERROR: Invalid operator 'nobody'"),
        ({"CompanyId": "ZZZ"}, "ERROR: Invalid company 'ZZZ'"),
        ({"CompanyPassword": "x"}, "ERROR: Invalid company password"),
    ],
)
def test_bad_logons_answer_error_in_a_200(
    client: TestClient, params: dict[str, str], said: str
) -> None:
    good = {"Operator": "ADMIN", "OperatorPassword": PASSWORD, "CompanyId": "edu1"}
    response = client.get(f"{BASE_PATH}/Logon", params={**good, **params})
    assert response.status_code == 200
    assert response.text == said


def test_a_second_logon_ends_the_first_session(client: TestClient) -> None:
    first = logon(client)
    second = logon(client, operator="ADMIN")
    assert first != second
    refused = post(client, first, sortoidoc())
    assert refused.text.startswith("ERROR:") and "not logged on" in refused.text
    assert answer(post(client, second, sortoidoc())).findtext("Order/SalesOrder") == "000001"


# ---- SORTOI ------------------------------------------------------------------------


def test_a_good_order_writes_sormaster_and_sordetail(client: TestClient, url: str) -> None:
    session = logon(client)
    xml_in = sortoidoc(
        lines=[("SC000001", "2", "460.00"), ("SC000002", "1", "8")],
        freight="95.00",
        ShipAddress1="86 Beach Road &amp; Co",
        Warehouse="WH02",
    )
    root = answer(post(client, session, xml_in))
    assert root.findtext("Order/SalesOrder") == "000001"
    assert root.findtext("Order/CustomerPoNumber") == "#1001"
    assert root.findtext("StatusOfItems/ItemsProcessed") == "000001"
    assert root.findtext("StatusOfItems/ItemsRejectedWithWarnings") == "000000"
    (order,) = read_orders(url)
    assert order["Customer"] == "WEB001" and order["ShipAddress1"] == "86 Beach Road & Co"
    assert [(ln["LineType"], ln["MStockCode"], ln["MWarehouse"]) for ln in order["lines"]] == [
        ("1", "SC000001", "WH02"),
        ("1", "SC000002", "WH02"),
        ("4", None, None),
    ]
    assert order["lines"][0]["MPrice"] == 460 and order["lines"][2]["NMscChargeValue"] == 95
    assert order_counts(url).headers == 1


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"lines": [("NOPE", "1", "1.00")]}, "Stock code 'NOPE' not found"),
        ({"lines": [("SC000001", "1", "8.000000000000001")]}, "Price '8.000000000000001' is "),
        ({"lines": [("SC000001", "0", "1.00")]}, "Order quantity '0' is invalid"),
        ({"customer": "GHOST"}, "Customer 'GHOST' not found"),
        ({"po": "P" * 31}, "Customer purchase order number exceeds 30 characters"),
        ({"ShipAddress3": "x" * 41}, "Ship address line 3 exceeds 40 characters"),
        ({"Warehouse": "WH99"}, "Warehouse 'WH99' not found for stock code 'SC000001'"),
        ({"freight": "9.999"}, "Freight value '9.999' is not numeric"),
    ],
)
def test_rejections_carry_an_error_description_and_commit_nothing(
    client: TestClient, url: str, kwargs: dict[str, Any], said: str
) -> None:
    root = answer(post(client, logon(client), sortoidoc(**kwargs)))
    assert root.findtext("Order/SalesOrder") in (None, "")
    assert int(root.findtext("StatusOfItems/ItemsRejectedWithWarnings") or 0) > 0
    assert any(e.startswith(said) for e in errors(root)), errors(root)
    assert order_counts(url).headers == 0


def test_line_errors_sit_under_their_stock_line(client: TestClient) -> None:
    root = answer(post(client, logon(client), sortoidoc(lines=[("A", "1", "1.00")])))
    line = root.find("Order/StockLine")
    assert line is not None and line.findtext("StockCode") == "A"
    assert line.findtext("ErrorMessages/ErrorDescription") == "Stock code 'A' not found"


def test_a_repeated_po_number_is_refused_only_when_checked(client: TestClient, url: str) -> None:
    session = logon(client)
    assert answer(post(client, session, sortoidoc())).findtext("Order/SalesOrder") == "000001"
    again = answer(post(client, session, sortoidoc()))
    assert again.findtext("Order/SalesOrder") in (None, "")
    assert errors(again) == [
        "Customer purchase order number '#1001' already exists for customer 'WEB001' "
        "on sales order 000001"
    ]
    unchecked = answer(post(client, session, sortoidoc(), check="N"))
    assert unchecked.findtext("Order/SalesOrder") == "000002"
    assert order_counts(url).headers == 2 and order_counts(url).orders == 1


def test_validate_only_validates_and_answers_but_writes_nothing(
    client: TestClient, url: str
) -> None:
    session = logon(client)
    good = answer(post(client, session, sortoidoc(), validate_only=True))
    assert good.findtext("Order/SalesOrder") in (None, "")
    assert good.findtext("StatusOfItems/ItemsProcessed") == "000001"
    assert good.findtext("StatusOfItems/ItemsRejectedWithWarnings") == "000000"
    assert errors(good) == []
    bad = answer(post(client, session, sortoidoc(customer="GHOST"), validate_only=True))
    assert errors(bad) == ["Customer 'GHOST' not found"]
    assert order_counts(url).headers == 0
    # Validated, the same document imports as it would have without the validation.
    assert answer(post(client, session, sortoidoc())).findtext("Order/SalesOrder") == "000001"
    assert order_counts(url).headers == 1


def test_only_sortoi_and_well_formed_safe_xml(client: TestClient) -> None:
    session = logon(client)
    other = client.get(
        f"{BASE_PATH}/Transaction/Post",
        params={"UserId": session, "BusinessObject": "INVQRY", "XmlIn": "<x/>"},
    )
    assert other.text.startswith("ERROR: Business object 'INVQRY'")
    assert post(client, session, "<SalesOrders>").text.startswith("ERROR: XML parse error")
    bomb = '<!DOCTYPE x [<!ENTITY a "b">]><SalesOrders>&a;</SalesOrders>'
    assert post(client, session, bomb).text.startswith("ERROR: XML parse error")


# ---- faults ------------------------------------------------------------------------


def test_faults_fail_error_doctype_lowercase_wrap(url: str) -> None:
    faults = Faults()
    with TestClient(create_app(url, operator_password=PASSWORD, faults=faults)) as client:
        faults.fail_next(1, 502)
        assert client.get(f"{BASE_PATH}/Logon").status_code == 502
        faults.error_next(1, "ERROR: Licence limit reached", call="Transaction/Post")
        session = logon(client)
        assert post(client, session, sortoidoc()).text == "ERROR: Licence limit reached"
        faults.doctype_next(1)
        body = post(client, session, sortoidoc()).text
        assert "<!DOCTYPE" in body and "<!ENTITY" in body
        faults.lowercase = True
        lowered = post(client, session, sortoidoc())
        assert b"<salesorder>000001</salesorder>" in lowered.content
        faults.lowercase = False
        faults.wrap = True
        wrapped = ET.fromstring(post(client, session, sortoidoc(po="#2")).content)
        assert wrapped.tag.endswith("string")
        assert ET.fromstring(wrapped.text or "").findtext("Order/SalesOrder") == "000002"
        assert faults.injected() == {"fail": 1, "error": 1, "doctype": 1}
        assert faults.count("Transaction/Post") == 4
        state = client.post("/_faults", json={"reset": True, "latency": 0.01, "fail_next": 0})
        assert state.json()["latency"] == 0.01 and state.json()["wrap"] is False


def test_a_session_expires_after_the_posts_it_is_told_to_let_by(url: str) -> None:
    faults = Faults()
    with TestClient(create_app(url, operator_password=PASSWORD, faults=faults)) as client:
        faults.expire_session_next(1, after=2)
        session = logon(client)
        for po in ("#1", "#2"):
            assert answer(post(client, session, sortoidoc(po=po))).findtext("Order/SalesOrder")
        ended = post(client, session, sortoidoc(po="#3"))
        assert ended.text == "ERROR: Session is not logged on or has expired"
        logoff = client.get(f"{BASE_PATH}/Logoff", params={"UserId": session})
        assert logoff.text == "ERROR: Session is not logged on or has expired"
        again = logon(client)
        assert answer(post(client, again, sortoidoc(po="#3"))).findtext("Order/SalesOrder")
        assert faults.injected() == {"expire": 1}
        state = client.post("/_faults", json={"expire_session_next": {"n": 2, "after": 1}})
        assert state.json()["expire_session_next"] == 2
        assert state.json()["expire_after"] == 1 and state.json()["drop_after"] == 0
    assert [o["CustomerPoNumber"] for o in read_orders(url)] == ["#1", "#2", "#3"]


def test_drop_after_commit_lets_committed_orders_by_first(url: str) -> None:
    faults = Faults()
    with TestClient(create_app(url, operator_password=PASSWORD, faults=faults)) as client:
        faults.drop_after_commit_next(1, after=1)
        session = logon(client)
        refused = answer(post(client, session, sortoidoc(customer="GHOST")))
        assert errors(refused), "a refused order is not counted"
        assert answer(post(client, session, sortoidoc(po="#1"))).findtext("Order/SalesOrder")
        with pytest.raises(ConnectionDropped):
            post(client, session, sortoidoc(po="#2"))
        assert answer(post(client, session, sortoidoc(po="#3"))).findtext("Order/SalesOrder")
    assert order_counts(url).headers == 3


def test_drop_after_commit_under_testclient_raises(url: str) -> None:
    faults = Faults()
    with TestClient(create_app(url, operator_password=PASSWORD, faults=faults)) as client:
        faults.drop_after_commit_next(1)
        session = logon(client)
        with pytest.raises(ConnectionDropped):
            post(client, session, sortoidoc())
    assert order_counts(url).headers == 1


def test_served_drop_closes_the_connection_after_commit(url: str) -> None:
    with serve(url, operator_password=PASSWORD) as server:
        assert server.enet_url.endswith(BASE_PATH)
        session = httpx.get(
            f"{server.enet_url}/Logon",
            params={"Operator": "ADMIN", "OperatorPassword": PASSWORD, "CompanyId": "EDU1"},
        ).text
        server.faults.drop_after_commit_next(1)
        query = {
            "UserId": session,
            "BusinessObject": "SORTOI",
            "XmlParameters": PARAMETERS.format(check="Y"),
            "XmlIn": sortoidoc(),
        }
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.enet_url}/Transaction/Post", params=query, timeout=5)
        assert server.faults.injected() == {"drop": 1}
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text('SELECT COUNT(*) FROM "SorMaster"')).scalar_one() == 1
    engine.dispose()


def test_main_seeds_without_serving_when_told(tmp_path: Path, monkeypatch: Any) -> None:
    served: list[Any] = []
    monkeypatch.setattr("uvicorn.Server.run", lambda self: served.append(self))
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert main(["--db", url, "--stock", "5", "--operator-password", "x"]) == 0
    assert served, "main serves after seeding"
    engine = create_engine(url)
    with engine.connect() as conn:
        master = Table("InvMaster", MetaData(), autoload_with=conn)
        assert conn.execute(select(func.count()).select_from(master)).scalar_one() == 5
    engine.dispose()
