"""The SQL-template connector against seeded SQLite files: nothing else running."""

from __future__ import annotations

import json
import pickle
import traceback
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.dialects import mssql, mysql, postgresql, sqlite

import connectors.sql.connector as sqlmod
from connectors.base import (
    Connector,
    ConnectorError,
    NotSupportedError,
    Page,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.sql import QueryError, SqlConnector, guard_query
from emulators.sql_erp import generate_customers, generate_rows, order_counts, seed

PRODUCTS = 300
SEED = 7


@pytest.fixture(scope="module")
def erp_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("erp") / "erp.sqlite"
    url = f"sqlite:///{path}"
    seed(url, products=PRODUCTS, customers=40, seed=SEED)
    return url


@pytest.fixture
def fresh_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    seed(url, products=20, customers=5, seed=1)
    return url


def read_all(connector: Connector, stream: str, limit: int) -> list[Page]:
    pages: list[Page] = []
    cursor: Any = None
    while True:
        page = connector.read(stream, cursor, limit)
        pages.append(page)
        json.dumps(page.records)
        json.dumps(page.next_cursor)
        if page.next_cursor is None:
            return pages
        assert len(pages) < 10_000, "paging does not end"
        cursor = page.next_cursor


# ---- paging ----------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, 500])
def test_pages_cover_every_row_once_and_never_split_a_product(erp_url: str, limit: int) -> None:
    expected = generate_rows(PRODUCTS, SEED)
    with SqlConnector({"url": erp_url}) as connector:
        pages = read_all(connector, "products", limit)
    records = [record for page in pages for record in page.records]
    assert Counter(r["SKU"] for r in records) == Counter(r["SKU"] for r in expected)
    assert sorted(records, key=lambda r: r["SKU"]) == sorted(expected, key=lambda r: r["SKU"])
    owner: dict[str, int] = {}
    for number, page in enumerate(pages):
        for record in page.records:
            assert owner.setdefault(record["Prod"], number) == number, "product split"
    # A full page ends on a product boundary; only the last page is short.
    for page in pages[:-1]:
        assert len(page.records) >= limit
        assert page.next_cursor == page.records[-1]["Prod"]


def test_a_page_holds_every_variant_of_its_last_product(erp_url: str) -> None:
    rows = generate_rows(PRODUCTS, SEED)
    sizes = Counter(r["Prod"] for r in rows)
    variable = next(prod for prod, size in sizes.items() if size >= 3)
    before = [r for r in rows if r["Prod"] < variable]
    with SqlConnector({"url": erp_url}) as connector:
        cursor = before[-1]["Prod"] if before else None
        page = connector.read("products", cursor, 1)
    assert [r["Prod"] for r in page.records] == [variable] * sizes[variable]
    assert page.next_cursor == variable


def test_paging_with_hub_path_aliases(erp_url: str) -> None:
    query = (
        'SELECT "SKU" AS source_variant_code, "Prod" AS source_product_code, '
        '"WebName" AS title, qty AS "variants.qty", price AS "variants.retail_price" '
        "FROM products"
    )
    with SqlConnector({"url": erp_url, "products_query": query}) as connector:
        records = [r for page in read_all(connector, "products", 11) for r in page.records]
    assert len(records) == len(generate_rows(PRODUCTS, SEED))
    first = records[0]
    assert list(first) == [
        "source_variant_code",
        "source_product_code",
        "title",
        "variants.qty",
        "variants.retail_price",
    ]


def test_with_query_pages_both_inside_and_outside_the_subquery(
    erp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = """
        -- only the shirts; a comment at the end must not swallow the wrapper
        WITH p AS (SELECT "Prod", "SKU", qty FROM products WHERE "Prod" < 'P000100'),
             labels(code, label) AS (SELECT 'x', 'a :b')
        SELECT p."Prod", p."SKU", p.qty, '10:30' AS t, labels.label
        FROM p CROSS JOIN labels -- trailing comment
        ;"""
    expected = sorted(r["SKU"] for r in generate_rows(PRODUCTS, SEED) if r["Prod"] < "P000100")
    for outside in (frozenset(), frozenset({"sqlite"})):
        monkeypatch.setattr(sqlmod, "_CTE_OUTSIDE", outside)
        with SqlConnector({"url": erp_url, "products_query": query}) as connector:
            records = [r for page in read_all(connector, "products", 9) for r in page.records]
        assert sorted(r["SKU"] for r in records) == expected
        assert {(r["t"], r["label"]) for r in records} == {("10:30", "a :b")}


def test_rows_without_a_product_code_are_counted_and_skipped(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO products (\"SKU\", \"Prod\") VALUES ('ORPHAN', '')"))
    engine.dispose()
    query = (
        'SELECT NULLIF("Prod", \'\') AS "Prod", "SKU", "WebName", product_active, qty, '
        "price FROM products"
    )
    with SqlConnector({"url": fresh_url, "products_query": query}) as connector:
        message = connector.check()
        records = [r for page in read_all(connector, "products", 4) for r in page.records]
    assert "1 without a product code" in message
    assert "ORPHAN" not in {r["SKU"] for r in records}
    assert len(records) == len(generate_rows(20, 1))


def test_customers_stream(erp_url: str) -> None:
    with SqlConnector({"url": erp_url}) as connector:
        pages = read_all(connector, "customers", 15)
    records = [r for page in pages for r in page.records]
    assert records == sorted(generate_customers(40, SEED), key=lambda r: r["Customer"])
    assert len(pages) == 3


def test_check_describes_what_it_reached(erp_url: str) -> None:
    with SqlConnector({"url": erp_url}) as connector:
        message = connector.check()
    rows = len(generate_rows(PRODUCTS, SEED))
    assert message.startswith("reached database ")
    assert f"{rows:,} product rows" in message


def test_since_is_accepted_and_ignored(erp_url: str) -> None:
    with SqlConnector({"url": erp_url}) as connector:
        now = datetime.now(UTC)
        assert connector.read("products", None, 5, since=now) == connector.read("products", None, 5)


def test_values_become_json_safe() -> None:
    assert sqlmod._json_safe(Decimal("12.50")) == "12.50"
    assert sqlmod._json_safe(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05"
    assert sqlmod._json_safe(date(2024, 1, 2)) == "2024-01-02"
    assert sqlmod._json_safe(b"abc") == "abc"
    assert sqlmod._json_safe(b"\xff\x00") == "ff00"
    assert sqlmod._json_safe(" 12") == " 12"
    assert sqlmod._json_safe(7) == 7


# ---- the query guard ---------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM products",
        "SELECT 1; DROP TABLE x",
        "SELECT 1; SELECT 2",
        "select * from products where 1=1 drop table products",
        "UPDATE products SET qty = 0",
        "WITH x AS (SELECT 1) DELETE FROM products",
        "SELECT * INTO backup FROM products",
        "SELECT * FROM products FOR UPDATE",
        "EXEC xp_cmdshell 'dir'",
        "TRUNCATE products",
        "",
        "   -- just a comment",
        "SELECT 'unterminated",
        "SELECT 1 /* open",
        "PRAGMA table_info(products)",
    ],
)
def test_the_guard_refuses_anything_but_one_select(query: str) -> None:
    with pytest.raises(QueryError):
        guard_query(query)
    if not query:
        return  # an empty setting means "use the default query"
    with pytest.raises(SettingsError) as caught:
        SqlConnector.load_settings({"url": "sqlite:///x.db", "products_query": query})
    assert "products_query" in str(caught.value)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT Prod, SKU FROM products",
        "select Prod from products;",
        "SELECT 'Delete' AS flag, \"Update\" AS x FROM t -- DROP TABLE t",
        "SELECT 1 /* ; DELETE */ AS x",
        "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT REPLACE(code, ' ', '') AS Prod FROM [stock items]",
    ],
)
def test_the_guard_lets_reads_through(query: str) -> None:
    guarded = guard_query(query)
    assert ";" not in guarded.masked
    assert len(guarded.sql) == len(guarded.masked)


