"""The iSync connector: against a scripted SOAP server, then against the emulator.

The scripted server answers each call with the next reply it was given and
records what it was sent, so these tests can play every shape a cloud
service (or a proxy in front of it) may answer with. The emulator tests
then check the behaviour a user relies on end to end: whole products per
page, incremental reads, one session per account, exactly-once orders.
"""

from __future__ import annotations

import hashlib
import pickle
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import pytest

from connectors.base import (
    ConnectorError,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.isync import IsyncConnector, hold_back_last_product, sales_order_xml
from emulators.isync import IsyncData, serve

PASSWORD = "s3cr&t<Pa55>"
KEY = "sess-0123456789abcdef"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
TEMPURI = "http://tempuri.org/"

Reply = Callable[[BaseHTTPRequestHandler], None]


# --------------------------------------------------------------------------
# A scripted SOAP server
# --------------------------------------------------------------------------


@dataclass
class Seen:
    headers: dict[str, str]
    body: bytes

    @property
    def call(self) -> ET.Element:
        """The element inside the request's SOAP Body."""
        envelope = ET.fromstring(self.body)
        body = envelope.find(f"{{{SOAP}}}Body")
        assert body is not None
        return body[0]

    def param(self, name: str) -> str:
        node = self.call.find(f"{{{TEMPURI}}}{name}")
        assert node is not None, name
        return node.text or ""


@dataclass
class Script:
    replies: deque[Reply] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def actions(self) -> list[str]:
        return [s.headers["soapaction"].strip('"').rsplit("/", 1)[-1] for s in self.seen]


def send(
    body: bytes | str,
    status: int = 200,
    *,
    headers: dict[str, str] | None = None,
    delay: float = 0.0,
) -> Reply:
    payload = body.encode() if isinstance(body, str) else body

    def reply(handler: BaseHTTPRequestHandler) -> None:
        if delay:
            time.sleep(delay)
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()

    return reply


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Read the request, then close without a word: the order may be in."""
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def envelope(inner: str) -> str:
    return f'<s:Envelope xmlns:s="{SOAP}"><s:Body>{inner}</s:Body></s:Envelope>'


def login(key: str = KEY) -> Reply:
    return send(
        envelope(
            f'<LoginResponse xmlns="{TEMPURI}"><LoginResult>{key}</LoginResult></LoginResponse>'
        )
    )


def fault(text: str, code: str = "s:Client", status: int = 500) -> Reply:
    return send(
        envelope(
            f"<s:Fault><faultcode>{code}</faultcode><faultstring>{text}</faultstring></s:Fault>"
        ),
        status,
    )


def result(message: str = "", *, flag: str = "true", text: str = "OK") -> Reply:
    """An ExecuteResult whose members are in a data-contract namespace, as WCF sends them."""
    return send(
        envelope(
            f'<ExecuteResponse xmlns="{TEMPURI}"><ExecuteResult xmlns:a="urn:contract">'
            f"<a:MessageXml>{escape(message)}</a:MessageXml>"
            f"<a:ResponseText>{escape(text)}</a:ResponseText>"
            f"<a:Resultflag>{flag}</a:Resultflag></ExecuteResult></ExecuteResponse>"
        )
    )


def refused(text: str) -> Reply:
    return result(flag="false", text=text)


def line(job: str, sku: str, **over: str) -> dict[str, str]:
    record = {
        "JobProductID": job,
        "ProductStockID": sku,
        "SKU": sku,
        "JobDescription": f"Product {job}",
        "RetailSellingPrice": "100.00",
        "Modified": "2026-01-02T10:00:00",
    }
    record.update(over)
    return record


def products(*lines: dict[str, str], page: int | None = 1, total: int | None = None) -> Reply:
    attrs = (f' PageNumber="{page}"' if page is not None else "") + (
        f' TotalPages="{total}"' if total is not None else ""
    )
    body = "".join(
        "<Product>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items()) + "</Product>"
        for item in lines
    )
    return result(f"<Products{attrs}>{body}</Products>")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        self.server.script.seen.append(Seen({k.lower(): v for k, v in self.headers.items()}, data))
        if not self.server.script.replies:
            send("no reply scripted", 500)(self)
            return
        self.server.script.replies.popleft()(self)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    httpd = _Server(("127.0.0.1", 0), Handler)
    httpd.script = Script()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield f"http://{host}:{port}/MessageService.svc", httpd.script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def settings(url: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "service_url": url,
        "username": "shop@example.co.za",
        "password": PASSWORD,
        "default_customer_code": "CASH01",
        "shipping_code": "SHIP",
        "timeout": 2,
    }
    base.update(over)
    return base


@pytest.fixture
def isync(server: tuple[str, Script]) -> Iterator[tuple[IsyncConnector, Script]]:
    url, script = server
    with IsyncConnector(settings(url)) as connector:
        yield connector, script


def assert_no_secret(exc: ConnectorError) -> None:
    for text in (str(exc), repr(exc), exc.hint or "", repr(pickle.loads(pickle.dumps(exc)))):
        assert PASSWORD not in text
        assert escape(PASSWORD) not in text
        assert KEY not in text


def payload(*lines: tuple[str, Any, Any], po: str = "#1001") -> dict[str, Any]:
    """What the orders map builds."""
    return {
        "PONumber": po,
        "CustomerCode": "WEB001",
        "DeliveryDetail": {"Name": "Ann Lee", "Address1": "86 Beach Road", "City": "Cape Town"},
        "Lines": [
            {"ProductStockID": code, "Units": qty, "SellingPrice": price}
            for code, qty, price in lines or [("A1", 2, 460.0)]
        ],
    }


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


def test_settings_defaults_secrets_and_idempotent_load() -> None:
    loaded = IsyncConnector.load_settings(
        {
            "service_url": "HTTPS://iSync.Example.com/Sync/MessageService.svc?wsdl",
            "username": " shop@example.co.za ",
            "password": PASSWORD,
            "shipping_code": "",
        }
    )
    assert loaded == {
        "service_url": "https://isync.example.com/Sync/MessageService.svc",
        "username": "shop@example.co.za",
        "password": PASSWORD,
        "shipping_code": None,
        "default_customer_code": None,
        "order_line_key": "sku",  # seed 001: ProductStockID <- line_item.sku
        "prices_include_vat": False,  # the canonical line price: ex VAT
        "page_size": 500,
        "namespace": "http://tempuri.org/",
        "soap_action_prefix": "http://tempuri.org/IMessageService/",
        "op_get_products": "GetProducts",
        "op_create_sales_order": "CreateSalesOrder",
        "op_get_sales_order": "GetSalesOrder",
        "timeout": 30.0,
        "overlap_minutes": 10,
    }
    assert IsyncConnector.load_settings(loaded) == loaded
    assert IsyncConnector.secret_fields() == {"password"}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"order_line_key": "ProductStockID"},
            "order_line_key: must be one of sku, stock_line_id, not 'ProductStockID'",
        ),
        ({"prices_include_vat": "incl"}, "prices_include_vat: must be true or false, not 'incl'"),
    ],
)
def test_order_settings_refuse_what_they_cannot_mean(over: dict[str, Any], message: str) -> None:
    url = "https://isync.example.com/MessageService.svc"
    with pytest.raises(SettingsError) as caught:
        IsyncConnector.load_settings(settings(url, **over))
    assert caught.value.message == f"the iSync settings are not valid: {message}"
    assert caught.value.hint == f"correct {next(iter(over))} in the source's settings"
    loaded = IsyncConnector.load_settings(
        settings(url, order_line_key="stock_line_id", prices_include_vat="true")
    )
    assert (loaded["order_line_key"], loaded["prices_include_vat"]) == ("stock_line_id", True)


def test_repr_and_session_key_hold_no_secret() -> None:
    url = "https://isync.example.com/MessageService.svc"
    connector = IsyncConnector(settings(url))
    assert PASSWORD not in repr(connector) and "shop@example.co.za" in repr(connector)
    key = connector.session_key()
    expected = hashlib.sha256(f"{url}\nshop@example.co.za".encode()).hexdigest()
    assert key == f"isync:{expected}"
    # The same account, whatever its case and password, is the same slot.
    same = IsyncConnector(settings(url, username="Shop@Example.co.za", password="other"))
    assert same.session_key() == key
    assert IsyncConnector(settings(url, username="b@example.co.za")).session_key() != key
    other_url = "https://other.example.com/MessageService.svc"
    assert IsyncConnector(settings(other_url)).session_key() != key
    assert connector.session_limit == 1
    assert connector.partial_incremental is True


# --------------------------------------------------------------------------
# The SOAP exchange
# --------------------------------------------------------------------------


def test_login_then_execute_with_the_message_as_escaped_text(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    script.add(login(), products(line("J1", "A"), total=1))
    page = connector.read("products", None, 50)
    assert [r["SKU"] for r in page.records] == ["A"]
    assert page.next_cursor is None
    first, second = script.seen
    assert first.headers["soapaction"] == '"http://tempuri.org/IMessageService/Login"'
    assert first.headers["content-type"] == "text/xml; charset=utf-8"
    assert first.call.tag == f"{{{TEMPURI}}}Login"
    assert first.param("Username") == "shop@example.co.za"
    assert first.param("Password") == PASSWORD  # escaped on the wire, intact when parsed
    assert b"s3cr&amp;t&lt;Pa55&gt;" in first.body
    assert second.headers["soapaction"] == '"http://tempuri.org/IMessageService/Execute"'
    assert second.param("SessionKey") == KEY
    assert second.param("Operation") == "GetProducts"
    assert second.param("MessageXml") == (
        "<GetProducts><PageNumber>1</PageNumber><PageSize>50</PageSize></GetProducts>"
    )
    assert b"&lt;GetProducts&gt;" in second.body  # a string, not nested elements


def test_the_session_key_is_reused(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(login(), products(total=1), products(total=1), result("<SalesOrderResult/>"))
    connector.read("products", None, 10)
    connector.read("products", None, 10)
    assert connector.find_order("#9") is None
    assert script.actions() == ["Login", "Execute", "Execute", "Execute"]


def test_configured_namespace_action_and_operation_names(server: tuple[str, Script]) -> None:
    url, script = server
    over = {
        "namespace": "urn:isync",
        "soap_action_prefix": "urn:isync/IMsg/",
        "op_get_products": "ListStock",
    }
    with IsyncConnector(settings(url, **over)) as connector:
        script.add(login(), products(total=1))
        connector.read("products", None, 10)
    assert script.seen[0].headers["soapaction"] == '"urn:isync/IMsg/Login"'
    assert script.seen[0].call.tag == "{urn:isync}Login"
    assert script.seen[1].call.find("{urn:isync}Operation").text == "ListStock"  # type: ignore[union-attr]


def test_an_invalid_session_logs_in_again_and_retries_once(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    script.add(
        login("k1"),
        refused("Invalid session: log in again"),
        login("k2"),
        products(line("J1", "A"), total=1),
    )
    assert len(connector.read("products", None, 10).records) == 1
    assert script.actions() == ["Login", "Execute", "Login", "Execute"]
    assert script.seen[3].param("SessionKey") == "k2"


def test_a_second_invalid_session_in_a_row_is_transient(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    script.add(
        login(),
        refused("Invalid session"),
        login(),
        refused("Invalid session key"),
    )
    with pytest.raises(TransientError, match="again right after a new login") as caught:
        connector.raise_order(payload())
    assert "one session per user" in (caught.value.hint or "")
    assert_no_secret(caught.value)
    assert len(script.seen) == 4  # no third login


@pytest.mark.parametrize(
    "faultstring", ["Invalid username or password", f"Login failed for {PASSWORD}"]
)
def test_bad_credentials_are_a_settings_error(
    isync: tuple[IsyncConnector, Script], faultstring: str
) -> None:
    connector, script = isync
    script.add(fault(escape(faultstring)))
    with pytest.raises(SettingsError, match=r"refused the login as shop@example\.co\.za") as caught:
        connector.check()
    assert "username and password" in (caught.value.hint or "")
    assert_no_secret(caught.value)


def test_a_server_fault_on_login_is_transient(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(fault("The server was unable to process the request due to an internal error."))
    with pytest.raises(TransientError, match="SOAP fault"):
        connector.check()


def test_a_contract_mismatch_points_at_namespace_and_action(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    script.add(
        fault(
            "The message with Action 'x' cannot be processed at the receiver, due to a "
            "ContractFilter mismatch at the EndpointDispatcher.",
            code="a:ActionNotSupported",
        )
    )
    with pytest.raises(SettingsError) as caught:
        connector.read("products", None, 10)
    assert "namespace and soap_action_prefix" in (caught.value.hint or "")


def test_not_found_is_a_service_url_problem(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(send("<html>Not Found</html>", 404))
    with pytest.raises(SettingsError, match="404") as caught:
        connector.read("products", None, 10)
    assert "service_url" in (caught.value.hint or "")


def test_an_unknown_operation_names_its_setting(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(login(), refused("Unknown operation 'GetProducts'"))
    with pytest.raises(SettingsError, match="does not know operation 'GetProducts'") as caught:
        connector.read("products", None, 10)
    assert "op_get_products" in (caught.value.hint or "")


def test_check_counts_stock_lines(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(login(), products(line("J1", "A"), total=1234))
    assert connector.check() == (
        f"reached iSync at {connector.settings['service_url']} as shop@example.co.za: "
        "1,234 stock lines"
    )
    assert "<PageSize>1</PageSize>" in script.seen[1].param("MessageXml")


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (send("<html>Service Unavailable</html>", 503), "HTTP 503"),
        (send("", 502, headers={"Retry-After": "7"}), "HTTP 502"),
        (fault("Object reference not set", code="s:Server"), "SOAP fault"),
        (send("<html><body>Gateway says hello</body></html>"), "not a SOAP envelope"),
        (send('<s:Envelope xmlns:s="' + SOAP + '"><s:Body><Exec'), "not well-formed"),
        (send('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'), "DOCTYPE"),
        (send(""), "empty body"),
        (result("<Something/>"), "instead of <Products>"),
        (result("<Products><Product>"), "cannot be read"),
        (result(), "nothing instead of <Products>"),
        (result(flag="maybe"), "without a Resultflag"),
        (refused("Service busy, please try again"), "busy"),
        (hang_up, "lost"),
        (send(envelope("<x/>"), delay=1.5), "did not answer in time"),
    ],
)
def test_transient_failures(server: tuple[str, Script], reply: Reply, words: str) -> None:
    url, script = server
    with IsyncConnector(settings(url, timeout=0.5)) as connector:
        script.add(login(), reply)
        with pytest.raises(TransientError, match=words) as caught:
            connector.read("products", None, 10)
        assert_no_secret(caught.value)
        # the connector recovers on the next call
        script.add(*([] if connector._session else [login()]), products(line("J", "A"), total=1))
        assert len(connector.read("products", None, 10).records) == 1


def test_retry_after_is_kept(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(send("slow down", 429, headers={"Retry-After": "4"}))
    with pytest.raises(TransientError, match="rate limiting") as caught:
        connector.read("products", None, 10)
    assert caught.value.retry_after == 4.0


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        IsyncConnector(settings(f"http://127.0.0.1:{port}/MessageService.svc")) as connector,
        pytest.raises(TransientError, match="could not connect"),
    ):
        connector.check()


# --------------------------------------------------------------------------
# Reading: whole products per page
# --------------------------------------------------------------------------


def test_the_last_product_of_a_page_waits_for_the_rest_of_its_lines(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    script.add(
        login(),
        products(line("J1", "A"), line("J1", "B"), line("J2", "C"), total=3),
        products(line("J2", "D"), line("J2", "E"), line("J2", "F"), page=2, total=3),
        products(line("J2", "G"), line("J3", "H"), page=3, total=3),
    )
    first = connector.read("products", None, 3)
    assert [r["SKU"] for r in first.records] == ["A", "B"]
    assert first.next_cursor == {"page": 2, "carry": [line("J2", "C")]}
    # J2 fills the whole of page 2: nothing is emitted, all of it waits.
    second = connector.read("products", first.next_cursor, 3)
    assert second.records == []
    assert [r["SKU"] for r in second.next_cursor["carry"]] == ["C", "D", "E", "F"]
    third = connector.read("products", second.next_cursor, 3)
    assert [r["SKU"] for r in third.records] == ["C", "D", "E", "F", "G", "H"]
    assert third.next_cursor is None
    pages = [s.param("MessageXml") for s in script.seen[1:]]
    assert [p.split("<PageNumber>")[1][0] for p in pages] == ["1", "2", "3"]


def test_a_line_repeated_across_pages_is_emitted_once(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    # A line inserted before page 2 was read shifts "B" onto page 2 as well.
    script.add(
        login(),
        products(line("J1", "A"), line("J2", "B"), total=2),
        products(line("J2", "B", AvailableUnits="5"), line("J3", "C"), page=2, total=2),
    )
    first = connector.read("products", None, 2)
    last = connector.read("products", first.next_cursor, 2)
    assert [r["SKU"] for r in last.records] == ["B", "C"]
    assert last.records[0]["AvailableUnits"] == "5"  # the fresher copy


def test_without_total_pages_a_short_page_is_the_last(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    script.add(
        login(),
        products(line("J1", "A"), line("J2", "B"), page=None),
        products(line("J2", "C"), page=None),
    )
    first = connector.read("products", None, 2)
    assert first.next_cursor == {"page": 2, "carry": [line("J2", "B")]}
    last = connector.read("products", first.next_cursor, 2)
    assert [r["SKU"] for r in last.records] == ["B", "C"] and last.next_cursor is None


def test_hold_back_regroups_an_ungrouped_page() -> None:
    lines = [line("J1", "A"), line("J2", "B"), line("J1", "C"), line("J3", "D")]
    emit, hold = hold_back_last_product(lines)
    assert [r["SKU"] for r in emit] == ["A", "B", "C"] and [r["SKU"] for r in hold] == ["D"]
    assert hold_back_last_product([]) == ([], [])


def test_incremental_reads_start_overlap_minutes_early_and_hold_nothing_back(
    server: tuple[str, Script],
) -> None:
    url, script = server
    with IsyncConnector(settings(url, overlap_minutes=15)) as connector:
        script.add(
            login(),
            products(line("J1", "A"), line("J2", "B"), total=2),
            products(line("J2", "C"), page=2, total=2),
        )
        since = datetime(2026, 1, 2, 10, 5, tzinfo=UTC)  # iSync's wall time: zone dropped
        first = connector.read("products", None, 2, since=since)
        assert [r["SKU"] for r in first.records] == ["A", "B"]
        assert first.next_cursor == {"page": 2}
        second = connector.read("products", first.next_cursor, 2, since=since)
        assert [r["SKU"] for r in second.records] == ["C"] and second.next_cursor is None
    assert script.seen[1].param("MessageXml") == (
        "<GetProducts><PageNumber>1</PageNumber><PageSize>2</PageSize>"
        "<ModifiedSince>2026-01-02T09:50:00</ModifiedSince></GetProducts>"
    )


def test_a_server_that_ignores_page_number_is_stopped(
    isync: tuple[IsyncConnector, Script],
) -> None:
    connector, script = isync
    script.add(login(), products(line("J1", "A"), page=1, total=5))
    with pytest.raises(PermanentError, match="answered page 1 when asked for page 2"):
        connector.read("products", {"page": 2, "carry": []}, 1)


def test_a_foreign_cursor_is_refused(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    with pytest.raises(PermanentError, match="not an iSync page cursor") as caught:
        connector.read("products", "IQ000123", 10)
    assert "full resync" in (caught.value.hint or "")
    assert script.seen == []


def test_stock_lines_are_raw_text_by_element_name(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(
        login(),
        result(
            '<Products xmlns="urn:x" PageNumber="1" TotalPages="1"><Product>'
            "<JobProductID> J1 </JobProductID><SKU>A</SKU><Size/><Extra><Deep>1</Deep></Extra>"
            "</Product></Products>"
        ),
    )
    (record,) = connector.read("products", None, 10).records
    assert record == {"JobProductID": "J1", "SKU": "A", "Size": None}


def test_high_water_is_the_latest_modified(isync: tuple[IsyncConnector, Script]) -> None:
    connector, _ = isync
    records = [
        {"SKU": "A", "Modified": "2026-01-02T10:00:00"},
        {"SKU": "B", "Modified": "2026-01-03T08:15:30.1234567"},
        {"SKU": "C", "modified": "2026/01/02 23:59:59"},
        {"SKU": "D", "Modified": ""},
        {"SKU": "E", "Modified": None},
        {"SKU": "F", "Modified": "not a time"},
        {"SKU": "G"},
    ]
    assert connector.high_water(records) == "2026-01-03T08:15:30"
    assert connector.high_water([{"Modified": "2026-02-01"}]) == "2026-02-01T00:00:00"
    assert connector.high_water([]) is None


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------


def test_raise_order_sends_the_reference_document(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(
        login(),
        result("<SalesOrderResult><OrderNumber> SO000123 </OrderNumber></SalesOrderResult>"),
    )
    assert connector.raise_order(payload(("A1", 2, 460.0), ("SHIP", 1, 60))) == "SO000123"
    sent = script.seen[1]
    assert sent.param("Operation") == "CreateSalesOrder"
    assert sent.param("MessageXml") == (
        "<SalesOrder><PONumber>#1001</PONumber><CustomerCode>WEB001</CustomerCode>"
        "<DeliveryDetail><Name>Ann Lee</Name><Address1>86 Beach Road</Address1>"
        "<Address2></Address2><City>Cape Town</City><Province></Province>"
        "<PostalCode></PostalCode><Country></Country>"
        "<Phone></Phone><Email></Email></DeliveryDetail>"
        "<Lines><Line><ProductStockID>A1</ProductStockID><Units>2</Units>"
        "<SellingPrice>460.00</SellingPrice></Line>"
        "<Line><ProductStockID>SHIP</ProductStockID><Units>1</Units>"
        "<SellingPrice>60.00</SellingPrice></Line></Lines></SalesOrder>"
    )


def test_a_rejection_carries_isyncs_own_words(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    text = "Line 2: ProductStockID 'X' does not exist"
    script.add(login(), refused(text))
    with pytest.raises(RejectedError) as caught:
        connector.raise_order(payload(("A1", 2, 460.0), ("X", 1, 5.0)))
    assert str(caught.value) == f"iSync refused order #1001: {text}"
    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    "reply",
    [
        hang_up,
        send(envelope("<x"), 200),
        send("Bad Gateway", 502),
        fault("Object reference not set", code="s:Server"),
        result("<SalesOrderResult/>"),  # success without an OrderNumber
        send(envelope("<x/>"), delay=1.5),
    ],
)
def test_a_lost_answer_while_raising_says_the_outcome_is_unknown(
    server: tuple[str, Script], reply: Reply
) -> None:
    url, script = server
    with IsyncConnector(settings(url, timeout=0.5)) as connector:
        script.add(login(), reply)
        with pytest.raises(TransientError, match="may or may not have recorded it") as caught:
            connector.raise_order(payload())
    assert "order #1001" in str(caught.value)
    assert "looks the order up" in (caught.value.hint or "")
    assert_no_secret(caught.value)


def test_bad_payloads_are_refused_before_sending(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    with pytest.raises(RejectedError, match=r"line 2 Units 1\.5"):
        connector.raise_order(payload(("A1", 1, 1), ("B2", 1.5, 1)))
    with pytest.raises(RejectedError, match="line 1 SellingPrice -1"):
        connector.raise_order(payload(("A1", 1, -1)))
    with pytest.raises(RejectedError, match="has no lines"):
        connector.raise_order({**payload(), "Lines": []})
    with pytest.raises(RejectedError, match="control character"):
        connector.raise_order(payload(("A\x001", 1, 1)))
    no_customer = {**payload(), "CustomerCode": None}
    url = connector.settings["service_url"]
    with (
        IsyncConnector(settings(url, default_customer_code=None)) as bare,
        pytest.raises(SettingsError) as caught,
    ):
        bare.raise_order(no_customer)
    assert "default_customer_code" in (caught.value.hint or "")
    assert script.seen == []


def test_the_default_customer_stands_in() -> None:
    xml = sales_order_xml({**payload(), "CustomerCode": ""}, "CASH01")
    assert "<CustomerCode>CASH01</CustomerCode>" in xml


def test_find_order(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(
        login(),
        result("<SalesOrderResult><OrderNumber>SO000042</OrderNumber></SalesOrderResult>"),
        result("<SalesOrderResult/>"),
    )
    assert connector.find_order("#10<01") == "SO000042"
    assert script.seen[1].param("Operation") == "GetSalesOrder"
    assert script.seen[1].param("MessageXml") == (
        "<GetSalesOrder><PONumber>#10&lt;01</PONumber></GetSalesOrder>"
    )
    assert connector.find_order("#1002") is None


# --------------------------------------------------------------------------
# Against the emulator
# --------------------------------------------------------------------------


EMULATOR_PASSWORD = "emu&pass"


@pytest.fixture
def emulated() -> Iterator[tuple[IsyncData, Any]]:
    data = IsyncData.generated(products=23, variants_per_product=3, seed=4)
    data.add_service_item("SHIP")
    with serve(data, password=EMULATOR_PASSWORD) as running:
        yield data, running


def emulator_connector(running: Any, **over: Any) -> IsyncConnector:
    base = {
        "service_url": running.service_url,
        "username": running.username,
        "password": EMULATOR_PASSWORD,
        "default_customer_code": "CASH01",
        "shipping_code": "SHIP",
    }
    base.update(over)
    return IsyncConnector(base)


def read_all(
    connector: IsyncConnector, limit: int, since: datetime | None = None
) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        page = connector.read("products", cursor, limit, since)
        pages.append(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return pages


@pytest.mark.parametrize("limit", [2, 5, 500])
def test_a_full_read_never_splits_a_product(emulated: tuple[IsyncData, Any], limit: int) -> None:
    data, running = emulated
    with emulator_connector(running) as connector:
        pages = read_all(connector, limit)
    seen: dict[str, int] = {}
    for index, records in enumerate(pages):
        for job in {r["JobProductID"] for r in records}:
            assert job not in seen, f"{job} on pages {seen[job]} and {index}"
            seen[job] = index
    assert [r for records in pages for r in records] == data.stock_lines()


def test_an_incremental_read_brings_the_touched_lines(emulated: tuple[IsyncData, Any]) -> None:
    data, running = emulated
    changed = data.touch(5, seed=3, when="2026-11-22T09:00:00")
    with emulator_connector(running, overlap_minutes=0) as connector:
        pages = read_all(connector, 2, since=datetime(2026, 11, 22, 9, 0))
        records = [r for records in pages for r in records]
        assert sorted(r["ProductStockID"] for r in records) == changed
        assert connector.high_water(records) == "2026-11-22T09:00:00"


def test_another_login_with_the_account_is_survived(emulated: tuple[IsyncData, Any]) -> None:
    _, running = emulated
    with emulator_connector(running) as first, emulator_connector(running) as second:
        assert first.read("products", None, 4).records
        assert second.read("products", None, 4).records  # ends first's session
        assert first.read("products", None, 4).records  # logs in again, once
    assert running.faults.count("Login") == 3
    running.faults.invalidate_next(2)
    with emulator_connector(running) as third, pytest.raises(TransientError, match="again"):
        third.read("products", None, 3)


def test_orders_into_the_emulator_exactly_once(emulated: tuple[IsyncData, Any]) -> None:
    data, running = emulated
    sku = data.stock_lines()[0]["SKU"]
    with emulator_connector(running) as connector:
        with pytest.raises(RejectedError, match="Line 2: ProductStockID 'NOPE' does not exist"):
            connector.raise_order(payload((sku, 1, 10), ("NOPE", 1, 1), po="#1"))
        assert connector.find_order("#1") is None

        running.faults.drop_after_commit_next(1)
        with pytest.raises(TransientError, match="may or may not"):
            connector.raise_order(payload((sku, 2, 10), ("SHIP", 1, 60), po="#2"))
        number = connector.find_order("#2")  # what the worker asks before retrying
        assert number == "SO000001"
        # Sending it again anyway is refused, not doubled.
        with pytest.raises(RejectedError, match="already exists as sales order SO000001"):
            connector.raise_order(payload((sku, 2, 10), po="#2"))
    assert data.order_counts() == {"#2": 1}
    assert data.create_attempts() == {"#1": 1, "#2": 2}
    (order,) = data.orders()
    assert order["Lines"] == [
        {"ProductStockID": sku, "Units": 2, "SellingPrice": "10.00"},
        {"ProductStockID": "SHIP", "Units": 1, "SellingPrice": "60.00"},
    ]


def test_find_order_reads_not_found_as_none(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(login(), refused("Sales order not found"), refused("Unknown operation 'X'"))
    assert connector.find_order("#1") is None
    with pytest.raises(SettingsError) as caught:
        connector.find_order("#1")
    assert "op_get_sales_order" in (caught.value.hint or "")


def test_check_reuses_the_session_it_has(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(login(), products(total=1), products(total=3))
    connector.read("products", None, 10)
    assert connector.check().endswith(": 3 stock lines")
    assert script.actions() == ["Login", "Execute", "Execute"]


def test_a_closed_connector_keeps_its_session(isync: tuple[IsyncConnector, Script]) -> None:
    connector, script = isync
    script.add(login(), products(total=1), products(total=1))
    connector.read("products", None, 10)
    connector.close()
    connector.read("products", None, 10)
    assert script.actions() == ["Login", "Execute", "Execute"]
