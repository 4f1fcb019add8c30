"""SYSPRO (seed 003; erp-wire-formats.md section 3).

SYSPRO is spoken to in two ways, and this module keeps them apart:

* **Reading** goes straight to the company database (SQL Server in the
  field) with a read-only user: ``InvMaster``, ``InvPrice``,
  ``InvWarehouse`` for products and ``ArCustomer`` for customers. Only
  SELECTs built with SQLAlchemy Core run, every value is a bound
  parameter, and a page of products costs exactly three queries whatever
  its size: the page of ``InvMaster`` (keyed on ``StockCode``), then the
  prices and the warehouse rows of those stock codes with one ``IN`` each.
  ``queries`` counts them.
* **Orders** go in through e.net Solutions' REST service: ``Logon`` gives a
  session id, ``Transaction/Post`` runs the ``SORTOI`` business object, and
  ``Logoff`` always follows, because SYSPRO allows one session per operator
  (workers also hold a shared slot keyed by :meth:`SysproConnector.session_key`).
  Answers are HTTP 200 whatever happened: plain ``ERROR: ...`` text or XML
  whose element case varies. XML is parsed with :mod:`connectors.xmlsafe`,
  which refuses a DOCTYPE or entity declaration outright.

No secret leaves this module: the database URL's password, the operator and
company passwords and the session id are scrubbed from every message, and
``repr`` shows only public settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate
from sqlalchemy import Column, MetaData, Table, create_engine, event, func, select
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.sql import Select

from connectors import http, xmlsafe
from connectors.base import (
    Connector,
    ConnectorError,
    Page,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.engines import dialect_options

__all__ = [
    "MAX_PAGE",
    "SORTOI_PARAMETERS",
    "SysproConnector",
    "SysproSettingsSchema",
    "parse_sortoi_answer",
    "render_sortoidoc",
]

T = TypeVar("T")

BUSINESS_OBJECT: Final = "SORTOI"
# The reference's exact parameters: import now, allocate, take our price, and
# refuse a CustomerPoNumber SYSPRO already holds (the retry guard).
SORTOI_PARAMETERS: Final = (
    "<SalesOrders><Parameters><Process>Import</Process><ValidateOnly>N</ValidateOnly>"
    "<IgnoreWarnings>W</IgnoreWarnings><AllocationAction>A</AllocationAction>"
    "<AlwaysUsePriceEntered>Y</AlwaysUsePriceEntered>"
    "<AllowDuplicateOrderNumbers>N</AllowDuplicateOrderNumbers>"
    "<CheckForCustomerPoNumbers>Y</CheckForCustomerPoNumbers>"
    "<OrderStatus>1</OrderStatus></Parameters></SalesOrders>"
)
PO_NUMBER_MAX: Final = 30
SHIP_ADDRESS_MAX: Final = 40
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

_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_SESSION = re.compile(r"\A[0-9A-Fa-f]{16,64}\s*\Z")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


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
# Settings
# --------------------------------------------------------------------------


class _Url(fields.String):
    """The e.net REST base address, normalised so that loading twice changes nothing."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "must be an http:// or https:// address, e.g. "
                "http://sysprosrv:31002/SYSPROWCFService/Rest"
            )
        if parts.username is not None or parts.password is not None:
            raise ValidationError("must not contain a user name or password")
        if parts.query or parts.fragment:
            raise ValidationError("must be the service's base address, without ? or #")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValidationError("has a port that is not a number from 1 to 65535") from None
        path = parts.path.rstrip("/")
        for call in ("/Logon", "/Logoff", "/Transaction/Post"):
            if path.lower().endswith(call.lower()):
                path = path[: -len(call)]
        return f"{parts.scheme.lower()}://{parts.netloc}{path}"