def test_mysql_backslash_escapes() -> None:
    query = r"SELECT 'it\'s; DROP TABLE x' AS s"
    with pytest.raises(QueryError):
        guard_query(query)  # read as standard SQL the quote closes early
    assert guard_query(query, backslash_escapes=True).sql == query


def test_split_with_finds_the_main_select() -> None:
    guarded = guard_query("WITH a(x) AS (SELECT 1), b AS (SELECT x FROM a) SELECT * FROM b")
    prefix, main = sqlmod._split_with(guarded)
    assert prefix == "WITH a(x) AS (SELECT 1), b AS (SELECT x FROM a)"
    assert main.strip() == "SELECT * FROM b"
    assert sqlmod._split_with(guard_query("SELECT 1")) == (None, "SELECT 1")


def test_a_bad_query_names_the_problem(erp_url: str) -> None:
    query = "SELECT Prod, SKU, WebNam FROM products"
    with SqlConnector({"url": erp_url, "products_query": query}) as connector:
        with pytest.raises(SettingsError) as caught:
            connector.read("products", None, 10)
        assert str(caught.value) == "the products query failed: no such column: WebNam"
        assert "products_query" in (caught.value.hint or "")
        with pytest.raises(SettingsError):
            connector.check()


def test_a_missing_table_points_at_the_table_setting(erp_url: str) -> None:
    with (
        SqlConnector({"url": erp_url, "customers_table": "clients"}) as connector,
        pytest.raises(SettingsError, match="no such table: clients") as caught,
    ):
        connector.read("customers", None, 10)
    assert "customers_table" in (caught.value.hint or "")


