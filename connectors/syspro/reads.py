"""SYSPRO's database half: products and customers read from the company
database with a read-only user, three SELECTs per page of products.

``InvMaster``, ``InvPrice`` and ``InvWarehouse`` make a product and
``ArCustomer`` a customer. Only SELECTs built with SQLAlchemy Core run, every
value is a bound parameter, and a page of products costs exactly three
queries whatever its size: the page of ``InvMaster`` (keyed on
``StockCode``), then the prices and the warehouse rows of those stock codes
with one ``IN`` each. ``queries`` counts them. Customers read the
``ArCustomer`` columns the site has: older schemas lack some, which are
left out with one warning (the first customers page costs one probe more).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, TypeVar

from sqlalchemy import Column, MetaData, Table, event, false, literal_column, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import Page, PermanentError, SettingsError, TransientError
from connectors.database import (
    AUTH,
    INTERRUPTED,
    MISSING_DATABASE,
    UNKNOWN_HOST,
    DatabaseConnector,
    Doing,
    Rule,
)
from connectors.syspro.sortoi import po_number

T = TypeVar("T")

log = logging.getLogger("s2s.connectors.syspro")

# SQL Server accepts at most 2100 parameters in one statement; a page's IN
# list stays below that so that a page is always three queries.
MAX_PAGE: Final = 2000
MAX_QUOTED_ERRORS: Final = 20

INV_MASTER_COLUMNS: Final = (
    "StockCode",
    "Description",
    "LongDesc",
    "ProductClass",
    "StockUom",
    "Mass",
    "AlternateKey1",
    "UserField1",
    "UserField2",
    "UserField3",
    "UserField4",
    "UserField5",
)
CUSTOMER_COLUMNS: Final = (
    "Customer",
    "Name",
    "Email",
    "Telephone",
    "Salesperson",
    "PriceCode",
    "CustomerOnHold",
    *(f"SoldToAddr{n}" for n in range(1, 6)),
    "SoldPostalCode",
    *(f"ShipToAddr{n}" for n in range(1, 6)),
    "ShipPostalCode",
)
# Without the key there is no paging; every other customer column may be
# missing from an older ArCustomer and is then left out of the SELECT.
CUSTOMER_KEY: Final = "Customer"


# --------------------------------------------------------------------------
# The tables read (declared, not reflected: reflection needs more rights)
# --------------------------------------------------------------------------


def _tables(extra_customer_column: str | None = None) -> dict[str, Table]:
    metadata = MetaData()
    customer_columns = list(CUSTOMER_COLUMNS)
    if extra_customer_column and extra_customer_column not in customer_columns:
        customer_columns.append(extra_customer_column)
    # Untyped columns: values arrive as the driver returns them and are made
    # JSON-safe here, so no type coercion can hide a bad value from the map.
    return {
        "InvMaster": Table("InvMaster", metadata, *(Column(c) for c in INV_MASTER_COLUMNS)),
        "InvPrice": Table(
            "InvPrice", metadata, Column("StockCode"), Column("PriceCode"), Column("SellingPrice")
        ),
        "InvWarehouse": Table(
            "InvWarehouse",
            metadata,
            Column("StockCode"),
            Column("Warehouse"),
            Column("QtyOnHand"),
            Column("QtyAllocated"),
        ),
        "ArCustomer": Table("ArCustomer", metadata, *(Column(c) for c in customer_columns)),
        "SorMaster": Table(
            "SorMaster",
            metadata,
            Column("SalesOrder"),
            Column("Customer"),
            Column("CustomerPoNumber"),
        ),
    }


# --------------------------------------------------------------------------
# How database failures are worded: operators are sent to database_url
# --------------------------------------------------------------------------

_DB_SCHEMA = re.compile(
    r"no such (table|column)|invalid (object|column) name|does not exist|doesn't exist"
    r"|unknown column|permission denied|select permission",
    re.IGNORECASE,
)
_HOST = re.compile(UNKNOWN_HOST.pattern + "|unknown host", re.IGNORECASE)
_TEMPORARY = re.compile("temporary", re.IGNORECASE)

CONNECT_RULES: tuple[Rule, ...] = (
    Rule(
        SettingsError,
        "{target} refused the login: {detail}",
        "check the user and password in database_url",
        matches=AUTH,
    ),
    Rule(
        SettingsError,
        "could not open {target}: {detail}",
        "check the database (company) name in database_url",
        matches=MISSING_DATABASE,
    ),
    Rule(
        SettingsError,
        "could not find the server of {target}: {detail}",
        "check the server and port in database_url",
        matches=_HOST,
        unless=_TEMPORARY,
    ),
    Rule(
        TransientError,
        "could not reach {target}: {detail}",
        "check that SQL Server is running and reachable from the hub; the hub will try again",
    ),
)

_SCHEMA_HINT = (
    "database_url must name the SYSPRO company database, and its user must "
    "be allowed to read InvMaster, InvPrice, InvWarehouse, ArCustomer and SorMaster"
)

STATEMENT_RULES: tuple[Rule, ...] = (
    INTERRUPTED,
    Rule(SettingsError, "{what} failed: {detail}", _SCHEMA_HINT, matches=_DB_SCHEMA),
    Rule(SettingsError, "{what} failed: {detail}", _SCHEMA_HINT, matches=AUTH),
    Rule(
        TransientError,
        "{what} failed: {detail}",
        "the database reported a problem; the hub will try again",
    ),
)

ENGINE_RULES: tuple[Rule, ...] = (
    Rule(
        SettingsError,
        "the hub cannot talk to {driver} databases: the driver is not installed",
        "install the driver on the hub, or change database_url's dialect+driver",
        errors=(NoSuchModuleError, ImportError),
    ),
    Rule(
        SettingsError,
        "database_url is not usable: {detail}",
        "correct database_url in the source's settings",
        errors=(ArgumentError,),
    ),
)


def _index(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records by StockCode: exact, and trimmed upper-case for padded or CI keys."""
    index: dict[str, dict[str, Any]] = {}
    for record in records:
        code = str(record["StockCode"])
        index[code] = record
        index.setdefault("\x00" + code.rstrip().upper(), record)
    return index