class _DatabaseUrl(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            make_url(text)
        except (ArgumentError, ValueError):
            # Never quote the value: it holds the database password.
            raise ValidationError(
                "is not a SQLAlchemy URL (e.g. mssql+pymssql://user:password@server/Company)"
            ) from None
        return text


class _Text(fields.String):
    """A code SYSPRO keys by as text ("00", "001", "WH01").

    A bare number typed into a YAML file is refused unless ``allow_number``:
    YAML reads ``00`` as 0 and ``001`` as 1, and the zeros are the code.
    """

    def __init__(self, *, allow_number: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_number = allow_number

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not self.allow_number:
                raise ValidationError(
                    'must be text such as "001": quote it, since a number loses its leading zeros'
                )
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs).strip()


def _code(max_length: int, **kwargs: Any) -> fields.String:
    return _Text(
        validate=[
            validate.Length(min=1, max=max_length),
            validate.Regexp(r"\A[^\x00-\x1f\x7f]*\Z", error="must not contain control characters"),
        ],
        **kwargs,
    )


class SysproSettingsSchema(Schema):
    """Seed 003's prerequisites, field by field, plus what the seed leaves to each site."""

    class Meta:
        unknown = RAISE

    database_url = _DatabaseUrl(
        required=True,
        metadata={
            "secret": True,
            "description": "SQLAlchemy URL of the company database with the read-only user, "
            "e.g. mssql+pymssql://reader:password@sysprosrv/SysproCompanyA",
        },
    )
    operator = _code(64, required=True, metadata={"description": "SYSPRO operator login"})
    operator_password = fields.String(
        load_default="",
        metadata={"secret": True, "description": "Operator password (blank if it has none)"},
    )
    company_id = _code(32, required=True, metadata={"description": "SYSPRO company ID"})
    company_password = fields.String(
        load_default="",
        metadata={"secret": True, "description": "Company password (usually blank)"},
    )
    enet_url = _Url(
        required=True,
        metadata={
            "description": "e.net web services REST base, e.g. "
            "http://sysprosrv:31002/SYSPROWCFService/Rest"
        },
    )
    syspro_version = _Text(
        allow_number=True,
        load_default=None,
        validate=validate.Length(max=32),
        metadata={"description": "SYSPRO version, e.g. 8 (shown by check; informational)"},
    )
    active_user_field = fields.Integer(
        load_default=1,
        validate=validate.Range(1, 5),
        metadata={"description": "Which InvMaster UserField1-5 marks a product for the web"},
    )
    active_values = fields.List(
        _Text(allow_number=True, validate=validate.Length(max=64)),
        load_default=lambda: ["Y"],
        validate=validate.Length(min=1),
        metadata={"description": "Values of that user field meaning Active"},
    )
    delete_values = fields.List(
        _Text(allow_number=True, validate=validate.Length(max=64)),
        load_default=None,
        allow_none=True,
        metadata={
            "description": "Values meaning Delete; then any other value means Ignore. "
            "Unset: every value not in active_values means Delete"
        },
    )
    price_codes = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=10)),
        values=fields.String(validate=validate.Length(min=1, max=64)),
        load_default=dict,
        metadata={
            "description": 'InvPrice PriceCode -> tier name, e.g. {"A": "retail", "B": '
            '"wholesale"}; only listed codes are read. Empty: every code, named by itself'
        },
    )
    warehouses = fields.List(
        _Text(validate=validate.Length(min=1, max=10)),
        load_default=list,
        metadata={"description": "Warehouses whose stock is read and summed; empty: all"},
    )
    sales_rep = _code(
        20,
        load_default=None,
        metadata={"description": "Salesperson for orders (else the customer's own)"},
    )
    order_type = _code(10, load_default="00", metadata={"description": "SYSPRO OrderType"})
    default_customer_code = _code(
        20,
        load_default=None,
        metadata={"description": "Customer for orders without an account (cash sales)"},
    )
    shipping_code = _code(
        30,
        load_default=None,
        metadata={
            "description": "Unused by SYSPRO, accepted for symmetry with the other ERPs: "
            "shipping goes in as a SORTOIDOC FreightLine (FreightValue), which names no item"
        },
    )
    order_warehouse = _code(
        10,
        load_default=None,
        metadata={"description": "Warehouse orders are raised from (else each item's default)"},
    )
    customer_active_field = fields.String(
        load_default=None,
        validate=validate.Regexp(_NAME, error="must be an ArCustomer column name"),
        metadata={
            "description": "ArCustomer column holding Active/Delete/Ignore (or 1/0); "
            "unset: every customer is active"
        },
    )
    page_size = fields.Integer(
        load_default=500,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": "Stock codes per page (three queries per page)"},
    )
    timeout = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=0.1, max=600),
        metadata={"description": "Seconds to wait for the database or e.net"},
    )

    @pre_load
    def _blank_is_unset(self, data: Any, **_: Any) -> Any:
        # Forms and YAML files hand over "" or null for a field left empty; the
        # passwords keep "" (a blank password is a real value).
        if not isinstance(data, Mapping):
            return data
        keep = {"operator_password", "company_password"}
        return {
            key: value
            for key, value in data.items()
            if value is not None
            and (key in keep or not (isinstance(value, str) and not value.strip()))
        }


# --------------------------------------------------------------------------
# SORTOIDOC: rendering the map's payload, reading SYSPRO's answer
# --------------------------------------------------------------------------

_HEADER_ORDER: Final = (
    "CustomerPoNumber",
    "OrderActionType",
    "Customer",
    "OrderDate",
    "Salesperson",
    "OrderType",
    "Email",
    "ShipAddress1",
    "ShipAddress2",
    "ShipAddress3",
    "ShipAddress4",
    "ShipAddress5",
    "ShipPostalCode",
    "Warehouse",
)
_LINE_ORDER: Final = (
    "CustomerPoLine",
    "LineActionType",
    "StockCode",
    "Warehouse",
    "OrderQty",
    "Price",
)
_LIMITS: Final = {
    "CustomerPoNumber": PO_NUMBER_MAX,
    **{f"ShipAddress{n}": SHIP_ADDRESS_MAX for n in range(1, 6)},
}
_PRICE = re.compile(r"\A-?\d{1,13}\.\d{2}\Z")


