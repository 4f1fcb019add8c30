"""SQL sources: a single SELECT gets through, every value is bound or escaped.

Two kinds of SQL leave the hub. A SQL ERP's query is the operator's text,
run with the hub's values (the paging cursor) as bound parameters: the guard
must let one read through and nothing else — no second statement (SQL Server
runs ``SELECT 1 DROP TABLE x`` as two), no writes hidden in comments or CTEs,
no ``SELECT INTO``, no locks on a live ERP, no stray ``)`` escaping the
subquery the hub wraps it in. IQ Retail's GenericSQL takes only text, so the
hub writes its values as literals: a stock code or order number holding
quotes must come back as exactly that value, never as SQL.

The end-to-end checks run against real databases holding hostile codes and
assert what a user would: every row read once, nothing else changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, func, insert, select, text

from connectors.base import SettingsError
from connectors.iq_retail import IqRetailConnector, find_order_sql, sql_literal, stock_page_sql
from connectors.sql import QueryError, SqlConnector, guard_query
from emulators import iq_retail, sql_erp
from mappings import get_map

HOSTILE = [
    "O'Brien",
    "x' OR '1'='1",
    "Z'; DROP TABLE products; --",
    "A') UNION SELECT 1 --",
    "back\\slash'",
    "''",
    "'",
    "semi;colon",
    "/* c */",
    "Ünïcødé-ß-日本",
    "emoji-🙂",
    'a"b',
    "]bracket[",
    "%_like",
    ":cursor",
]

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------
# The guard
# --------------------------------------------------------------------------

REFUSED = {
    "two statements": "SELECT 1; DROP TABLE products",
    "two statements, T-SQL style": "SELECT 1 SELECT 2",
    "comment hiding a statement": "SELECT 1 /* hidden */ DROP TABLE products",
    "line comment hiding a statement": "SELECT 1 -- nothing to see\nDELETE FROM products",
    "CTE that deletes": "WITH d AS (DELETE FROM products RETURNING *) SELECT * FROM d",
    "CTE that inserts": "WITH d AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM d",
    "CTE that updates": "WITH d AS (UPDATE products SET qty = 0 RETURNING *) SELECT * FROM d",
    "SELECT INTO": "SELECT * INTO backup FROM products",
    "INTO OUTFILE": "SELECT * FROM products INTO OUTFILE '/tmp/x'",
    "FOR UPDATE": "SELECT * FROM products FOR UPDATE",
    "FOR SHARE": "SELECT * FROM products FOR SHARE",
    "FOR KEY SHARE": "SELECT * FROM products FOR KEY SHARE",
    "FOR NO KEY UPDATE": "SELECT * FROM products FOR NO KEY UPDATE",
    "LOCK IN SHARE MODE": "SELECT * FROM products LOCK IN SHARE MODE",
    "UPDLOCK hint": "SELECT * FROM products WITH (UPDLOCK)",
    "TABLOCKX, HOLDLOCK hints": "SELECT * FROM products WITH (TABLOCKX, HOLDLOCK)",
    "WAITFOR": "SELECT 1 WAITFOR DELAY '00:10:00'",
    "SET": "SELECT 1 SET ROWCOUNT 0",
    "USE": "SELECT 1 USE master",
    "BEGIN": "SELECT 1 BEGIN TRAN",
    "EXEC": "SELECT 1 EXEC xp_cmdshell 'dir'",
    "escaping the wrapper": "SELECT * FROM products) q, (SELECT 1",
    "escaping the wrapper with a comment": "SELECT * FROM products) AS q --",
    "unclosed parenthesis": "SELECT (1 FROM products",
    "not a SELECT": "VALUES (1)",
    "PRAGMA": "PRAGMA table_info(products)",
    "unclosed literal hiding the rest": "SELECT 'abc FROM products",
}

ALLOWED = {
    "plain": 'SELECT "Prod", "SKU" FROM products',
    "trailing semicolon": "SELECT Prod FROM products;",
    "words inside literals": "SELECT 'DROP TABLE x; SET y' AS note FROM products",
    "words inside quoted names": 'SELECT "Update" AS u, [Delete] AS d FROM t',
    "UNION ALL": "SELECT a FROM t UNION ALL SELECT a FROM u",
    "parenthesised UNION": "(SELECT 1) UNION (SELECT 2)",
    "EXCEPT": "SELECT a FROM t EXCEPT SELECT a FROM u",
    "CTE": "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT x FROM b",
    "subqueries": "SELECT (SELECT max(x) FROM t) AS m FROM (SELECT 1 AS y) s WHERE y IN (SELECT 1)",
    "NOLOCK (a read without locks)": "SELECT * FROM InvMaster WITH (NOLOCK)",
    "MySQL CHARACTER SET": "SELECT CAST(x AS CHAR CHARACTER SET utf8mb4) AS y FROM t",
    "OFFSET FETCH": "SELECT a FROM t ORDER BY a OFFSET 0 ROWS FETCH NEXT 5 ROWS ONLY",
    "literal parentheses": "SELECT ')' AS a, '(' AS b FROM t",
}


@pytest.mark.parametrize("query", list(REFUSED.values()), ids=list(REFUSED))
def test_the_guard_refuses_anything_but_one_plain_read(query: str) -> None:
    with pytest.raises(QueryError):
        guard_query(query)
    # An operator setting such a query is told which setting, before anything runs.
    with pytest.raises(SettingsError) as caught:
        SqlConnector.load_settings({"url": "sqlite:///x.db", "products_query": query})
    assert "products_query" in str(caught.value)


@pytest.mark.parametrize("query", list(ALLOWED.values()), ids=list(ALLOWED))
def test_the_guard_lets_ordinary_reads_through(query: str) -> None:
    guarded = guard_query(query)
    assert ";" not in guarded.masked
    assert guarded.masked.count("(") == guarded.masked.count(")")


_SQLISH = st.lists(
    st.sampled_from(
        [
            "SELECT",
            "WITH",
            "a",
            "AS",
            "FROM",
            "t",
            "(",
            ")",
            ",",
            ";",
            "'",
            '"',
            "--",
            "/*",
            "*/",
            "\n",
            "UNION",
            "DROP",
            "INTO",
            "FOR",
            "SHARE",
            "[",
            "]",
            "`",
            "\\",
            "SET",
            "CHARACTER",
            "1",
        ]
    ),
    max_size=25,
).map(" ".join)


@SETTINGS
@given(st.one_of(st.text(max_size=200), _SQLISH))
def test_the_guard_never_crashes_and_what_passes_is_one_balanced_select(sql: str) -> None:
    """Any text: a QueryError with a sentence, or a query that cannot leave its wrapper."""
    try:
        guarded = guard_query(sql)
    except QueryError as exc:
        assert str(exc)
        return
    assert len(guarded.sql) == len(guarded.masked)
    assert ";" not in guarded.masked
    depth = 0
    for ch in guarded.masked:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert guarded.masked.lstrip(" \t\r\n(").upper().startswith(("SELECT", "WITH"))


# --------------------------------------------------------------------------
# A SQL ERP holding hostile codes: values are bound, never formatted
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_erp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Read-only for the tests that use it, so one database serves them all."""
    url = f"sqlite:///{tmp_path_factory.mktemp('erp') / 'erp.sqlite'}"
    sql_erp.create_schema(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO products ("Prod", "SKU", "WebName", product_active, qty, price) '
                "VALUES (:p, :s, 'Thing', 'true', '1', '10')"
            ),
            [{"p": code, "s": f"{code}-v{n}"} for code in HOSTILE for n in (1, 2)],
        )
    engine.dispose()
    yield url


