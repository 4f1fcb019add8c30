"""A SYSPRO company database and e.net REST service to test and demo the SYSPRO connector.

Two halves, as at a site (``erp-wire-formats.md`` section 3):

* **The company database**: ``InvMaster``, ``InvPrice``, ``InvWarehouse``,
  ``ArCustomer``, ``SorMaster`` and ``SorDetail`` with SYSPRO's column names,
  in any SQLAlchemy database (a SQLite file by default). :func:`seed` fills
  it deterministically and fast enough for 50,000 stock codes (bulk
  inserts); :func:`generate_stock` recomputes the same rows without a
  database, so tests know what a sync must find.
* **e.net Solutions, REST flavour** (:func:`create_app`, :func:`serve`):
  ``GET {base}/Logon``, ``/Transaction/Post`` (business object ``SORTOI``
  only) and ``/Logoff``; every answer is HTTP 200 with plain text or XML,
  errors included. One session per operator: a second Logon ends the first,
  whose UserId then gets ``ERROR: ...``. SORTOI writes ``SorMaster`` and
  ``SorDetail`` in one transaction, or rejects the order with SYSPRO's
  ``ErrorDescription`` under the failing line or header.

Answers declare ``encoding="Windows-1252"`` and are sent in that encoding,
as SYSPRO's are. SORTOI rejections (the sentences are this emulator's; the
shapes are the reference's):

==========================================  ===================================================
cause                                       ``ErrorDescription``
==========================================  ===================================================
unknown stock code                          ``Stock code 'X' not found`` (under its StockLine)
price not a plain decimal of <= 2 places    ``Price '8.000000000000001' is not numeric``
quantity not a number above zero            ``Order quantity 'X' is invalid``
warehouse the stock code is not stocked in  ``Warehouse 'W' not found for stock code 'X'``
unknown customer                            ``Customer 'X' not found`` (under the header)
CustomerPoNumber longer than 30             ``Customer purchase order number exceeds 30 characters``
ShipAddressN longer than 40                 ``Ship address line N exceeds 40 characters``
a PO number the customer already used,      ``Customer purchase order number 'P' already exists
with CheckForCustomerPoNumbers=Y            for customer 'C' on sales order 000123``
==========================================  ===================================================

Logon errors: ``ERROR: Invalid operator 'X'``, ``ERROR: Invalid operator
password``, ``ERROR: Invalid company 'X'``, ``ERROR: Invalid company
password``. A UserId that is not (or no longer) logged on: ``ERROR: Session
is not logged on or has expired``.

Faults (:class:`Faults`): latency, HTTP 5xx, ``ERROR:`` bodies (a licence
or any other text), a session e.net ends under a Post (as its idle timeout
or another Logon as the operator does), a connection dropped after the
order was committed (either after a number of Posts, for a batch), an
answer carrying a DOCTYPE with an entity (to prove the connector never
expands one), answers with lower-case element names, and answers wrapped
in WCF's ``<string>`` element. ``serve(...).faults`` holds them; by hand,
``POST /_faults`` sets the same (see :meth:`Faults.configure`).
"""

from __future__ import annotations

import argparse
import asyncio
import http
import json
import random
import re
import secrets
import sys
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import uvicorn
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from sqlalchemy import (
    Column,
    Index,
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
)
from sqlalchemy.engine import Connection, Engine, make_url
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators import serving
from emulators.serving import DROP_KEY as _DROP_KEY
from emulators.serving import DroppableApp

__all__ = [
    "BASE_PATH",
    "CUSTOMERS",
    "ConnectionDropped",
    "Faults",
    "OrderCounts",
    "RunningServer",
    "SeedSummary",
    "StockRows",
    "create_app",
    "create_schema",
    "generate_customers",
    "generate_stock",
    "main",
    "order_counts",
    "read_orders",
    "seed",
    "serve",
]

BASE_PATH = "/SYSPROWCFService/Rest"
BUSINESS_OBJECT = "SORTOI"
PO_NUMBER_MAX = 30
SHIP_ADDRESS_MAX = 40

# Accounts orders are raised against, always present after seeding.
CUSTOMERS: tuple[tuple[str, str, str], ...] = (
    ("CASH01", "Cash Sales", "cash@example.co.za"),
    ("WEB001", "Web Store Customer", "web@example.co.za"),
)

_ADJECTIVES = ("Classic", "Deluxe", "Compact", "Rugged", "Slim", "Premium", "Budget", "Vintage")
_NOUNS = ("Kettle", "Backpack", "Desk Lamp", "Hoodie", "Toolbox", "Coffee Mug", "Umbrella")
_COMPANIES = ("Trading", "Outfitters", "Hardware", "Supplies", "Wholesale", "Retail", "Stores")
_PLACES = ("Karoo", "Table Bay", "Highveld", "Lowveld", "Garden Route", "Drakensberg", "Namaqua")
_CHUNK = 10_000
_INACTIVE_SHARE = 0.05
_BLANK_SHARE = 0.03
_NO_PRICE_SHARE = 0.02
_PRICE = re.compile(r"\A\d{1,13}(\.\d{1,2})?\Z")
_SERIALIZATION_NS = "http://schemas.microsoft.com/2003/10/Serialization/"


# --------------------------------------------------------------------------
# Tables and data
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tables:
    metadata: MetaData
    master: Table
    price: Table
    warehouse: Table
    customer: Table
    orders: Table
    lines: Table


