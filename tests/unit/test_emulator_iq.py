"""The IQ Retail emulator answers as the wire reference says a real IQ server does.

The connector is tested against this emulator, so every shape here is one a
connector will meet at a site: HTTP 200 with ``iq_api_error`` for everything,
keys in any case, DBISAM's ``SELECT TOP n``, code 9 with IQ's nested errors,
no deduplication of orders, and the faults that sit between hub and site.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from emulators.iq_retail import (
    DEBTORS,
    GENERIC_SQL,
    SALES_ORDER,
    ConnectionDropped,
    Faults,
    RunningServer,
    create_app,
    generate_stock,
    main,
    order_counts,
    read_orders,
    seed,
    serve,
    touch,
)

PASSWORD = "s3cret-Key"
ITEMS = 40
SEED = 5


def envelope(method: str, *, password: str = PASSWORD, **fields: Any) -> dict[str, Any]:
    return {
        "IQ_API": {
            method: {
                "IQ_Company_Number": "002",
                "IQ_Terminal_Number": "1",
                "IQ_User_Number": "99",
                "IQ_User_Password": password,
                "IQ_Partner_Passphrase": "",
                **fields,
            }
        }
    }


def sales_order(
    order_number: str = "#1001",
    debtor: str = "CASH01",
    items: list[tuple[str, float, float]] | None = None,
) -> dict[str, Any]:
    """The reference's example submission, with the given debtor and items."""
    lines = items if items is not None else [("IQ000001", 2, 460.0)]
    return {
        "IQ_Submit_Data": {
            "IQ_Root_JSON": {
                "IQ_Identification_Info": {"Company_Code": "002"},
                "Processing_Documents": [
                    {
                        "Export_Class": "Sales_Order",
                        "Document": {
                            "Order_Number": order_number,
                            "Debtor_Account": debtor,
                            "Sales_Representative_Number": 1,
                            "Document_Includes_VAT": False,
                            "Delivery_Address_Information": [
                                "86 Beach Road",
                                "",
                                "Cape Town",
                                "WC",
                            ],
                            "Order_Information": {"Order_Date": "2026-11-22"},
                        },
                        "Items": [
                            {"Stock_Code": code, "Quantity": qty, "Item_Price_Exclusive": price}
                            for code, qty, price in lines
                        ],
                    }
                ],
            }
        },
        "IQ_Overrides": ["ideNegativeStock"],
    }


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'iq.sqlite'}"
    seed(url, products=ITEMS, seed=SEED)
    return url


@pytest.fixture
def iq(db_url: str) -> Iterator[RunningServer]:
    with serve(db_url, password=PASSWORD) as server:
        yield server


@pytest.fixture
def client(iq: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=iq.base_url, auth=("99", PASSWORD), timeout=10) as c:
        yield c


