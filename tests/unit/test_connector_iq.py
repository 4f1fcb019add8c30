"""The IQ Retail connector against a real HTTP server on 127.0.0.1.

The server here is deliberately dumb: it answers each call with the next
scripted reply and records what it was sent. That is what lets these tests
play every shape a site may answer with (upper-case keys, padded numbers,
errors in a 200, proxies, dropped connections) without relying on the
project's emulator.
"""

from __future__ import annotations

import base64
import json
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

import pytest

from connectors.base import (
    ConnectorError,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.iq_retail import (
    IqRetailConnector,
    collect_errors,
    find_order_sql,
    sql_literal,
    stock_page_sql,
)

PASSWORD = "s3cr3t-Pa55word"
PASSPHRASE = "partner-phrase-77"

Reply = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Script:
    replies: deque[Reply] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def sql(self, index: int = -1) -> str:
        call = self.seen[index].body["IQ_API"]["IQ_API_Request_GenericSQL"]
        return call["IQ_SQL_Text"]


def send(
    status: int = 200,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    declare: int | None = None,
    delay: float = 0.0,
) -> Reply:
    """A reply: JSON ``body`` (or ``raw`` bytes). ``declare`` claims a longer
    body than is sent and then closes the connection mid-answer."""
    payload = raw if raw is not None else json.dumps(body).encode()

    def reply(handler: BaseHTTPRequestHandler) -> None:
        if delay:
            time.sleep(delay)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(declare or len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()
        if declare:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)

    return reply


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Read the request, then close without a word: the order may be in."""
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def ok(**extra: Any) -> dict[str, Any]:
    return {"iq_api_error": [{"iq_error_code": 0}], **extra}


def rows(*records: dict[str, Any]) -> Reply:
    return send(body=ok(iq_api_result_data={"records": list(records)}))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        self.server.script.seen.append(
            Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(data))
        )
        if not self.server.script.replies:
            send(500, {"error": "no reply scripted"})(self)
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
        yield f"http://{host}:{port}", httpd.script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def settings(url: str, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_url": url,
        "company_number": "002",
        "user_number": "99",
        "user_password": PASSWORD,
        "partner_passphrase": PASSPHRASE,
        "default_debtor_account": "CASH01",
        "timeout": 2,
    }
    base.update(over)
    return base


@pytest.fixture
def iq(server: tuple[str, Script]) -> Iterator[tuple[IqRetailConnector, Script]]:
    url, script = server
    with IqRetailConnector(settings(url)) as connector:
        yield connector, script


def assert_no_secret(exc: ConnectorError) -> None:
    for text in (str(exc), repr(exc), exc.hint or "", repr(pickle.loads(pickle.dumps(exc)))):
        assert PASSWORD not in text
        assert PASSPHRASE not in text


def payload(*items: tuple[str, int, float]) -> dict[str, Any]:
    """What the orders map builds."""
    return {
        "IQ_Company_Number": "002",
        "IQ_Terminal_Number": "1",
        "IQ_Submit_Data": {
            "IQ_Root_JSON": {
                "IQ_Identification_Info": {"Company_Code": "002"},
                "Processing_Documents": [
                    {
                        "Export_Class": "Sales_Order",
                        "Document": {"Order_Number": "#1001", "Debtor_Account": "CASH01"},
                        "Items": [
                            {"Stock_Code": code, "Quantity": qty, "Item_Price_Exclusive": price}
                            for code, qty, price in items or [("A1", 2, 460.0)]
                        ],
                    }
                ],
            }
        },
    }


# ---- settings ----------------------------------------------------------------


def test_settings_defaults_secrets_and_idempotent_load() -> None:
    loaded = IqRetailConnector.load_settings(
        {
            "request_url": "https://iq.example.co.za:8443/IQRetailRestAPI/v1/",
            "company_number": "002",
            "user_number": 99,
            "user_password": PASSWORD,
            "shipping_code": "",
        }
    )
    assert loaded["request_url"] == "https://iq.example.co.za:8443"
    assert loaded["user_number"] == "99"
    assert loaded["terminal_number"] == "1"
    assert loaded["sales_rep_number"] == 1
    assert loaded["partner_passphrase"] == ""
    assert loaded["shipping_code"] is None
    assert loaded["page_size"] == 500
    assert loaded["timeout"] == 30
    assert loaded["overlap_minutes"] == 10
    assert loaded["stock_table"] == "Stock"
    assert loaded["overrides"] == ["ideNegativeStock"]
    assert loaded["qty_formula"] == "onhand"  # seed 000
    assert IqRetailConnector.load_settings(loaded) == loaded
    assert IqRetailConnector.secret_fields() == {"user_password", "partner_passphrase"}


def test_repr_hides_the_password(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, _ = iq
    assert PASSWORD not in repr(connector)
    assert "'002'" in repr(connector) and "'99'" in repr(connector)


# ---- SQL text ----------------------------------------------------------------


def test_sql_literal_escapes_quotes_and_refuses_control_characters() -> None:
    assert sql_literal("O'Brien's") == "'O''Brien''s'"
    assert sql_literal("a\\") == "'a\\'"
    injection = "x' OR '1'='1"
    assert sql_literal(injection) == "'x'' OR ''1''=''1'"
    for bad in ("A\nB", "A\x00", "A\rB", "A\tB", "A\u2028B"):
        with pytest.raises(ValueError, match="control character"):
            sql_literal(bad)
    with pytest.raises(TypeError):
        sql_literal(5)  # type: ignore[arg-type]


def test_stock_page_sql() -> None:
    columns = "code, descript, webitem, sellprice1, onhand, modified"
    assert stock_page_sql("Stock", 500) == f"SELECT TOP 500 {columns} FROM Stock ORDER BY code"
    assert stock_page_sql("Stock", 2, "A'1; --", "2026-01-02 09:50:00") == (
        f"SELECT TOP 2 {columns} FROM Stock WHERE code > 'A''1; --' "
        "AND modified >= '2026-01-02 09:50:00' ORDER BY code"
    )
    with pytest.raises(ValueError):
        stock_page_sql("Stock x", 1)
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValueError):
            stock_page_sql("Stock", bad)  # type: ignore[arg-type]
    assert find_order_sql("#10'01") == (
        "SELECT document FROM sorders WHERE ordernum = '#10''01' ORDER BY document"
    )


# ---- the envelope --------------------------------------------------------------


def test_envelope_and_basic_auth(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(rows({"code": "A1"}), rows({"web_items": 2}), rows({"stock_items": 3}))
    assert connector.check() == (
        f"reached IQ Retail company 002 at {connector.settings['request_url']} as user 99: "
        "2 web items will sync as products (of 3 stock items; the other 1 are not ticked "
        "WebItem and stay out of the hub)"
    )
    first = script.seen[0]
    assert first.path == "/IQRetailRestAPI/v1/IQ_API_Request_GenericSQL"
    assert first.headers["content-type"] == "application/json"
    expected = base64.b64encode(f"99:{PASSWORD}".encode()).decode()
    assert first.headers["authorization"] == f"Basic {expected}"
    assert first.body == {
        "IQ_API": {
            "IQ_API_Request_GenericSQL": {
                "IQ_Company_Number": "002",
                "IQ_Terminal_Number": "1",
                "IQ_User_Number": "99",
                "IQ_User_Password": PASSWORD,
                "IQ_Partner_Passphrase": PASSPHRASE,
                # The products fetch's own statement, one row: its columns are checked.
                "IQ_SQL_Text": (
                    "SELECT TOP 1 code, descript, webitem, sellprice1, onhand, modified "
                    "FROM Stock ORDER BY code"
                ),
            }
        }
    }
    assert script.sql(1) == "SELECT COUNT(*) AS web_items FROM Stock WHERE webitem = TRUE"
    assert script.sql(2) == "SELECT COUNT(*) AS stock_items FROM Stock"


def test_check_without_a_count(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    refused = {"iq_api_error": [{"iq_error_code": 7, "iq_error_description": "SQL Error: COUNT"}]}
    script.add(rows({"code": "A1"}), send(body=refused), send(body=refused))
    assert connector.check().endswith("as user 99: the Stock table answers")
    # A site that counts rows but not by webitem: the rows, said as such.
    script.add(rows({"code": "A1"}), send(body=refused), rows({"STOCK_ITEMS": " 1200 "}))
    assert connector.check().endswith(
        "as user 99: 1,200 stock items (IQ would not count the web items among them)"
    )


def test_check_reads_the_columns_qty_formula_needs(server: tuple[str, Script]) -> None:
    url, script = server
    connector = IqRetailConnector(settings(url, qty_formula="onhand_less_sales_orders"))
    missing = {
        "iq_api_error": [
            {"iq_error_code": 7, "iq_error_description": "SQL Error: Invalid field salesorder"}
        ]
    }
    script.add(send(body=missing))
    with pytest.raises(SettingsError) as caught:
        connector.check()
    assert script.sql(0) == (
        "SELECT TOP 1 code, descript, webitem, sellprice1, onhand, modified, salesorder "
        "FROM Stock ORDER BY code"
    )
    assert "Invalid field salesorder" in caught.value.message
    assert caught.value.hint is not None
    assert "qty_formula (now onhand_less_sales_orders, which reads the salesorder column)" in (
        caught.value.hint
    )
    connector.close()


def test_qty_formula_is_validated_and_chooses_the_columns_read(server: tuple[str, Script]) -> None:
    url, script = server
    with pytest.raises(SettingsError) as caught:
        IqRetailConnector.load_settings(settings(url, qty_formula="onhand-salesorder"))
    assert caught.value.message == (
        "the IQ Retail settings are not valid: qty_formula: must be one of onhand, "
        "onhand_less_sales_orders, not 'onhand-salesorder'"
    )
    assert caught.value.hint == "correct qty_formula in the source's settings"
    connector = IqRetailConnector(settings(url, qty_formula="onhand_less_sales_orders"))
    script.add(rows({"code": "A1", "onhand": 5, "salesorder": 2}))
    page = connector.read("products", None, 10)
    assert page.records == [{"code": "A1", "onhand": 5, "salesorder": 2}]
    assert script.sql(0) == (
        "SELECT TOP 10 code, descript, webitem, sellprice1, onhand, modified, salesorder "
        "FROM Stock ORDER BY code"
    )
    connector.close()


def test_answers_in_any_key_case_with_padded_codes(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(
        send(
            body={
                "IQ_API_Error": [{"IQ_Error_Code": " 0 "}],
                "IQ_API_Result_Data": {
                    "Records": [
                        {
                            "CODE": "A1",
                            "Descript": "Alpha",
                            "WebItem": True,
                            "SellPrice1": " 460.00",
                        }
                    ]
                },
            }
        )
    )
    page = connector.read("products", None, 10)
    assert page.records == [
        {"code": "A1", "descript": "Alpha", "webitem": True, "sellprice1": " 460.00"}
    ]
    assert page.next_cursor is None


# ---- reading -------------------------------------------------------------------


def test_paging_by_code_with_escaping(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(
        rows({"code": "A1"}, {"code": "O'NEIL"}),
        rows({"code": "Z9"}),
    )
    first = connector.read("products", None, 2)
    assert [r["code"] for r in first.records] == ["A1", "O'NEIL"]
    assert first.next_cursor == "O'NEIL"
    json.dumps(first.next_cursor)
    assert "WHERE" not in script.sql(0)
    assert script.sql(0).startswith("SELECT TOP 2 code, descript, webitem, sellprice1, onhand")

    second = connector.read("products", first.next_cursor, 2)
    assert second.next_cursor is None  # a short page is the last
    assert script.sql(1) == (
        "SELECT TOP 2 code, descript, webitem, sellprice1, onhand, modified FROM Stock "
        "WHERE code > 'O''NEIL' ORDER BY code"
    )


def test_incremental_read_starts_overlap_minutes_early(server: tuple[str, Script]) -> None:
    url, script = server
    with IqRetailConnector(settings(url, overlap_minutes=15, stock_table="STOCK")) as connector:
        script.add(rows(), rows())
        connector.read("products", None, 100, since=datetime(2026, 1, 2, 10, 5, 0))
        assert script.sql(0).endswith(
            "FROM STOCK WHERE modified >= '2026-01-02 09:50:00' ORDER BY code"
        )
        # An aware time is IQ's wall time: its zone is dropped, not converted.
        connector.read("products", "B'2", 100, since=datetime(2026, 1, 2, 0, 5, tzinfo=UTC))
        assert "WHERE code > 'B''2' AND modified >= '2026-01-01 23:50:00'" in script.sql(1)


def test_high_water_is_the_latest_modified(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, _ = iq
    records = [
        {"code": "A", "modified": "2026-01-02 10:00:00"},
        {"code": "B", "modified": "2026-01-03T08:15:30.250"},
        {"code": "C", "MODIFIED": "2026/01/02 23:59:59"},
        {"code": "D", "modified": ""},
        {"code": "E", "modified": None},
        {"code": "F", "modified": "not a time"},
        {"code": "G"},
    ]
    assert connector.high_water(records) == "2026-01-03 08:15:30"
    assert connector.high_water([{"code": "X", "modified": "2026-02-01"}]) == "2026-02-01 00:00:00"
    assert connector.high_water([]) is None
    assert connector.high_water([{"code": "G"}]) is None


def test_a_control_character_in_the_cursor_is_refused(
    iq: tuple[IqRetailConnector, Script],
) -> None:
    connector, script = iq
    with pytest.raises(PermanentError, match="control character"):
        connector.read("products", "A\nDROP", 10)
    assert script.seen == []


# ---- errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "named", "not_named"),
    [
        ("Invalid User Number or Password", "user_number, user_password", "company_number"),
        ("Invalid Company Number [002]", "company_number", "user_password"),
        (f"Login refused for password {PASSWORD}", "user_number, user_password", "company"),
    ],
)
def test_refused_credentials_name_the_settings(
    iq: tuple[IqRetailConnector, Script], description: str, named: str, not_named: str
) -> None:
    connector, script = iq
    refused = {"iq_api_error": [{"iq_error_code": 2, "iq_error_description": description}]}
    script.add(send(body=refused))
    with pytest.raises(SettingsError) as caught:
        connector.check()
    assert named in (caught.value.hint or "")
    assert not_named not in (caught.value.hint or "")
    assert "company 002 as user 99" in str(caught.value)
    assert_no_secret(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_http_401_is_a_credentials_error(iq: tuple[IqRetailConnector, Script], status: int) -> None:
    connector, script = iq
    script.add(send(status, raw=b"Unauthorized"))
    with pytest.raises(SettingsError, match=f"HTTP {status}") as caught:
        connector.read("products", None, 10)
    assert "user_password" in (caught.value.hint or "")
    assert_no_secret(caught.value)


def test_a_sql_error_points_at_stock_table(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    refused = {
        "iq_api_error": [
            {"iq_error_code": 7, "iq_error_description": "SQL Error: no such table: Stock"}
        ]
    }
    script.add(send(body=refused))
    with pytest.raises(SettingsError, match="no such table") as caught:
        connector.read("products", None, 10)
    assert "stock_table" in (caught.value.hint or "")


def test_other_codes_are_permanent_with_the_description(
    iq: tuple[IqRetailConnector, Script],
) -> None:
    connector, script = iq
    refused = {"iq_api_error": [{"iq_error_code": "5", "iq_error_description": "Unknown Thing"}]}
    script.add(send(body=refused))
    with pytest.raises(PermanentError, match=r"Unknown Thing \(code 5\)") as caught:
        connector.read("products", None, 10)
    assert not isinstance(caught.value, SettingsError | RejectedError)


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        ("Company 002 is locked by another user", TransientError),
        ("Database busy, try again later", TransientError),
        ("User account locked", SettingsError),
    ],
)
def test_a_busy_company_is_transient_a_locked_account_is_not(
    iq: tuple[IqRetailConnector, Script], description: str, kind: type[ConnectorError]
) -> None:
    connector, script = iq
    script.add(
        send(body={"iq_api_error": [{"iq_error_code": 11, "iq_error_description": description}]})
    )
    with pytest.raises(ConnectorError) as caught:
        connector.read("products", None, 10)
    assert type(caught.value) is kind
    assert description in str(caught.value)


@pytest.mark.parametrize(
    "errors", [{"iq_error_code": "0.0"}, [], [{"IQ_ERROR_CODE": 0, "iq_error_description": ""}]]
)
def test_success_in_other_shapes(iq: tuple[IqRetailConnector, Script], errors: Any) -> None:
    connector, script = iq
    script.add(send(body={"iq_api_error": errors, "iq_api_result_data": {"records": []}}))
    assert connector.read("products", None, 10).records == []


def test_not_found_is_a_request_url_problem(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(send(404, raw=b"<html>Not Found</html>"))
    with pytest.raises(SettingsError, match="404") as caught:
        connector.read("products", None, 10)
    assert "request_url" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("reply", "retry_after", "words"),
    [
        (send(503, raw=b"<html>Service Unavailable</html>"), None, "HTTP 503"),
        (send(502, raw=b"", headers={"Retry-After": "7"}), 7.0, "HTTP 502"),
        (send(429, raw=b"slow down", headers={"Retry-After": "4"}), 4.0, "HTTP 429"),
        (
            send(
                body={"response_code": 429, "response_message": "Too many requests"},
                headers={"Retry-After": "3"},
            ),
            3.0,
            "Too many requests",
        ),
        (
            send(body={"Response_Code": "429", "Response_Message": "Slow", "Retry_After": "2"}),
            2.0,
            "Slow",
        ),
        (send(raw=b"<html><body>Gateway says hello</body></html>"), None, "not IQ's JSON"),
        (send(raw=b'{"iq_api_error":[{"iq_error_code":0}],"iq_api_res'), None, "not IQ's JSON"),
        (send(raw=b""), None, "empty body"),
        (send(body=["a", "list"]), None, "not IQ's JSON"),
        (send(body={"status": "fine"}), None, "without iq_api_error"),
        (send(body=ok(), declare=5000), None, "lost"),
        (hang_up, None, "lost"),
        (send(body=ok(), delay=1.5), None, "did not answer in time"),
    ],
)
def test_transient_failures(
    server: tuple[str, Script], reply: Reply, retry_after: float | None, words: str
) -> None:
    url, script = server
    with IqRetailConnector(settings(url, timeout=0.5)) as connector:
        script.add(reply)
        with pytest.raises(TransientError, match=words) as caught:
            connector.read("products", None, 10)
        assert caught.value.retry_after == retry_after
        assert_no_secret(caught.value)
        # the connector recovers on the next call
        script.add(rows({"code": "A1"}))
        assert connector.read("products", None, 10).records == [{"code": "A1"}]


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        IqRetailConnector(settings(f"http://127.0.0.1:{port}")) as connector,
        pytest.raises(TransientError, match="could not connect"),
    ):
        connector.check()


# ---- orders ---------------------------------------------------------------------


def test_raise_order_sends_the_document_and_returns_its_number(
    server: tuple[str, Script],
) -> None:
    url, script = server
    with IqRetailConnector(settings(url, overrides=["ideNegativeStock", "ideX"])) as connector:
        script.add(
            send(
                body={
                    "IQ_API_Error": [{"IQ_Error_Code": 0}],
                    "IQ_API_Success": {
                        "IQ_API_Success_Items": [
                            [
                                {"FieldName": "Something_Else", "Data": "x"},
                                {"FieldName": "Document_Number", "Data": " SAL96551 "},
                            ]
                        ]
                    },
                }
            )
        )
        order = payload(("A1", 2, 460.0))
        assert connector.raise_order(order) == "SAL96551"
    seen = script.seen[0]
    assert seen.path == "/IQRetailRestAPI/v1/IQ_API_Submit_Document_Sales_Order"
    call = seen.body["IQ_API"]["IQ_API_Submit_Document_Sales_Order"]
    assert call == {
        "IQ_Company_Number": "002",
        "IQ_Terminal_Number": "1",
        "IQ_User_Number": "99",
        "IQ_User_Password": PASSWORD,
        "IQ_Partner_Passphrase": PASSPHRASE,
        "IQ_Submit_Data": order["IQ_Submit_Data"],
        "IQ_Overrides": ["ideNegativeStock", "ideX"],
    }


def test_an_order_may_choose_company_and_terminal(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(send(body=ok(iq_api_success={"iq_api_success_items": [[{"data": "SAL7"}]]})))
    order = payload()
    order["IQ_Company_Number"], order["IQ_Terminal_Number"] = "003", "4"
    assert connector.raise_order(order) == "SAL7"
    call = script.seen[0].body["IQ_API"]["IQ_API_Submit_Document_Sales_Order"]
    assert (call["IQ_Company_Number"], call["IQ_Terminal_Number"]) == ("003", "4")


def test_a_bare_root_document_is_accepted(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(send(body=ok(iq_api_success={"iq_api_success_items": [[{"data": "SAL8"}]]})))
    root = payload()["IQ_Submit_Data"]["IQ_Root_JSON"]
    assert connector.raise_order(root) == "SAL8"
    call = script.seen[0].body["IQ_API"]["IQ_API_Submit_Document_Sales_Order"]
    assert call["IQ_Submit_Data"] == {"IQ_Root_JSON": root}


def test_an_order_without_items_is_refused_before_sending(
    iq: tuple[IqRetailConnector, Script],
) -> None:
    connector, script = iq
    order = payload()
    order["IQ_Submit_Data"]["IQ_Root_JSON"]["Processing_Documents"][0]["Items"] = []
    with pytest.raises(RejectedError, match="order #1001 has no items"):
        connector.raise_order(order)
    with pytest.raises(RejectedError, match="Processing_Documents"):
        connector.raise_order({"IQ_Submit_Data": {}})
    assert script.seen == []


def rejection(*, top_level: bool = False) -> dict[str, Any]:
    """Code 9 with the echoed document: a bad debtor and one bad stock code."""
    echo = {
        "document": {"order_number": "#1001", "debtor_account": "NOPE"},
        "errors": [{"error_code": 4, "error_description": "Invalid Debtor Account [NOPE]"}],
        "items": [
            {"stock_code": "A1", "quantity": 2, "errors": []},
            {
                "stock_code": "X",
                "quantity": 1,
                "errors": [{"error_code": 13, "error_description": "Invalid Stock Code [X]"}],
            },
        ],
    }
    data = {
        "iq_error_data_items": [
            {
                "iq_error_code": 9,
                "iq_error_extended_data": {"iq_root_json": {"error_data": [echo]}},
            }
        ]
    }
    error = {
        "iq_error_code": 9,
        "iq_error_description": "Error Processing Submission Data. Refer [IQ_Error_Extended_Data]",
    }
    if top_level:
        return {"iq_api_error": [error], "iq_error_data": data}
    return {"iq_api_error": [{**error, "iq_error_data": data}]}


@pytest.mark.parametrize("top_level", [False, True])
def test_a_rejection_carries_iqs_own_words(
    iq: tuple[IqRetailConnector, Script], top_level: bool
) -> None:
    connector, script = iq
    script.add(send(body=rejection(top_level=top_level)))
    with pytest.raises(RejectedError) as caught:
        connector.raise_order(payload(("A1", 2, 460.0), ("X", 1, 5.0)))
    message = str(caught.value)
    assert message == (
        "IQ Retail refused order #1001: Invalid Debtor Account [NOPE] (code 4); "
        "line 2 (X): Invalid Stock Code [X] (code 13)"
    )
    assert_no_secret(caught.value)


def test_a_rejection_without_details_quotes_the_description(
    iq: tuple[IqRetailConnector, Script],
) -> None:
    connector, script = iq
    script.add(
        send(body={"iq_api_error": [{"iq_error_code": 9, "iq_error_description": "Bad data"}]})
    )
    with pytest.raises(RejectedError, match="refused order #1001: Bad data"):
        connector.raise_order(payload())


def test_collect_errors_tolerates_shapes() -> None:
    answer = {
        "deep": [
            {"errors": "Plain text error"},
            {"items": [{"code": "Q", "errors": [{"message": "Bad qty"}, "Bad price"]}]},
            {"errors": [{"code": "13"}]},
        ]
    }
    assert collect_errors(answer) == [
        "Plain text error",
        "line 1 (Q): Bad qty",
        "line 1 (Q): Bad price",
        "error code 13",
    ]


@pytest.mark.parametrize(
    "reply",
    [
        hang_up,
        send(body=ok(), declare=9000),
        send(raw=b'{"iq_api_error":[{"iq_error_code":0}],"iq_api_succ'),
        send(502, raw=b"Bad Gateway"),
        send(body=ok()),  # success without a document number
        send(body=ok(), delay=1.5),
    ],
)
def test_a_lost_answer_while_raising_says_the_outcome_is_unknown(
    server: tuple[str, Script], reply: Reply
) -> None:
    url, script = server
    with IqRetailConnector(settings(url, timeout=0.5)) as connector:
        script.add(reply)
        with pytest.raises(TransientError, match="may or may not have recorded it") as caught:
            connector.raise_order(payload())
    assert "order #1001" in str(caught.value)
    assert "looks the order up" in (caught.value.hint or "")
    assert_no_secret(caught.value)


def test_rate_limited_raise_is_transient_and_not_ambiguous(
    iq: tuple[IqRetailConnector, Script],
) -> None:
    connector, script = iq
    script.add(send(body={"response_code": 429, "response_message": "Busy", "retry_after": 5}))
    with pytest.raises(TransientError, match="rate limiting") as caught:
        connector.raise_order(payload())
    assert caught.value.retry_after == 5.0


def test_find_order(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(rows({"Document": "SAL00042 "}, {"document": "SAL00043"}), rows())
    assert connector.find_order("#10'01") == "SAL00042"
    assert script.sql(0) == (
        "SELECT document FROM sorders WHERE ordernum = '#10''01' ORDER BY document"
    )
    assert connector.find_order("#1002") is None
    with pytest.raises(RejectedError, match="control character"):
        connector.find_order("#1\n003")
    assert len(script.seen) == 2


def test_errors_survive_pickling(iq: tuple[IqRetailConnector, Script]) -> None:
    connector, script = iq
    script.add(
        send(body={"response_code": 429, "response_message": "Busy"}, headers={"Retry-After": "9"})
    )
    with pytest.raises(TransientError) as caught:
        connector.read("products", None, 5)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (type(copy), str(copy), copy.retry_after) == (TransientError, str(caught.value), 9.0)