def test_a_query_without_a_key_column(erp_url: str) -> None:
    query = 'SELECT "SKU", qty FROM products'
    with (
        SqlConnector({"url": erp_url, "products_query": query}) as connector,
        pytest.raises(SettingsError, match="source_product_code or Prod"),
    ):
        connector.read("products", None, 10)


def test_key_labels_are_found_whatever_their_case(erp_url: str) -> None:
    query = 'SELECT "Prod" AS prod, "SKU" AS sku FROM products'
    with SqlConnector({"url": erp_url, "products_query": query}) as connector:
        records = [r for page in read_all(connector, "products", 50) for r in page.records]
    assert len(records) == len(generate_rows(PRODUCTS, SEED))
    assert set(records[0]) == {"prod", "sku"}


# ---- statements per dialect ----------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "limit_word", "quoted"),
    [
        (sqlite.dialect(), "LIMIT", 'q."Prod"'),
        (postgresql.dialect(), "LIMIT", 'q."Prod"'),
        (mysql.dialect(), "LIMIT", "q.`Prod`"),
        (mssql.dialect(), "TOP", "q.[Prod]"),
    ],
)
def test_page_statements_per_dialect(dialect: Any, limit_word: str, quoted: str) -> None:
    shape = sqlmod._Shape(
        prefix="WITH a AS (SELECT 1 AS x)" if dialect.name == "mssql" else None,
        main='SELECT Prod, SKU, "variants.qty" FROM products',
        labels=("Prod", "SKU", "variants.qty"),
        key="Prod",
        order=("Prod", "SKU"),
    )
    page = str(shape.page("P1", 10).compile(dialect=dialect))
    assert limit_word in page
    assert f"{quoted} >" in page
    assert "ORDER BY" in page
    assert "P1" not in page  # the cursor is a bound parameter
    if dialect.name == "mssql":
        assert page.startswith("WITH a AS (SELECT 1 AS x)\nSELECT TOP")
    group = str(shape.group("P1").compile(dialect=dialect))
    assert f"{quoted} =" in group and "P1" not in group


# ---- settings ---------------------------------------------------------------------


def test_settings_from_the_seed_parts() -> None:
    settings = SqlConnector.load_settings(
        {"server": "erp01", "database": "company", "username": "reader", "password": "pw"}
    )
    assert settings["driver"] == "mssql+pymssql"
    assert settings["page_size"] == 2000  # SQL_PAGE_SIZE
    assert settings["order_table"] == "s2s_order"
    assert SqlConnector.load_settings(settings) == settings  # loading is idempotent


