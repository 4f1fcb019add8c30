"""The iSync emulator answers as section 2 of the wire reference says iSync does.

These tests speak raw SOAP to it (not through the connector), so that a
connector bug cannot hide an emulator bug: one session per user, escaped
MessageXml, paging in JobProductID order, line validation that names the
line, refused duplicates, and every fault it can inject.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import httpx
import pytest
from starlette.testclient import TestClient

from emulators.isync import (
    COLOURS,
    SIZES,
    ConnectionDropped,
    Faults,
    IsyncData,
    RunningServer,
    create_app,
    generate_stock,
    main,
    serve,
)

PASSWORD = "s3cret&Key"
USER = "shop@example.co.za"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "http://tempuri.org/"


def request(action: str, *params: tuple[str, str], namespace: str = NS) -> bytes:
    body = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in params)
    return (
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body><{action} xmlns="{namespace}">{body}'
        f"</{action}></s:Body></s:Envelope>"
    ).encode()


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def find(node: ET.Element, name: str) -> ET.Element:
    found = next((n for n in node.iter() if local(n.tag) == name), None)
    assert found is not None, f"no <{name}> in {ET.tostring(node)!r}"
    return found


class Soap:
    """A bare SOAP client: what any client of the real service would send."""

    def __init__(self, server: RunningServer) -> None:
        self.url = server.service_url
        self.http = httpx.Client(timeout=10)

    def post(
        self, action: str, *params: tuple[str, str], soap_action: str | None = None
    ) -> httpx.Response:
        header = soap_action if soap_action is not None else f"{NS}IMessageService/{action}"
        return self.http.post(
            self.url,
            content=request(action, *params),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{header}"'},
        )

    def login(self, user: str = USER, password: str = PASSWORD) -> str:
        response = self.post("Login", ("Username", user), ("Password", password))
        assert response.status_code == 200, response.text
        return find(ET.fromstring(response.content), "LoginResult").text or ""

    def execute(self, key: str, operation: str, message: str) -> tuple[bool, str, str]:
        response = self.post(
            "Execute", ("SessionKey", key), ("Operation", operation), ("MessageXml", message)
        )
        assert response.status_code == 200, response.text
        result = find(ET.fromstring(response.content), "ExecuteResult")
        flag = find(result, "Resultflag").text
        assert flag in ("true", "false")
        return (
            flag == "true",
            find(result, "ResponseText").text or "",
            (find(result, "MessageXml").text or ""),
        )


def products(client: Soap, key: str, page: int, size: int, since: str = "") -> ET.Element:
    extra = f"<ModifiedSince>{since}</ModifiedSince>" if since else ""
    ok, text, message = client.execute(
        key,
        "GetProducts",
        f"<GetProducts><PageNumber>{page}</PageNumber><PageSize>{size}</PageSize>{extra}"
        "</GetProducts>",
    )
    assert ok and text == "OK", text
    return ET.fromstring(message)


def sales_order(po: str, *lines: tuple[str, str, str], customer: str = "CASH01") -> str:
    body = "".join(
        f"<Line><ProductStockID>{escape(code)}</ProductStockID><Units>{units}</Units>"
        f"<SellingPrice>{price}</SellingPrice></Line>"
        for code, units, price in lines
    )
    return (
        f"<SalesOrder><PONumber>{escape(po)}</PONumber><CustomerCode>{customer}</CustomerCode>"
        "<DeliveryDetail><Name>Ann Lee</Name><Address1>86 Beach Road</Address1><City>Cape Town"
        f"</City></DeliveryDetail><Lines>{body}</Lines></SalesOrder>"
    )


@pytest.fixture
def data() -> IsyncData:
    stock = IsyncData.generated(products=10, variants_per_product=3, seed=5)
    stock.add_service_item("SHIP")
    return stock


@pytest.fixture
def server(data: IsyncData) -> Iterator[RunningServer]:
    with serve(data, username=USER, password=PASSWORD) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[Soap]:
    soap = Soap(server)
    yield soap
    soap.http.close()


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def test_generated_stock_is_a_function_of_the_seed() -> None:
    lines = generate_stock(300, 4, seed=11)
    assert lines == generate_stock(300, 4, seed=11)
    assert lines != generate_stock(300, 4, seed=12)
    assert generate_stock(310, 4, seed=11)[: len(lines)] == lines  # more extends, not reshuffles
    assert len(lines) == 1200
    keys = [(line["JobProductID"], line["SKU"]) for line in lines]
    assert keys == sorted(keys) and len(set(keys)) == 1200
    by_product: dict[str, list[dict[str, str]]] = {}
    for line in lines:
        assert line["ProductStockID"] == line["SKU"]
        assert line["Size"] in SIZES and line["Colour"] in COLOURS
        assert float(line["SellingPrice"]) < float(line["RetailSellingPrice"])
        assert len(line["ThirdPartyBarcode"]) == 13
        by_product.setdefault(line["JobProductID"], []).append(line)
    assert len(by_product) == 300
    for group in by_product.values():
        assert len({(g["Size"], g["Colour"]) for g in group}) == 4
        assert len({(g["WebSale"], g["JobDescription"]) for g in group}) == 1
    states = [group[0]["WebSale"] for group in by_product.values()]
    assert states.count("Active") > 240 and {"Ignore", "Delete"} <= set(states)
    assert min(line["Modified"] for line in lines) >= "2026-01-01T00:00:00"
    assert max(line["Modified"] for line in lines) < "2026-11-01T00:00:00"
    with pytest.raises(ValueError):
        generate_stock(1, len(SIZES) * len(COLOURS) + 1)


def test_touch_changes_chosen_lines_deterministically() -> None:
    first, second = IsyncData.generated(20, 2, seed=1), IsyncData.generated(20, 2, seed=1)
    changed = first.touch(6, seed=4, when="2026-11-22T09:00:00")
    assert changed == second.touch(6, seed=4, when="2026-11-22T09:00:00")
    assert len(changed) == 6 and changed == sorted(changed)
    before = {line["ProductStockID"]: line for line in generate_stock(20, 2, seed=1)}
    for line in first.stock_lines():
        old = before[line["ProductStockID"]]
        if line["ProductStockID"] in changed:
            assert line["Modified"] == "2026-11-22T09:00:00"
            assert float(line["RetailSellingPrice"]) > float(old["RetailSellingPrice"])
            assert int(line["AvailableUnits"]) > int(old["AvailableUnits"])
        else:
            assert line == old
    with pytest.raises(ValueError):
        first.touch(41)


# --------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------


def test_bad_credentials_are_a_soap_fault(client: Soap) -> None:
    for user, password in ((USER, "nope"), ("other@example.co.za", PASSWORD)):
        response = client.post("Login", ("Username", user), ("Password", password))
        assert response.status_code == 500
        fault = find(ET.fromstring(response.content), "Fault")
        assert find(fault, "faultstring").text == "Invalid username or password"
        assert PASSWORD not in response.text
    assert client.login(USER.upper(), PASSWORD)  # user names are emails: any case


def test_every_login_ends_the_users_earlier_session(client: Soap) -> None:
    first = client.login()
    assert products(client, first, 1, 1) is not None
    second = client.login()
    assert second != first
    ok, text, message = client.execute(first, "GetProducts", "<GetProducts/>")
    assert (ok, message) == (False, "")
    assert text.startswith("Invalid session")
    assert products(client, second, 1, 1) is not None
    ok, text, _ = client.execute("made-up", "GetProducts", "<GetProducts/>")
    assert not ok and text.startswith("Invalid session")


def test_invalidate_sessions_is_another_login(client: Soap, data: IsyncData) -> None:
    key = client.login()
    data.invalidate_sessions()
    ok, text, _ = client.execute(key, "GetProducts", "<GetProducts/>")
    assert not ok and text.startswith("Invalid session")


def test_a_wrong_soap_action_or_namespace_is_a_wcf_fault(client: Soap) -> None:
    response = client.post("Login", ("Username", USER), soap_action="urn:other/Login")
    assert response.status_code == 500
    assert "ContractFilter mismatch" in find(ET.fromstring(response.content), "faultstring").text
    wrong_ns = client.http.post(
        client.url,
        content=request("Login", ("Username", USER), ("Password", PASSWORD), namespace="urn:x"),
        headers={"SOAPAction": f'"{NS}IMessageService/Login"'},
    )
    assert wrong_ns.status_code == 500 and "namespace" in wrong_ns.text
    garbage = client.http.post(client.url, content=b"not xml")
    assert garbage.status_code == 500 and "not a SOAP envelope" in garbage.text


def test_a_document_type_is_never_expanded(client: Soap) -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    response = client.http.post(client.url, content=bomb)
    assert response.status_code == 500 and "aaaa" not in response.text
    key = client.login()
    ok, text, _ = client.execute(key, "GetProducts", '<!DOCTYPE x [<!ENTITY a "1">]><x>&a;</x>')
    assert not ok and "not valid XML" in text


# --------------------------------------------------------------------------
# GetProducts
# --------------------------------------------------------------------------


def test_products_are_paged_in_job_product_order(client: Soap, data: IsyncData) -> None:
    key = client.login()
    expected = data.stock_lines()
    got: list[dict[str, str | None]] = []
    page = 1
    while True:
        answer = products(client, key, page, 4)
        assert local(answer.tag) == "Products"
        assert answer.get("PageNumber") == str(page) and answer.get("TotalPages") == "8"
        got += [{local(f.tag): f.text for f in item} for item in answer]
        if page == 8:
            break
        page += 1
    assert got == expected
    assert "SHIP" not in {line["ProductStockID"] for line in got}  # a service, not stock
    assert len(products(client, key, 9, 4)) == 0


def test_modified_since_filters_lines(client: Soap, data: IsyncData) -> None:
    changed = data.touch(4, seed=2, when="2026-11-22T09:00:00")
    key = client.login()
    answer = products(client, key, 1, 100, since="2026-11-22T09:00:00")
    assert sorted(find(item, "ProductStockID").text or "" for item in answer) == changed
    assert answer.get("TotalPages") == "1"
    assert len(products(client, key, 1, 100, since="2026-11-22T09:00:01")) == 0


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("<GetProducts><PageNumber>0</PageNumber></GetProducts>", "PageNumber '0'"),
        ("<GetProducts><PageSize>x</PageSize></GetProducts>", "PageSize 'x'"),
        ("<GetProducts><ModifiedSince>soon</ModifiedSince></GetProducts>", "ModifiedSince"),
        ("<GetProducts><PageNumber>1", "not valid XML"),
    ],
)
def test_bad_product_requests_are_resultflag_false(client: Soap, message: str, words: str) -> None:
    ok, text, _ = client.execute(client.login(), "GetProducts", message)
    assert not ok and words in text


def test_an_unknown_operation(client: Soap) -> None:
    ok, text, _ = client.execute(client.login(), "DeleteEverything", "<X/>")
    assert (ok, text) == (False, "Unknown operation 'DeleteEverything'")


# --------------------------------------------------------------------------
# Sales orders
# --------------------------------------------------------------------------


def test_a_sales_order_is_stored_and_found(client: Soap, data: IsyncData) -> None:
    key = client.login()
    sku = data.stock_lines()[0]["SKU"]
    ok, text, message = client.execute(
        key, "CreateSalesOrder", sales_order("#1001", (sku, "2", "460.00"), ("SHIP", "1", "60"))
    )
    assert (ok, text) == (True, "OK")
    assert message == "<SalesOrderResult><OrderNumber>SO000001</OrderNumber></SalesOrderResult>"
    (order,) = data.orders()
    assert order["PONumber"] == "#1001" and order["CustomerCode"] == "CASH01"
    assert order["DeliveryDetail"]["Name"] == "Ann Lee"
    assert order["DeliveryDetail"]["Phone"] == ""
    assert order["Lines"] == [
        {"ProductStockID": sku, "Units": 2, "SellingPrice": "460.00"},
        {"ProductStockID": "SHIP", "Units": 1, "SellingPrice": "60"},
    ]
    found = client.execute(
        key, "GetSalesOrder", "<GetSalesOrder><PONumber>#1001</PONumber></GetSalesOrder>"
    )
    assert found == (True, "OK", message)
    missing = client.execute(
        key, "GetSalesOrder", "<GetSalesOrder><PONumber>#9</PONumber></GetSalesOrder>"
    )
    assert missing == (True, "OK", "<SalesOrderResult/>")


@pytest.mark.parametrize(
    ("lines", "customer", "text"),
    [
        (
            (("SKU1", "1", "1"), ("X", "1", "1")),
            "CASH01",
            "Line 2: ProductStockID 'X' does not exist",
        ),
        ((("SKU1", "1.5", "1"),), "CASH01", "Line 1: Units '1.5' is not a whole number above 0"),
        ((("SKU1", "1", "-2"),), "CASH01", "Line 1: SellingPrice '-2' is not a valid price"),
        ((("SKU1", "1", "1"),), "NOBODY", "CustomerCode 'NOBODY' does not exist"),
        ((), "CASH01", "The order has no lines"),
    ],
)
def test_a_bad_order_is_refused_naming_the_problem_and_nothing_is_stored(
    client: Soap,
    data: IsyncData,
    lines: tuple[tuple[str, str, str], ...],
    customer: str,
    text: str,
) -> None:
    sku = data.stock_lines()[0]["SKU"]
    lines = tuple((sku if code == "SKU1" else code, u, p) for code, u, p in lines)
    answer = client.execute(
        client.login(), "CreateSalesOrder", sales_order("#1", *lines, customer=customer)
    )
    assert answer == (False, text, "")
    assert data.orders() == []


def test_a_duplicate_po_number_is_refused(client: Soap, data: IsyncData) -> None:
    key = client.login()
    sku = data.stock_lines()[0]["SKU"]
    assert client.execute(key, "CreateSalesOrder", sales_order("#7", (sku, "1", "1")))[0]
    again = client.execute(key, "CreateSalesOrder", sales_order("#7", (sku, "3", "1")))
    assert again == (False, "PONumber '#7' already exists as sales order SO000001", "")
    assert data.order_counts() == {"#7": 1}
    assert data.create_attempts() == {"#7": 2}


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


def test_http_garbage_and_soap_faults(client: Soap, server: RunningServer) -> None:
    key = client.login()
    server.faults.fail_next(1, status=502)
    response = client.post("Execute", ("SessionKey", key))
    assert (response.status_code, response.text) == (502, "Bad Gateway")
    server.faults.garbage_next(1)
    response = client.post("Execute", ("SessionKey", key))
    assert response.status_code == 200 and response.text.startswith("<html>")
    server.faults.fault_next(1, "Database offline")
    response = client.post("Login", ("Username", USER), ("Password", PASSWORD))
    assert response.status_code == 500
    assert find(ET.fromstring(response.content), "faultstring").text == "Database offline"
    assert products(client, key, 1, 1) is not None  # all consumed
    assert server.faults.injected() == {"fail": 1, "garbage": 1, "fault": 1}


def test_resultflag_false_and_invalidated_sessions(client: Soap, server: RunningServer) -> None:
    key = client.login()
    server.faults.result_false_next(2, "Service busy, please try again")
    for _ in range(2):
        assert client.execute(key, "GetProducts", "<GetProducts/>") == (
            False,
            "Service busy, please try again",
            "",
        )
    assert products(client, key, 1, 1) is not None
    server.faults.invalidate_next(1)
    ok, text, _ = client.execute(key, "GetProducts", "<GetProducts/>")
    assert not ok and text.startswith("Invalid session")
    fresh = client.login()
    assert products(client, fresh, 1, 1) is not None


def test_latency(client: Soap, server: RunningServer) -> None:
    server.faults.latency = 0.3
    started = time.monotonic()
    client.login()
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ValueError):
        server.faults.latency = -1


def test_drop_after_commit_stores_the_order_and_sends_nothing(
    client: Soap, server: RunningServer, data: IsyncData
) -> None:
    key = client.login()
    sku = data.stock_lines()[0]["SKU"]
    server.faults.drop_after_commit_next(1)
    with pytest.raises(httpx.TransportError):
        client.execute(key, "CreateSalesOrder", sales_order("#5", (sku, "1", "1")))
    assert data.order_counts() == {"#5": 1}
    # A rejected order does not consume the drop.
    server.faults.drop_after_commit_next(1)
    assert not client.execute(key, "CreateSalesOrder", sales_order("#6", ("X", "1", "1")))[0]
    assert server.faults.snapshot()["pending"] == {"drop": 1}


def test_counts_and_the_faults_endpoint(client: Soap, server: RunningServer) -> None:
    key = client.login()
    products(client, key, 1, 1)
    assert server.faults.count("login") == 1
    assert server.faults.count("GetProducts") == 1 and server.faults.count("Execute") == 1
    spec = {
        "latency": 0.01,
        "fail_next": {"n": 2, "status": 504},
        "result_false_next": {"n": 1, "text": "Maintenance"},
        "invalidate_next": 1,
        "drop_after_commit_next": 1,
    }
    response = client.http.post(f"{server.base_url}/_faults", content=json.dumps(spec))
    assert response.status_code == 200
    shown = response.json()
    assert shown["pending"] == {"fail": 2, "result_false": 1, "invalidate": 1, "drop": 1}
    assert (shown["fail_status"], shown["result_false_text"]) == (504, "Maintenance")
    reset = client.http.post(f"{server.base_url}/_faults", content=b'{"reset": true}').json()
    assert reset["pending"] == {} and reset["latency"] == 0.0
    bad = client.http.post(f"{server.base_url}/_faults", content=b"[1]")
    assert bad.status_code == 400


def test_without_uvicorn_a_drop_raises() -> None:
    data = IsyncData.generated(1, 1)
    faults = Faults()
    app = create_app(data, username=USER, password=PASSWORD, faults=faults)
    sku = data.stock_lines()[0]["SKU"]
    with TestClient(app) as test_client:
        login = test_client.post(
            "/MessageService.svc",
            content=request("Login", ("Username", USER), ("Password", PASSWORD)),
            headers={"SOAPAction": f"{NS}IMessageService/Login"},
        )
        key = find(ET.fromstring(login.content), "LoginResult").text or ""
        faults.drop_after_commit_next(1)
        with pytest.raises(ConnectionDropped):
            test_client.post(
                "/MessageService.svc",
                content=request(
                    "Execute",
                    ("SessionKey", key),
                    ("Operation", "CreateSalesOrder"),
                    ("MessageXml", sales_order("#1", (sku, "1", "1"))),
                ),
                headers={"SOAPAction": f"{NS}IMessageService/Execute"},
            )
    assert data.order_counts() == {"#1": 1}


def test_main_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--password", "x", "--variants", "99"])
    assert "variants_per_product" in capsys.readouterr().err


def test_answers_keep_wcf_namespaces(client: Soap) -> None:
    response = client.post(
        "Execute",
        ("SessionKey", client.login()),
        ("Operation", "GetProducts"),
        ("MessageXml", "<GetProducts/>"),
    )
    root = ET.fromstring(response.content)
    result = find(root, "ExecuteResult")
    assert result.tag == f"{{{NS}}}ExecuteResult"
    assert find(result, "Resultflag").tag.startswith("{http://schemas.datacontract.org/")
    assert "&lt;Products" in response.text  # MessageXml is an escaped string