def call(client: httpx.Client, method: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/IQRetailRestAPI/v1/{method}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sql(client: httpx.Client, statement: str) -> dict[str, Any]:
    return call(client, GENERIC_SQL, envelope(GENERIC_SQL, IQ_SQL_Text=statement))


def submit(client: httpx.Client, **kw: Any) -> dict[str, Any]:
    return call(client, SALES_ORDER, envelope(SALES_ORDER, **sales_order(**kw)))


def error_code(answer: dict[str, Any]) -> int:
    return answer["iq_api_error"][0]["iq_error_code"]


def extended(answer: dict[str, Any]) -> dict[str, Any]:
    """error_data[0], where IQ echoes the rejected document."""
    item = answer["iq_api_error"][0]["iq_error_data"]["iq_error_data_items"][0]
    return item["iq_error_extended_data"]["iq_root_json"]["error_data"][0]


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def test_generated_stock_is_a_function_of_the_seed() -> None:
    rows = generate_stock(4000, 11)
    assert rows == generate_stock(4000, 11)
    assert rows != generate_stock(4000, 12)
    # More items extend the data; they do not reshuffle the first ones.
    assert generate_stock(4100, 11)[:4000] == rows
    codes = [row["code"] for row in rows]
    assert codes == sorted(codes) and codes[0] == "IQ000001" and len(set(codes)) == 4000
    hidden = sum(1 for row in rows if not row["webitem"])
    assert 0.03 * 4000 < hidden < 0.07 * 4000
    stamps = [row["modified"] for row in rows]
    assert min(stamps) >= "2026-01-01 00:00:00" and max(stamps) < "2026-11-01 00:00:00"
    assert {stamp[:7] for stamp in stamps} == {f"2026-{m:02d}" for m in range(1, 11)}
    for row in rows:
        assert row["sellprice1"] == round(row["sellprice1"], 2) > 0
        assert row["sellprice10"] <= row["sellprice1"]


def test_seed_stores_the_generated_rows_and_keeps_orders(db_url: str, tmp_path: Path) -> None:
    expected = generate_stock(ITEMS, SEED)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        stored = [
            dict(row._mapping) for row in conn.execute(text("SELECT * FROM Stock ORDER BY code"))
        ]
        debtors = conn.execute(text("SELECT accnum, name FROM Debtors ORDER BY accnum")).all()
    engine.dispose()
    assert [row["code"] for row in stored] == [row["code"] for row in expected]
    for got, want in zip(stored, expected, strict=True):
        assert bool(got["webitem"]) is want["webitem"]
        assert float(got["sellprice1"]) == want["sellprice1"]
        assert float(got["onhand"]) == want["onhand"]
        assert got["modified"] == want["modified"] and got["descript"] == want["descript"]
    assert [tuple(row) for row in debtors] == sorted(DEBTORS)

    summary = seed(db_url, products=ITEMS, seed=SEED)
    assert summary.products == ITEMS
    assert summary.hidden == sum(1 for row in expected if not row["webitem"])
    assert summary.web_items + summary.hidden == ITEMS and summary.debtors == len(DEBTORS)
    assert (summary.first_code, summary.last_code) == ("IQ000001", f"IQ{ITEMS:06d}")


def test_touch_changes_chosen_items_deterministically(tmp_path: Path) -> None:
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("a.sqlite", "b.sqlite"))
    for url in (first, second):
        seed(url, products=200, seed=2)
    changed = touch(first, 12, seed=4, when="2026-11-22 09:00:00")
    assert changed == touch(second, 12, seed=4, when="2026-11-22 09:00:00")
    assert len(changed) == 12 and changed == sorted(changed)
    engine = create_engine(first)
    with engine.connect() as conn:
        rows = {row.code: row for row in conn.execute(text("SELECT * FROM stock"))}
    engine.dispose()
    before = {row["code"]: row for row in generate_stock(200, 2)}
    for code, row in rows.items():
        if code in changed:
            assert row.modified == "2026-11-22 09:00:00"
            assert float(row.sellprice1) > before[code]["sellprice1"]
            assert float(row.onhand) > before[code]["onhand"]
        else:
            assert row.modified == before[code]["modified"]
    with pytest.raises(ValueError):
        touch(first, 201, seed=1)


# --------------------------------------------------------------------------
# Credentials and envelope
# --------------------------------------------------------------------------


