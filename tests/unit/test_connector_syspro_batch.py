"""SYSPRO raising a batch of orders in one e.net session, and ``check``.

Against the emulator served on 127.0.0.1 (which counts Logon, Post and
Logoff calls and can end a session or drop a connection after the Nth
Post), and, for answers the emulator does not give (an ``ERROR:`` sentence
for one order, a connection dropped before SYSPRO recorded anything, a
Logoff that fails), against a scripted ``httpx.MockTransport``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

import mappings.syspro as maps
from connectors.base import (
    ConnectorError,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.syspro import SORTOI_PARAMETERS, SORTOI_VALIDATE_PARAMETERS, SysproConnector
from connectors.syspro.enet import REOPENS_PER_BATCH, ConnectionDropped, SessionEnded
from connectors.xmlsafe import parse
from emulators.syspro import RunningServer, generate_stock, order_counts, read_orders
from tests.unit.test_connector_syspro import (
    SESSION,
    Script,
    assert_no_secret,
    canonical,
    ok_answer,
    scripted,
    settings,
)
from tests.unit.test_connector_syspro import fresh_url as fresh_url
from tests.unit.test_connector_syspro import served as served

POST = "Transaction/Post"
SECOND_SESSION = "FEDCBA9876543210FEDCBA9876543210FE  "


def payloads(connector: SysproConnector, n: int, bad: dict[int, str] | None = None) -> list[dict]:
    """``n`` orders #2001.. for stock codes of the 10-code company; ``bad``:
    position -> a stock code SYSPRO does not hold."""
    stock = [row["StockCode"] for row in generate_stock(10, 1, 2, 2).master]
    built = []
    for i in range(n):
        sku = (bad or {}).get(i, stock[i % len(stock)])
        order = canonical(f"#{2001 + i}", sku)
        built.append(
            maps.ORDERS.apply(order, {**connector.settings, "default_customer_code": "WEB001"})
        )
    return built


def in_syspro(url: str) -> dict[str, str]:
    """CustomerPoNumber -> SalesOrder, asserting that no PO number is there twice."""
    orders = read_orders(url)
    numbers = [o["CustomerPoNumber"] for o in orders]
    assert len(numbers) == len(set(numbers)), f"an order is in SorMaster twice: {numbers}"
    return {o["CustomerPoNumber"]: o["SalesOrder"] for o in orders}


def sessions_left(server: RunningServer) -> int:
    return int(httpx.get(f"{server.base_url}/_faults").json()["sessions"])


# ---- one session per batch ---------------------------------------------------------------


def test_a_batch_of_five_takes_one_logon_and_one_logoff(
    served: RunningServer, fresh_url: str
) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        outcomes = connector.raise_orders(payloads(connector, 5))
    assert outcomes == ["000001", "000002", "000003", "000004", "000005"]
    counts = served.faults.counts()
    assert counts == {"Logon": 1, POST: 5, "Logoff": 1}, counts
    assert in_syspro(fresh_url) == {f"#{2001 + i}": f"00000{i + 1}" for i in range(5)}
    assert sessions_left(served) == 0


def test_a_refusal_on_the_third_of_five_refuses_that_order_alone(
    served: RunningServer, fresh_url: str
) -> None:
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        outcomes = connector.raise_orders(payloads(connector, 5, bad={2: "NOPE"}))
    refused = outcomes[2]
    assert isinstance(refused, RejectedError)
    assert (
        str(refused)
        == "SYSPRO refused order #2003: stock line 1 (NOPE): Stock code 'NOPE' not found"
    )
    assert outcomes[:2] + outcomes[3:] == ["000001", "000002", "000003", "000004"]
    assert served.faults.counts() == {"Logon": 1, POST: 5, "Logoff": 1}
    assert set(in_syspro(fresh_url)) == {"#2001", "#2002", "#2004", "#2005"}


def test_an_error_answer_for_the_third_order_refuses_it_and_the_session_goes_on(
    fresh_url: str,
) -> None:
    script = Script(
        httpx.Response(200, text=SESSION),
        ok_answer("000001"),
        ok_answer("000002"),
        httpx.Response(200, text="ERROR: Customer 'WEB001' is on hold"),
        ok_answer("000003"),
        ok_answer("000004"),
    )
    with scripted(fresh_url, script) as connector:
        outcomes = connector.raise_orders(payloads(connector, 5))
    assert isinstance(outcomes[2], RejectedError)
    assert "Customer 'WEB001' is on hold" in str(outcomes[2])
    assert_no_secret(outcomes[2])
    assert outcomes[:2] + outcomes[3:] == ["000001", "000002", "000003", "000004"]
    paths = [request.url.path.rsplit("/", 1)[-1] for request in script.seen]
    assert paths == ["Logon", "Post", "Post", "Post", "Post", "Post", "Logoff"]
    assert {script.params(i)["UserId"] for i in range(1, 7)} == {SESSION}


def test_a_failed_logoff_changes_no_outcome(fresh_url: str) -> None:
    script = Script(
        httpx.Response(200, text=SESSION),
        ok_answer("000001"),
        ok_answer("000002"),
        httpx.ReadTimeout("timed out"),
    )
    with scripted(fresh_url, script) as connector:
        assert connector.raise_orders(payloads(connector, 2)) == ["000001", "000002"]
        assert not connector._session_ids, "the session id is forgotten all the same"
    assert script.seen[-1].url.path.endswith("/Logoff")


# ---- a session that dies mid-batch -------------------------------------------------------


def test_a_session_expired_mid_batch_is_opened_again_and_every_order_is_in_once(
    served: RunningServer, fresh_url: str
) -> None:
    served.faults.expire_session_next(1, after=2)
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        outcomes = connector.raise_orders(payloads(connector, 5))
    assert outcomes == ["000001", "000002", "000003", "000004", "000005"]
    assert served.faults.injected() == {"expire": 1}
    # The third Post met the ended session (nothing ran) and went again in a new one.
    assert served.faults.counts() == {"Logon": 2, POST: 6, "Logoff": 1}
    assert in_syspro(fresh_url) == {f"#{2001 + i}": f"00000{i + 1}" for i in range(5)}
    assert sessions_left(served) == 0


def test_a_connection_dropped_after_a_post_mid_batch_finds_that_order(
    served: RunningServer, fresh_url: str
) -> None:
    served.faults.drop_after_commit_next(1, after=2)
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        outcomes = connector.raise_orders(payloads(connector, 5))
    assert served.faults.injected() == {"drop": 1}
    assert outcomes == ["000001", "000002", "000003", "000004", "000005"]
    # The third order was found in SorMaster, not posted again; the session
    # that may have survived the drop was logged off before the new Logon.
    assert served.faults.counts() == {"Logon": 2, POST: 5, "Logoff": 2}
    assert in_syspro(fresh_url)["#2003"] == "000003"
    assert order_counts(fresh_url).headers == 5
    assert sessions_left(served) == 0


def test_a_drop_before_syspro_recorded_the_order_posts_it_again_after_looking(
    fresh_url: str,
) -> None:
    script = Script(
        httpx.Response(200, text=SESSION),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(200, text="0"),  # Logoff of the old session
        httpx.Response(200, text=SECOND_SESSION),
        ok_answer("000042"),
    )
    with scripted(fresh_url, script) as connector:
        before = connector.queries or 0
        assert connector.raise_orders(payloads(connector, 1)) == ["000042"]
        assert (connector.queries or 0) - before == 1, "SorMaster was asked once"
    paths = [request.url.path.rsplit("/", 1)[-1] for request in script.seen]
    assert paths == ["Logon", "Post", "Logoff", "Logon", "Post", "Logoff"]
    assert script.params(2)["UserId"] == SESSION
    assert script.params(4)["UserId"] == script.params(5)["UserId"] == SECOND_SESSION


def test_a_drop_whose_new_logon_fails_leaves_the_order_to_be_looked_up(fresh_url: str) -> None:
    script = Script(
        httpx.Response(200, text=SESSION),
        ok_answer("000001"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.Response(200, text="0"),
        httpx.Response(200, text="ERROR: Licence limit reached, try again later"),
    )
    with scripted(fresh_url, script) as connector:
        outcomes = connector.raise_orders(payloads(connector, 3))
    assert outcomes[0] == "000001" and outcomes[2] is None
    dropped = outcomes[1]
    assert isinstance(dropped, ConnectionDropped) and isinstance(dropped, TransientError)
    assert "may or may not have recorded" in str(dropped)
    assert "SorMaster" in (dropped.hint or "")


def test_a_session_that_keeps_ending_leaves_the_rest_to_the_hubs_retry(
    served: RunningServer, fresh_url: str
) -> None:
    served.faults.expire_session_next(REOPENS_PER_BATCH + 1)
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        outcomes = connector.raise_orders(payloads(connector, 3))
    assert isinstance(outcomes[0], SessionEnded) and outcomes[1:] == [None, None]
    assert "ended the session" in str(outcomes[0])
    assert served.faults.count("Logon") == REOPENS_PER_BATCH + 1
    assert order_counts(fresh_url).headers == 0


def test_a_timeout_mid_batch_stops_it_with_that_order_to_look_up(fresh_url: str) -> None:
    script = Script(
        httpx.Response(200, text=SESSION),
        ok_answer("000001"),
        httpx.ReadTimeout("timed out"),
    )
    with scripted(fresh_url, script) as connector:
        outcomes = connector.raise_orders(payloads(connector, 4))
    assert outcomes[0] == "000001" and outcomes[2:] == [None, None]
    assert isinstance(outcomes[1], TransientError)
    assert not isinstance(outcomes[1], ConnectionDropped)
    assert "SorMaster" in (outcomes[1].hint or "")
    paths = [request.url.path.rsplit("/", 1)[-1] for request in script.seen]
    assert paths == ["Logon", "Post", "Post", "Logoff"]


def test_a_logon_refused_for_good_is_every_orders_outcome(
    served: RunningServer, fresh_url: str
) -> None:
    wrong = "not-the-password"
    with SysproConnector(settings(fresh_url, served.enet_url, operator_password=wrong)) as c:
        outcomes = c.raise_orders(payloads(c, 3))
    assert all(isinstance(o, SettingsError) for o in outcomes)
    assert "operator_password" in (outcomes[0].hint or "")  # type: ignore[union-attr]
    assert served.faults.counts() == {"Logon": 1}


def test_a_busy_logon_sends_nothing_and_spends_one_attempt(
    served: RunningServer, fresh_url: str
) -> None:
    served.faults.error_next(1, "ERROR: Licence limit reached", "Logon")
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        outcomes = connector.raise_orders(payloads(connector, 3))
    assert isinstance(outcomes[0], TransientError) and outcomes[1:] == [None, None]
    assert served.faults.count(POST) == 0


def test_an_order_that_cannot_be_rendered_is_refused_without_a_session(fresh_url: str) -> None:
    script = Script()
    with scripted(fresh_url, script) as connector:
        outcomes = connector.raise_orders([{"header": {"CustomerPoNumber": "#1"}, "lines": []}])
    assert isinstance(outcomes[0], RejectedError) and "has no lines" in str(outcomes[0])
    assert script.seen == []


# ---- check ---------------------------------------------------------------------------------


def _flag(url: str, **values: str) -> None:
    """Set InvMaster.UserField1 as an operator in SYSPRO would: "Y" for the
    10 stock codes, but ``values`` for those named."""
    engine = create_engine(url)
    with engine.begin() as conn:
        codes = [row["StockCode"] for row in generate_stock(10, 1, 2, 2).master]
        for code, value in {**dict.fromkeys(codes, "Y"), **values}.items():
            conn.execute(
                text('UPDATE "InvMaster" SET "UserField1" = :v WHERE "StockCode" = :c'),
                {"v": value, "c": code},
            )
    engine.dispose()


def test_check_counts_what_will_sync_and_validates_without_recording(
    served: RunningServer, fresh_url: str
) -> None:
    _flag(fresh_url, SC000002="N", SC000003=" y ", SC000004="")
    with SysproConnector(settings(fresh_url, served.enet_url)) as connector:
        raised = connector.raise_order(payloads(connector, 1)[0])
        line = connector.check()
    assert "8 of 10 stock codes will sync as products (UserField1 is Y)" in line
    assert "the other 2 are read as Delete" in line
    assert "SORTOI validated a test order (customer C000001, stock code SC000001)" in line
    assert "ValidateOnly=Y" in line and "\n" not in line
    assert in_syspro(fresh_url) == {"#2001": raised}, "check recorded no order"
    assert order_counts(fresh_url).headers == 1
    assert served.faults.counts() == {"Logon": 2, POST: 2, "Logoff": 2}


def test_check_counts_delete_and_ignore_and_uses_the_default_customer(
    served: RunningServer, fresh_url: str
) -> None:
    _flag(fresh_url, SC000002="D", SC000003="x")
    over = {"delete_values": ["d"], "default_customer_code": "WEB001", "order_warehouse": "WH02"}
    with SysproConnector(settings(fresh_url, served.enet_url, **over)) as connector:
        line = connector.check()
    assert "8 of 10 stock codes will sync as products" in line
    assert "1 are read as Delete and 1 as Ignore" in line
    assert "customer WEB001" in line
    assert order_counts(fresh_url).headers == 0


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"default_customer_code": "NOBODY"}, "Customer 'NOBODY' not found"),
        ({"order_warehouse": "WH09"}, "Warehouse 'WH09' not found for stock code 'SC000001'"),
    ],
)
def test_a_sortoi_refusing_validation_fails_check_in_syspros_words(
    served: RunningServer, fresh_url: str, over: dict[str, Any], words: str
) -> None:
    _flag(fresh_url)
    with (
        SysproConnector(settings(fresh_url, served.enet_url, **over)) as connector,
        pytest.raises(SettingsError) as caught,
    ):
        connector.check()
    message = str(caught.value)
    assert message.startswith("database ") and "10 of 10 stock codes" in message
    assert "SORTOI refused a test order" in message and words in message
    assert "default_customer_code" in (caught.value.hint or "")
    assert_no_secret(caught.value)
    assert order_counts(fresh_url).headers == 0
    assert served.faults.count("Logoff") == 1


def test_check_sends_validate_only_and_refuses_a_recorded_order(fresh_url: str) -> None:
    script = Script(httpx.Response(200, text=SESSION), ok_answer("000777"))
    with scripted(fresh_url, script) as connector, pytest.raises(PermanentError) as caught:
        connector.check()
    assert script.params(1)["XmlParameters"] == SORTOI_VALIDATE_PARAMETERS
    validate_only = "<ValidateOnly>Y</ValidateOnly>"
    assert SORTOI_PARAMETERS.replace("<ValidateOnly>N</ValidateOnly>", validate_only) == (
        SORTOI_VALIDATE_PARAMETERS
    )
    document = parse(script.params(1)["XmlIn"])
    assert document.findtext("Orders/OrderHeader/CustomerPoNumber", "").startswith("S2S-CHECK-")
    assert (
        "recorded a test order (customer C000001, stock code SC000001) as sales order 000777"
        in str(caught.value)
    )
    assert "cancel sales order 000777" in (caught.value.hint or "")
    assert script.seen[-1].url.path.endswith("/Logoff")


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (
            httpx.Response(200, text="ERROR: Business object SORTOI not enabled"),
            SettingsError,
            "enable the SORTOI business object",
        ),
        (httpx.Response(200, text="<Other/>"), PermanentError, "enet_url"),
        (httpx.ReadTimeout("timed out"), TransientError, "try again"),
    ],
)
def test_check_answers_are_classified(
    fresh_url: str, reply: httpx.Response | Exception, error: type[ConnectorError], words: str
) -> None:
    script = Script(httpx.Response(200, text=SESSION), reply)
    with scripted(fresh_url, script) as connector, pytest.raises(error) as caught:
        connector.check()
    assert words in (caught.value.hint or "") + str(caught.value)
    assert "10 stock codes" in str(caught.value)
    assert script.seen[-1].url.path.endswith("/Logoff")