def _lookup(index: Mapping[str, dict[str, Any]], code: Any) -> dict[str, Any] | None:
    text = str(code)
    found = index.get(text)
    if found is None:
        found = index.get("\x00" + text.rstrip().upper())
    return found


class SysproDatabase(DatabaseConnector):
    """The half of ``SysproConnector`` that reads the company database.

    Decimals are written without an exponent (``format(value, "f")``), as
    the SYSPRO maps expect; every statement this connector's engine runs is
    counted in ``queries``, and on SQLite (the emulator, tests) the
    connection is made read-only as the field's database user is.
    """

    connect_rules: ClassVar[tuple[Rule, ...]] = CONNECT_RULES
    statement_rules: ClassVar[tuple[Rule, ...]] = STATEMENT_RULES
    engine_rules: ClassVar[tuple[Rule, ...]] = ENGINE_RULES
    fixed_decimals: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self._url = make_url(self.settings["database_url"])
        self._tables = _tables(self.settings["customer_active_field"])
        # The ArCustomer columns this site has, as the SELECT names them:
        # learnt by one probe on the first customers page (see _customer_columns).
        self._customer_select: tuple[ColumnElement[Any], list[ColumnElement[Any]]] | None = None
        self.queries = 0  # SELECTs run by this connector: three per product page

    @property
    def engine(self) -> Engine:
        """This process's engine, for diagnostics and tests (e.g. to count statements)."""
        return self._engine()

    def _engine_url(self, role: str) -> URL:
        return self._url

    def _connect_seconds(self) -> int:
        return max(1, round(float(self.settings["timeout"])))

    def _connect_words(self, role: str) -> dict[str, str]:
        return {"target": f"the SYSPRO database {self._database_label()}"}

    def _engine_ready(self, engine: Engine) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            self.queries = (self.queries or 0) + 1

        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _query_only(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA query_only = ON")
                cursor.close()

    def _read_db(self, work: Callable[[Connection], T], what: str) -> T:
        return self._run("read", work, Doing(what))

    def _database_label(self) -> str:
        words = [f"{self._url.database!r}" if self._url.database else "(default)"]
        if self._url.host:
            words.append(f"on {self._url.host}" + (f":{self._url.port}" if self._url.port else ""))
        if self._url.username:
            words.append(f"as {self._url.username!r}")
        return " ".join(words)

    # ---- reading ----------------------------------------------------------

    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        limit = min(limit, MAX_PAGE)
        after = None if cursor is None else str(cursor)
        if stream == "customers":
            return self._read_db(lambda c: self._customers(c, after, limit), "reading ArCustomer")
        return self._read_db(lambda c: self._products(c, after, limit), "reading stock")

    def _products(self, conn: Connection, after: str | None, limit: int) -> Page:
        """One page of stock codes with their prices and warehouses: three SELECTs."""
        master = self._tables["InvMaster"]
        prices = self._tables["InvPrice"]
        stock = self._tables["InvWarehouse"]
        statement = select(*master.c).order_by(master.c.StockCode).limit(limit)
        if after is not None:
            statement = statement.where(master.c.StockCode > after)
        records = self._rows(conn, statement)
        if not records:
            return Page(records=[], next_cursor=None)
        codes = [r["StockCode"] for r in records]
        price_query = (
            select(prices.c.StockCode, prices.c.PriceCode, prices.c.SellingPrice)
            .where(prices.c.StockCode.in_(codes))
            .order_by(prices.c.StockCode, prices.c.PriceCode)
        )
        names = self.settings["price_codes"]
        if names:
            wanted = sorted(
                {str(k).strip() for k in names} | {str(k).strip().upper() for k in names}
            )
            price_query = price_query.where(prices.c.PriceCode.in_(wanted))
        stock_query = (
            select(stock.c.StockCode, stock.c.Warehouse, stock.c.QtyOnHand, stock.c.QtyAllocated)
            .where(stock.c.StockCode.in_(codes))
            .order_by(stock.c.StockCode, stock.c.Warehouse)
        )
        if self.settings["warehouses"]:
            wanted = sorted({w.strip() for w in self.settings["warehouses"]})
            stock_query = stock_query.where(stock.c.Warehouse.in_(wanted))
        by_code = _index(records)
        for table, rows in (
            ("InvPrice", self._rows(conn, price_query)),
            ("InvWarehouse", self._rows(conn, stock_query)),
        ):
            for record in records:
                record[table] = []
            for row in rows:
                owner = _lookup(by_code, row.pop("StockCode"))
                if owner is not None:
                    owner[table].append(row)
        return self._page(records, "StockCode", limit, after)

    def _customers(self, conn: Connection, after: str | None, limit: int) -> Page:
        key, columns = self._customer_columns(conn)
        statement = select(*columns).order_by(key).limit(limit)
        if after is not None:
            statement = statement.where(key > after)
        return self._page(self._rows(conn, statement), CUSTOMER_KEY, limit, after)

    def _customer_columns(
        self, conn: Connection
    ) -> tuple[ColumnElement[Any], list[ColumnElement[Any]]]:
        """The key column and the ArCustomer columns to SELECT: those of ours
        the site's table has.

        Older SYSPRO schemas lack some of them (a second set of address
        lines, the postal codes), and a SELECT naming one would fail every
        customers run. One probe per connector, ``SELECT * ... WHERE 1 = 0``
        (no rows; only the rights the reads need already, where reflection
        needs more), gives the table's columns; the ones missing are left out
        with one warning naming them. Names match case-insensitively and are
        selected in the site's spelling under ours, so the maps see ours.
        """
        if self._customer_select is not None:
            return self._customer_select
        declared = self._tables["ArCustomer"]
        probe: Select[Any] = select(literal_column("*")).select_from(declared).where(false())
        names = conn.execute(probe).keys()  # a result's column names, not a dict's
        found = {str(name).lower(): str(name) for name in names}
        wanted = [c.name for c in declared.c]
        present = [name for name in wanted if name.lower() in found]
        missing = [name for name in wanted if name.lower() not in found]
        self._refuse_missing(missing)
        site = Table("ArCustomer", MetaData(), *(Column(found[n.lower()]) for n in present))
        columns: list[ColumnElement[Any]] = [
            site.c[found[n.lower()]].label(n) if found[n.lower()] != n else site.c[n]
            for n in present
        ]
        if missing:
            log.warning(
                "SYSPRO's ArCustomer in %s has no %s column%s: customers are synced "
                "without %s (an older SYSPRO schema)",
                self._database_label(),
                ", ".join(missing),
                "s" if len(missing) > 1 else "",
                "them" if len(missing) > 1 else "it",
            )
        self._customer_select = (site.c[found[CUSTOMER_KEY.lower()]], columns)
        return self._customer_select

    def _refuse_missing(self, missing: list[str]) -> None:
        """The two columns a customers run cannot do without: its key, and
        the column the source's ``customer_active_field`` names (without it
        every customer would read as inactive and be deleted)."""
        if CUSTOMER_KEY in missing:
            raise self._error(
                SettingsError,
                "ArCustomer has no Customer column, the key customers are read by",
                _SCHEMA_HINT,
            )
        active = self.settings["customer_active_field"]
        if active and active in missing:
            raise self._error(
                SettingsError,
                f"customer_active_field names {active}, which ArCustomer does not have",
                "set customer_active_field to a column of ArCustomer, or leave it unset "
                "to mark every customer active",
            )

    def _page(self, records: list[dict[str, Any]], key: str, limit: int, after: str | None) -> Page:
        if len(records) < limit:
            return Page(records=records, next_cursor=None)
        last = records[-1][key]
        if last is None or str(last) == after:
            raise self._error(
                PermanentError,
                f"the {key} column returned {last!r} again: paging would never end",
                "report this to the hub's developers with the database's collation",
            )
        return Page(records=records, next_cursor=str(last))

    def find_order(self, reference: str, channel: str | None = None) -> str | None:
        """The sales order raised under ``reference`` taken as its 30-character
        PO number (``SysproConnector.find_order`` makes it one from a channel)."""
        po = po_number(reference)
        if not po:
            raise ValueError("an order reference must not be blank")
        table = self._tables["SorMaster"]
        statement = (
            select(table.c.SalesOrder)
            .where(table.c.CustomerPoNumber == po)
            .order_by(table.c.SalesOrder)
            .limit(1)
        )
        rows = self._read_db(lambda c: self._rows(c, statement), f"looking up order {po}")
        for row in rows:
            value = row.get("SalesOrder")
            if value is not None and str(value).strip():
                return str(value).strip()
        return None