def _tables() -> _Tables:
    metadata = MetaData()
    money = Numeric(15, 5, asdecimal=False)
    qty = Numeric(18, 6, asdecimal=False)
    master = Table(
        "InvMaster",
        metadata,
        Column("StockCode", String(30), primary_key=True),
        Column("Description", String(50)),
        Column("LongDesc", String(100)),
        Column("ProductClass", String(20)),
        Column("StockUom", String(10)),
        Column("Mass", qty),
        Column("AlternateKey1", String(30)),
        *(Column(f"UserField{n}", String(10)) for n in range(1, 6)),
    )
    price = Table(
        "InvPrice",
        metadata,
        Column("StockCode", String(30), primary_key=True),
        Column("PriceCode", String(10), primary_key=True),
        Column("SellingPrice", money),
    )
    warehouse = Table(
        "InvWarehouse",
        metadata,
        Column("StockCode", String(30), primary_key=True),
        Column("Warehouse", String(10), primary_key=True),
        Column("QtyOnHand", qty),
        Column("QtyAllocated", qty),
    )
    customer = Table(
        "ArCustomer",
        metadata,
        Column("Customer", String(15), primary_key=True),
        Column("Name", String(50)),
        Column("Email", String(255)),
        Column("Telephone", String(20)),
        Column("Salesperson", String(20)),
        Column("PriceCode", String(10)),
        Column("CustomerOnHold", String(1)),
        *(Column(f"SoldToAddr{n}", String(40)) for n in range(1, 6)),
        Column("SoldPostalCode", String(10)),
        *(Column(f"ShipToAddr{n}", String(40)) for n in range(1, 6)),
        Column("ShipPostalCode", String(10)),
    )
    orders = Table(
        "SorMaster",
        metadata,
        Column("SalesOrder", String(20), primary_key=True),
        Column("Customer", String(15)),
        Column("CustomerPoNumber", String(30)),
        Column("OrderDate", String(10)),
        Column("OrderStatus", String(1)),
        Column("OrderType", String(10)),
        Column("Salesperson", String(20)),
        Column("Email", String(255)),
        *(Column(f"ShipAddress{n}", String(40)) for n in range(1, 6)),
        Column("ShipPostalCode", String(10)),
        Column("Warehouse", String(10)),
        Column("Operator", String(64)),
        Index("ix_SorMaster_CustomerPoNumber", "CustomerPoNumber"),
    )
    lines = Table(
        "SorDetail",
        metadata,
        Column("SalesOrder", String(20), primary_key=True),
        Column("SalesOrderLine", Integer, primary_key=True),
        Column("LineType", String(1)),  # 1 stocked item, 4 freight
        Column("MStockCode", String(30)),
        Column("MWarehouse", String(10)),
        Column("MOrderQty", qty),
        Column("MPrice", money),
        Column("NMscChargeValue", money),
    )
    return _Tables(metadata, master, price, warehouse, customer, orders, lines)


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
    """Create the six tables if missing (seeding does this too)."""
    with _engine(url) as engine:
        _tables().metadata.create_all(engine)


@dataclass
class StockRows:
    """The rows of the three stock tables, as :func:`seed` inserts them."""

    master: list[dict[str, Any]] = field(default_factory=list)
    prices: list[dict[str, Any]] = field(default_factory=list)
    warehouses: list[dict[str, Any]] = field(default_factory=list)


def price_code_names(n: int) -> list[str]:
    """The first ``n`` price codes: A, B, C ... (SYSPRO allows A-Z)."""
    if not 0 <= n <= 26:
        raise ValueError("price_codes must be from 0 to 26")
    return [chr(ord("A") + i) for i in range(n)]


def warehouse_names(n: int) -> list[str]:
    """The first ``n`` warehouses: WH01, WH02 ..."""
    if not 0 <= n <= 99:
        raise ValueError("warehouses must be from 0 to 99")
    return [f"WH{i:02d}" for i in range(1, n + 1)]


def generate_stock(n: int, seed: int, price_codes: int = 3, warehouses: int = 3) -> StockRows:
    """The stock rows for ``n`` codes, a pure function of the arguments.

    Codes are zero-padded (``SC000001``) so that the database's order is
    Python's and keyset paging can be checked against slices of this list.
    ``UserField1`` is the web flag: mostly ``Y``, some ``N``, a few blank.
    A few codes have no price rows (a price list not yet loaded); every
    code is stocked in every warehouse. Prices have two places, quantities
    are whole, so they survive any database unchanged.
    """
    rng = random.Random(seed)
    codes, stores = price_code_names(price_codes), warehouse_names(warehouses)
    rows = StockRows()
    for number in range(1, n + 1):
        code = f"SC{number:06d}"
        roll = rng.random()
        flag = (
            "N" if roll < _INACTIVE_SHARE else "" if roll < _INACTIVE_SHARE + _BLANK_SHARE else "Y"
        )
        rows.master.append(
            {
                "StockCode": code,
                "Description": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {number}",
                "LongDesc": None,
                "ProductClass": rng.choice(("HOME", "TOOL", "WEAR")),
                "StockUom": "EA",
                "Mass": rng.randint(1, 5000) / 1000,
                "AlternateKey1": None,
                "UserField1": flag,
                "UserField2": rng.choice(("", "WEB", "B2B")),
                "UserField3": None,
                "UserField4": None,
                "UserField5": None,
            }
        )
        base = rng.randint(500, 500_000)  # cents
        if rng.random() >= _NO_PRICE_SHARE:
            for index, price_code in enumerate(codes):
                cents = base * (100 - 5 * index) // 100
                rows.prices.append(
                    {"StockCode": code, "PriceCode": price_code, "SellingPrice": cents / 100}
                )
        for warehouse in stores:
            on_hand = rng.randint(0, 200)
            allocated = rng.randint(0, min(on_hand, 20)) if rng.random() < 0.3 else 0
            if rng.random() < 0.01:
                allocated = on_hand + rng.randint(1, 5)  # over-allocated: negative available
            rows.warehouses.append(
                {
                    "StockCode": code,
                    "Warehouse": warehouse,
                    "QtyOnHand": on_hand,
                    "QtyAllocated": allocated,
                }
            )
    return rows