def _statements(connector: SqlConnector) -> list[str]:
    seen: list[str] = []
    engine = connector._engine("read")
    event.listen(
        engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a, **_k: seen.append(stmt)
    )
    return seen


def test_hostile_codes_page_through_once_as_bound_values(hostile_erp: str) -> None:
    with SqlConnector({"url": hostile_erp, "page_size": 3}) as connector:
        statements = _statements(connector)
        read: list[str] = []
        cursor: Any = None
        for _ in range(100):
            page = connector.read("products", cursor, 3)
            read += [r["SKU"] for r in page.records]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert sorted(read) == sorted(f"{c}-v{n}" for c in HOSTILE for n in (1, 2))
    assert len(read) == len(set(read))  # nothing twice
    # Each hostile code was a cursor (every page but the last ends on one) and
    # not one of them was ever part of the SQL text the database received.
    assert statements
    for statement in statements:
        for code in HOSTILE:
            if len(code) > 2:
                assert code not in statement, statement
    engine = create_engine(hostile_erp)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(text("products"))).scalar() == 2 * len(
            HOSTILE
        )
    engine.dispose()


@SETTINGS
@given(cursor=st.text(max_size=40).filter(lambda s: "\x00" not in s))
def test_any_cursor_reads_exactly_the_rows_after_it(hostile_erp: str, cursor: str) -> None:
    """Whatever the cursor holds, it is compared as a value: the rows after it, in order."""
    with SqlConnector({"url": hostile_erp, "page_size": 500}) as connector:
        page = connector.read("products", cursor, 500)
    after = sorted(c for c in HOSTILE if c.encode("utf-8", "surrogatepass") > _utf8(cursor))
    assert sorted({r["Prod"] for r in page.records}) == after