def test_secret_fields() -> None:
    assert SqlConnector.secret_fields() == frozenset({"url", "password", "orders_url"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"url": "sqlite:///x.db", "page_size": 0}, "page_size"),
        ({"url": "sqlite:///x.db", "page_size": "many"}, "page_size"),
        ({"server": "erp01"}, "database"),
        ({"database": "company"}, "server"),
        ({"url": "sqlite:///x.db", "server": "erp01"}, "url"),
        ({"url": "sqlite:///x.db", "order_table": "orders; drop"}, "order_table"),
        ({"url": "sqlite:///x.db", "port": 70000}, "port"),
        ({"url": "sqlite:///x.db", "products_querry": "SELECT 1"}, "products_querry"),
    ],
)
def test_a_bad_setting_is_named(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(SettingsError) as caught:
        SqlConnector.load_settings(raw)
    assert field in str(caught.value)
    assert field in (caught.value.hint or "")


def test_sqlite_needs_no_server(tmp_path: Path) -> None:
    settings = SqlConnector.load_settings(
        {"driver": "sqlite", "database": str(tmp_path / "erp.sqlite")}
    )
    assert settings["server"] is None


def test_a_driver_that_is_not_installed() -> None:
    connector = SqlConnector(
        {"driver": "nosuchdb+nodriver", "server": "x", "database": "y", "password": "secretpw"}
    )
    with pytest.raises(SettingsError, match="driver is not installed") as caught:
        connector.check()
    assert "secretpw" not in str(caught.value)


# ---- errors carry no secret ----------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"url": "postgresql+psycopg://u:secretpw@127.0.0.1:1/db", "connect_timeout": 3},
        {
            "driver": "postgresql+psycopg",
            "server": "127.0.0.1",
            "port": 1,
            "database": "db",
            "username": "u",
            "password": "secretpw",
            "connect_timeout": 3,
        },
    ],
)
def test_a_closed_port_is_transient_and_keeps_the_password(settings: dict[str, Any]) -> None:
    connector = SqlConnector(settings)
    assert "secretpw" not in repr(connector)
    calls = [
        connector.check,
        lambda: connector.read("products", None, 10),
        lambda: connector.find_order("1001"),
    ]
    for call in calls:
        with pytest.raises(TransientError) as caught:
            call()
        error = caught.value
        shown = " ".join(
            [str(error), repr(error), error.hint or "", *traceback.format_exception(error)]
        )
        assert "secretpw" not in shown
        assert "127.0.0.1:1" in str(error)
    connector.close()


def test_errors_survive_pickling() -> None:
    error = TransientError("busy", hint="wait", retry_after=2.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.hint, copy.retry_after) == (
        TransientError,
        "busy",
        "wait",
        2.5,
    )
    assert issubclass(SettingsError, PermanentError)
    assert issubclass(RejectedError, PermanentError)
    assert isinstance(NotSupportedError("x"), ConnectorError)


# ---- orders ---------------------------------------------------------------------------


def order(code: str = "1001", lines: int = 2) -> dict[str, Any]:
    return {
        "header": {
            "channel_order_code": code,
            "customer_code": "C00001",
            "ordered_date": "2024-05-01T10:30:00+02:00",
            "email": "thandi@example.com",
            "ship_name": "Thandi Nkosi",
            "ship_city": "Durban",
            "total_ex_tax": 310.5,
            "notes": "leave at the gate",
        },
        "lines": [
            {
                "channel_order_code": code,
                "line_no": number,
                "sku": f"P00000{number}",
                "title": "Kettle",
                "qty": 1 + number,
                "unit_price": "103.50",
                "total_discount": 0,
            }
            for number in range(1, lines + 1)
        ],
    }


def test_raise_order_twice_inserts_once(fresh_url: str) -> None:
    with SqlConnector({"url": fresh_url}) as connector:
        first = connector.raise_order(order("1001"))
        again = connector.raise_order(order("1001"))
        other = connector.raise_order(order("1002", lines=1))
        assert first == again
        assert other != first
        assert connector.find_order("1001") == first
        assert connector.find_order("1002") == other
        assert connector.find_order("9999") is None
    counts = order_counts(fresh_url)
    assert (counts.headers, counts.lines, counts.orders) == (2, 3, 2)
    engine = create_engine(fresh_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT ordered_date, total_ex_tax FROM s2s_order WHERE id = :id"),
            {"id": int(first)},
        ).one()
    engine.dispose()
    assert str(row[0]).startswith("2024-05-01 08:30:00")  # stored as UTC
    assert float(row[1]) == 310.5


def test_orders_use_the_orders_url(tmp_path: Path, fresh_url: str) -> None:
    staging = f"sqlite:///{tmp_path / 'staging.sqlite'}"
    seed(staging, products=1, customers=1, seed=1)
    with SqlConnector({"url": fresh_url, "orders_url": staging}) as connector:
        number = connector.raise_order(order("2001"))
        assert connector.find_order("2001") == number
    assert order_counts(staging).orders == 1
    assert order_counts(fresh_url).orders == 0


