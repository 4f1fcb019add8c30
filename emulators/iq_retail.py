"""An IQ Retail "IQ API Interface" server to test and demo the IQ connector against.

It answers the way the project's wire reference (section 1 of
``erp-wire-formats.md``) says a real IQ Retail server answers, so a connector
that works here works against a site: every answer is HTTP 200 with
``iq_api_error``, keys in requests match case-insensitively, answers come in
lower case, stock is read with DBISAM-flavoured ``SELECT TOP n`` through
``IQ_API_Request_GenericSQL``, and orders are raised with
``IQ_API_Submit_Document_Sales_Order``, which -- like the real thing -- does not
deduplicate by ``Order_Number``. That last point is why the hub must look an
order up before raising it again; the emulator makes the danger real.

The data lives in any SQLAlchemy database (a SQLite file by default) in the
tables ``Stock``, ``Debtors``, ``sorders`` and ``sorderlines``, named as IQ
names them. IQ's own database (DBISAM) ignores the case of names, so
``FROM stock`` and ``FROM STOCK`` work too; the emulator rewrites table names
in a GenericSQL statement to the stored spelling so that this also holds on
PostgreSQL, where ``"Stock"`` is case-sensitive. Columns are lower case.

Error codes
-----------
The reference fixes only codes 0 (success) and 9 (rejected submission, with
nested codes 4 and 13). The others are this emulator's choice; a connector
should treat any non-zero code as an error and only rely on 0 and 9.

====  ======================================================================
code  ``iq_error_description``
====  ======================================================================
0     (success; no description)
1     ``Invalid Request. <what is wrong>`` -- body is not JSON, the
      ``IQ_API.<Method>`` envelope is missing, or the submission lacks
      ``IQ_Submit_Data.IQ_Root_JSON.Processing_Documents``
2     ``Invalid User Number or Password`` -- HTTP Basic or in-body
      credentials wrong or missing
3     ``Invalid Company Number [<given>]`` -- ``IQ_Company_Number`` wrong
5     ``Unknown API Method [<Method>]``
6     ``Invalid SQL Statement. Only a single SELECT statement is allowed``
7     ``SQL Error: <the database's own message>`` -- e.g. a bad column
9     ``Error Processing Submission Data. Refer [IQ_Error_Extended_Data]``
====  ======================================================================

Code 9 carries the submitted documents echoed back (keys in lower case) under
``iq_error_data.iq_error_data_items[0].iq_error_extended_data.iq_root_json
.error_data[i]``, each with document-level ``errors`` and per-item
``items[j].errors``; every error entry is
``{"error_code": N, "error_description": "..."}`` -- the key names public IQ
client code reads. Nested codes: 4 ``Invalid Debtor Account [X]``,
13 ``Invalid Stock Code [X]`` (both from the reference), and this emulator's
14 ``Invalid Quantity [X]``, 15 ``Invalid Item Price [X]``,
16 ``No Items Supplied``, 17 ``Invalid Order Date [X]``.

Faults (:class:`Faults`) stand in for what sits between the hub and a site:
latency, a gateway answering 503, a site's rate limiter answering
``{"response_code":429,...}`` in a 200, and a connection that drops after the
order was committed -- the case that makes exactly-once hard. A test holds
the object (``serve(...).faults``); by hand, ``POST /_faults`` sets the same
things (see :meth:`Faults.configure`) and ``GET /_faults`` shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import http
import json
import math
import random
import re
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from emulators import serving
from emulators.serving import DROP_KEY as _DROP_KEY
from emulators.serving import DroppableApp

__all__ = [
    "DEBTORS",
    "DOC_BAD_DATE",
    "DOC_BAD_DEBTOR",
    "DOC_NO_ITEMS",
    "ERR_BAD_COMPANY",
    "ERR_BAD_CREDENTIALS",
    "ERR_BAD_REQUEST",
    "ERR_NOT_A_SELECT",
    "ERR_SQL",
    "ERR_SUBMISSION",
    "ERR_UNKNOWN_METHOD",
    "GENERIC_SQL",
    "ITEM_BAD_PRICE",
    "ITEM_BAD_QUANTITY",
    "ITEM_BAD_STOCK_CODE",
    "SALES_ORDER",
    "ConnectionDropped",
    "Faults",
    "OrderCounts",
    "RunningServer",
    "SeedSummary",
    "create_app",
    "create_schema",
    "generate_stock",
    "main",
    "order_counts",
    "read_orders",
    "seed",
    "serve",
    "touch",
]

GENERIC_SQL = "IQ_API_Request_GenericSQL"
SALES_ORDER = "IQ_API_Submit_Document_Sales_Order"
_METHODS = {name.lower(): name for name in (GENERIC_SQL, SALES_ORDER)}

ERR_BAD_REQUEST = 1
ERR_BAD_CREDENTIALS = 2
ERR_BAD_COMPANY = 3
ERR_UNKNOWN_METHOD = 5
ERR_NOT_A_SELECT = 6
ERR_SQL = 7
ERR_SUBMISSION = 9

DOC_BAD_DEBTOR = 4
ITEM_BAD_STOCK_CODE = 13
ITEM_BAD_QUANTITY = 14
ITEM_BAD_PRICE = 15
DOC_NO_ITEMS = 16
DOC_BAD_DATE = 17

_SUBMISSION_TEXT = "Error Processing Submission Data. Refer [IQ_Error_Extended_Data]"
_CREDENTIALS_TEXT = "Invalid User Number or Password"
_NOT_A_SELECT_TEXT = "Invalid SQL Statement. Only a single SELECT statement is allowed"

DEBTORS: tuple[tuple[str, str], ...] = (
    ("ACC001", "Acme Trading (Pty) Ltd"),
    ("ACC002", "Blue Crane Outfitters"),
    ("ACC003", "Karoo Hardware CC"),
    ("CASH01", "Cash Sales"),
    ("WEB001", "Web Store Customer"),
)

_ADJECTIVES = ("Classic", "Deluxe", "Compact", "Rugged", "Slim", "Premium", "Budget", "Vintage")
_NOUNS = (
    "Kettle",
    "Backpack",
    "Desk Lamp",
    "Water Bottle",
    "Hoodie",
    "Toolbox",
    "Coffee Mug",
    "Notebook",
    "Sneakers",
    "Umbrella",
)

_HIDDEN_SHARE = 0.05
_MODIFIED_FROM = datetime(2026, 1, 1)
_MODIFIED_TO = datetime(2026, 11, 1)  # exclusive: dates fall in 2026-01 .. 2026-10
_STAMP = "%Y-%m-%d %H:%M:%S"
_CHUNK = 5000
_PRICE_COLUMNS = frozenset({f"sellprice{n}" for n in range(1, 11)} | {"price"})
_BOOL_COLUMNS = frozenset({"webitem", "incvat"})
_ADDRESS_LINES = 5


# --------------------------------------------------------------------------
# Tables and data
# --------------------------------------------------------------------------


def _tables() -> tuple[MetaData, Table, Table, Table, Table]:
    metadata = MetaData()
    price = Numeric(14, 2, asdecimal=False)
    qty = Numeric(14, 3, asdecimal=False)
    stock = Table(
        "Stock",
        metadata,
        Column("code", String(20), primary_key=True),
        Column("descript", String(255)),
        Column("webitem", Boolean, nullable=False, default=True),
        *(Column(f"sellprice{n}", price) for n in range(1, 11)),
        Column("onhand", qty),
        Column("salesorder", qty),
        Column("modified", String(19)),
    )
    debtors = Table(
        "Debtors",
        metadata,
        Column("accnum", String(20), primary_key=True),
        Column("name", String(255)),
    )
    sorders = Table(
        "sorders",
        metadata,
        Column("document", String(20), primary_key=True),
        Column("ordernum", String(64)),
        Column("accnum", String(20)),
        Column("orderdate", String(10)),
        Column("salesrep", Integer),
        Column("incvat", Boolean),
        *(Column(f"deladdr{n}", String(255)) for n in range(1, _ADDRESS_LINES + 1)),
    )
    lines = Table(
        "sorderlines",
        metadata,
        Column("document", String(20), primary_key=True),
        Column("lineno", Integer, primary_key=True),
        Column("stockcode", String(20)),
        Column("qty", qty),
        Column("price", price),
    )
    return metadata, stock, debtors, sorders, lines


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)
    try:
        yield engine
    finally:
        engine.dispose()


def create_schema(url: str) -> None:
    """Create the four tables if missing (seeding does this too)."""
    metadata, *_ = _tables()
    with _engine(url) as engine:
        metadata.create_all(engine)


@dataclass
class SeedSummary:
    """What ``seed`` stored: counts a test can compare with what the hub imported.

    ``hidden`` counts stock items with ``webitem`` false (not for the web).
    """

    products: int
    web_items: int
    hidden: int
    debtors: int
    first_code: str | None
    last_code: str | None
    modified_min: str | None
    modified_max: str | None


@dataclass(frozen=True)
class OrderCounts:
    """Rows in ``sorders``/``sorderlines``; ``orders`` counts distinct ``ordernum``.

    ``headers > orders`` means some order was raised more than once.
    """

    headers: int
    lines: int
    orders: int


def generate_stock(n: int, seed: int) -> list[dict[str, Any]]:
    """The ``stock`` rows for ``n`` items, a pure function of ``seed``.

    Tests recompute the expected data from here without a database. Codes are
    zero-padded (``IQ000001``) so that SQL's ``ORDER BY code`` equals Python's
    order and keyset paging can be checked against a slice of this list.
    Prices are rounded to cents so that they survive any database unchanged.
    """
    rng = random.Random(seed)
    span = int((_MODIFIED_TO - _MODIFIED_FROM).total_seconds())
    rows: list[dict[str, Any]] = []
    for number in range(1, n + 1):
        descript = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {number}"
        webitem = rng.random() >= _HIDDEN_SHARE
        base = rng.randint(500, 500_000) / 100
        onhand = rng.randint(0, 250) if rng.random() > 0.01 else -rng.randint(1, 5)
        salesorder = rng.randint(1, 10) if rng.random() < 0.2 else 0
        modified = _MODIFIED_FROM + timedelta(seconds=rng.randrange(span))
        row: dict[str, Any] = {"code": f"IQ{number:06d}", "descript": descript, "webitem": webitem}
        for tier in range(1, 11):
            # Lower tiers are the trade price lists: a few percent cheaper each.
            row[f"sellprice{tier}"] = round(base * (1 - 0.02 * (tier - 1)), 2)
        row["onhand"] = onhand
        row["salesorder"] = salesorder
        row["modified"] = modified.strftime(_STAMP)
        rows.append(row)
    return rows


def _summarize(rows: Sequence[dict[str, Any]], debtors: int) -> SeedSummary:
    stamps = [row["modified"] for row in rows]
    web = sum(1 for row in rows if row["webitem"])
    return SeedSummary(
        products=len(rows),
        web_items=web,
        hidden=len(rows) - web,
        debtors=debtors,
        first_code=rows[0]["code"] if rows else None,
        last_code=rows[-1]["code"] if rows else None,
        modified_min=min(stamps) if stamps else None,
        modified_max=max(stamps) if stamps else None,
    )


def seed(
    url: str, products: int = 1000, seed: int = 1, *, clear_orders: bool = False
) -> SeedSummary:
    """Create the tables if needed and replace the stock and debtors.

    Seeding twice with the same arguments leaves the same data. Sales orders
    are kept unless ``clear_orders``: they belong to the test that raised them.
    """
    metadata, stock, debtors, sorders, lines = _tables()
    rows = generate_stock(products, seed)
    with _engine(url) as engine:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(delete(stock))
            for start in range(0, len(rows), _CHUNK):
                conn.execute(stock.insert(), rows[start : start + _CHUNK])
            conn.execute(delete(debtors))
            conn.execute(debtors.insert(), [{"accnum": a, "name": n} for a, n in DEBTORS])
            if clear_orders:
                conn.execute(delete(lines))
                conn.execute(delete(sorders))
    return _summarize(rows, len(DEBTORS))


def add_service_item(url: str, code: str = "SHIP", descript: str = "Courier") -> None:
    """A non-web stock item that orders can carry, such as the shipping service.

    IQ validates every item's stock code, so the code a source's
    ``shipping_code`` names must exist in ``Stock``; it is not a web item, so
    no product sync picks it up.
    """
    _, stock, *_ = _tables()
    row = {
        "code": code,
        "descript": descript,
        "webitem": False,
        "sellprice1": 0,
        "onhand": 0,
        "salesorder": 0,
        "modified": _MODIFIED_FROM.strftime(_STAMP),
    }
    with _engine(url) as engine, engine.begin() as conn:
        conn.execute(delete(stock).where(stock.c.code == code))
        conn.execute(stock.insert(), [row])


def touch(url: str, count: int, seed: int, when: str = "2026-11-22 09:00:00") -> list[str]:
    """Change ``count`` items' ``sellprice1`` and ``onhand``, stamp ``modified = when``.

    Which items, and their new values, follow from ``seed`` and the table's
    content, so an incremental-sync test knows exactly what must come through
    a ``WHERE modified > ...`` read. Returns the changed codes in code order.
    """
    _, stock, *_ = _tables()
    rng = random.Random(f"touch:{seed}")
    with _engine(url) as engine, engine.begin() as conn:
        current = conn.execute(
            select(stock.c.code, stock.c.sellprice1, stock.c.onhand).order_by(stock.c.code)
        ).all()
        if count > len(current):
            raise ValueError(f"only {len(current)} stock items can change, not {count}")
        chosen = sorted(rng.sample(list(current), count), key=lambda row: row.code)
        for row in chosen:
            price = round(float(row.sellprice1 or 0) + rng.randint(1, 100), 2)
            onhand = float(row.onhand or 0) + rng.randint(1, 50)
            conn.execute(
                update(stock)
                .where(stock.c.code == row.code)
                .values(sellprice1=price, onhand=onhand, modified=when)
            )
    return [row.code for row in chosen]


def order_counts(url: str) -> OrderCounts:
    """Count documents, lines and distinct order numbers, to prove exactly-once."""
    _, _, _, sorders, lines = _tables()
    with _engine(url) as engine, engine.connect() as conn:
        headers = conn.execute(select(func.count()).select_from(sorders)).scalar_one()
        line_rows = conn.execute(select(func.count()).select_from(lines)).scalar_one()
        distinct = conn.execute(select(func.count(sorders.c.ordernum.distinct()))).scalar_one()
    return OrderCounts(headers=int(headers), lines=int(line_rows), orders=int(distinct))


def read_orders(url: str) -> list[dict[str, Any]]:
    """Every document with its ``lines``, in document order, for assertions."""
    _, _, _, sorders, lines = _tables()
    with _engine(url) as engine, engine.connect() as conn:
        headers = [
            dict(row._mapping) for row in conn.execute(select(sorders).order_by(sorders.c.document))
        ]
        by_document: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute(select(lines).order_by(lines.c.document, lines.c.lineno)):
            by_document.setdefault(row.document, []).append(dict(row._mapping))
    for header in headers:
        header["lines"] = by_document.get(header["document"], [])
    return headers


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


class ConnectionDropped(Exception):
    """Raised where the server cannot drop the connection itself (e.g. TestClient).

    Under uvicorn the connection is closed instead and nothing is raised.
    """


class Faults:
    """Faults to inject, and counts of calls, shared by a test and the server.

    Thread-safe: the test changes it from its own thread while the server's
    event loop reads it. Pending faults are consumed one call at a time, so a
    test says exactly which calls fail. ``fail_next`` is consumed before
    ``rate_limit_next``; ``drop_after_commit_next`` is consumed only by a
    sales order that was committed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency = 0.0
        self._fail = 0
        self._fail_status = 503
        self._rate_limit = 0
        self._retry_after = 1
        self._drop = 0
        self._calls: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()

    @property
    def latency(self) -> float:
        """Seconds every method call waits before it is handled."""
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        with self._lock:
            self._latency = float(seconds)

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` calls with HTTP ``status`` and a plain-text body."""
        if n < 0 or not 100 <= status <= 599:
            raise ValueError("n must be >= 0 and status an HTTP status")
        with self._lock:
            self._fail, self._fail_status = n, status

    def rate_limit_next(self, n: int, retry_after: int = 1) -> None:
        """Answer the next ``n`` calls with a 200 carrying ``response_code`` 429."""
        if n < 0 or retry_after < 0:
            raise ValueError("n and retry_after must be >= 0")
        with self._lock:
            self._rate_limit, self._retry_after = n, int(retry_after)

    def drop_after_commit_next(self, n: int) -> None:
        """Commit the next ``n`` sales orders, then close the connection unanswered."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._drop = n

    def reset(self) -> None:
        """Clear latency and pending faults; counts are kept (see ``reset_counts``)."""
        with self._lock:
            self._latency = 0.0
            self._fail = self._rate_limit = self._drop = 0

    def reset_counts(self) -> None:
        """Forget the counts of calls and injected faults."""
        with self._lock:
            self._calls.clear()
            self._injected.clear()

    def count(self, method: str) -> int:
        """Calls that reached ``method`` (any case), faulted ones included."""
        wanted = method.lower()
        with self._lock:
            return sum(n for name, n in self._calls.items() if name.lower() == wanted)

    def counts(self) -> dict[str, int]:
        """Calls per method name, faulted ones included."""
        with self._lock:
            return dict(self._calls)

    def injected(self) -> dict[str, int]:
        """How many faults fired, by kind: ``fail``, ``rate_limit``, ``drop``."""
        with self._lock:
            return dict(self._injected)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data, for ``GET /_faults``."""
        with self._lock:
            return {
                "latency": self._latency,
                "fail_next": self._fail,
                "fail_status": self._fail_status,
                "rate_limit_next": self._rate_limit,
                "retry_after": self._retry_after,
                "drop_after_commit_next": self._drop,
                "calls": dict(self._calls),
                "injected": dict(self._injected),
            }

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a ``POST /_faults`` body.

        ``{"reset": true, "latency": 0.5, "fail_next": 2 | {"n": 2, "status": 502},
        "rate_limit_next": 1 | {"n": 1, "retry_after": 3}, "drop_after_commit_next": 1}``;
        ``reset`` is applied first, absent keys leave their fault as it is.
        """
        if spec.get("reset"):
            self.reset()
        if "latency" in spec:
            self.latency = float(spec["latency"])
        if "fail_next" in spec:
            value = spec["fail_next"]
            if isinstance(value, dict):
                self.fail_next(int(value.get("n", 1)), int(value.get("status", 503)))
            else:
                self.fail_next(int(value))
        if "rate_limit_next" in spec:
            value = spec["rate_limit_next"]
            if isinstance(value, dict):
                self.rate_limit_next(int(value.get("n", 1)), int(value.get("retry_after", 1)))
            else:
                self.rate_limit_next(int(value))
        if "drop_after_commit_next" in spec:
            self.drop_after_commit_next(int(spec["drop_after_commit_next"]))

    # The server's side -------------------------------------------------------

    def _arrived(self, method: str) -> None:
        with self._lock:
            self._calls[method] += 1

    def _take_fail(self) -> int | None:
        with self._lock:
            if self._fail <= 0:
                return None
            self._fail -= 1
            self._injected["fail"] += 1
            return self._fail_status

    def _take_rate_limit(self) -> int | None:
        with self._lock:
            if self._rate_limit <= 0:
                return None
            self._rate_limit -= 1
            self._injected["rate_limit"] += 1
            return self._retry_after

    def _take_drop(self) -> bool:
        with self._lock:
            if self._drop <= 0:
                return False
            self._drop -= 1
            self._injected["drop"] += 1
            return True


# --------------------------------------------------------------------------
# DBISAM-flavoured SELECT
# --------------------------------------------------------------------------


class _Refused(Exception):
    """The statement is not one read-only SELECT (code 6)."""


class _SqlError(Exception):
    """The statement is a SELECT the emulator or the database cannot run (code 7)."""


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<comment>--[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^']|'')*')
    |(?P<qident>"(?:[^"]|"")*"|\[[^\]]*\])
    |(?P<number>\d+(?:\.\d*)?|\.\d+)
    |(?P<word>[A-Za-z_][A-Za-z0-9_$#]*)
    |(?P<op>::|<>|<=|>=|!=|\|\||.)
    """,
    re.S | re.X,
)
# Words that end an expression but are never a column alias.
_NOT_ALIASES = frozenset(
    {"END", "NULL", "TRUE", "FALSE", "AND", "OR", "NOT", "IS", "IN", "LIKE", "BETWEEN"}
)


_TABLES = {name.lower(): name for name in ("Stock", "Debtors", "sorders", "sorderlines")}


def _quote(name: str) -> str:
    return name if name == name.lower() else '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str

    def word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


@dataclass(frozen=True)
class _Item:
    """One entry of the select list: its name as written and the column it reads."""

    name: str | None
    source: str | None
    star: bool = False


@dataclass(frozen=True)
class _Plan:
    sql: str
    items: tuple[_Item, ...]


def _ident(token: _Token) -> str:
    if token.kind == "qident":
        if token.text.startswith("["):
            return token.text[1:-1]
        return token.text[1:-1].replace('""', '"')
    return token.text


def _is_ident(token: _Token) -> bool:
    return token.kind == "qident" or (
        token.kind == "word" and token.text.upper() not in _NOT_ALIASES
    )


def _select_item(tokens: Sequence[_Token]) -> _Item:
    if len(tokens) == 1 and tokens[0].text == "*":
        return _Item(None, None, star=True)
    if len(tokens) == 3 and tokens[1].text == "." and tokens[2].text == "*":
        return _Item(None, None, star=True)
    alias: str | None = None
    expr = list(tokens)
    if len(expr) >= 3 and expr[-2].word("AS") and _is_ident(expr[-1]):
        alias, expr = _ident(expr[-1]), expr[:-2]
    elif (
        len(expr) >= 2
        and _is_ident(expr[-1])
        and (expr[-2].kind in ("word", "qident", "number", "string") or expr[-2].text == ")")
    ):
        alias, expr = _ident(expr[-1]), expr[:-1]
    simple = (len(expr) == 1 and _is_ident(expr[0])) or (
        len(expr) == 3 and _is_ident(expr[0]) and expr[1].text == "." and _is_ident(expr[2])
    )
    if simple:
        bare = _ident(expr[-1])
        return _Item(alias or bare, bare.lower())
    return _Item(alias, None)


def _plan_select(sql_text: str, quote: Callable[[str], str] = _quote) -> _Plan:
    """Check that ``sql_text`` is one SELECT and turn DBISAM's TOP into LIMIT.

    Also reads the select list, so that answers can name columns as written
    (databases differ: SQLite answers ``code`` for ``SELECT Code``) and type
    them by the column they come from (SQLite has no true booleans). Table
    names are matched case-insensitively, as DBISAM does, and written with
    ``quote`` (the database's own quoting).
    """
    tokens = [_Token(m.lastgroup or "op", m.group()) for m in _TOKEN.finditer(sql_text)]
    significant = [i for i, t in enumerate(tokens) if t.kind not in ("ws", "comment")]
    while significant and tokens[significant[-1]].text == ";":
        tokens[significant.pop()] = _Token("ws", "")
    if not significant:
        raise _Refused(_NOT_A_SELECT_TEXT)
    sig = [tokens[i] for i in significant]
    if not sig[0].word("SELECT") or any(t.text == ";" for t in sig):
        raise _Refused(_NOT_A_SELECT_TEXT)
    if any(t.word("INTO") for t in sig):
        # DBISAM's SELECT ... INTO creates a table: not a read.
        raise _Refused(_NOT_A_SELECT_TEXT)
    pos = 1
    if pos < len(sig) and sig[pos].word("DISTINCT", "ALL"):
        pos += 1
    limit: int | None = None
    if pos < len(sig) and sig[pos].word("TOP"):
        if pos + 1 >= len(sig) or not sig[pos + 1].text.isdigit():
            raise _SqlError("TOP must be followed by a whole number of rows")
        limit = int(sig[pos + 1].text)
        tokens[significant[pos]] = _Token("ws", "")
        tokens[significant[pos + 1]] = _Token("ws", "")
        pos += 2
    items: list[_Item] = []
    current: list[_Token] = []
    depth = 0
    for token in sig[pos:]:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif depth == 0 and token.word("FROM"):
            break
        if depth == 0 and token.text == ",":
            items.append(_select_item(current))
            current = []
        else:
            current.append(token)
    if current:
        items.append(_select_item(current))
    sql = "".join(
        quote(_TABLES[t.text.lower()]) if t.kind == "word" and t.text.lower() in _TABLES else t.text
        for t in tokens
    ).strip()
    if limit is not None:
        sql = f"{sql} LIMIT {limit}"
    return _Plan(sql, tuple(items))


def _json_value(value: Any, source: str | None) -> Any:
    """Make a database value into what IQ sends: booleans, numbers, text."""
    if value is None:
        return None
    if source in _BOOL_COLUMNS:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "t", "true", "y", "yes")
        return bool(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        if source in _PRICE_COLUMNS:
            return float(value)
        if isinstance(value, float) and not value.is_integer():
            return value
        if isinstance(value, Decimal) and value != value.to_integral_value():
            return float(value)
        return int(value)
    if isinstance(value, datetime):
        return value.strftime(_STAMP)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return value


def _read_only_engine(url: str) -> Engine:
    """An engine whose connections refuse writes, where the database can enforce it.

    The statement check already allows only a SELECT; this is the second
    lock, so a function call inside a SELECT cannot change the data either.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return create_engine(
            parsed, connect_args={"options": "-c default_transaction_read_only=on"}
        )
    engine = create_engine(parsed)
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _query_only(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only = ON")
            cursor.close()

    return engine


# --------------------------------------------------------------------------
# Request handling
# --------------------------------------------------------------------------


def _lower_keys(value: Any) -> Any:
    """IQ matches keys case-insensitively: fold every key once, at every level."""
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _error(code: int, description: str) -> dict[str, Any]:
    return {"iq_api_error": [{"iq_error_code": code, "iq_error_description": description}]}


def _answer(payload: dict[str, Any]) -> JSONResponse:
    return JSONResponse(payload, status_code=200)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class _Validation:
    """Errors found in one processing document, echoed back in IQ's shape."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.echo = copy.deepcopy(document)
        self.echo["errors"] = []
        self.ok = True

    def document_error(self, code: int, description: str) -> None:
        self.echo["errors"].append({"error_code": code, "error_description": description})
        self.ok = False

    def item_error(self, item: dict[str, Any], code: int, description: str) -> None:
        item["errors"].append({"error_code": code, "error_description": description})
        self.ok = False


class _Backend:
    """The database side of the app: runs in worker threads, never on the loop."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.read_engine = _read_only_engine(url)
        _, self.stock, self.debtors, self.sorders, self.lines = _tables()
        # One process numbers documents; the lock keeps two submissions from
        # taking the same number.
        self.write_lock = threading.Lock()

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()

    def generic_sql(self, sql_text: str) -> dict[str, Any]:
        try:
            plan = _plan_select(sql_text, self.read_engine.dialect.identifier_preparer.quote)
        except _Refused as exc:
            return _error(ERR_NOT_A_SELECT, str(exc))
        except _SqlError as exc:
            return _error(ERR_SQL, f"SQL Error: {exc}")
        driver_error = self.read_engine.dialect.loaded_dbapi.Error
        try:
            with self.read_engine.connect() as conn:
                # The driver's own cursor, without parameters: the text goes to
                # the database as IQ would take it ('A%' is not a placeholder).
                cursor = conn.connection.cursor()
                try:
                    cursor.execute(plan.sql)
                    keys = [column[0] for column in cursor.description or ()]
                    rows = cursor.fetchall()
                finally:
                    cursor.close()
                    conn.connection.rollback()
        except driver_error as exc:
            return _error(ERR_SQL, f"SQL Error: {str(exc).strip()}")
        items = plan.items
        if any(item.star for item in items) or len(items) != len(keys):
            columns: list[tuple[str, str | None]] = [(key, key.lower()) for key in keys]
        else:
            columns = [
                (item.name or key, item.source) for item, key in zip(items, keys, strict=True)
            ]
        records = [
            {
                name: _json_value(value, source)
                for (name, source), value in zip(columns, row, strict=True)
            }
            for row in rows
        ]
        return {"iq_api_error": [{"iq_error_code": 0}], "iq_api_result_data": {"records": records}}

    def _next_document(self, conn: Connection) -> int:
        numbers = [
            int(doc[3:])
            for doc in conn.execute(select(self.sorders.c.document)).scalars()
            if doc.startswith("SAL") and doc[3:].isdigit()
        ]
        return max(numbers, default=0) + 1

    def submit_sales_order(self, call: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Validate every document, then write all of them in one transaction.

        Returns the answer and whether anything was committed. Nothing is
        deduplicated: the same ``Order_Number`` twice makes two documents.
        """
        submit = call.get("iq_submit_data")
        root = submit.get("iq_root_json") if isinstance(submit, dict) else None
        documents = root.get("processing_documents") if isinstance(root, dict) else None
        if not isinstance(documents, list) or not documents:
            return _error(
                ERR_BAD_REQUEST,
                "Invalid Request. IQ_Submit_Data.IQ_Root_JSON.Processing_Documents is missing",
            ), False
        if not all(isinstance(document, dict) for document in documents):
            return _error(
                ERR_BAD_REQUEST, "Invalid Request. Processing_Documents must hold objects"
            ), False
        with self.write_lock, self.engine.begin() as conn:
            checked = [self._validate(conn, document) for document in documents]
            if not all(validation.ok for validation, _ in checked):
                return self._rejection([validation.echo for validation, _ in checked]), False
            number = self._next_document(conn)
            success: list[list[dict[str, str]]] = []
            for _, (header, lines) in checked:
                document = f"SAL{number:05d}"
                number += 1
                conn.execute(self.sorders.insert(), {**header, "document": document})
                conn.execute(
                    self.lines.insert(),
                    [{**line, "document": document} for line in lines],
                )
                success.append([{"fieldname": "document_number", "data": document}])
        return {
            "iq_api_error": [{"iq_error_code": 0}],
            "iq_api_success": {"iq_api_success_items": success},
        }, True

    @staticmethod
    def _rejection(echoes: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "iq_api_error": [
                {
                    "iq_error_code": ERR_SUBMISSION,
                    "iq_error_description": _SUBMISSION_TEXT,
                    "iq_error_data": {
                        "iq_error_data_items": [
                            {
                                "iq_error_code": ERR_SUBMISSION,
                                "iq_error_description": _SUBMISSION_TEXT,
                                "iq_error_extended_data": {"iq_root_json": {"error_data": echoes}},
                            }
                        ]
                    },
                }
            ]
        }

    def _validate(
        self, conn: Connection, processing: dict[str, Any]
    ) -> tuple[_Validation, tuple[dict[str, Any], list[dict[str, Any]]]]:
        validation = _Validation(processing)
        raw_document = processing.get("document")
        document: dict[str, Any] = raw_document if isinstance(raw_document, dict) else {}
        account = _text(document.get("debtor_account"))
        known = conn.execute(
            select(self.debtors.c.accnum).where(self.debtors.c.accnum == account)
        ).first()
        if not account or known is None:
            validation.document_error(DOC_BAD_DEBTOR, f"Invalid Debtor Account [{account}]")
        info = document.get("order_information")
        raw_date = info.get("order_date") if isinstance(info, dict) else None
        order_date = date.today().isoformat()
        if raw_date not in (None, ""):
            try:
                order_date = date.fromisoformat(_text(raw_date)[:10]).isoformat()
            except ValueError:
                validation.document_error(DOC_BAD_DATE, f"Invalid Order Date [{_text(raw_date)}]")
        address = document.get("delivery_address_information")
        if isinstance(address, str):
            address = [address]
        address_lines = [_text(line) for line in address] if isinstance(address, list) else []
        rep = _decimal(document.get("sales_representative_number"))
        header: dict[str, Any] = {
            "ordernum": _text(document.get("order_number")),
            "accnum": account,
            "orderdate": order_date,
            "salesrep": int(rep) if rep is not None else None,
            "incvat": bool(document.get("document_includes_vat")),
            **{
                f"deladdr{n}": address_lines[n - 1] if n <= len(address_lines) else None
                for n in range(1, _ADDRESS_LINES + 1)
            },
        }
        raw_items = processing.get("items")
        items = raw_items if isinstance(raw_items, list) else []
        echoed: list[dict[str, Any]] = []
        for item in items:
            entry = copy.deepcopy(item) if isinstance(item, dict) else {}
            entry["errors"] = []
            echoed.append(entry)
        validation.echo["items"] = echoed
        if not echoed:
            validation.document_error(DOC_NO_ITEMS, "No Items Supplied")
        codes = {_text(entry.get("stock_code")) for entry in echoed}
        prices: dict[str, Any] = dict(
            conn.execute(
                select(self.stock.c.code, self.stock.c.sellprice1).where(
                    self.stock.c.code.in_(sorted(codes))
                )
            )
            .tuples()
            .all()
        )
        lines: list[dict[str, Any]] = []
        for lineno, entry in enumerate(echoed, start=1):
            code = _text(entry.get("stock_code"))
            if code not in prices:
                validation.item_error(entry, ITEM_BAD_STOCK_CODE, f"Invalid Stock Code [{code}]")
            qty = _decimal(entry.get("quantity"))
            if qty is None or qty <= 0:
                validation.item_error(
                    entry, ITEM_BAD_QUANTITY, f"Invalid Quantity [{_text(entry.get('quantity'))}]"
                )
            raw_price = entry.get("item_price_exclusive")
            # Without a price IQ charges the item's first price list.
            price = _decimal(raw_price) if raw_price is not None else _decimal(prices.get(code))
            if raw_price is not None and (price is None or price < 0):
                validation.item_error(
                    entry, ITEM_BAD_PRICE, f"Invalid Item Price [{_text(raw_price)}]"
                )
            lines.append(
                {
                    "lineno": lineno,
                    "stockcode": code,
                    "qty": float(qty) if qty is not None else None,
                    "price": float(price) if price is not None else None,
                }
            )
        return validation, (header, lines)


class IQRetailApp(DroppableApp):
    """The Starlette app, with a hook that can drop the client's connection.

    The hook must see the server's own ``send`` (Starlette's middleware wraps
    it), so it is put into the scope before Starlette runs."""


def create_app(
    url: str,
    *,
    company: str = "002",
    user: str = "99",
    password: str,
    faults: Faults | None = None,
) -> IQRetailApp:
    """The IQ API for the database at ``url``; ``app.state.faults`` holds the faults.

    Credentials are the site's: ``company`` is ``IQ_Company_Number``, ``user``
    and ``password`` are both the Basic-auth pair and ``IQ_User_Number`` /
    ``IQ_User_Password`` in the body; all are checked.
    """
    backend = _Backend(url)
    state_faults = faults if faults is not None else Faults()

    def credentials_error(call: dict[str, Any]) -> dict[str, Any] | None:
        given_company = _text(call.get("iq_company_number"))
        if given_company != company:
            return _error(ERR_BAD_COMPANY, f"Invalid Company Number [{given_company}]")
        if (
            _text(call.get("iq_user_number")) != user
            or _text(call.get("iq_user_password")) != password
        ):
            return _error(ERR_BAD_CREDENTIALS, _CREDENTIALS_TEXT)
        return None

    async def method_call(request: Request) -> Response:
        raw_method = request.path_params["method"]
        method = _METHODS.get(raw_method.lower(), raw_method)
        state_faults._arrived(method)
        latency = state_faults.latency
        if latency > 0:
            await asyncio.sleep(latency)
        status = state_faults._take_fail()
        if status is not None:
            phrase = _status_phrase(status)
            return PlainTextResponse(phrase, status_code=status)
        retry_after = state_faults._take_rate_limit()
        if retry_after is not None:
            return JSONResponse(
                {"response_code": 429, "response_message": "Too many requests"},
                status_code=200,
                headers={"Retry-After": str(retry_after)},
            )
        if _basic_credentials(request.headers.get("authorization")) != (user, password):
            return _answer(_error(ERR_BAD_CREDENTIALS, _CREDENTIALS_TEXT))
        try:
            body = _lower_keys(json.loads((await request.body()).decode("utf-8-sig")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _answer(_error(ERR_BAD_REQUEST, "Invalid Request. The body is not JSON"))
        envelope = body.get("iq_api") if isinstance(body, dict) else None
        call = envelope.get(raw_method.lower()) if isinstance(envelope, dict) else None
        if not isinstance(call, dict):
            return _answer(
                _error(ERR_BAD_REQUEST, f"Invalid Request. Expected IQ_API.{raw_method}")
            )
        refused = credentials_error(call)
        if refused is not None:
            return _answer(refused)
        if method == GENERIC_SQL:
            sql_text = call.get("iq_sql_text")
            if not isinstance(sql_text, str):
                return _answer(_error(ERR_NOT_A_SELECT, _NOT_A_SELECT_TEXT))
            return _answer(await run_in_threadpool(backend.generic_sql, sql_text))
        if method == SALES_ORDER:
            answer, committed = await run_in_threadpool(backend.submit_sales_order, call)
            if committed and state_faults._take_drop():
                close: Callable[[], Awaitable[bool]] | None = request.scope.get(_DROP_KEY)
                if close is None or not await close():
                    raise ConnectionDropped("the document was committed; no answer is sent")
            return _answer(answer)
        return _answer(_error(ERR_UNKNOWN_METHOD, f"Unknown API Method [{raw_method}]"))

    async def faults_view(request: Request) -> Response:
        if request.method == "POST":
            try:
                spec = json.loads(await request.body() or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                state_faults.configure(spec)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(state_faults.snapshot())

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            backend.dispose()

    app = IQRetailApp(
        routes=[
            Route("/IQRetailRestAPI/v1/{method}", method_call, methods=["POST"]),
            Route("/_faults", faults_view, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.faults = state_faults
    app.state.url = url
    return app


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# --------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A served emulator: where it listens and the faults the test can set."""

    base_url: str
    faults: Faults
    url: str


@contextmanager
def serve(
    url: str,
    *,
    password: str,
    company: str = "002",
    user: str = "99",
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Run the emulator on a local port until the block ends (see ``emulators.serving``)."""
    faults = faults if faults is not None else Faults()
    app = create_app(url, company=company, user=user, password=password, faults=faults)
    with serving.in_thread(
        app,
        title="IQ Retail",
        host=host,
        port=port,
        startup_timeout=startup_timeout,
        lifespan="on",
    ) as base_url:
        yield RunningServer(base_url=base_url, faults=faults, url=url)


def main(argv: Sequence[str] | None = None) -> int:
    """Seed and serve: ``python -m emulators.iq_retail --db ... --password secret``."""
    parser = argparse.ArgumentParser(
        prog="python -m emulators.iq_retail",
        description="Serve an IQ Retail 'IQ API Interface' over a seeded database.",
    )
    parser.add_argument("--db", default="sqlite:///var/iq.sqlite", help="SQLAlchemy URL")
    parser.add_argument("--products", type=int, default=2000, help="stock items to seed")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--no-seed", action="store_true", help="serve the data as it is")
    parser.add_argument("--clear-orders", action="store_true", help="also empty sorders")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--company", default="002", help="IQ_Company_Number")
    parser.add_argument("--user", default="99", help="IQ_User_Number (and Basic user)")
    parser.add_argument("--password", required=True, help="IQ_User_Password (and Basic)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to calls")
    args = parser.parse_args(argv)
    if args.products < 0 or args.latency < 0 or math.isnan(args.latency):
        parser.error("--products and --latency must not be negative")
    shown = make_url(args.db).render_as_string(hide_password=True)
    if args.no_seed:
        create_schema(args.db)
    else:
        summary = seed(args.db, args.products, args.seed, clear_orders=args.clear_orders)
        print(f"seeded {shown}")
        for name, value in asdict(summary).items():
            print(f"  {name:<14} {value}")
    faults = Faults()
    faults.latency = args.latency
    app = create_app(
        args.db, company=args.company, user=args.user, password=args.password, faults=faults
    )
    print(f"IQ API on http://{args.host}:{args.port}/IQRetailRestAPI/v1/{{Method}} ({shown})")
    uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, http="h11", ws="none", lifespan="on")
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