def _xml_text(value: Any, limit: int | None = None) -> str:
    """Text XML 1.0 can carry, cut to SYSPRO's column width (escaping is ElementTree's)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        value = format(value, "f")
    text = unicodedata.normalize("NFC", str(value))
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:limit].rstrip() if limit is not None else text


def po_number(reference: Any) -> str:
    """The CustomerPoNumber an order is raised under: what find_order must look up."""
    return _xml_text(reference, PO_NUMBER_MAX)


def _ci(mapping: Any, name: str) -> Any:
    if not isinstance(mapping, Mapping):
        return None
    if name in mapping:
        return mapping[name]
    low = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == low:
            return value
    return None


def render_sortoidoc(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The SORTOIDOC ``XmlIn`` for the orders map's payload, and its CustomerPoNumber.

    ElementTree escapes every text; control characters are removed and the
    30- and 40-character limits are applied again here, so that a payload
    built by hand is as safe as the map's. Raises ValueError for a payload
    that cannot be an order (no PO number, no lines, a price that is not a
    two-place decimal).
    """
    header = _ci(payload, "header")
    lines = _ci(payload, "lines")
    if not isinstance(header, Mapping):
        raise ValueError("the order payload has no header")
    po = po_number(_ci(header, "CustomerPoNumber"))
    if not po:
        raise ValueError("the order payload has no CustomerPoNumber")
    if not isinstance(lines, list) or not lines:
        raise ValueError(f"order {po} has no lines")
    root = ET.Element("SalesOrders")
    orders = ET.SubElement(root, "Orders")
    head = ET.SubElement(orders, "OrderHeader")
    known = {k.lower() for k in _HEADER_ORDER}
    names = list(_HEADER_ORDER) + [
        k for k in header if isinstance(k, str) and k.lower() not in known
    ]
    for name in names:
        value = _ci(header, name)
        if value is None:
            continue
        ET.SubElement(head, name).text = _xml_text(value, _LIMITS.get(name))
    head.find("CustomerPoNumber").text = po  # type: ignore[union-attr]
    details = ET.SubElement(orders, "OrderDetails")
    for index, line in enumerate(lines, start=1):
        if not isinstance(line, Mapping):
            raise ValueError(f"order {po}: line {index} is not a set of fields")
        price = _xml_text(_ci(line, "Price"))
        if price and not _PRICE.match(price):
            raise ValueError(f'order {po}: line {index} Price "{price}" is not a two-place decimal')
        if not _xml_text(_ci(line, "StockCode")):
            raise ValueError(f"order {po}: line {index} has no StockCode")
        stock = ET.SubElement(details, "StockLine")
        for name in _LINE_ORDER:
            value = _ci(line, name)
            if value is not None and _xml_text(value) != "":
                ET.SubElement(stock, name).text = _xml_text(value)
    freight = _ci(payload, "freight")
    if isinstance(freight, Mapping) and _ci(freight, "FreightValue") is not None:
        value = _xml_text(_ci(freight, "FreightValue"))
        if not _PRICE.match(value):
            raise ValueError(f'order {po}: FreightValue "{value}" is not a two-place decimal')
        line = ET.SubElement(details, "FreightLine")
        ET.SubElement(line, "FreightValue").text = value
    return ET.tostring(root, encoding="unicode"), po


@dataclass(frozen=True)
class SortoiAnswer:
    """What SYSPRO said about one posted order: its number, or why not."""

    sales_order: str | None
    errors: tuple[str, ...]
    rejected_items: int | None
    recognised: bool  # False: no SalesOrder element anywhere (not a SORTOI answer)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_sortoi_answer(root: ET.Element) -> SortoiAnswer:
    """Read a SORTOI answer whatever the case of its elements.

    Each ``ErrorDescription`` is kept verbatim and labelled by the line it
    sits under (``StockLine`` with its ``StockCode``), so an operator sees
    exactly what SYSPRO said and where.
    """
    node = xmlsafe.find(root, "SalesOrder")
    errors: list[str] = []

    def walk(element: ET.Element, label: str) -> None:
        name = xmlsafe.local(element.tag)
        if name == "stockline":
            code = xmlsafe.text_of(xmlsafe.child(element, "StockCode"))
            line = xmlsafe.text_of(xmlsafe.child(element, "CustomerPoLine"))
            label = "stock line" + (f" {line}" if line else "") + (f" ({code})" if code else "")
        elif name == "freightline":
            label = "freight line"
        if name in ("errordescription", "errormessage") and len(element) == 0:
            text = xmlsafe.text_of(element)
            if text:
                errors.append(f"{label}: {text}" if label else text)
            return
        for item in element:
            walk(item, label)

    walk(root, "")
    return SortoiAnswer(
        sales_order=xmlsafe.text_of(node) if node is not None else None,
        errors=tuple(dict.fromkeys(errors)),
        rejected_items=_int(xmlsafe.text_of(root, "ItemsRejectedWithWarnings")),
        recognised=node is not None,
    )


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