def test_credentials_are_checked_in_basic_auth_and_in_the_body(iq: RunningServer) -> None:
    url = f"{iq.base_url}/IQRetailRestAPI/v1/{GENERIC_SQL}"
    good = envelope(GENERIC_SQL, IQ_SQL_Text="SELECT TOP 1 code FROM Stock")
    wrong = "Invalid User Number or Password"

    def post(auth: tuple[str, str] | None, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(url, json=body, auth=auth)
        assert response.status_code == 200  # IQ reports even this in the body
        return response.json()

    assert error_code(post(("99", PASSWORD), good)) == 0
    for auth in (None, ("99", "nope"), ("98", PASSWORD)):
        answer = post(auth, good)
        assert answer == {"iq_api_error": [{"iq_error_code": 2, "iq_error_description": wrong}]}
    body_password = envelope(GENERIC_SQL, password="nope", IQ_SQL_Text="SELECT code FROM Stock")
    assert post(("99", PASSWORD), body_password)["iq_api_error"][0] == {
        "iq_error_code": 2,
        "iq_error_description": wrong,
    }
    body_user = envelope(GENERIC_SQL, IQ_SQL_Text="SELECT code FROM Stock")
    body_user["IQ_API"][GENERIC_SQL]["IQ_User_Number"] = "98"
    assert error_code(post(("99", PASSWORD), body_user)) == 2
    body_company = envelope(GENERIC_SQL, IQ_SQL_Text="SELECT code FROM Stock")
    body_company["IQ_API"][GENERIC_SQL]["IQ_Company_Number"] = "007"
    assert post(("99", PASSWORD), body_company) == {
        "iq_api_error": [
            {"iq_error_code": 3, "iq_error_description": "Invalid Company Number [007]"}
        ]
    }


def test_keys_match_in_any_case_and_answers_are_lower_case(client: httpx.Client) -> None:
    body = {
        "iq_api": {
            "iq_api_request_genericsql": {
                "iq_company_number": "002",
                "IQ_USER_NUMBER": "99",
                "Iq_User_Password": PASSWORD,
                "iq_sql_TEXT": "SELECT TOP 1 code FROM stock ORDER BY code",
            }
        }
    }
    answer = call(client, "iq_api_request_genericsql", body)
    assert answer == {
        "iq_api_error": [{"iq_error_code": 0}],
        "iq_api_result_data": {"records": [{"code": "IQ000001"}]},
    }
    order = sales_order()
    shouting = {"IQ_API": {SALES_ORDER.upper(): {**envelope(SALES_ORDER)["IQ_API"][SALES_ORDER]}}}
    shouting["IQ_API"][SALES_ORDER.upper()]["iq_submit_data"] = order["IQ_Submit_Data"]
    answer = call(client, SALES_ORDER, shouting)
    assert answer["iq_api_success"]["iq_api_success_items"][0][0]["data"] == "SAL00001"


def test_a_broken_envelope_and_an_unknown_method_are_codes_too(client: httpx.Client) -> None:
    response = client.post(
        f"/IQRetailRestAPI/v1/{GENERIC_SQL}",
        content=b"not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200 and error_code(response.json()) == 1
    answer = call(client, GENERIC_SQL, envelope(SALES_ORDER, IQ_SQL_Text="SELECT 1"))
    assert error_code(answer) == 1  # the body names another method than the URL
    answer = call(client, "IQ_API_Request_Nothing", envelope("IQ_API_Request_Nothing"))
    assert answer["iq_api_error"][0] == {
        "iq_error_code": 5,
        "iq_error_description": "Unknown API Method [IQ_API_Request_Nothing]",
    }
    no_documents = envelope(SALES_ORDER, IQ_Submit_Data={"IQ_Root_JSON": {}})
    assert error_code(call(client, SALES_ORDER, no_documents)) == 1


# --------------------------------------------------------------------------
# GenericSQL
# --------------------------------------------------------------------------


def test_top_and_keyset_paging_return_the_right_rows(client: httpx.Client) -> None:
    expected = generate_stock(ITEMS, SEED)
    seen: list[dict[str, Any]] = []
    last = ""
    while True:
        answer = sql(
            client,
            "SELECT TOP 7 code, descript, webitem, sellprice1, onhand, modified "
            f"FROM Stock WHERE code > '{last}' ORDER BY code",
        )
        assert error_code(answer) == 0
        page = answer["iq_api_result_data"]["records"]
        assert len(page) <= 7
        if not page:
            break
        seen.extend(page)
        last = page[-1]["code"]
    assert [row["code"] for row in seen] == [row["code"] for row in expected]
    for got, want in zip(seen, expected, strict=True):
        assert got == {
            "code": want["code"],
            "descript": want["descript"],
            "webitem": want["webitem"],
            "sellprice1": want["sellprice1"],
            "onhand": want["onhand"],
            "modified": want["modified"],
        }
        assert isinstance(got["webitem"], bool) and isinstance(got["sellprice1"], float)
        assert isinstance(got["onhand"], int)


def test_columns_come_back_as_written_in_the_select(client: httpx.Client) -> None:
    want = generate_stock(ITEMS, SEED)[2]
    answer = sql(
        client,
        "select top 1 s.Code, descript AS Title, WebItem active, SELLPRICE1, sellprice2 * 1 "
        "from STOCK s where s.code = 'IQ000003';",
    )
    assert error_code(answer) == 0
    [record] = answer["iq_api_result_data"]["records"]
    assert set(record) >= {"Code", "Title", "active", "SELLPRICE1"}
    assert record["Code"] == "IQ000003" and record["Title"] == want["descript"]
    assert record["active"] is want["webitem"] and record["SELLPRICE1"] == want["sellprice1"]
    hidden = [row for row in generate_stock(ITEMS, SEED) if not row["webitem"]]
    answer = sql(client, "SELECT code, webitem FROM Stock WHERE webitem = FALSE ORDER BY code")
    assert answer["iq_api_result_data"]["records"] == [
        {"code": row["code"], "webitem": False} for row in hidden
    ]
    answer = sql(client, "SELECT TOP 2 * FROM Stock ORDER BY code")
    first = answer["iq_api_result_data"]["records"][0]
    assert first["code"] == "IQ000001" and "sellprice10" in first and "salesorder" in first


def test_only_a_single_select_is_allowed(client: httpx.Client, db_url: str) -> None:
    refused = {
        "iq_error_code": 6,
        "iq_error_description": "Invalid SQL Statement. Only a single SELECT statement is allowed",
    }
    for statement in (
        "DELETE FROM Stock",
        "UPDATE Stock SET onhand = 0",
        "DROP TABLE sorders",
        "SELECT code FROM Stock; DELETE FROM Stock",
        "SELECT * INTO Stock2 FROM Stock",
        "WITH x AS (SELECT code FROM Stock) SELECT * FROM x",
        "   ",
    ):
        assert sql(client, statement) == {"iq_api_error": [refused]}, statement
    # A semicolon inside a literal, or one at the end, is still one statement.
    assert error_code(sql(client, "SELECT code FROM Stock WHERE descript = 'a;b';")) == 0
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM Stock")).scalar_one() == ITEMS
    engine.dispose()


def test_a_bad_column_answers_the_databases_message(client: httpx.Client) -> None:
    answer = sql(client, "SELECT TOP 5 code, nosuchcolumn FROM Stock")
    assert error_code(answer) == 7
    assert "nosuchcolumn" in answer["iq_api_error"][0]["iq_error_description"]
    assert "iq_api_result_data" not in answer
    assert error_code(sql(client, "SELECT TOP x code FROM Stock")) == 7


# --------------------------------------------------------------------------
# Sales orders
# --------------------------------------------------------------------------


def test_a_submitted_order_is_written_and_its_number_returned(
    client: httpx.Client, db_url: str
) -> None:
    answer = submit(client, items=[("IQ000001", 2, 460.0), ("IQ000007", 1, 99.5)])
    assert answer == {
        "iq_api_error": [{"iq_error_code": 0}],
        "iq_api_success": {
            "iq_api_success_items": [[{"fieldname": "document_number", "data": "SAL00001"}]]
        },
    }
    [order] = read_orders(db_url)
    assert (order["document"], order["ordernum"], order["accnum"]) == (
        "SAL00001",
        "#1001",
        "CASH01",
    )
    assert order["orderdate"] == "2026-11-22" and order["deladdr3"] == "Cape Town"
    assert [(line["stockcode"], line["qty"], line["price"]) for line in order["lines"]] == [
        ("IQ000001", 2, 460.0),
        ("IQ000007", 1, 99.5),
    ]
    # The hub's find_order reads it back the way the reference says.
    found = sql(client, "SELECT document FROM sorders WHERE ordernum = '#1001'")
    assert found["iq_api_result_data"]["records"] == [{"document": "SAL00001"}]


def test_the_same_order_twice_makes_two_documents(client: httpx.Client, db_url: str) -> None:
    first = submit(client)["iq_api_success"]["iq_api_success_items"][0][0]["data"]
    second = submit(client)["iq_api_success"]["iq_api_success_items"][0][0]["data"]
    assert (first, second) == ("SAL00001", "SAL00002")
    counts = order_counts(db_url)
    assert (counts.headers, counts.lines, counts.orders) == (2, 2, 1)
    found = sql(client, "SELECT document FROM sorders WHERE ordernum = '#1001' ORDER BY document")
    assert [r["document"] for r in found["iq_api_result_data"]["records"]] == [first, second]


def test_an_unknown_debtor_is_code_9_with_code_4_on_the_document(
    client: httpx.Client, db_url: str
) -> None:
    answer = submit(client, debtor="NOSUCH")
    for _ in range(2):  # a rejection is permanent: the retry gets the same answer
        assert answer["iq_api_error"][0]["iq_error_code"] == 9
        assert answer["iq_api_error"][0]["iq_error_description"] == (
            "Error Processing Submission Data. Refer [IQ_Error_Extended_Data]"
        )
        echoed = extended(answer)
        assert echoed["errors"] == [
            {"error_code": 4, "error_description": "Invalid Debtor Account [NOSUCH]"}
        ]
        assert echoed["document"]["order_number"] == "#1001"
        assert echoed["document"]["debtor_account"] == "NOSUCH"
        assert echoed["items"] == [
            {"stock_code": "IQ000001", "quantity": 2, "item_price_exclusive": 460.0, "errors": []}
        ]
        answer = submit(client, debtor="NOSUCH")
    assert order_counts(db_url).headers == 0


def test_an_unknown_stock_code_is_code_9_with_code_13_on_the_item(
    client: httpx.Client, db_url: str
) -> None:
    answer = submit(client, items=[("IQ000001", 1, 10.0), ("GONE-1", 3, 5.0)])
    assert error_code(answer) == 9
    echoed = extended(answer)
    assert echoed["errors"] == []
    assert [item["errors"] for item in echoed["items"]] == [
        [],
        [{"error_code": 13, "error_description": "Invalid Stock Code [GONE-1]"}],
    ]
    assert echoed["items"][1]["stock_code"] == "GONE-1"
    assert order_counts(db_url).headers == 0
    bad_qty = extended(submit(client, items=[("IQ000001", 0, 10.0)]))
    assert bad_qty["items"][0]["errors"][0]["error_code"] == 14
    no_items = extended(submit(client, items=[]))
    assert no_items["errors"] == [{"error_code": 16, "error_description": "No Items Supplied"}]


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


def test_latency_delays_every_call(iq: RunningServer, client: httpx.Client) -> None:
    iq.faults.latency = 0.3
    started = time.monotonic()
    assert error_code(sql(client, "SELECT TOP 1 code FROM Stock")) == 0
    assert time.monotonic() - started >= 0.3
    iq.faults.reset()
    started = time.monotonic()
    sql(client, "SELECT TOP 1 code FROM Stock")
    assert time.monotonic() - started < 0.3


def test_fail_next_answers_the_status_with_a_plain_body(
    iq: RunningServer, client: httpx.Client
) -> None:
    iq.faults.fail_next(2, status=503)
    for _ in range(2):
        response = client.post(
            f"/IQRetailRestAPI/v1/{GENERIC_SQL}",
            json=envelope(GENERIC_SQL, IQ_SQL_Text="SELECT code FROM Stock"),
        )
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "Service Unavailable"
    assert error_code(sql(client, "SELECT TOP 1 code FROM Stock")) == 0
    assert iq.faults.injected() == {"fail": 2}


def test_rate_limit_answers_429_in_a_200_body(iq: RunningServer, client: httpx.Client) -> None:
    iq.faults.rate_limit_next(1, retry_after=3)
    response = client.post(f"/IQRetailRestAPI/v1/{SALES_ORDER}", json=envelope(SALES_ORDER))
    assert response.status_code == 200
    assert response.json() == {"response_code": 429, "response_message": "Too many requests"}
    assert response.headers["retry-after"] == "3"
    assert error_code(submit(client)) == 0


def test_a_connection_dropped_after_commit_leaves_the_document(
    iq: RunningServer, client: httpx.Client, db_url: str
) -> None:
    iq.faults.drop_after_commit_next(1)
    # A rejected order commits nothing, so it does not use up the drop.
    assert error_code(submit(client, debtor="NOSUCH")) == 9
    with pytest.raises(httpx.RemoteProtocolError):
        submit(client, order_number="#2001")
    [order] = read_orders(db_url)
    assert order["ordernum"] == "#2001" and order["document"] == "SAL00001"
    found = sql(client, "SELECT document FROM sorders WHERE ordernum = '#2001'")
    assert found["iq_api_result_data"]["records"] == [{"document": "SAL00001"}]
    assert submit(client, order_number="#2002")["iq_api_success"]["iq_api_success_items"] == [
        [{"fieldname": "document_number", "data": "SAL00002"}]
    ]
    assert iq.faults.injected() == {"drop": 1}
    assert iq.faults.count(SALES_ORDER) == 3 and iq.faults.count(GENERIC_SQL.lower()) == 1


def test_faults_are_settable_over_http_and_calls_are_counted(
    iq: RunningServer, client: httpx.Client
) -> None:
    response = httpx.post(
        f"{iq.base_url}/_faults",
        json={"fail_next": {"n": 1, "status": 502}, "rate_limit_next": 1, "latency": 0.05},
    )
    assert response.status_code == 200
    state = response.json()
    assert state["fail_next"] == 1 and state["fail_status"] == 502
    assert state["rate_limit_next"] == 1 and state["latency"] == 0.05
    body = envelope(GENERIC_SQL, IQ_SQL_Text="SELECT TOP 1 code FROM Stock")
    assert client.post(f"/IQRetailRestAPI/v1/{GENERIC_SQL}", json=body).status_code == 502
    assert call(client, GENERIC_SQL, body)["response_code"] == 429
    assert error_code(call(client, GENERIC_SQL, body)) == 0
    assert iq.faults.counts() == {GENERIC_SQL: 3}
    assert httpx.post(f"{iq.base_url}/_faults", json={"reset": True}).json()["latency"] == 0
    assert httpx.post(f"{iq.base_url}/_faults", json=[1]).status_code == 400


def test_without_uvicorn_a_drop_raises_after_the_commit(db_url: str) -> None:
    faults = Faults()
    app = create_app(db_url, password=PASSWORD, faults=faults)
    faults.drop_after_commit_next(1)
    with TestClient(app) as test_client:
        test_client.auth = ("99", PASSWORD)
        with pytest.raises(ConnectionDropped):
            test_client.post(
                f"/IQRetailRestAPI/v1/{SALES_ORDER}", json=envelope(SALES_ORDER, **sales_order())
            )
    assert order_counts(db_url).headers == 1


def test_main_refuses_a_missing_password(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--db", "sqlite:///unused.sqlite"])
    assert exit_info.value.code == 2 and "--password" in capsys.readouterr().err
