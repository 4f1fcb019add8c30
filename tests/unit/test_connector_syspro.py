"""The SYSPRO connector: reading a seeded SQLite company, raising orders through e.net.

Reading runs against the emulator's tables in a SQLite file. Orders run
against the emulator served on 127.0.0.1, and -- for answers a site may
give that the emulator does not (session ids echoed back, odd ERROR
sentences, timeouts) -- against a scripted ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy import event

import mappings.syspro as maps
from connectors.base import (
    ConnectorError,
    NotSupportedError,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.syspro import (
    SORTOI_PARAMETERS,
    SysproConnector,
    parse_sortoi_answer,
    render_sortoidoc,
)
from connectors.syspro.enet import AnswerLost, ConnectionDropped, SessionEnded
from connectors.xmlsafe import parse
from emulators.syspro import RunningServer, generate_stock, order_counts, read_orders, seed, serve
from mappings.core import map_records

PASSWORD = "Op-s3cret!pw"
DB_PASSWORD = "db-Pa55word"
STOCK = 120
SESSION = "0123456789ABCDEF0123456789ABCDEF01  "


@pytest.fixture(scope="module")
def erp_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('syspro') / 'company.sqlite'}"
    seed(url, stock=STOCK, price_codes=3, warehouses=3, customers=25, seed=11)
    return url


@pytest.fixture
def fresh_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'company.sqlite'}"
    seed(url, stock=10, price_codes=2, warehouses=2, customers=2, seed=1)
    return url


def settings(database_url: str, enet_url: str = "http://127.0.0.1:1/Rest", **over: Any) -> dict:
    base: dict[str, Any] = {
        "database_url": database_url,
        "operator": "ADMIN",
        "operator_password": PASSWORD,
        "company_id": "EDU1",
        "enet_url": enet_url,
        "timeout": 5,
    }
    base.update(over)
    return base


def assert_no_secret(exc: ConnectorError, *more: str) -> None:
    for text in (str(exc), repr(exc), exc.hint or "", repr(pickle.loads(pickle.dumps(exc)))):
        for secret in (PASSWORD, DB_PASSWORD, SESSION.strip(), *more):
            assert secret not in text


def read_all(connector: SysproConnector, stream: str, limit: int) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        page = connector.read(stream, cursor, limit)
        json.dumps(page.records)
        json.dumps(page.next_cursor)
        pages.append(page.records)
        if page.next_cursor is None:
            return pages
        assert len(pages) < 1000, "paging does not end"
        cursor = page.next_cursor


# ---- settings ------------------------------------------------------------------------


def test_settings_defaults_secrets_and_idempotent_load(erp_url: str) -> None:
    loaded = SysproConnector.load_settings(
        settings(erp_url, "https://syspro.example.co.za:31002/SYSPROWCFService/Rest/Logon/")
    )
    assert loaded["enet_url"] == "https://syspro.example.co.za:31002/SYSPROWCFService/Rest"
    assert loaded["active_user_field"] == 1
    assert loaded["active_values"] == ["Y"]
    assert loaded["delete_values"] is None
    assert loaded["price_codes"] == {} and loaded["warehouses"] == []
    assert loaded["order_type"] == "00" and loaded["company_password"] == ""
    assert loaded["customer_active_field"] is None and loaded["page_size"] == 500
    assert SysproConnector.load_settings(loaded) == loaded
    assert SysproConnector.secret_fields() == {
        "database_url",
        "operator_password",
        "company_password",
    }
    assert SysproConnector.kind == "syspro" and SysproConnector.title == "SYSPRO"
    assert SysproConnector.streams == {"products", "customers"}


def test_session_key_hashes_url_and_operator_and_repr_hides_secrets() -> None:
    url = f"postgresql+psycopg://reader:{DB_PASSWORD}@db.example/Company"
    a = SysproConnector(settings(url, "http://s/Rest", operator="Admin"))
    b = SysproConnector(settings(url, "http://s/Rest/", operator="ADMIN"))
    c = SysproConnector(settings(url, "http://t/Rest", operator="ADMIN"))
    assert a.session_key() == b.session_key() != c.session_key()
    assert re.fullmatch(r"syspro:[0-9a-f]{64}", a.session_key())
    assert SysproConnector.session_limit == 1
    for text in (repr(a), a.session_key()):
        assert DB_PASSWORD not in text and PASSWORD not in text
    assert "'ADMIN'" in repr(c) and "db.example" in repr(c)


# ---- reading ---------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, 50, 500])
def test_products_take_three_queries_per_page_whatever_its_size(erp_url: str, limit: int) -> None:
    with SysproConnector(settings(erp_url)) as connector:
        statements: list[str] = []
        event.listen(
            connector.engine,
            "before_cursor_execute",
            lambda conn, cursor, sql, params, context, many: statements.append(sql),
        )
        before = connector.queries
        page = connector.read("products", None, limit)
        assert len(page.records) == min(limit, STOCK)
        assert len(statements) == 3
        assert connector.queries - before == 3
        assert [s.split("FROM")[1].split()[0].strip('"') for s in statements] == [
            "InvMaster",
            "InvPrice",
            "InvWarehouse",
        ]
        # Values are bound, never written into the SQL.
        assert all("SC000001" not in s for s in statements)


def test_pages_cover_every_stock_code_once_with_its_rows(erp_url: str) -> None:
    expected = generate_stock(STOCK, 11, 3, 3)
    with SysproConnector(settings(erp_url)) as connector:
        pages = read_all(connector, "products", 17)
        assert connector.queries == 3 * len(pages)
    records = [r for page in pages for r in page]
    assert [r["StockCode"] for r in records] == [m["StockCode"] for m in expected.master]
    assert all(len(page) == 17 for page in pages[:-1])
    first = records[0]
    assert set(first) >= {"StockCode", "Description", "UserField1", "InvPrice", "InvWarehouse"}
    prices = [p for p in expected.prices if p["StockCode"] == first["StockCode"]]
    assert [(p["PriceCode"], float(p["SellingPrice"])) for p in first["InvPrice"]] == [
        (p["PriceCode"], p["SellingPrice"]) for p in prices
    ]
    assert [w["Warehouse"] for w in first["InvWarehouse"]] == ["WH01", "WH02", "WH03"]
    no_prices = {m["StockCode"] for m in expected.master} - {
        p["StockCode"] for p in expected.prices
    }
    assert all(r["InvPrice"] == [] for r in records if r["StockCode"] in no_prices)


def test_price_codes_and_warehouses_filter_in_the_query(erp_url: str) -> None:
    chosen = settings(erp_url, price_codes={"b": "wholesale"}, warehouses=["WH02"])
    with SysproConnector(chosen) as connector:
        records = connector.read("products", None, 5).records
        products, errors = map_records(maps.PRODUCTS, records, connector.settings)
    assert errors == []
    assert {p["PriceCode"] for r in records for p in r["InvPrice"]} <= {"B"}
    assert {w["Warehouse"] for r in records for w in r["InvWarehouse"]} == {"WH02"}
    variant = products[0]["variants"][0]
    assert [t["tier"] for t in variant["price_tiers"]] in ([], ["wholesale"])
    assert [w["description"] for w in variant["qty_availability"]] == ["WH02"]


def test_customers_page_on_customer_and_map(erp_url: str) -> None:
    with SysproConnector(settings(erp_url, customer_active_field="CustomerOnHold")) as c:
        pages = read_all(c, "customers", 10)
    records = [r for page in pages for r in page]
    codes = [r["Customer"] for r in records]
    assert codes == sorted(codes) and len(codes) == 27 and len(set(codes)) == 27
    assert "CustomerOnHold" in records[0] and "ShipToAddr5" in records[0]
    customers, errors = map_records(maps.CUSTOMERS, records[:3], {})
    assert errors == []
    assert all(c["first_name"] == c["last_name"] for c in customers)


def test_since_is_ignored_and_orders_are_not_a_stream(erp_url: str) -> None:
    from datetime import UTC, datetime

    with SysproConnector(settings(erp_url)) as connector:
        later = connector.read("products", None, 5, since=datetime(2099, 1, 1, tzinfo=UTC))
        assert len(later.records) == 5
        with pytest.raises(NotSupportedError, match="SYSPRO does not sync orders"):
            connector.read("orders", None, 5)


def test_missing_tables_are_a_settings_error(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    with SysproConnector(settings(empty)) as connector, pytest.raises(SettingsError) as caught:
        connector.read("products", None, 5)
    assert "InvMaster" in str(caught.value)
    assert "database_url" in (caught.value.hint or "")


def test_an_unreachable_database_is_transient_and_never_shows_its_password() -> None:
    url = f"postgresql+psycopg://reader:{DB_PASSWORD}@127.0.0.1:1/Company"
    with SysproConnector(settings(url, timeout=2)) as connector:
        with pytest.raises(TransientError) as caught:
            connector.read("products", None, 5)
        assert_no_secret(caught.value)
        with pytest.raises(TransientError):
            connector.find_order("#1001")


# ---- SORTOIDOC ---------------------------------------------------------------------------


def test_render_escapes_text_and_applies_the_limits() -> None:
    payload = maps.order_payload(
        {
            "channel_order_code": "#1001 <&> " + "x" * 40,
            "customer": {"source_customer_code": "A&B"},
            "shipping_address": {"address1": "R&D <Lab> " + "y" * 50},
            "line_items": [{"sku": 'S"1', "qty": 1, "price": 8.000000000000001}],
        },
        {},
    )
    payload["header"]["ShipAddress2"] = "z" * 60  # a hand-made payload is cut too
    xml_in, po = render_sortoidoc(payload)
    assert po == "#1001 <&> " + "x" * 20 and len(po) == 30
    root = parse(xml_in)
    assert root.findtext("Orders/OrderHeader/CustomerPoNumber") == po
    assert root.findtext("Orders/OrderHeader/Customer") == "A&B"
    assert root.findtext("Orders/OrderHeader/ShipAddress1") == ("R&D <Lab> " + "y" * 50)[:40]
    assert root.findtext("Orders/OrderHeader/ShipAddress2") == "z" * 40
    assert root.findtext("Orders/OrderDetails/StockLine/StockCode") == 'S"1'
    assert root.findtext("Orders/OrderDetails/StockLine/Price") == "8.00"
    assert "&amp;" in xml_in and "&lt;Lab&gt;" in xml_in


def test_render_refuses_a_price_sortoi_would_reject() -> None:
    payload = {
        "header": {"CustomerPoNumber": "#1", "Customer": "WEB001"},
        "lines": [{"StockCode": "A1", "OrderQty": "1", "Price": "8.000000000000001"}],
    }
    with pytest.raises(ValueError, match="two-place decimal"):
        render_sortoidoc(payload)


def test_answers_parse_whatever_the_element_case() -> None:
    upper = parse("<SalesOrders><Order><SalesOrder>000123</SalesOrder></Order></SalesOrders>")
    lower = parse(
        "<salesorders><order><salesorder/><stockline><customerpoline>2</customerpoline>"
        "<stockcode>X</stockcode><errormessages><errordescription>Stock code 'X' not found"
        "</errordescription></errormessages></stockline></order><statusofitems>"
        "<itemsrejectedwithwarnings>000001</itemsrejectedwithwarnings></statusofitems>"
        "</salesorders>"
    )
    assert parse_sortoi_answer(upper).sales_order == "000123"
    rejected = parse_sortoi_answer(lower)
    assert rejected.sales_order is None and rejected.recognised
    assert rejected.errors == ("stock line 2 (X): Stock code 'X' not found",)
    assert rejected.rejected_items == 1


# ---- orders against the emulator -------------------------------------------------------


@pytest.fixture
def served(fresh_url: str) -> Iterator[RunningServer]:
    with serve(fresh_url, operator_password=PASSWORD) as server:
        yield server


def canonical(code: str = "#1001", sku: str = "SC000001", **over: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "channel_order_code": code,
        "ordered_date": "2026-11-22T10:00:00+02:00",
        "customer": {"email": "a@b.co.za"},
        "shipping_address": {"first_name": "Thandi", "address1": "86 Beach Road & Sons"},
        "line_items": [{"sku": sku, "qty": 2, "price": 460}],
        "shipping_lines": [{"price": 95}],
    }
    order.update(over)
    return order


def raise_canonical(connector: SysproConnector, order: dict[str, Any]) -> str:
    payload = maps.ORDERS.apply(order, {**connector.settings, "default_customer_code": "WEB001"})
    return connector.raise_order(payload)


def test_an_order_goes_in_and_can_be_found(served: RunningServer, fresh_url: str) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        assert raise_canonical(connector, canonical()) == "000001"
        assert connector.find_order("#1001") == "000001"
        assert connector.find_order("#9999") is None
    (order,) = read_orders(fresh_url)
    assert order["CustomerPoNumber"] == "#1001" and order["ShipAddress1"] == "Thandi"
    assert order["ShipAddress2"] == "86 Beach Road & Sons"
    assert [line["LineType"] for line in order["lines"]] == ["1", "4"]
    counts = served.faults.counts()
    assert counts["Logon"] == counts["Logoff"] == counts["Transaction/Post"] == 1


def test_a_long_reference_is_found_by_its_30_characters(
    served: RunningServer, fresh_url: str
) -> None:
    code = "MARKETPLACE-" + "7" * 30
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        number = raise_canonical(connector, canonical(code))
        assert connector.find_order(code) == number
        assert connector.find_order(code[:30]) == number


def test_lower_case_and_wrapped_answers_are_read(served: RunningServer, fresh_url: str) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        served.faults.lowercase = True
        assert raise_canonical(connector, canonical("#1")) == "000001"
        served.faults.wrap = True
        assert raise_canonical(connector, canonical("#2")) == "000002"
        served.faults.lowercase = False
        with pytest.raises(RejectedError, match="Stock code 'NOPE' not found"):
            raise_canonical(connector, canonical("#3", sku="NOPE"))


def test_a_rejection_quotes_syspro_verbatim(served: RunningServer, fresh_url: str) -> None:
    order = canonical(line_items=[{"sku": "NOPE", "qty": 1, "price": 1}, {"sku": "SC000002"}])
    order["line_items"][1].update(qty=1, price=5)
    with (
        SysproConnector(settings(fresh_url, served.enet_url)) as connector,
        pytest.raises(RejectedError) as caught,
    ):
        raise_canonical(connector, order)
    assert str(caught.value) == (
        "SYSPRO refused order #1001: stock line 1 (NOPE): Stock code 'NOPE' not found"
    )
    assert_no_secret(caught.value)
    assert served.faults.count("Logoff") == 1
    assert order_counts(fresh_url).headers == 0


def test_a_repeat_after_a_lost_answer_returns_the_first_number(
    served: RunningServer, fresh_url: str
) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        served.faults.drop_after_commit_next(1)
        with pytest.raises(TransientError, match="may or may not have recorded"):
            raise_canonical(connector, canonical())
        assert served.faults.count("Logoff") == 1, "logoff follows even a lost answer"
        assert connector.find_order("#1001") == "000001"
        # Without asking first, SYSPRO's duplicate-PO refusal leads to the same number.
        assert raise_canonical(connector, canonical()) == "000001"
    assert order_counts(fresh_url).headers == 1


def test_wrong_password_names_operator_password(served: RunningServer, fresh_url: str) -> None:
    wrong = "not-the-password"
    with SysproConnector(settings(fresh_url, served.enet_url, operator_password=wrong)) as c:
        with pytest.raises(SettingsError) as caught:
            raise_canonical(c, canonical())
        assert "Invalid operator password" in str(caught.value)
        assert "operator_password" in (caught.value.hint or "")
        assert_no_secret(caught.value, wrong)
        with pytest.raises(SettingsError) as checked:
            c.check()
        assert "10 stock codes" in str(checked.value)
        assert "operator_password" in (checked.value.hint or "")
    assert served.faults.count("Transaction/Post") == 0


def test_check_says_what_it_found(served: RunningServer, fresh_url: str) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url, syspro_version="8")) as connector:
        line = connector.check()
    assert "9 of 10 stock codes will sync" in line and "SYSPRO 8" in line
    assert "logs on as operator 'ADMIN'" in line and "SORTOI validated a test order" in line
    assert "\n" not in line
    assert served.faults.counts() == {"Logon": 1, "Transaction/Post": 1, "Logoff": 1}
    assert order_counts(fresh_url).headers == 0


@pytest.mark.parametrize(
    ("arm", "error", "words"),
    [
        (lambda f: f.fail_next(1, 503), TransientError, "HTTP 503"),
        (lambda f: f.fail_next(2, 502), TransientError, "HTTP 502"),
        (
            lambda f: f.error_next(1, "ERROR: Licence limit reached", "Transaction/Post"),
            TransientError,
            "Licence",
        ),
        (
            lambda f: f.error_next(1, "ERROR: Session is not logged on", "Transaction/Post"),
            SessionEnded,
            "ended the session",
        ),
        (lambda f: f.doctype_next(1), PermanentError, "DOCTYPE"),
    ],
)
def test_faults_are_typed(
    served: RunningServer,
    fresh_url: str,
    arm: Callable[[Any], None],
    error: type[ConnectorError],
    words: str,
) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        arm(served.faults)
        with pytest.raises(error) as caught:
            raise_canonical(connector, canonical())
        assert type(caught.value) is error
        assert words in str(caught.value)
        assert_no_secret(caught.value)
        served.faults.reset()
        assert raise_canonical(connector, canonical("#2")) == "000001"


def test_a_slow_answer_is_an_ambiguous_transient(served: RunningServer, fresh_url: str) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url, timeout=0.3)) as connector:
        served.faults.latency = 1.0
        with pytest.raises(TransientError):
            raise_canonical(connector, canonical())


# ---- one client, several channels: po_number --------------------------------------------

PREFIXED = "{channel}-{channel_order_code}"


def test_two_channels_sharing_an_order_number_raise_two_orders(
    served: RunningServer, fresh_url: str
) -> None:
    """Shopify's 1001 and WooCommerce's 1001 are two orders, each found by its own channel."""
    with SysproConnector(settings(fresh_url, served.enet_url, po_number=PREFIXED)) as connector:
        shop = raise_canonical(connector, canonical("1001", channel="shopify"))
        woo = raise_canonical(connector, canonical("1001", "SC000002", channel="woocommerce"))
        assert shop != woo
        assert connector.find_order("1001", channel="shopify") == shop
        assert connector.find_order("1001", channel="woocommerce") == woo
        assert connector.find_order("1001", channel="b2b") is None
        # Without a channel the reference is the CustomerPoNumber itself.
        assert connector.find_order("woocommerce-1001") == woo
        assert connector.find_order("1001") is None
    by_number = {o["SalesOrder"]: o for o in read_orders(fresh_url)}
    assert by_number[shop]["CustomerPoNumber"] == "shopify-1001"
    assert by_number[woo]["CustomerPoNumber"] == "woocommerce-1001"
    assert by_number[woo]["lines"][0]["MStockCode"] == "SC000002"
    assert order_counts(fresh_url).headers == 2


def test_the_default_keeps_the_bare_order_number(served: RunningServer, fresh_url: str) -> None:
    """One channel: CustomerPoNumber is the order number, as before the setting existed."""
    loaded = SysproConnector.load_settings(settings(fresh_url, served.enet_url))
    assert loaded["po_number"] == "{channel_order_code}"
    with SysproConnector(loaded) as connector:
        number = raise_canonical(connector, canonical("#1001", channel="shopify"))
        assert connector.find_order("#1001") == number
        assert connector.find_order("#1001", channel="shopify") == number
        # The collision the setting exists for: under the default a second
        # channel's #1001 is taken for the first (SYSPRO's duplicate-PO check).
        assert raise_canonical(connector, canonical("#1001", channel="woocommerce")) == number
    (order,) = read_orders(fresh_url)
    assert order["CustomerPoNumber"] == "#1001"


def test_an_order_without_a_channel_is_the_apis(served: RunningServer, fresh_url: str) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url, po_number=PREFIXED)) as connector:
        number = raise_canonical(connector, canonical("A-7"))
        assert connector.find_order("A-7", channel="api") == number
    assert read_orders(fresh_url)[0]["CustomerPoNumber"] == "api-A-7"


def test_a_lost_answer_under_a_prefix_still_raises_once(
    served: RunningServer, fresh_url: str
) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url, po_number=PREFIXED)) as connector:
        served.faults.drop_after_commit_next(1)
        with pytest.raises(TransientError):
            raise_canonical(connector, canonical("1001", channel="shopify"))
        assert connector.find_order("1001", channel="shopify") == "000001"
        assert raise_canonical(connector, canonical("1001", channel="shopify")) == "000001"
    assert order_counts(fresh_url).headers == 1


def test_a_reference_too_long_for_syspro_is_refused_not_cut(
    served: RunningServer, fresh_url: str
) -> None:
    code = "7" * 20  # "woocommerce-" + 20 digits is 32 characters
    with SysproConnector(settings(fresh_url, served.enet_url, po_number=PREFIXED)) as connector:
        with pytest.raises(SettingsError) as caught:
            raise_canonical(connector, canonical(code, channel="woocommerce"))
        assert f"order {code} from woocommerce" in str(caught.value)
        assert "32 characters" in str(caught.value)
        assert "po_number" in (caught.value.hint or "")
        with pytest.raises(SettingsError):
            connector.find_order(code, channel="woocommerce")
    assert served.faults.count("Transaction/Post") == 0


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{channel}", "must contain {channel_order_code}"),
        ("{store}-{channel_order_code}", "only {channel} and {channel_order_code}"),
        ("{channel:.2}{channel_order_code}", "only {channel}"),
        ("{channel_order_code", "is not a template"),
        ("W" * 30 + "{channel_order_code}", "leaves no room"),
    ],
)
def test_po_number_templates_that_cannot_tell_orders_apart_are_refused(
    fresh_url: str, template: str, words: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        SysproConnector.load_settings(settings(fresh_url, po_number=template))
    assert "po_number" in str(caught.value) and words in str(caught.value)
    loaded = SysproConnector.load_settings(settings(fresh_url, po_number="W{channel_order_code}"))
    assert loaded["po_number"] == "W{channel_order_code}"


# ---- scripted answers ----------------------------------------------------------------------


class Script:
    """A MockTransport answering each call from a list, recording what it was sent."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        reply = self.replies.pop(0) if self.replies else httpx.Response(200, text="0")
        if isinstance(reply, Exception):
            raise reply
        return reply

    def params(self, index: int) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(str(self.seen[index].url)).query))