_BUSY = re.compile(
    r"licen[cs]e|already logged|in use|too many|busy|try again|timed? ?out|unavailable"
    r"|temporar|deadlock|locked",
    re.IGNORECASE,
)
_SESSION_LOST = re.compile(
    r"session|user ?id|guid|not logged|logged (off|out)|expired|log ?on again",
    re.IGNORECASE,
)
_BUSINESS_OBJECT = re.compile(
    r"business object|sortoi|not (enabled|authori[sz]ed|allowed|permitted)|access denied",
    re.IGNORECASE,
)
_DUPLICATE_PO = re.compile(
    r"(purchase order|po number|customer ?po|customerponumber).{0,80}"
    r"(already|exists|duplicate|used)|duplicate.{0,40}(purchase order|po\b)",
    re.IGNORECASE,
)
_DB_AUTH = re.compile(
    r"login failed|password authentication failed|authentication failed|access denied"
    r"|not authorized|no password supplied",
    re.IGNORECASE,
)
_DB_MISSING = re.compile(
    r"cannot open database|unknown database|database \S+ does not exist"
    r"|unable to open database file",
    re.IGNORECASE,
)
_DB_HOST = re.compile(
    r"could not translate host name|name or service not known|nodename nor servname"
    r"|unknown (mysql )?server host|no such host|unknown host",
    re.IGNORECASE,
)
_DB_SCHEMA = re.compile(
    r"no such (table|column)|invalid (object|column) name|does not exist|doesn't exist"
    r"|unknown column|permission denied|select permission",
    re.IGNORECASE,
)
_HTTP_HOST = re.compile(
    r"name or service not known|nodename nor servname|no address associated|getaddrinfo failed"
    r"|no such host|name resolution",
    re.IGNORECASE,
)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _raw_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    # pymssql puts (number, b"message") in args; the tuple's repr is unreadable.
    if args and isinstance(args[-1], bytes):
        return args[-1].decode("utf-8", "replace")
    text = str(orig)
    return text.split("\n[SQL:", 1)[0]