def _utf8(value: str) -> bytes:
    # SQLite compares text by its UTF-8 bytes.
    return value.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------
# IQ Retail's GenericSQL: text, so values are escaped literals
# --------------------------------------------------------------------------

_NO_CONTROL = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"
    ),
    max_size=40,
)


@SETTINGS
@given(value=_NO_CONTROL)
def test_sql_literal_is_one_literal_that_means_the_value(value: str) -> None:
    literal = sql_literal(value)
    assert literal.startswith("'") and literal.endswith("'")
    inner = literal[1:-1]
    # Every quote inside comes in pairs: the literal cannot end early.
    assert inner.replace("''", "").count("'") == 0
    assert inner.replace("''", "'") == value
    sql = find_order_sql(value)
    assert sql.count(literal) == 1 and sql.endswith("ORDER BY document")


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "a\x1bb", "a\u2028b"])
def test_sql_literal_refuses_control_characters(bad: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        sql_literal(bad)
    with pytest.raises(ValueError):
        stock_page_sql("Stock", 10, after=bad)


@pytest.fixture(scope="module")
def iq_hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('iq') / 'iq.sqlite'}"
    iq_retail.create_schema(url)
    *_, stock, debtors, _sorders, _lines = iq_retail._tables()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(stock),
            [
                {
                    "code": code,
                    "descript": f"item {code}",
                    "webitem": True,
                    "sellprice1": 10.0,
                    "onhand": 1.0,
                    "modified": "2026-11-01 08:00:00",
                }
                for code in HOSTILE
            ],
        )
        conn.execute(insert(debtors), [{"accnum": "CASH01", "name": "Cash sales"}])
    engine.dispose()
    iq_retail.add_service_item(url, "SHIP")
    with iq_retail.serve(url, password="iq-pw") as server:
        server.db_url = url
        yield server


def _iq(server: Any) -> IqRetailConnector:
    return IqRetailConnector(
        {
            "request_url": server.base_url,
            "company_number": "002",
            "user_number": "99",
            "user_password": "iq-pw",
            "default_debtor_account": "CASH01",
            "shipping_code": "SHIP",
        }
    )


def _stock_codes(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        codes = list(conn.execute(text('SELECT code FROM "Stock" ORDER BY code')).scalars())
    engine.dispose()
    return codes


def test_iq_pages_through_hostile_codes_once(iq_hostile: Any) -> None:
    before = _stock_codes(iq_hostile.db_url)
    read: list[str] = []
    with _iq(iq_hostile) as connector:
        cursor: Any = None
        for _ in range(100):
            page = connector.read("products", cursor, 2)
            read += [r["code"] for r in page.records]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert read == before  # every code once, in IQ's order, the quotes intact
    assert set(HOSTILE) <= set(read)
    assert _stock_codes(iq_hostile.db_url) == before  # and nothing in IQ changed


@SETTINGS
@given(cursor=_NO_CONTROL)
def test_iq_any_cursor_is_a_value_in_iqs_sql(iq_hostile: Any, cursor: str) -> None:
    """IQ answers exactly the codes after the cursor: the cursor never became SQL."""
    codes = _stock_codes(iq_hostile.db_url)
    with _iq(iq_hostile) as connector:
        page = connector.read("products", cursor, 500)
    assert [r["code"] for r in page.records] == [c for c in codes if _utf8(c) > _utf8(cursor)]


def test_iq_find_order_with_a_hostile_reference_finds_only_that_order(iq_hostile: Any) -> None:
    with _iq(iq_hostile) as connector:
        for reference in ("x' OR '1'='1", "#10'; DELETE FROM sorders; --"):
            assert connector.find_order(reference) is None
        order = {
            "channel_order_code": "O'Neil #1",
            "ordered_date": "2026-11-22T10:00:00Z",
            "customer": {"first_name": "A", "last_name": "B"},
            "line_items": [{"sku": HOSTILE[0], "qty": 1, "price": 10}],
            "shipping_lines": [],
        }
        document = connector.raise_order(
            get_map("iq_retail", "orders").apply(order, dict(connector.settings))
        )
        assert connector.find_order("O'Neil #1") == document
        assert connector.find_order("x' OR '1'='1") is None
        assert connector.find_order("O'Neil #") is None