def scripted(url: str, script: Script, **over: Any) -> SysproConnector:
    connector = SysproConnector(settings(url, "http://syspro.test/SYSPROWCFService/Rest", **over))
    connector._http = httpx.Client(transport=httpx.MockTransport(script))
    connector._http_pid = os.getpid()
    return connector


def ok_answer(number: str = "000123") -> httpx.Response:
    return httpx.Response(
        200,
        text=f"<SalesOrders><Order><SalesOrder>{number}</SalesOrder></Order></SalesOrders>",
    )


def test_the_session_id_goes_back_exactly_as_sent(fresh_url: str) -> None:
    script = Script(httpx.Response(200, text=SESSION), ok_answer())
    with scripted(fresh_url, script) as connector:
        assert raise_canonical(connector, canonical()) == "000123"
    logon, post_, logoff = script.seen
    assert logon.url.path.endswith("/Logon")
    assert "%20%20" in str(post_.url) and "+" not in str(post_.url.query.decode())
    assert script.params(1)["UserId"] == SESSION
    assert script.params(1)["BusinessObject"] == "SORTOI"
    assert script.params(1)["XmlParameters"] == SORTOI_PARAMETERS
    assert parse(script.params(1)["XmlIn"]).findtext("Orders/OrderHeader/Customer") == "WEB001"
    assert logoff.url.path.endswith("/Logoff") and script.params(2)["UserId"] == SESSION