def generate_customers(m: int, seed: int) -> list[dict[str, Any]]:
    """``CUSTOMERS`` then ``m`` generated accounts, a pure function of ``seed``."""
    rng = random.Random(f"customers:{seed}")
    rows: list[dict[str, Any]] = []
    blank = {f"SoldToAddr{n}": None for n in range(1, 6)} | {
        f"ShipToAddr{n}": None for n in range(1, 6)
    }
    for code, name, email in CUSTOMERS:
        rows.append(
            {
                **blank,
                "Customer": code,
                "Name": name,
                "Email": email,
                "Telephone": None,
                "Salesperson": "001",
                "PriceCode": "A",
                "CustomerOnHold": "N",
                "SoldPostalCode": None,
                "ShipPostalCode": None,
            }
        )
    for number in range(1, m + 1):
        name = f"{rng.choice(_PLACES)} {rng.choice(_COMPANIES)} {number}"
        rows.append(
            {
                **blank,
                "Customer": f"C{number:06d}",
                "Name": name,
                "Email": f"accounts{number}@example.co.za" if rng.random() > 0.1 else None,
                "Telephone": f"021 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                "Salesperson": f"{rng.randint(1, 5):03d}",
                "PriceCode": rng.choice(("A", "B", "C")),
                "CustomerOnHold": "Y" if rng.random() < 0.05 else "N",
                "SoldToAddr1": f"{rng.randint(1, 200)} Main Road",
                "SoldToAddr2": rng.choice(_PLACES),
                "SoldPostalCode": f"{rng.randint(1000, 9999)}",
                "ShipToAddr1": f"{rng.randint(1, 200)} Depot Street",
                "ShipToAddr2": rng.choice(_PLACES),
                "ShipPostalCode": f"{rng.randint(1000, 9999)}",
            }
        )
    return rows


@dataclass
class SeedSummary:
    """What :func:`seed` stored; ``active`` counts codes with ``UserField1 = 'Y'``."""

    stock: int
    active: int
    price_rows: int
    warehouse_rows: int
    customers: int
    first_code: str | None
    last_code: str | None


@dataclass(frozen=True)
class OrderCounts:
    """Rows in SorMaster/SorDetail; ``orders`` counts distinct CustomerPoNumber.

    ``headers > orders`` means some order was raised more than once.
    """

    headers: int
    lines: int
    orders: int