def test_lines_may_leave_out_the_code_and_line_number(fresh_url: str) -> None:
    payload = {"header": {"channel_order_code": "3001"}, "lines": [{"sku": "A"}, {"sku": "B"}]}
    with SqlConnector({"url": fresh_url}) as connector:
        connector.raise_order(payload)
    engine = create_engine(fresh_url)
    with engine.connect() as conn:
        lines = conn.execute(
            text("SELECT channel_order_code, line_no, sku FROM s2s_order_line ORDER BY line_no")
        ).all()
    engine.dispose()
    assert [tuple(line) for line in lines] == [("3001", 1, "A"), ("3001", 2, "B")]


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"header": {"channel_order_code": "1"}, "lines": []}, "has no lines"),
        ({"header": {}, "lines": [{"sku": "A"}]}, "no channel_order_code"),
        ({"lines": [{"sku": "A"}]}, "no header"),
        (
            {"header": {"channel_order_code": "1", "colour": "red"}, "lines": [{"sku": "A"}]},
            "lacks: colour",
        ),
        (
            {"header": {"channel_order_code": "1"}, "lines": [{"sku": "A", "qty": 1.5}]},
            "qty in the line 1 is not a whole number",
        ),
        (
            {"header": {"channel_order_code": "1", "total_ex_tax": "ten"}, "lines": [{"qty": 1}]},
            "total_ex_tax in the header is not a number",
        ),
        (
            {"header": {"channel_order_code": "1", "ship_zip": "9" * 40}, "lines": [{"qty": 1}]},
            "longer than 32 characters",
        ),
        (
            {"header": {"channel_order_code": "1"}, "lines": [{"line_no": 1}, {"line_no": 1}]},
            "appears twice",
        ),
        (
            {"header": {"channel_order_code": "1"}, "lines": [{"channel_order_code": "2"}]},
            "belongs to order 2",
        ),
    ],
)
def test_bad_orders_are_rejected(fresh_url: str, payload: dict[str, Any], words: str) -> None:
    with (
        SqlConnector({"url": fresh_url}) as connector,
        pytest.raises(RejectedError, match=words),
    ):
        connector.raise_order(payload)
    assert order_counts(fresh_url).headers == 0


def test_a_failed_line_insert_leaves_no_header(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON s2s_order_line "
                "WHEN NEW.sku = 'BAD' BEGIN SELECT RAISE(ABORT, 'constraint failed: sku'); END"
            )
        )
    engine.dispose()
    with SqlConnector({"url": fresh_url}) as connector:
        with pytest.raises(RejectedError, match="refused order 4001"):
            connector.raise_order(
                {"header": {"channel_order_code": "4001"}, "lines": [{"sku": "BAD"}]}
            )
        assert connector.find_order("4001") is None
    assert order_counts(fresh_url).headers == 0


def test_missing_staging_tables_are_a_settings_error(fresh_url: str) -> None:
    with (
        SqlConnector({"url": fresh_url, "order_table": "orders_in"}) as connector,
        pytest.raises(SettingsError, match="no such table: orders_in") as caught,
    ):
        connector.raise_order(order("5001"))
    assert "order_table" in (caught.value.hint or "")


def test_order_tables_match_the_emulator(fresh_url: str) -> None:
    from sqlalchemy import MetaData, inspect

    header, lines = sqlmod.order_tables(MetaData())
    inspector = inspect(create_engine(fresh_url))
    for table in (header, lines):
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}
    with create_engine(fresh_url).connect() as conn:
        assert conn.execute(select(header.c.id)).all() == []


def test_postgresql_engines_skip_the_hstore_lookup_others_get_no_options() -> None:
    """Each new engine (one per tenant a worker serves) would otherwise query
    PostgreSQL's catalogue for hstore on its first connection."""
    from sqlalchemy.engine import make_url

    from connectors.engines import dialect_options

    for url in ("postgresql+psycopg://u@h/db", "postgresql+psycopg2://u@h/db"):
        assert dialect_options(make_url(url)) == {"use_native_hstore": False}
    for url in ("mssql+pyodbc://u@h/db", "mysql+pymysql://u@h/db", "sqlite:///x.db"):
        assert dialect_options(make_url(url)) == {}