def _json_safe(value: Any) -> Any:
    """Pages are stored as JSON: drivers hand over Decimal, datetime and bytes."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    return str(value)


def _connect_args(url: URL, timeout: float) -> dict[str, Any]:
    """A connect timeout under each driver's name for it (the SQL connector's table)."""
    seconds = max(1, round(timeout))
    name = {
        ("sqlite", "pysqlite"): "timeout",
        ("postgresql", "psycopg"): "connect_timeout",
        ("postgresql", "psycopg2"): "connect_timeout",
        ("mysql", "pymysql"): "connect_timeout",
        ("mssql", "pymssql"): "login_timeout",
        ("mssql", "pyodbc"): "timeout",
    }.get((url.get_backend_name(), url.get_driver_name()))
    if name is None or name in url.query:
        return {}
    return {name: seconds}


@dataclass(frozen=True)
class _Call:
    """What an e.net call is doing, for the sentence an operator reads."""

    what: str
    posting: bool = False


# --------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------


class SysproConnector(Connector):
    """Products and customers from the company database; sales orders through e.net.

    ``read`` ignores ``since``: SYSPRO has no reliable modified column on
    these tables, so every run reads everything and the hub's hashes find
    what changed.
    """

    kind = "syspro"
    title = "SYSPRO"
    streams = frozenset({"products", "customers"})
    settings_schema = SysproSettingsSchema
    session_limit = 1

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        s = self.settings
        self._url = make_url(s["database_url"])
        self._base = str(s["enet_url"])
        self._operator = str(s["operator"])
        self._company = str(s["company_id"])
        self._tables = _tables(s["customer_active_field"])
        secrets = {str(s["operator_password"] or ""), str(s["company_password"] or "")}
        if self._url.password:
            secrets.add(str(self._url.password))
        secrets.add(str(s["database_url"]))
        secrets.update({quote(x, safe="") for x in list(secrets) if x})
        self._secrets = tuple(sorted((x for x in secrets if x), key=len, reverse=True))
        self._session_ids: set[str] = set()
        self._engine_pid: tuple[int, Engine] | None = None
        self._http: httpx.Client | None = None
        self._http_pid: int | None = None
        self.queries = 0  # SELECTs run by this connector: three per product page

    def __repr__(self) -> str:
        return (
            f"<SysproConnector company {self._company!r} at {self._base} as operator "
            f"{self._operator!r}; database {self._database_label()}>"
        )

    @property
    def page_size(self) -> int:
        """The page size this source's settings ask for."""
        return int(self.settings["page_size"])

    @property
    def engine(self) -> Engine:
        """This process's engine, for diagnostics and tests (e.g. to count statements)."""
        return self._engine()

    def session_key(self) -> str:
        """``syspro:`` + a hash of the e.net address and the operator: one session each."""
        raw = f"{self._base}\n{self._operator.lower()}".encode()
        return "syspro:" + hashlib.sha256(raw).hexdigest()

    # ---- secrets ----------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in (*self._secrets, *sorted(self._session_ids, key=len, reverse=True)):
            text = text.replace(secret, "***")
            stripped = secret.strip()
            if stripped and stripped != secret:
                text = text.replace(stripped, "***")
        return text

    def _error(
        self, cls: type[ConnectorError], message: str, hint: str | None = None, **extra: Any
    ) -> ConnectorError:
        """Every error leaves through here, so no message can carry a secret."""
        return cls(self._scrub(message), hint=self._scrub(hint) if hint else None, **extra)

    # ---- the database -------------------------------------------------------

    def _database_label(self) -> str:
        words = [f"{self._url.database!r}" if self._url.database else "(default)"]
        if self._url.host:
            words.append(f"on {self._url.host}" + (f":{self._url.port}" if self._url.port else ""))
        if self._url.username:
            words.append(f"as {self._url.username!r}")
        return " ".join(words)

    def _engine(self) -> Engine:
        """One engine per process: a pool inherited over a fork would be shared."""
        pid = os.getpid()
        if self._engine_pid is not None:
            owner, engine = self._engine_pid
            if owner == pid:
                return engine
            engine.dispose(close=False)
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            "connect_args": _connect_args(self._url, float(self.settings["timeout"])),
        }
        backend = self._url.get_backend_name()
        if backend != "sqlite":
            options["pool_recycle"] = 1800
        options.update(dialect_options(self._url))
        try:
            engine = create_engine(self._url, **options)
        except (NoSuchModuleError, ImportError):
            raise self._error(
                SettingsError,
                f"the hub cannot talk to {self._url.drivername} databases: the driver is "
                "not installed",
                "install the driver on the hub, or change database_url's dialect+driver",
            ) from None
        except ArgumentError as exc:
            raise self._error(
                SettingsError,
                f"database_url is not usable: {_short(_raw_message(exc))}",
                "correct database_url in the source's settings",
            ) from None

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_: Any) -> None:
            self.queries += 1

        if backend == "sqlite":

            @event.listens_for(engine, "connect")
            def _query_only(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA query_only = ON")
                cursor.close()

        self._engine_pid = (pid, engine)
        return engine

    def _db(self, work: Callable[[Connection], T], what: str) -> T:
        engine = self._engine()
        try:
            conn = engine.connect()
        except (SQLAlchemyError, OSError) as exc:
            raise self._connect_error(exc) from None
        try:
            with conn:
                if engine.dialect.name == "postgresql":
                    conn = conn.execution_options(postgresql_readonly=True)
                return work(conn)
        except ConnectorError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise self._statement_error(exc, what) from None

    def _connect_error(self, exc: BaseException) -> ConnectorError:
        raw = _raw_message(exc)
        detail = _short(raw) or type(exc).__name__
        target = f"the SYSPRO database {self._database_label()}"
        if _DB_AUTH.search(raw):
            return self._error(
                SettingsError,
                f"{target} refused the login: {detail}",
                "check the user and password in database_url",
            )
        if _DB_MISSING.search(raw):
            return self._error(
                SettingsError,
                f"could not open {target}: {detail}",
                "check the database (company) name in database_url",
            )
        if _DB_HOST.search(raw) and "temporary" not in raw.lower():
            return self._error(
                SettingsError,
                f"could not find the server of {target}: {detail}",
                "check the server and port in database_url",
            )
        return self._error(
            TransientError,
            f"could not reach {target}: {detail}",
            "check that SQL Server is running and reachable from the hub; the hub will try again",
        )

    def _statement_error(self, exc: BaseException, what: str) -> ConnectorError:
        raw = _raw_message(exc)
        detail = _short(raw) or type(exc).__name__
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return self._error(
                TransientError,
                f"{what} was interrupted: {detail}",
                "the database connection failed; the hub will try again",
            )
        if _DB_SCHEMA.search(raw) or _DB_AUTH.search(raw):
            return self._error(
                SettingsError,
                f"{what} failed: {detail}",
                "database_url must name the SYSPRO company database, and its user must "
                "be allowed to read InvMaster, InvPrice, InvWarehouse, ArCustomer and SorMaster",
            )
        return self._error(
            TransientError,
            f"{what} failed: {detail}",
            "the database reported a problem; the hub will try again",
        )

    def _run(self, conn: Connection, statement: Select[Any]) -> list[dict[str, Any]]:
        result = conn.execute(statement)
        keys = list(result.keys())
        return [
            {key: _json_safe(value) for key, value in zip(keys, row, strict=True)}
            for row in result.all()
        ]

    # ---- reading ----------------------------------------------------------

    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        limit = min(limit, MAX_PAGE)
        after = None if cursor is None else str(cursor)
        if stream == "customers":
            return self._db(lambda c: self._customers(c, after, limit), "reading ArCustomer")
        return self._db(lambda c: self._products(c, after, limit), "reading stock")

    def _products(self, conn: Connection, after: str | None, limit: int) -> Page:
        """One page of stock codes with their prices and warehouses: three SELECTs."""
        master = self._tables["InvMaster"]
        prices = self._tables["InvPrice"]
        stock = self._tables["InvWarehouse"]
        statement = select(*master.c).order_by(master.c.StockCode).limit(limit)
        if after is not None:
            statement = statement.where(master.c.StockCode > after)
        records = self._run(conn, statement)
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
            ("InvPrice", self._run(conn, price_query)),
            ("InvWarehouse", self._run(conn, stock_query)),
        ):
            for record in records:
                record[table] = []
            for row in rows:
                record = _lookup(by_code, row.pop("StockCode"))
                if record is not None:
                    record[table].append(row)
        return self._page(records, "StockCode", limit, after)

    def _customers(self, conn: Connection, after: str | None, limit: int) -> Page:
        table = self._tables["ArCustomer"]
        statement = select(*table.c).order_by(table.c.Customer).limit(limit)
        if after is not None:
            statement = statement.where(table.c.Customer > after)
        return self._page(self._run(conn, statement), "Customer", limit, after)

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

    # ---- e.net ------------------------------------------------------------

    def _client(self) -> httpx.Client:
        """One client per process: a pool inherited over a fork would be shared."""
        pid = os.getpid()
        if self._http is None or self._http_pid != pid:
            seconds = float(self.settings["timeout"])
            self._http = http.client(seconds)
            self._http_pid = pid
        return self._http

    def _close_http(self) -> None:
        if self._http is not None and self._http_pid == os.getpid():
            self._http.close()
        self._http = None
        self._http_pid = None

    def release(self) -> None:
        """Between tasks: close the e.net keep-alive sockets and the database
        connections, keeping the engine (its statement cache and the query
        counter) for the next task."""
        self._close_http()
        if self._engine_pid is not None and self._engine_pid[0] == os.getpid():
            self._engine_pid[1].dispose()

    def close(self) -> None:
        """Close this process's HTTP connections and database pool."""
        self._close_http()
        if self._engine_pid is not None:
            owner, engine = self._engine_pid
            engine.dispose(close=owner == os.getpid())
        self._engine_pid = None

    @property
    def _where(self) -> str:
        return f"SYSPRO e.net at {self._base}"

    def _get(self, path: str, params: Mapping[str, str], call: _Call) -> httpx.Response:
        """One GET; the answer, or a typed error for what HTTP itself says.

        The query is encoded here with %20 for spaces (httpx would write
        ``+``): the session id ends in two spaces that must come back as is.
        """
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
        try:
            response = self._client().get(f"{self._base}/{path}?{query}")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from None
        status = response.status_code
        if status == 429 or status >= 500:
            if call.posting and status != 429:
                raise self._unknown_outcome(call, f"{self._where} answered HTTP {status}")
            raise self._error(
                TransientError,
                f"{self._where} is unavailable (HTTP {status}) while {call.what}",
                "the hub will try again",
            )
        if status == 404:
            raise self._error(
                SettingsError,
                f"{self._where} has no {path} call (HTTP 404)",
                "set enet_url to the REST base, e.g. http://server:31002/SYSPROWCFService/Rest",
            )
        if 300 <= status < 400:
            raise self._error(
                SettingsError,
                f"{self._where} redirects (HTTP {status}) to "
                f"{response.headers.get('location') or 'another address'}",
                "set enet_url to the address the server redirects to",
            )
        if status >= 400:
            raise self._error(
                SettingsError if status in (401, 403) else PermanentError,
                f"{self._where} answered HTTP {status} while {call.what}",
                "check enet_url and the e.net service's configuration (its web server "
                "must let the hub call it without a login of its own)",
            )
        return response

    def _transport_error(self, exc: httpx.HTTPError, call: _Call) -> ConnectorError:
        detail = _short(str(exc), 200) or type(exc).__name__
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return self._error(
                SettingsError, f"cannot call {self._where}: {detail}", "check enet_url"
            )
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            if (
                isinstance(exc, httpx.ConnectError)
                and _HTTP_HOST.search(detail)
                and "temporary" not in detail.lower()
            ):
                return self._error(
                    SettingsError,
                    f"cannot find the server of {self._where}: {detail}",
                    "check enet_url in the source's settings",
                )
            return self._error(
                TransientError,
                f"could not connect to {self._where} while {call.what}: {detail}",
                "check that the e.net service is running and reachable from the hub; "
                "the hub will try again",
            )
        if call.posting:
            what = (
                "did not answer in time"
                if isinstance(exc, httpx.TimeoutException)
                else f"dropped the connection ({detail})"
            )
            return self._unknown_outcome(call, f"{self._where} {what}")
        return self._error(
            TransientError,
            f"{self._where} failed while {call.what}: {detail}",
            "the hub will try again",
        )

    def _unknown_outcome(self, call: _Call, happened: str) -> ConnectorError:
        return self._error(
            TransientError,
            f"{happened} while {call.what}, after the order was sent: SYSPRO may or may not "
            "have recorded it",
            "the hub looks the order up in SorMaster before sending it again",
        )

    def _unwrap(self, response: httpx.Response, call: _Call) -> tuple[str, ET.Element | None]:
        """The answer's text, and its XML root when it is XML.

        XML is parsed from the bytes, so that SYSPRO's ``encoding=
        "Windows-1252"`` declaration is honoured; the decoded text is the
        fallback for a server whose declaration lies. Some e.net hosts wrap
        the answer in a WCF ``<string>`` element or a JSON string; both are
        unwrapped and the inner text checked again, DOCTYPE refusal included.
        """
        text = response.text.lstrip("\ufeff")
        data: bytes | None = response.content.lstrip(b"\xef\xbb\xbf \t\r\n")
        for _ in range(3):
            stripped = text.strip()
            if stripped.startswith('"') and stripped.endswith('"'):
                try:
                    inner = json.loads(stripped)
                except ValueError:
                    return text, None
                if isinstance(inner, str):
                    text, data = inner, None
                    continue
            if not stripped.startswith("<"):
                return text, None
            root = self._parse(data, stripped, call)
            if xmlsafe.local(root.tag) == "string" and len(root) == 0:
                text, data = root.text or "", None
                continue
            return stripped, root
        return text, None

    def _parse(self, data: bytes | None, text: str, call: _Call) -> ET.Element:
        what = f"SYSPRO's answer to {call.what}"
        try:
            try:
                if data is None:
                    raise xmlsafe.BadXmlError(what)
                return xmlsafe.parse(data, what=what)
            except xmlsafe.BadXmlError as first:
                try:
                    return xmlsafe.parse(_XML_DECLARATION.sub("", text, count=1), what=what)
                except xmlsafe.BadXmlError:
                    raise first from None
        except xmlsafe.UnsafeXmlError as exc:
            raise self._error(
                PermanentError,
                f"{self._where}: {exc}",
                "something between the hub and SYSPRO rewrites answers; fix that first."
                + (
                    " The order may have been recorded: the hub looks it up in SorMaster "
                    "when it is replayed"
                    if call.posting
                    else ""
                ),
            ) from None
        except xmlsafe.BadXmlError as exc:
            if call.posting:
                raise self._unknown_outcome(call, f"the answer was not XML ({exc})") from None
            raise self._error(
                TransientError,
                f"{self._where}: {exc}",
                "a proxy or a busy server may have cut the answer short; the hub will try again",
            ) from None

    def _enet_error(self, text: str, call: _Call) -> ConnectorError:
        """An ``ERROR: ...`` answer as the error type that says what to do."""
        said = _short(text.strip())
        reason = re.sub(r"^\s*ERROR\s*:?\s*", "", text.strip(), flags=re.IGNORECASE)
        if _BUSY.search(reason):
            return self._error(
                TransientError,
                f"{self._where} is busy while {call.what}: {said}",
                "SYSPRO allows one session per operator and a limited number of licences; "
                "the hub will try again",
            )
        if _SESSION_LOST.search(reason) and not re.search("password", reason, re.IGNORECASE):
            return self._error(
                TransientError,
                f"{self._where} ended the session while {call.what}: {said}",
                "another login as this operator ends the hub's session; the hub will log on again",
            )
        names: list[str] = []
        low = reason.lower()
        if "password" in low:
            names.append("company_password" if "company" in low else "operator_password")
        elif "operator" in low:
            names.append("operator")
        elif "company" in low:
            names.append("company_id")
        if names:
            return self._error(
                SettingsError,
                f"{self._where} refused the logon as operator {self._operator!r} to company "
                f"{self._company!r}: {said}",
                f"check {', '.join(names)} in the source's settings",
            )
        if _BUSINESS_OBJECT.search(reason):
            return self._error(
                SettingsError,
                f"{self._where} refused {call.what}: {said}",
                f"enable the {BUSINESS_OBJECT} business object for operator {self._operator!r} "
                "in SYSPRO",
            )
        if call.posting:
            return self._error(
                RejectedError,
                f"SYSPRO refused {call.what.removeprefix('raising ')}: {said}",
                "correct the order (stock codes, customer, prices) or the source's settings, "
                "then replay it",
            )
        return self._error(
            PermanentError,
            f"{self._where} refused {call.what}: {said}",
            "see SYSPRO's message; correct the cause in SYSPRO or in the source's settings",
        )

    def _logon(self) -> str:
        call = _Call("logging on")
        response = self._get(
            "Logon",
            {
                "Operator": self._operator,
                "OperatorPassword": str(self.settings["operator_password"] or ""),
                "CompanyId": self._company,
                "CompanyPassword": str(self.settings["company_password"] or ""),
            },
            call,
        )
        text, root = self._unwrap(response, call)
        if root is not None:
            raise self._error(
                PermanentError,
                f"{self._where} answered the logon with XML ({xmlsafe.local(root.tag)}), "
                "not a session id",
                "check that enet_url is the REST base of e.net Solutions",
            )
        if text.strip().upper().startswith("ERROR"):
            raise self._enet_error(text, call)
        if not _SESSION.match(text):
            raise self._error(
                PermanentError,
                f"{self._where} answered the logon with something that is not a session id: "
                f"{_short(text, 80) if text.strip() else 'an empty body'}",
                "check that enet_url is the REST base of e.net Solutions",
            )
        # Kept exactly as sent (trailing spaces included), and scrubbed from messages.
        self._session_ids.add(text)
        return text

    def _logoff(self, session: str) -> None:
        """End the session; a failure here must not hide the call's own outcome."""
        try:
            self._get("Logoff", {"UserId": session}, _Call("logging off"))
        except ConnectorError:
            pass
        finally:
            self._session_ids.discard(session)

    def raise_order(self, payload: dict[str, Any]) -> str:
        """Post one SORTOIDOC; SYSPRO's sales order number, e.g. ``000123``.

        ``CheckForCustomerPoNumbers=Y`` makes SYSPRO refuse a second order
        under the same CustomerPoNumber; when that is the refusal, the order
        is already in (an earlier attempt's answer was lost) and its number
        is returned. Any other ambiguous failure is a TransientError, and
        the hub calls ``find_order`` before sending again.
        """
        try:
            xml_in, po = render_sortoidoc(payload)
        except ValueError as exc:
            raise self._error(RejectedError, str(exc), "correct the order mapping") from None
        call = _Call(f"raising order {po}", posting=True)
        session = self._logon()
        try:
            response = self._get(
                "Transaction/Post",
                {
                    "UserId": session,
                    "BusinessObject": BUSINESS_OBJECT,
                    "XmlParameters": SORTOI_PARAMETERS,
                    "XmlIn": xml_in,
                },
                call,
            )
            text, root = self._unwrap(response, call)
            if root is None:
                if text.strip().upper().startswith("ERROR"):
                    raise self._enet_error(text, call)
                raise self._unknown_outcome(
                    call,
                    "the answer was neither XML nor an ERROR "
                    f"({_short(text, 80) if text.strip() else 'an empty body'})",
                )
            answer = parse_sortoi_answer(root)
        finally:
            self._logoff(session)
        if answer.sales_order:
            return answer.sales_order
        if not answer.recognised:
            raise self._unknown_outcome(
                call, f"the answer had no SalesOrder element ({xmlsafe.local(root.tag)})"
            )
        if answer.errors and any(_DUPLICATE_PO.search(e) for e in answer.errors):
            existing = self.find_order(po)
            if existing is not None:
                return existing
        if answer.errors:
            quoted = answer.errors[:MAX_QUOTED_ERRORS]
            more = len(answer.errors) - len(quoted)
            detail = "; ".join(quoted) + (f"; and {more} more" if more > 0 else "")
        elif answer.rejected_items:
            detail = f"{answer.rejected_items} item(s) rejected without a reason given"
        else:
            detail = "no sales order was created and no reason was given"
        raise self._error(
            RejectedError,
            f"SYSPRO refused order {po}: {detail}",
            "correct the order (stock codes, customer, prices) or the source's settings, "
            "then replay it",
        )

    def find_order(self, reference: str) -> str | None:
        """The sales order raised under ``reference`` (as its 30-character PO number)."""
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
        rows = self._db(lambda c: self._run(c, statement), f"looking up order {po}")
        for row in rows:
            value = row.get("SalesOrder")
            if value is not None and str(value).strip():
                return str(value).strip()
        return None

    # ---- check --------------------------------------------------------------

    def check(self) -> str:
        """Count stock codes, then log on to e.net and off again: one line, or the fix."""
        master = self._tables["InvMaster"]
        rows = self._db(
            lambda c: self._run(c, select(func.count().label("n")).select_from(master)),
            "counting InvMaster",
        )
        count = int(rows[0]["n"]) if rows else 0
        found = f"database {self._database_label()} answers with {count:,} stock codes"
        try:
            session = self._logon()
        except ConnectorError as exc:
            raise self._error(type(exc), f"{found}, but {exc.message}", exc.hint) from None
        self._logoff(session)
        version = self.settings.get("syspro_version")
        return (
            f"{found}; e.net logon and logoff as operator {self._operator!r} to company "
            f"{self._company!r} work at {self._base}" + (f" (SYSPRO {version})" if version else "")
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