def _bulk(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert through the driver's executemany, with the statement compiled once.

    Core's executemany processes every row's parameters in Python; for
    hundreds of thousands of seed rows that halves the speed, and these
    rows need no processing (plain str, int and float).
    """
    if not rows:
        return
    names = [c.name for c in table.columns]
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=names)
    order = compiled.positiontup
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        if order is not None:
            params: list[Any] = [tuple(row.get(name) for name in order) for row in chunk]
        else:
            params = [{name: row.get(name) for name in names} for row in chunk]
        conn.exec_driver_sql(str(compiled), params)


def seed(
    url: str,
    stock: int = 1000,
    price_codes: int = 3,
    warehouses: int = 3,
    customers: int = 100,
    seed: int = 1,
    *,
    clear_orders: bool = False,
) -> SeedSummary:
    """Create the tables if needed and replace stock and customers.

    Seeding twice with the same arguments leaves the same data. Sales
    orders are kept unless ``clear_orders``: they belong to the test that
    raised them. On SQLite the inserts run without fsyncs per chunk (one
    transaction), which is what makes 50,000 codes take seconds.
    """
    t = _tables()
    rows = generate_stock(stock, seed, price_codes, warehouses)
    accounts = generate_customers(customers, seed)
    with _engine(url) as engine:
        t.metadata.create_all(engine)
        with engine.begin() as conn:
            for table in (t.price, t.warehouse, t.master, t.customer):
                conn.execute(delete(table))
            _bulk(conn, t.master, rows.master)
            _bulk(conn, t.price, rows.prices)
            _bulk(conn, t.warehouse, rows.warehouses)
            _bulk(conn, t.customer, accounts)
            if clear_orders:
                conn.execute(delete(t.lines))
                conn.execute(delete(t.orders))
    return SeedSummary(
        stock=len(rows.master),
        active=sum(1 for r in rows.master if r["UserField1"] == "Y"),
        price_rows=len(rows.prices),
        warehouse_rows=len(rows.warehouses),
        customers=len(accounts),
        first_code=rows.master[0]["StockCode"] if rows.master else None,
        last_code=rows.master[-1]["StockCode"] if rows.master else None,
    )


def order_counts(url: str) -> OrderCounts:
    """Count sales orders, lines and distinct PO numbers, to prove exactly-once."""
    t = _tables()
    with _engine(url) as engine, engine.connect() as conn:
        headers = conn.execute(select(func.count()).select_from(t.orders)).scalar_one()
        lines = conn.execute(select(func.count()).select_from(t.lines)).scalar_one()
        distinct = conn.execute(
            select(func.count(t.orders.c.CustomerPoNumber.distinct()))
        ).scalar_one()
    return OrderCounts(headers=int(headers), lines=int(lines), orders=int(distinct))


def read_orders(url: str) -> list[dict[str, Any]]:
    """Every sales order with its ``lines``, in SalesOrder order, for assertions."""
    t = _tables()
    with _engine(url) as engine, engine.connect() as conn:
        headers = [
            dict(row._mapping)
            for row in conn.execute(select(t.orders).order_by(t.orders.c.SalesOrder))
        ]
        by_order: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute(
            select(t.lines).order_by(t.lines.c.SalesOrder, t.lines.c.SalesOrderLine)
        ):
            by_order.setdefault(row.SalesOrder, []).append(dict(row._mapping))
    for header in headers:
        header["lines"] = by_order.get(header["SalesOrder"], [])
    return headers


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


class ConnectionDropped(Exception):
    """Raised where the server cannot drop the connection itself (e.g. TestClient).

    Under uvicorn the connection is closed instead and nothing is raised.
    """


_CALLS = ("Logon", "Transaction/Post", "Logoff")


class Faults:
    """Faults to inject, and counts of calls, shared by a test and the server.

    Thread-safe: the test changes it from its own thread while the server's
    event loop reads it. Pending faults are consumed one call at a time, in
    this order: ``fail_next`` (HTTP status), ``error_next`` (an ``ERROR:``
    body); ``expire_session_next`` ends the session a Post names;
    ``doctype_next`` replaces the next Post's answer (nothing is committed)
    and ``drop_after_commit_next`` is consumed only by a Post that committed
    an order. ``expire_session_next`` and ``drop_after_commit_next`` can
    let ``after`` Posts (committed ones, for the drop) by before they fire.
    ``lowercase`` and ``wrap`` are switches.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency = 0.0
        self._fail = 0
        self._fail_status = 503
        self._errors: list[tuple[str | None, str]] = []
        self._doctype = 0
        self._drop = 0
        self._expire = 0
        self._skip: Counter[str] = Counter()
        self._lowercase = False
        self._wrap = False
        self._calls: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()

    @property
    def latency(self) -> float:
        """Seconds every call waits before it is handled."""
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("latency cannot be negative")
        with self._lock:
            self._latency = float(seconds)

    @property
    def lowercase(self) -> bool:
        """Answer XML with lower-case element names (some e.net versions do)."""
        with self._lock:
            return self._lowercase

    @lowercase.setter
    def lowercase(self, value: bool) -> None:
        with self._lock:
            self._lowercase = bool(value)

    @property
    def wrap(self) -> bool:
        """Answer Posts inside WCF's ``<string>`` element, the XML escaped."""
        with self._lock:
            return self._wrap

    @wrap.setter
    def wrap(self, value: bool) -> None:
        with self._lock:
            self._wrap = bool(value)

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` calls with HTTP ``status`` and a plain-text body."""
        if n < 0 or not 100 <= status <= 599:
            raise ValueError("n must be >= 0 and status an HTTP status")
        with self._lock:
            self._fail, self._fail_status = n, status

    def error_next(
        self, n: int = 1, text: str = "ERROR: Licence limit reached", call: str | None = None
    ) -> None:
        """Answer the next ``n`` calls (of ``call`` only, if given) with ``text`` in a 200."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if call is not None and call not in _CALLS:
            raise ValueError(f"call must be one of {', '.join(_CALLS)}")
        with self._lock:
            self._errors.extend([(call, text)] * n)

    def doctype_next(self, n: int = 1) -> None:
        """Answer the next ``n`` Posts with a document declaring a DOCTYPE and an entity."""
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._doctype = n

    def drop_after_commit_next(self, n: int, after: int = 0) -> None:
        """Commit the next ``n`` orders, then close the connection unanswered;
        ``after``: answer that many committed orders first."""
        if n < 0 or after < 0:
            raise ValueError("n and after must be >= 0")
        with self._lock:
            self._drop = n
            self._skip["drop"] = after

    def expire_session_next(self, n: int = 1, after: int = 0) -> None:
        """End the session of the next ``n`` Posts before they run, as e.net's
        idle timeout or another Logon as the operator does: the Post answers
        ``ERROR: Session is not logged on or has expired`` and so does any
        later call with that UserId. ``after``: let that many Posts run first."""
        if n < 0 or after < 0:
            raise ValueError("n and after must be >= 0")
        with self._lock:
            self._expire = n
            self._skip["expire"] = after

    def reset(self) -> None:
        """Clear latency, switches and pending faults; counts are kept."""
        with self._lock:
            self._latency = 0.0
            self._fail = self._doctype = self._drop = self._expire = 0
            self._skip.clear()
            self._errors.clear()
            self._lowercase = self._wrap = False

    def count(self, call: str) -> int:
        """Calls that reached ``call`` (``Logon``, ``Transaction/Post``, ``Logoff``)."""
        with self._lock:
            return self._calls[call]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    def injected(self) -> dict[str, int]:
        """How many faults fired: ``fail``, ``error``, ``expire``, ``doctype``, ``drop``."""
        with self._lock:
            return dict(self._injected)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data, for ``GET /_faults``."""
        with self._lock:
            return {
                "latency": self._latency,
                "fail_next": self._fail,
                "fail_status": self._fail_status,
                "error_next": [{"call": c, "text": t} for c, t in self._errors],
                "doctype_next": self._doctype,
                "drop_after_commit_next": self._drop,
                "drop_after": self._skip["drop"],
                "expire_session_next": self._expire,
                "expire_after": self._skip["expire"],
                "lowercase": self._lowercase,
                "wrap": self._wrap,
                "calls": dict(self._calls),
                "injected": dict(self._injected),
            }

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a ``POST /_faults`` body.

        ``{"reset": true, "latency": 0.5, "fail_next": 2 | {"n": 2, "status": 502},
        "error_next": {"n": 1, "text": "ERROR: ...", "call": "Transaction/Post"},
        "doctype_next": 1, "drop_after_commit_next": 1 | {"n": 1, "after": 2},
        "expire_session_next": 1 | {"n": 1, "after": 2}, "lowercase": true, "wrap": false}``;
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
        if "error_next" in spec:
            value = spec["error_next"]
            if isinstance(value, dict):
                self.error_next(
                    int(value.get("n", 1)),
                    str(value.get("text", "ERROR: Licence limit reached")),
                    value.get("call"),
                )
            else:
                self.error_next(int(value))
        if "doctype_next" in spec:
            self.doctype_next(int(spec["doctype_next"]))
        for name, arm in (
            ("drop_after_commit_next", self.drop_after_commit_next),
            ("expire_session_next", self.expire_session_next),
        ):
            if name in spec:
                value = spec[name]
                if isinstance(value, dict):
                    arm(int(value.get("n", 1)), int(value.get("after", 0)))
                else:
                    arm(int(value))
        if "lowercase" in spec:
            self.lowercase = bool(spec["lowercase"])
        if "wrap" in spec:
            self.wrap = bool(spec["wrap"])

    # The server's side -------------------------------------------------------

    def _arrived(self, call: str) -> None:
        with self._lock:
            self._calls[call] += 1

    def _take_fail(self) -> int | None:
        with self._lock:
            if self._fail <= 0:
                return None
            self._fail -= 1
            self._injected["fail"] += 1
            return self._fail_status

    def _take_error(self, call: str) -> str | None:
        with self._lock:
            for index, (wanted, text) in enumerate(self._errors):
                if wanted is None or wanted == call:
                    del self._errors[index]
                    self._injected["error"] += 1
                    return text
            return None

    def _take(self, name: str) -> bool:
        with self._lock:
            attribute = f"_{name}"
            if getattr(self, attribute) <= 0:
                return False
            if self._skip[name] > 0:
                self._skip[name] -= 1
                return False
            setattr(self, attribute, getattr(self, attribute) - 1)
            self._injected[name] += 1
            return True


# --------------------------------------------------------------------------
# Sessions and SORTOI
# --------------------------------------------------------------------------


class _Sessions:
    """One session per operator: a new Logon replaces the operator's old one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_operator: dict[str, str] = {}
        self._by_id: dict[str, str] = {}

    def logon(self, operator: str) -> str:
        session = secrets.token_hex(17).upper() + "  "
        with self._lock:
            old = self._by_operator.pop(operator.lower(), None)
            if old is not None:
                self._by_id.pop(old, None)
            self._by_operator[operator.lower()] = session
            self._by_id[session] = operator
        return session

    def operator(self, session: str) -> str | None:
        with self._lock:
            return self._by_id.get(session)

    def logoff(self, session: str) -> bool:
        with self._lock:
            operator = self._by_id.pop(session, None)
            if operator is None:
                return False
            self._by_operator.pop(operator.lower(), None)
            return True

    def active(self) -> int:
        with self._lock:
            return len(self._by_id)


def _text(node: ET.Element | None, name: str) -> str:
    if node is None:
        return ""
    found = node.find(name)
    if found is None or found.text is None:
        return ""
    return found.text.strip()


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


class _Backend:
    """SORTOI over the database; one Post at a time, as one e.net operator session is."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.t = _tables()
        self.engine = create_engine(make_url(url))
        if self.engine.dialect.name == "sqlite":

            @event.listens_for(self.engine, "connect")
            def _wait(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.execute("PRAGMA busy_timeout = 5000")

        self.t.metadata.create_all(self.engine)
        self._lock = threading.Lock()

    def dispose(self) -> None:
        self.engine.dispose()

    def post(self, operator: str, parameters: str, xml_in: str) -> tuple[ET.Element, bool]:
        """Run SORTOI: the answer's root, and whether any order was committed."""
        try:
            params = safe_fromstring(parameters or "<SalesOrders/>", forbid_dtd=True)
            document = safe_fromstring(xml_in, forbid_dtd=True)
        except (ET.ParseError, DefusedXmlException) as exc:
            raise _EnetError(f"ERROR: XML parse error in XmlParameters or XmlIn: {exc}") from None
        settings = params.find("Parameters")
        check_po = _text(settings, "CheckForCustomerPoNumbers").upper() == "Y"
        validate_only = _text(settings, "ValidateOnly").upper() == "Y"
        status = _text(settings, "OrderStatus") or "1"
        answer = ET.Element(
            "SalesOrders",
            {
                "Language": "05",
                "Language2": "EN",
                "CssStyle": "",
                "DecFormat": "1",
                "DateFormat": "01",
                "Role": "01",
                "Version": "8.0.000",
                "OperatorPrimaryRole": "   ",
            },
        )
        processed = rejected = 0
        committed = False
        with self._lock, self.engine.begin() as conn:
            for orders in document.findall("Orders"):
                order, ok, rows = self._order(conn, orders, check_po, status, operator)
                answer.append(order)
                if ok and not validate_only:
                    number = self._next_number(conn)
                    order.find("SalesOrder").text = number  # type: ignore[union-attr]
                    header, lines = rows
                    conn.execute(self.t.orders.insert(), {**header, "SalesOrder": number})
                    conn.execute(
                        self.t.lines.insert(), [{**line, "SalesOrder": number} for line in lines]
                    )
                    committed = True
                if ok:
                    processed += 1
                else:
                    rejected += 1
        status_node = ET.SubElement(answer, "StatusOfItems")
        ET.SubElement(status_node, "ItemsProcessed").text = f"{processed:06d}"
        ET.SubElement(status_node, "ItemsRejectedWithWarnings").text = f"{rejected:06d}"
        return answer, committed

    def _next_number(self, conn: Connection) -> str:
        last = conn.execute(select(func.max(self.t.orders.c.SalesOrder))).scalar_one()
        return f"{int(last or 0) + 1:06d}"

    def _order(
        self, conn: Connection, orders: ET.Element, check_po: bool, status: str, operator: str
    ) -> tuple[ET.Element, bool, tuple[dict[str, Any], list[dict[str, Any]]]]:
        head = orders.find("OrderHeader")
        po = _text(head, "CustomerPoNumber")
        customer = _text(head, "Customer")
        order = ET.Element("Order")
        ET.SubElement(order, "CustomerPoNumber").text = po
        ET.SubElement(order, "SalesOrder")
        ET.SubElement(order, "OrderActionType").text = _text(head, "OrderActionType") or "A"
        header_errors: list[str] = []

        def fail(node: ET.Element, description: str) -> None:
            messages = node.find("ErrorMessages")
            if messages is None:
                messages = ET.SubElement(node, "ErrorMessages")
            ET.SubElement(messages, "ErrorDescription").text = description

        if head is None:
            header_errors.append("Order header not supplied")
        if len(po) > PO_NUMBER_MAX:
            header_errors.append(
                f"Customer purchase order number exceeds {PO_NUMBER_MAX} characters"
            )
        known = conn.execute(
            select(self.t.customer.c.Customer).where(self.t.customer.c.Customer == customer)
        ).first()
        if not customer or known is None:
            header_errors.append(f"Customer '{customer}' not found")
        elif check_po and po:
            existing = conn.execute(
                select(self.t.orders.c.SalesOrder).where(
                    self.t.orders.c.CustomerPoNumber == po, self.t.orders.c.Customer == customer
                )
            ).first()
            if existing is not None:
                header_errors.append(
                    f"Customer purchase order number '{po}' already exists for customer "
                    f"'{customer}' on sales order {existing[0]}"
                )
        for n in range(1, 6):
            if len(_text(head, f"ShipAddress{n}")) > SHIP_ADDRESS_MAX:
                header_errors.append(f"Ship address line {n} exceeds {SHIP_ADDRESS_MAX} characters")
        date_text = _text(head, "OrderDate")
        try:
            order_date = date.fromisoformat(date_text).isoformat() if date_text else None
        except ValueError:
            header_errors.append(f"Order date '{date_text}' is invalid")
            order_date = None
        header_warehouse = _text(head, "Warehouse")
        header = {
            "Customer": customer,
            "CustomerPoNumber": po,
            "OrderDate": order_date or date.today().isoformat(),
            "OrderStatus": status,
            "OrderType": _text(head, "OrderType") or "00",
            "Salesperson": _text(head, "Salesperson") or None,
            "Email": _text(head, "Email") or None,
            **{f"ShipAddress{n}": _text(head, f"ShipAddress{n}") or None for n in range(1, 6)},
            "ShipPostalCode": _text(head, "ShipPostalCode") or None,
            "Warehouse": header_warehouse or None,
            "Operator": operator,
        }
        details = orders.find("OrderDetails")
        stock_lines = details.findall("StockLine") if details is not None else []
        freight_lines = details.findall("FreightLine") if details is not None else []
        if not stock_lines:
            header_errors.append("No stock lines supplied")
        codes = sorted({_text(line, "StockCode") for line in stock_lines})
        stocked: dict[str, list[str]] = {}
        for code, warehouse in conn.execute(
            select(self.t.warehouse.c.StockCode, self.t.warehouse.c.Warehouse)
            .where(self.t.warehouse.c.StockCode.in_(codes))
            .order_by(self.t.warehouse.c.StockCode, self.t.warehouse.c.Warehouse)
        ):
            stocked.setdefault(code, []).append(warehouse)
        known_codes = {
            row[0]
            for row in conn.execute(
                select(self.t.master.c.StockCode).where(self.t.master.c.StockCode.in_(codes))
            )
        }
        lines: list[dict[str, Any]] = []
        line_failed = False
        for number, line in enumerate(stock_lines, start=1):
            code = _text(line, "StockCode")
            echo = ET.SubElement(order, "StockLine")
            ET.SubElement(echo, "CustomerPoLine").text = _text(line, "CustomerPoLine") or str(
                number
            )
            ET.SubElement(echo, "StockCode").text = code
            problems: list[str] = []
            if code not in known_codes:
                problems.append(f"Stock code '{code}' not found")
            qty_text = _text(line, "OrderQty")
            qty = _decimal(qty_text)
            if qty is None or qty <= 0:
                problems.append(f"Order quantity '{qty_text}' is invalid")
            price_text = _text(line, "Price")
            if price_text and not _PRICE.match(price_text):
                problems.append(f"Price '{price_text}' is not numeric")
            warehouse = _text(line, "Warehouse") or header_warehouse
            if code in known_codes:
                if warehouse and warehouse not in stocked.get(code, []):
                    problems.append(f"Warehouse '{warehouse}' not found for stock code '{code}'")
                elif not warehouse:
                    warehouse = (stocked.get(code) or [""])[0]
            for problem in problems:
                fail(echo, problem)
            if problems:
                line_failed = True
                continue
            order.remove(echo)  # only failing lines are echoed
            lines.append(
                {
                    "SalesOrderLine": number,
                    "LineType": "1",
                    "MStockCode": code,
                    "MWarehouse": warehouse or None,
                    "MOrderQty": float(qty) if qty is not None else None,
                    "MPrice": float(Decimal(price_text)) if price_text else None,
                    "NMscChargeValue": None,
                }
            )
        for freight in freight_lines:
            value = _text(freight, "FreightValue")
            if not _PRICE.match(value):
                echo = ET.SubElement(order, "FreightLine")
                fail(echo, f"Freight value '{value}' is not numeric")
                line_failed = True
                continue
            lines.append(
                {
                    "SalesOrderLine": len(lines) + 1,
                    "LineType": "4",
                    "MStockCode": None,
                    "MWarehouse": None,
                    "MOrderQty": None,
                    "MPrice": None,
                    "NMscChargeValue": float(Decimal(value)),
                }
            )
        for description in header_errors:
            fail(order, description)
        ok = not header_errors and not line_failed
        return order, ok, (header, lines)


class _EnetError(Exception):
    """An ``ERROR: ...`` answer: its text is the body."""


# --------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------


def _render(root: ET.Element, lowercase: bool) -> str:
    if lowercase:
        for node in root.iter():
            node.tag = node.tag.lower()
    return ET.tostring(root, encoding="unicode")


def _xml_response(body: str, *, declaration: bool = True) -> Response:
    text = ('<?xml version="1.0" encoding="Windows-1252"?>\n' if declaration else "") + body
    return Response(
        text.encode("cp1252", errors="xmlcharrefreplace"),
        status_code=200,
        media_type="application/xml; charset=windows-1252",
    )


def _plain(text: str) -> Response:
    return Response(text.encode("utf-8"), status_code=200, media_type="text/plain; charset=utf-8")


_DOCTYPE_ANSWER = (
    '<?xml version="1.0"?>\n<!DOCTYPE SalesOrders [<!ENTITY order "000999">'
    '<!ENTITY lol "&order;&order;&order;&order;&order;&order;">]>\n'
    "<SalesOrders><Order><SalesOrder>&lol;</SalesOrder></Order></SalesOrders>"
)


class EnetApp(DroppableApp):
    """The Starlette app, with a hook that can drop the client's connection."""


def _param(request: Request, name: str) -> str | None:
    """A query parameter by name in any case, as WCF's UriTemplate matches them."""
    wanted = name.lower()
    for key, value in request.query_params.multi_items():
        if key.lower() == wanted:
            return value
    return None


def create_app(
    url: str,
    *,
    operator: str = "ADMIN",
    operator_password: str,
    company_id: str = "EDU1",
    company_password: str = "",
    faults: Faults | None = None,
    base_path: str = BASE_PATH,
) -> EnetApp:
    """The e.net REST service for the database at ``url``; ``app.state.faults`` holds faults.

    The operator name and company ID compare case-insensitively, as SYSPRO
    does; the passwords exactly.
    """
    backend = _Backend(url)
    sessions = _Sessions()
    state_faults = faults if faults is not None else Faults()
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""

    async def before(call: str) -> Response | None:
        state_faults._arrived(call)
        latency = state_faults.latency
        if latency > 0:
            await asyncio.sleep(latency)
        status = state_faults._take_fail()
        if status is not None:
            try:
                phrase = http.HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            return Response(phrase, status_code=status, media_type="text/plain")
        error = state_faults._take_error(call)
        if error is not None:
            return _plain(error)
        return None

    async def logon(request: Request) -> Response:
        early = await before("Logon")
        if early is not None:
            return early
        given = _param(request, "Operator") or ""
        if given.strip().lower() != operator.lower():
            return _plain(f"ERROR: Invalid operator '{given}'")
        if (_param(request, "OperatorPassword") or "") != operator_password:
            return _plain("ERROR: Invalid operator password")
        company = _param(request, "CompanyId") or ""
        if company.strip().lower() != company_id.lower():
            return _plain(f"ERROR: Invalid company '{company}'")
        if (_param(request, "CompanyPassword") or "") != company_password:
            return _plain("ERROR: Invalid company password")
        return _plain(sessions.logon(operator))

    async def logoff(request: Request) -> Response:
        early = await before("Logoff")
        if early is not None:
            return early
        if not sessions.logoff(_param(request, "UserId") or ""):
            return _plain("ERROR: Session is not logged on or has expired")
        return _plain("0")

    async def post(request: Request) -> Response:
        early = await before("Transaction/Post")
        if early is not None:
            return early
        user_id = _param(request, "UserId") or ""
        if sessions.operator(user_id) is not None and state_faults._take("expire"):
            sessions.logoff(user_id)
        session_operator = sessions.operator(user_id)
        if session_operator is None:
            return _plain("ERROR: Session is not logged on or has expired")
        business_object = (_param(request, "BusinessObject") or "").strip()
        if business_object.upper() != BUSINESS_OBJECT:
            return _plain(
                f"ERROR: Business object '{business_object}' is not enabled for this operator"
            )
        if state_faults._take("doctype"):
            return _xml_response(_DOCTYPE_ANSWER, declaration=False)
        try:
            root, committed = await run_in_threadpool(
                backend.post,
                session_operator,
                _param(request, "XmlParameters") or "",
                _param(request, "XmlIn") or "",
            )
        except _EnetError as exc:
            return _plain(str(exc))
        if committed and state_faults._take("drop"):
            close: Callable[[], Awaitable[bool]] | None = request.scope.get(_DROP_KEY)
            if close is None or not await close():
                raise ConnectionDropped("the order was committed; no answer is sent")
        body = _render(root, state_faults.lowercase)
        if state_faults.wrap:
            return _xml_response(
                f'<string xmlns="{_SERIALIZATION_NS}">{escape(body)}</string>',
                declaration=False,
            )
        return _xml_response(body)

    async def faults_view(request: Request) -> Response:
        if request.method == "POST":
            try:
                spec = json.loads(await request.body() or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                state_faults.configure(spec)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({**state_faults.snapshot(), "sessions": sessions.active()})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            backend.dispose()

    app = EnetApp(
        routes=[
            Route(f"{base}/Logon", logon, methods=["GET"]),
            Route(f"{base}/Logoff", logoff, methods=["GET"]),
            Route(f"{base}/Transaction/Post", post, methods=["GET"]),
            Route("/_faults", faults_view, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.faults = state_faults
    app.state.sessions = sessions
    app.state.url = url
    return app


# --------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A served emulator: ``enet_url`` is what a source's settings name."""

    base_url: str
    enet_url: str
    faults: Faults
    url: str


@contextmanager
def serve(
    url: str,
    *,
    operator_password: str,
    operator: str = "ADMIN",
    company_id: str = "EDU1",
    company_password: str = "",
    faults: Faults | None = None,
    base_path: str = BASE_PATH,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Run the service on a local port until the block ends (see ``emulators.serving``)."""
    faults = faults if faults is not None else Faults()
    app = create_app(
        url,
        operator=operator,
        operator_password=operator_password,
        company_id=company_id,
        company_password=company_password,
        faults=faults,
        base_path=base_path,
    )
    with serving.in_thread(
        app,
        title="SYSPRO",
        host=host,
        port=port,
        startup_timeout=startup_timeout,
        lifespan="on",
    ) as base_url:
        yield RunningServer(
            base_url=base_url,
            enet_url=base_url + "/" + base_path.strip("/"),
            faults=faults,
            url=url,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Seed and serve: ``python -m emulators.syspro --db ... --operator-password secret``."""
    parser = argparse.ArgumentParser(
        prog="python -m emulators.syspro",
        description="Serve a SYSPRO e.net REST service over a seeded company database.",
    )
    parser.add_argument("--db", default="sqlite:///var/syspro.sqlite", help="SQLAlchemy URL")
    parser.add_argument("--stock", type=int, default=2000, help="stock codes to seed")
    parser.add_argument("--price-codes", type=int, default=3)
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--no-seed", action="store_true", help="serve the data as it is")
    parser.add_argument("--clear-orders", action="store_true", help="also empty SorMaster")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=31002)
    parser.add_argument("--operator", default="ADMIN")
    parser.add_argument("--operator-password", required=True)
    parser.add_argument("--company-id", default="EDU1")
    parser.add_argument("--company-password", default="")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to calls")
    args = parser.parse_args(argv)
    if min(args.stock, args.customers, args.latency) < 0:
        parser.error("--stock, --customers and --latency must not be negative")
    shown = make_url(args.db).render_as_string(hide_password=True)
    if args.no_seed:
        create_schema(args.db)
    else:
        summary = seed(
            args.db,
            args.stock,
            args.price_codes,
            args.warehouses,
            args.customers,
            args.seed,
            clear_orders=args.clear_orders,
        )
        print(f"seeded {shown}")
        for name, value in asdict(summary).items():
            print(f"  {name:<15} {value}")
    faults = Faults()
    faults.latency = args.latency
    app = create_app(
        args.db,
        operator=args.operator,
        operator_password=args.operator_password,
        company_id=args.company_id,
        company_password=args.company_password,
        faults=faults,
    )
    print(f"e.net REST on http://{args.host}:{args.port}{BASE_PATH}/{{Logon,Transaction/Post}}")
    uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, http="h11", ws="none", lifespan="on")
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