@pytest.mark.parametrize(
    ("logon_text", "error", "hint"),
    [
        ("ERROR: Invalid operator password", SettingsError, "operator_password"),
        ("ERROR: Operator 'X' not found", SettingsError, "operator"),
        ("ERROR: Invalid company password", SettingsError, "company_password"),
        ("ERROR: Company 'Z' is not on file", SettingsError, "company_id"),
        ("ERROR: Licence limit exceeded, try again later", TransientError, "the hub will try"),
        ("<html>IIS welcome page</html>", PermanentError, "enet_url"),
        ("", PermanentError, "enet_url"),
    ],
)
def test_logon_answers_are_classified(
    fresh_url: str, logon_text: str, error: type[ConnectorError], hint: str
) -> None:
    script = Script(httpx.Response(200, text=logon_text))
    with scripted(fresh_url, script) as connector, pytest.raises(error) as caught:
        raise_canonical(connector, canonical())
    assert type(caught.value) is error
    assert hint in (caught.value.hint or "")
    assert len(script.seen) == 1, "nothing is posted without a session"


def test_wrapped_session_id_and_json_string_answers(fresh_url: str) -> None:
    wrapped = (
        f'<string xmlns="http://schemas.microsoft.com/2003/10/Serialization/">{SESSION}</string>'
    )
    inner = "<SalesOrders><Order><SalesOrder>000777</SalesOrder></Order></SalesOrders>"
    script = Script(httpx.Response(200, text=wrapped), httpx.Response(200, text=json.dumps(inner)))
    with scripted(fresh_url, script) as connector:
        assert raise_canonical(connector, canonical()) == "000777"
    assert script.params(1)["UserId"] == SESSION


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (httpx.ReadTimeout("timed out"), AnswerLost),
        (httpx.RemoteProtocolError("peer closed"), ConnectionDropped),
        (httpx.Response(200, text="<SalesOrders><Order><SalesOr"), AnswerLost),
        (httpx.Response(200, text="<Other/>"), AnswerLost),
        (httpx.Response(200, text="ERROR: Customer 'ZZ' is on hold"), RejectedError),
        (httpx.Response(200, text="ERROR: Business object SORTOI not enabled"), SettingsError),
        (
            httpx.Response(
                200,
                text='<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                "<SalesOrders><Order><SalesOrder>&e;</SalesOrder></Order></SalesOrders>",
            ),
            PermanentError,
        ),
        (
            httpx.Response(200, text="<SalesOrders><Order><SalesOrder/></Order></SalesOrders>"),
            RejectedError,
        ),
    ],
)
def test_post_answers_are_classified_and_logoff_always_follows(
    fresh_url: str, reply: httpx.Response | Exception, error: type[ConnectorError]
) -> None:
    script = Script(httpx.Response(200, text=SESSION), reply)
    with scripted(fresh_url, script) as connector, pytest.raises(error) as caught:
        raise_canonical(connector, canonical())
    assert type(caught.value) is error
    assert_no_secret(caught.value)
    assert script.seen[-1].url.path.endswith("/Logoff")
    if issubclass(error, AnswerLost):  # a TransientError the hub looks up before resending
        assert "SorMaster" in (caught.value.hint or "")


def test_windows_1252_answers_are_decoded() -> None:
    body = '<?xml version="1.0" encoding="Windows-1252"?><SalesOrders><Order><SalesOrder/>'
    body += "<ErrorMessages><ErrorDescription>Caf\u00e9 account on hold</ErrorDescription>"
    body += "</ErrorMessages></Order></SalesOrders>"
    script = Script(
        httpx.Response(200, text=SESSION),
        httpx.Response(200, content=body.encode("cp1252")),
    )
    with (
        scripted("sqlite://", script) as connector,
        pytest.raises(RejectedError, match="Caf\u00e9 account on hold"),
    ):
        raise_canonical(connector, canonical())
