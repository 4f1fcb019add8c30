"""A SQL-based ERP, the seeds' "connector_name" template (seed 002).

Many on-premise ERPs keep their data in SQL Server, MySQL or PostgreSQL and
offer no API; the hub reads them with a read-only user and SELECTs the
operator may rewrite per site, and raises orders into staging tables the ERP
imports from (``reference/erp-wire-formats.md`` section 4).

Three rules shape this module:

* The operator's SQL is trusted to describe data, never to change it: only a
  single SELECT (or WITH ... SELECT) gets through, and every value the hub
  adds is a bound parameter.
* Pages are keyed, never offset: a product's variants are several rows
  sharing the product code and a page never splits them, so the hub always
  sees whole products, and rows are neither skipped nor repeated when the
  table changes between pages.
* No database exception leaves this module raw. Each becomes a transient,
  settings or rejected error with a sentence that names the problem and
  never a password.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote_plus

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    column,
    create_engine,
    false,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import Select, Subquery

from connectors.base import (
    Connector,
    ConnectorError,
    Page,
    PermanentError,
    RaiseOutcome,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.engines import dialect_options

__all__ = [
    "QueryError",
    "SqlConnector",
    "SqlSettingsSchema",
    "guard_query",
    "order_tables",
]

T = TypeVar("T")

PRODUCT_COLUMNS = ("Prod", "SKU", "WebName", "product_active", "qty", "price")
CUSTOMER_COLUMNS = ("Customer", "FirstName", "LastName", "Email", "customer_active")


# --------------------------------------------------------------------------
# The query guard
# --------------------------------------------------------------------------

# Words that make a statement write, lock, run code or open other sources.
# They are refused anywhere outside literals because SQL Server runs
# "SELECT 1 DROP TABLE x" as two statements without any ';'. Function names
# such as REPLACE are deliberately absent.
# fmt: off
_FORBIDDEN = frozenset({
    "ALTER", "ATTACH", "BACKUP", "BULK", "CALL", "COMMIT", "COPY", "CREATE", "DBCC",
    "DECLARE", "DELETE", "DENY", "DETACH", "DROP", "EXEC", "EXECUTE", "GRANT", "INSERT",
    "INTO", "KILL", "MERGE", "OPENDATASOURCE", "OPENQUERY", "OPENROWSET", "PRAGMA",
    "REINDEX", "RESTORE", "REVOKE", "ROLLBACK", "SHUTDOWN", "TRUNCATE", "UPDATE",
    "UPSERT", "VACUUM",
})
# fmt: on
# Words that take locks a read must never hold on a live ERP (SQL Server
# table hints, MySQL's LOCK IN SHARE MODE), or that start a second T-SQL
# statement without a ';' (SELECT 1 WAITFOR DELAY ..., SELECT 1 SET ...).
# SET is allowed only in MySQL's CHARACTER SET.
# fmt: off
_LOCKING = frozenset({
    "HOLDLOCK", "LOCK", "NOWAIT", "PAGLOCK", "READPAST", "REPEATABLEREAD", "ROWLOCK",
    "SERIALIZABLE", "TABLOCK", "TABLOCKX", "UPDLOCK", "XLOCK",
})
_STATEMENTS = frozenset({
    "BEGIN", "GOTO", "RAISERROR", "REVERT", "SET", "SETUSER", "USE", "WAITFOR",
})
# fmt: on
_SHARE_LOCK = re.compile(r"\bFOR\s+(KEY\s+)?SHARE\b", re.IGNORECASE)
_SET_OPERATOR = frozenset({"UNION", "INTERSECT", "EXCEPT", "MINUS", "ALL", "DISTINCT"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$#@]*")
_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}


class QueryError(ValueError):
    """A query the guard refuses; the message is one sentence for an operator."""


@dataclass(frozen=True)
class GuardedQuery:
    """A query that passed the guard.

    ``sql`` is what runs: comments blanked (a trailing ``--`` comment would
    otherwise swallow the wrapper's closing parenthesis) and one trailing
    ``;`` removed. ``masked`` has the same length with literals and quoted
    names blanked, so keywords and parentheses can be found by position.
    """

    sql: str
    masked: str


def _scan(sql: str, backslash_escapes: bool) -> tuple[str, str]:
    code: list[str] = []
    masked: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        pair = sql[i : i + 2]
        if pair == "--":
            end = sql.find("\n", i)
            end = n if end == -1 else end
            code.append(" " * (end - i))
            masked.append(" " * (end - i))
            i = end
        elif pair == "/*":
            end = sql.find("*/", i + 2)
            if end == -1:
                raise QueryError("the query has a /* comment that is never closed")
            end += 2
            code.append(" " * (end - i))
            masked.append(" " * (end - i))
            i = end
        elif ch in _CLOSERS:
            closer = _CLOSERS[ch]
            escapes = backslash_escapes and ch in "'\""
            j = i + 1
            while True:
                if j >= n:
                    raise QueryError(f"the query has a {ch} that is never closed")
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == closer:
                    if sql[j + 1 : j + 2] == closer:
                        j += 2
                        continue
                    break
                j += 1
            code.append(sql[i : j + 1])
            masked.append(ch + " " * (j - i - 1) + closer)
            i = j + 1
        else:
            code.append(ch)
            masked.append(ch)
            i += 1
    return "".join(code), "".join(masked)


def guard_query(sql: str, *, backslash_escapes: bool = False) -> GuardedQuery:
    """Let through one SELECT (or WITH ... SELECT) and nothing else.

    The database user should be read-only anyway; this guard is the second
    line, and the one that gives the operator a clear sentence instead of a
    driver error. ``backslash_escapes`` is for MySQL, whose string literals
    treat backslash as an escape character.
    """
    code, masked = _scan(sql, backslash_escapes)
    start = len(masked) - len(masked.lstrip())
    end = len(masked.rstrip())
    if end > start and masked[end - 1] == ";":
        end = len(masked[: end - 1].rstrip())
    code, masked = code[start:end], masked[start:end]
    if not masked.strip():
        raise QueryError("the query is empty")
    if ";" in masked:
        raise QueryError("the query must be one statement: it contains a ';' between statements")
    words = [w.upper() for w in _WORD.findall(masked)]
    first = re.match(r"[\s(]*([A-Za-z_]+)", masked)
    if not first or first.group(1).upper() not in {"SELECT", "WITH"}:
        raise QueryError("the query must be a SELECT (or WITH ... SELECT)")
    bad = sorted({w for w in words if w in _FORBIDDEN})
    if bad:
        raise QueryError(
            f"the query must only read, and {', '.join(bad)} is not allowed in it (outside quotes)"
        )
    if "SELECT" not in words:
        raise QueryError("the query must be a SELECT (or WITH ... SELECT)")
    _refuse_locks_and_second_statements(masked, words)
    return GuardedQuery(sql=code, masked=masked)


def _refuse_locks_and_second_statements(masked: str, words: list[str]) -> None:
    """Refuse locking reads, unbalanced parentheses and a second statement.

    The hub wraps the query as a subquery (``SELECT ... FROM (<query>) q``),
    so a stray ``)`` would close the wrapper early and let the rest of the
    text run outside it. SQL Server runs ``SELECT 1 SELECT 2`` as two
    statements, so a SELECT at the outermost level must follow a set
    operator (UNION, INTERSECT, EXCEPT) unless it is the first.
    """
    locks = sorted({w for w in words if w in _LOCKING})
    if _SHARE_LOCK.search(masked):
        locks.append("FOR SHARE")
    if locks:
        raise QueryError(
            f"the query must read without locking the ERP's rows, and {', '.join(locks)} "
            "is not allowed in it (outside quotes)"
        )
    depth = 0
    previous: str | None = None
    outer_selects = 0
    for match in re.finditer(r"[()]|[A-Za-z_][A-Za-z0-9_$#@]*", masked):
        token = match.group().upper()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0:
                raise QueryError("the query has a ')' without its '(' (unbalanced parentheses)")
        elif token in _STATEMENTS and not (token == "SET" and previous == "CHARACTER"):
            raise QueryError(
                f"the query must be one SELECT, and {token} starts another statement or "
                "changes the session"
            )
        elif token == "SELECT" and depth == 0:
            outer_selects += 1
            if outer_selects > 1 and previous not in _SET_OPERATOR:
                raise QueryError(
                    "the query must be one statement: it has a second SELECT that is not "
                    "joined to the first by UNION, INTERSECT or EXCEPT"
                )
        previous = token
    if depth != 0:
        raise QueryError("the query has a '(' that is never closed (unbalanced parentheses)")


def _split_with(query: GuardedQuery) -> tuple[str | None, str]:
    """Split ``WITH a AS (...), b AS (...) <main>`` into the CTE list and main.

    SQL Server refuses a WITH inside a derived table, so for it the wrapper
    goes after the user's CTE list: ``WITH ... SELECT TOP n * FROM (<main>) q``.
    A ``)`` that brings the depth back to zero ends the list unless a ``,``
    (another CTE) or ``AS`` (after a column list) follows.
    """
    head = re.match(r"\s*WITH\b", query.masked, re.IGNORECASE)
    if head is None:
        return None, query.sql
    depth = 0
    for i in range(head.end(), len(query.masked)):
        ch = query.masked[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and not re.match(r"\s*(,|AS\b)", query.masked[i + 1 :], re.IGNORECASE):
                return query.sql[: i + 1], query.sql[i + 1 :]
    raise QueryError("the WITH query has no SELECT after its common table expressions")


# Dialects that refuse a WITH inside a derived table.
_CTE_OUTSIDE = frozenset({"mssql"})


def _literal_sql(sql: str) -> TextClause:
    # Every ':' is escaped so that text() never mistakes "'10:30'" or a
    # PostgreSQL "::int" cast for a bind parameter; compiling restores them.
    return text(sql.replace(":", "\\:"))


class _Prefixed(Executable, ClauseElement):
    """A statement preceded by raw SQL: the user's CTE list, for SQL Server."""

    inherit_cache = False

    def __init__(self, prefix: TextClause, statement: Select[Any]) -> None:
        self.prefix = prefix
        self.statement = statement


@compiles(_Prefixed)
def _compile_prefixed(element: _Prefixed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.prefix, **kw) + "\n" + compiler.process(element.statement, **kw)


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------

_DRIVER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\+[A-Za-z][A-Za-z0-9_]*)?$")
_NAME = r"[A-Za-z_#@][A-Za-z0-9_$#@]*"
_TABLE = re.compile(rf"^{_NAME}(\.{_NAME})?$")
_TABLE_ERROR = "must be a table name, optionally schema.table (letters, digits, _)"


def _backend(data: Mapping[str, Any]) -> str | None:
    try:
        if data.get("url"):
            return make_url(data["url"]).get_backend_name()
        return URL.create(data.get("driver") or "mssql+pymssql").get_backend_name()
    except (ArgumentError, ValueError, TypeError):
        return None


class SqlSettingsSchema(Schema):
    """The seed's prerequisites, field by field, plus what a site may tune.

    Either ``url`` (any SQLAlchemy URL) or the parts the seed asks for:
    server, database, read-only username and password.
    """

    class Meta:
        unknown = RAISE

    url = fields.String(
        load_default=None,
        metadata={
            "secret": True,
            "description": "Full SQLAlchemy URL instead of the parts "
            "(dialect+driver://user:password@server:port/database)",
        },
    )
    driver = fields.String(
        load_default="mssql+pymssql",
        validate=validate.Regexp(_DRIVER, error="must be a SQLAlchemy driver name"),
        metadata={"description": "SQLAlchemy dialect+driver, e.g. mssql+pymssql, mysql+pymysql"},
    )
    server = fields.String(
        load_default=None, metadata={"description": "Server name / IP address (Windows name)"}
    )
    port = fields.Integer(
        load_default=None,
        validate=validate.Range(1, 65535),
        metadata={"description": "TCP port, when not the driver's default"},
    )
    database = fields.String(load_default=None, metadata={"description": "Database (company) name"})
    username = fields.String(
        load_default=None, metadata={"description": "Database username (read-only)"}
    )
    password = fields.String(
        load_default=None,
        metadata={"secret": True, "description": "Database password (read-only)"},
    )
    products_query = fields.String(
        load_default=None,
        metadata={
            "description": "SELECT for products; columns are the template's own "
            "(Prod, SKU, ...) or hub paths. Default: SELECT Prod, SKU, WebName, "
            "product_active, qty, price FROM <products_table>"
        },
    )
    customers_query = fields.String(
        load_default=None,
        metadata={
            "description": "SELECT for customers. Default: SELECT Customer, FirstName, "
            "LastName, Email, customer_active FROM <customers_table>"
        },
    )
    page_size = fields.Integer(
        load_default=500,
        validate=validate.Range(1, 10000),
        metadata={"description": "Rows per page the hub asks for"},
    )
    connect_timeout = fields.Integer(
        load_default=15,
        validate=validate.Range(1, 600),
        metadata={"description": "Seconds to wait for a connection"},
    )
    orders_url = fields.String(
        load_default=None,
        metadata={
            "secret": True,
            "description": "SQLAlchemy URL of a user that may insert orders "
            "(default: the read connection)",
        },
    )
    order_table = fields.String(
        load_default="s2s_order", validate=validate.Regexp(_TABLE, error=_TABLE_ERROR)
    )
    order_line_table = fields.String(
        load_default="s2s_order_line", validate=validate.Regexp(_TABLE, error=_TABLE_ERROR)
    )
    default_customer_code = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "Account for orders whose customer has no ERP code (cash sales)"},
    )
    shipping_code = fields.String(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "Service item code that shipping is raised as"},
    )
    products_table = fields.String(
        load_default="products", validate=validate.Regexp(_TABLE, error=_TABLE_ERROR)
    )
    customers_table = fields.String(
        load_default="customers", validate=validate.Regexp(_TABLE, error=_TABLE_ERROR)
    )

    @pre_load
    def _blank_is_unset(self, data: Any, **_: Any) -> Any:
        # Forms and YAML files hand over "" for a field left empty.
        if not isinstance(data, Mapping):
            return data
        return {
            key: (None if isinstance(value, str) and not value.strip() else value)
            for key, value in data.items()
        }

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        parts = [
            name
            for name in ("server", "port", "database", "username", "password")
            if data.get(name) is not None
        ]
        if data.get("url"):
            if parts:
                errors["url"] = [f"give either url or {', '.join(parts)}, not both"]
            else:
                try:
                    make_url(data["url"])
                except (ArgumentError, ValueError):
                    errors["url"] = [
                        "is not a SQLAlchemy URL (dialect+driver://user:password@server/database)"
                    ]
        else:
            if not data.get("database"):
                errors["database"] = ["is required (or give url)"]
            if not data.get("server") and _backend(data) != "sqlite":
                errors["server"] = ["is required (or give url)"]
        if data.get("orders_url"):
            try:
                make_url(data["orders_url"])
            except (ArgumentError, ValueError):
                errors["orders_url"] = [
                    "is not a SQLAlchemy URL (dialect+driver://user:password@server/database)"
                ]
        backslash = _backend(data) in {"mysql", "mariadb"}
        for name in ("products_query", "customers_query"):
            if data.get(name):
                try:
                    guard_query(data[name], backslash_escapes=backslash)
                except QueryError as exc:
                    errors[name] = [str(exc)]
        if errors:
            raise ValidationError(errors)


# --------------------------------------------------------------------------
# Order staging tables
# --------------------------------------------------------------------------


def _split_name(name: str) -> tuple[str | None, str]:
    schema, _, bare = name.rpartition(".")
    return (schema or None), bare


def order_tables(
    metadata: MetaData, order_table: str = "s2s_order", order_line_table: str = "s2s_order_line"
) -> tuple[Table, Table]:
    """The staging tables' shape as the connector writes them.

    Declared rather than reflected: reflection needs rights a read-write
    staging user may not have, and costs a round trip per connector.
    """
    schema, name = _split_name(order_table)
    header = Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("channel_order_code", String(64), nullable=False, unique=True),
        Column("customer_code", String(64)),
        Column("ordered_date", DateTime),
        Column("email", String(255)),
        Column("ship_name", String(255)),
        Column("ship_address1", String(255)),
        Column("ship_address2", String(255)),
        Column("ship_city", String(128)),
        Column("ship_province", String(128)),
        Column("ship_zip", String(32)),
        Column("ship_country", String(64)),
        Column("ship_phone", String(64)),
        Column("notes", Text),
        Column("total_ex_tax", Numeric(14, 2)),
        Column("created_at", DateTime),
        schema=schema,
    )
    schema, name = _split_name(order_line_table)
    lines = Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("channel_order_code", String(64), nullable=False),
        Column("line_no", Integer, nullable=False),
        Column("sku", String(64)),
        Column("title", String(255)),
        Column("qty", Integer),
        Column("unit_price", Numeric(14, 2)),
        Column("total_discount", Numeric(14, 2)),
        UniqueConstraint("channel_order_code", "line_no"),
        schema=schema,
    )
    return header, lines


def _coerce(col: Column[Any], value: Any) -> Any:
    """Make a JSON value fit a column, or say in a few words why it cannot.

    Payloads arrive as JSON, so dates are ISO strings and amounts may be
    floats; checking here gives the same answer on every database, where
    SQLite would silently keep an over-long string that SQL Server refuses.
    """
    if value is None:
        return None
    kind = col.type
    if isinstance(kind, DateTime):
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("is not an ISO-8601 date and time") from None
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return value
        if isinstance(value, date):
            return datetime.combine(value, time())
        raise ValueError("is not a date and time")
    if isinstance(kind, Numeric):
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise ValueError("is not a number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError("is not a number") from None
        if not number.is_finite():
            raise ValueError("is not a finite number")
        return number
    if isinstance(kind, Integer):
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise ValueError("is not a whole number")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError("is not a whole number") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError("is not a whole number")
        return int(number)
    if isinstance(kind, String):
        if isinstance(value, dict | list | tuple | set):
            raise ValueError("is not text")
        value = str(value)
        if kind.length is not None and len(value) > kind.length:
            raise ValueError(f"is longer than {kind.length} characters")
        return value
    return value


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

_TRANSIENT = re.compile(
    "|".join(
        [
            r"connection refused",
            r"timed? ?out",
            r"temporary failure",
            r"server closed the connection",
            r"connection reset",
            r"connection (is |was )?closed",
            r"connection not open",
            r"broken pipe",
            r"lost connection",
            r"gone away",
            r"terminating connection",
            r"too many (connections|clients)",
            r"(starting up|shutting down|in recovery mode)",
            r"database is locked",
            r"deadlock",
            r"could not serialize",
            r"lock wait",
            r"no route to host",
            r"network is unreachable",
            r"unable to connect",
            r"can't connect",
            r"is unavailable",
            r"ssl syscall",
            r"eof detected",
            r"unexpectedly",
        ]
    ),
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"password authentication failed|authentication failed|access denied|login failed"
    r"|no password supplied|role \S+ does not exist|not authorized",
    re.IGNORECASE,
)
_DATABASE = re.compile(
    r"database \S+ does not exist|unknown database|cannot open database"
    r"|unable to open database file",
    re.IGNORECASE,
)
_HOST = re.compile(
    r"could not translate host name|name or service not known|nodename nor servname"
    r"|unknown (mysql )?server host|no such host",
    re.IGNORECASE,
)
_QUERY = re.compile(
    r"no such (column|table)|does not exist|doesn't exist|syntax|invalid (column|object) name"
    r"|unknown (column|table)|ambiguous|permission denied|must appear in the group by"
    r"|invalid input|no such function|could not convert|conversion failed|read-only",
    re.IGNORECASE,
)


def _raw_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    # pymssql puts (number, b"message") in args; the tuple's repr is unreadable.
    if args and isinstance(args[-1], bytes):
        return args[-1].decode("utf-8", "replace")
    return str(orig)


def _first_line(message: str) -> str:
    for line in message.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


@dataclass(frozen=True)
class _Doing:
    """What the connector was doing, for the sentence an error becomes."""

    what: str  # "the products query", "raising order 1001"
    settings_hint: str  # what to change when the database says the SQL is wrong
    rejects: bool = False  # data errors are the document's fault (orders)


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------


_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _json_safe(value: Any) -> Any:
    """The hub stores pages as JSON; drivers hand over Decimal, datetime, bytes."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _fingerprint(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


@dataclass(frozen=True)
class _Stream:
    noun: str
    query_setting: str
    table_setting: str
    default_columns: tuple[str, ...]
    keys: tuple[str, ...]  # product (or customer) code, hub path first
    order: tuple[str, ...]  # variant code: keeps rows of one key in a stable order


_STREAMS = {
    "products": _Stream(
        noun="product",
        query_setting="products_query",
        table_setting="products_table",
        default_columns=PRODUCT_COLUMNS,
        keys=("source_product_code", "Prod"),
        order=("source_variant_code", "SKU"),
    ),
    "customers": _Stream(
        noun="customer",
        query_setting="customers_query",
        table_setting="customers_table",
        default_columns=CUSTOMER_COLUMNS,
        keys=("source_customer_code", "Customer"),
        order=(),
    ),
}


@dataclass(frozen=True)
class _Shape:
    """A stream's query as the database answers it: its labels and key."""

    prefix: str | None
    main: str
    labels: tuple[str, ...]
    key: str
    order: tuple[str, ...]

    def _subquery(self) -> Subquery:
        return (
            _literal_sql(self.main).columns(*(column(label) for label in self.labels)).subquery("q")
        )

    def _wrap(self, statement: Select[Any]) -> Executable:
        if self.prefix is None:
            return statement
        return _Prefixed(_literal_sql(self.prefix), statement)

    def page(self, cursor: Any, limit: int) -> Executable:
        q = self._subquery()
        statement = select(*q.c).where(q.c[self.key].is_not(None))
        if cursor is not None:
            statement = statement.where(q.c[self.key] > bindparam("cursor", cursor))
        statement = statement.order_by(*(q.c[name] for name in self.order)).limit(limit)
        return self._wrap(statement)

    def group(self, key: Any) -> Executable:
        q = self._subquery()
        statement = (
            select(*q.c)
            .where(q.c[self.key] == bindparam("key", key))
            .order_by(*(q.c[name] for name in self.order))
        )
        return self._wrap(statement)

    def count(self) -> Executable:
        q = self._subquery()
        return self._wrap(select(func.count(), func.count(q.c[self.key])).select_from(q))

    def record(self, row: Any) -> dict[str, Any]:
        # Most columns arrive as plain values: check types inline and convert
        # only a row that needs it (this runs once per row of every read).
        for value in row:
            if type(value) not in _PLAIN:
                return {label: _json_safe(v) for label, v in zip(self.labels, row, strict=True)}
        return dict(zip(self.labels, row, strict=True))


def _find_label(labels: tuple[str, ...], candidates: tuple[str, ...]) -> str | None:
    # Databases fold unquoted names (PostgreSQL to lower case), so the label
    # the query returns is found case-insensitively.
    by_lower = {label.lower(): label for label in labels}
    for candidate in candidates:
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    return None


def _connect_args(url: URL, timeout: int) -> dict[str, Any]:
    """A connect timeout under each driver's own name for it.

    Without one a dead server makes a worker wait minutes (the OS's TCP
    timeout) before the retry machinery gets a chance.
    """
    backend, driver = url.get_backend_name(), url.get_driver_name()
    name = {
        ("sqlite", "pysqlite"): "timeout",
        ("postgresql", "psycopg"): "connect_timeout",
        ("postgresql", "psycopg2"): "connect_timeout",
        ("postgresql", "pg8000"): "timeout",
        ("mysql", "pymysql"): "connect_timeout",
        ("mysql", "mysqldb"): "connect_timeout",
        ("mariadb", "pymysql"): "connect_timeout",
        ("mariadb", "mysqldb"): "connect_timeout",
        ("mysql", "mariadbconnector"): "connect_timeout",
        ("mariadb", "mariadbconnector"): "connect_timeout",
        ("mysql", "mysqlconnector"): "connection_timeout",
        ("mssql", "pymssql"): "login_timeout",
        ("mssql", "pyodbc"): "timeout",
    }.get((backend, driver))
    if name is None or name in url.query:
        return {}
    return {name: timeout}


# --------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------


# Query shapes learnt by any connector of this process, least recently used
# first (see ``SqlConnector._shape``); a few hundred bytes each.
_SHAPES: OrderedDict[tuple[str, ...], _Shape] = OrderedDict()
_SHAPES_KEPT = 2048


class SqlConnector(Connector):
    """Reads products and customers with SELECTs, raises orders into staging tables.

    ``read`` accepts ``since`` and ignores it: the template has no modified
    column to filter on, so every run reads every row and the hub's hashes
    decide what changed.
    """

    kind = "sql"
    title = "SQL-based ERP"
    streams = frozenset({"products", "customers"})
    settings_schema = SqlSettingsSchema

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        s = self.settings
        if s["url"]:
            self._url = make_url(s["url"])
        else:
            self._url = URL.create(
                drivername=s["driver"],
                username=s["username"],
                password=s["password"],
                host=s["server"],
                port=s["port"],
                database=s["database"],
            )
        self._orders_url = make_url(s["orders_url"]) if s["orders_url"] else self._url
        self._secrets = self._secret_strings()
        self._engines: dict[str, tuple[int, Engine]] = {}
        self._shapes: dict[str, _Shape] = {}

    @functools.cached_property
    def _staging(self) -> tuple[Table, Table]:
        """The order staging tables, declared when an order is first raised
        (most connectors a worker builds only read)."""
        s = self.settings
        return order_tables(MetaData(), s["order_table"], s["order_line_table"])

    @property
    def _header(self) -> Table:
        return self._staging[0]

    @property
    def _lines(self) -> Table:
        return self._staging[1]

    @property
    def page_size(self) -> int:
        """The page size this source's settings ask for."""
        return int(self.settings["page_size"])

    def __repr__(self) -> str:
        return f"<SqlConnector {self._url.render_as_string(hide_password=True)}>"

    def _secret_strings(self) -> tuple[str, ...]:
        found: set[str] = set()
        for name in self.secret_fields():
            if self.settings.get(name):
                found.add(str(self.settings[name]))
        for url in (self._url, self._orders_url):
            if url.password:
                found.update({str(url.password), quote_plus(str(url.password))})
        # Longest first, so that a password inside a URL is replaced whole.
        return tuple(sorted(found, key=len, reverse=True))

    def _scrub(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    def _detail(self, exc: BaseException) -> str:
        line = _first_line(self._scrub(_raw_message(exc))) or type(exc).__name__
        return line if len(line) <= 300 else line[:297] + "..."

    # ---- engines ---------------------------------------------------------

    def _role_url(self, role: str) -> URL:
        return self._orders_url if role == "orders" else self._url

    def _target(self, role: str) -> str:
        url = self._role_url(role)
        words = [f"database {url.database!r}" if url.database else "the database"]
        if url.host:
            words.append(f"on {url.host}" + (f":{url.port}" if url.port else ""))
        if url.username:
            words.append(f"as {url.username!r}")
        return " ".join(words)

    def _engine(self, role: str) -> Engine:
        """One engine per role and process, created on first use.

        Celery's prefork pool forks workers; a pool inherited across a fork
        would be shared by two processes, so a new process makes its own.
        """
        pid = os.getpid()
        cached = self._engines.get(role)
        if cached is not None:
            if cached[0] == pid:
                return cached[1]
            cached[1].dispose(close=False)
        url = self._role_url(role)
        options: dict[str, Any] = {"pool_pre_ping": True}
        try:
            options["connect_args"] = _connect_args(url, int(self.settings["connect_timeout"]))
            if url.get_backend_name() != "sqlite":
                # SQL Server and MySQL drop idle connections; recycle first.
                options["pool_recycle"] = 1800
            options.update(dialect_options(url))
            engine = create_engine(url, **options)
        except (NoSuchModuleError, ImportError):
            raise SettingsError(
                f"the hub cannot talk to {url.drivername} databases: that driver is not installed",
                hint="install the driver's package on the hub, or choose another driver",
            ) from None
        except ArgumentError as exc:
            raise SettingsError(
                f"the database connection settings are not usable: {self._detail(exc)}",
                hint="check driver, server, port and database in the source's settings",
            ) from None
        self._engines[role] = (pid, engine)
        return engine

    def release(self) -> None:
        """Between tasks: close the pooled connections, keeping the engines
        (their compiled statements) for the next task, which reconnects."""
        pid = os.getpid()
        for owner, engine in self._engines.values():
            if owner == pid:
                engine.dispose()

    def close(self) -> None:
        """Close this process's pools."""
        pid = os.getpid()
        for owner, engine in self._engines.values():
            engine.dispose(close=owner == pid)
        self._engines.clear()

    def _run(self, role: str, work: Callable[[Connection], T], doing: _Doing) -> T:
        engine = self._engine(role)
        try:
            conn = engine.connect()
        except (SQLAlchemyError, OSError) as exc:
            raise self._connect_error(exc, role) from None
        try:
            with conn:
                if role == "read" and engine.dialect.name == "postgresql":
                    # Cheap insurance on top of the read-only user.
                    conn.execution_options(postgresql_readonly=True)
                return work(conn)
        except ConnectorError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise self._statement_error(exc, doing) from None

    def _connect_error(self, exc: BaseException, role: str) -> ConnectorError:
        raw = _raw_message(exc)
        detail = self._detail(exc)
        target = self._target(role)
        where = "orders_url" if role == "orders" and self.settings["orders_url"] else None
        if _AUTH.search(raw):
            return SettingsError(
                f"{target} refused the login: {detail}",
                hint=f"check {where or 'username and password'} in the source's settings",
            )
        if _DATABASE.search(raw):
            return SettingsError(
                f"could not open {target}: {detail}",
                hint=f"check {where or 'database'} in the source's settings",
            )
        if _HOST.search(raw) and not re.search("temporary failure", raw, re.IGNORECASE):
            return SettingsError(
                f"could not find the server of {target}: {detail}",
                hint=f"check {where or 'server and port'} in the source's settings",
            )
        return TransientError(
            f"could not reach {target}: {detail}",
            hint="check that the database server is running and reachable from the hub; "
            "the hub will try again",
        )

    def _statement_error(self, exc: BaseException, doing: _Doing) -> ConnectorError:
        raw = _raw_message(exc)
        detail = self._detail(exc)
        invalidated = isinstance(exc, DBAPIError) and exc.connection_invalidated
        if invalidated or (_TRANSIENT.search(raw) and not _QUERY.search(raw)):
            return TransientError(
                f"{doing.what} was interrupted: {detail}",
                hint="the database connection failed; the hub will try again",
            )
        if isinstance(exc, DataError | IntegrityError) and doing.rejects:
            return RejectedError(
                f"the ERP refused {doing.what.removeprefix('raising ')}: {detail}",
                hint="correct the order (or the order mapping) and replay it",
            )
        if (
            isinstance(exc, ProgrammingError | DataError | IntegrityError)
            or _QUERY.search(raw)
            or _AUTH.search(raw)
        ):
            return SettingsError(f"{doing.what} failed: {detail}", hint=doing.settings_hint)
        if isinstance(exc, DBAPIError | PoolTimeoutError | OSError):
            return TransientError(
                f"{doing.what} failed: {detail}",
                hint="the database reported a temporary problem; the hub will try again",
            )
        return PermanentError(
            f"{doing.what} failed inside the hub: {detail}",
            hint="report this to the hub's developers",
        )

    # ---- reading ---------------------------------------------------------

    def _query(self, stream: str, dialect: Dialect) -> GuardedQuery:
        spec = _STREAMS[stream]
        sql = self.settings[spec.query_setting]
        if not sql:
            schema, name = _split_name(self.settings[spec.table_setting])
            default = select(*(column(c) for c in spec.default_columns)).select_from(
                table(name, schema=schema)
            )
            sql = str(default.compile(dialect=dialect))
        try:
            return guard_query(sql, backslash_escapes=dialect.name in {"mysql", "mariadb"})
        except QueryError as exc:
            raise SettingsError(
                f"the {stream} query is not allowed: {exc}",
                hint=f"check {spec.query_setting} in the source's settings",
            ) from None

    def _doing(self, stream: str) -> _Doing:
        spec = _STREAMS[stream]
        if self.settings[spec.query_setting]:
            hint = f"check {spec.query_setting} in the source's settings"
        else:
            hint = (
                f"the default {stream} query reads {', '.join(spec.default_columns)} from "
                f"table {self.settings[spec.table_setting]}; set {spec.table_setting}, or "
                f"write {spec.query_setting} for this ERP's tables"
            )
        return _Doing(what=f"the {stream} query", settings_hint=hint)

    def _shape(self, conn: Connection, stream: str) -> _Shape:
        """Learn the query's column labels once, from an empty run of it.

        Kept per process beyond this connector's life (``_SHAPES``, keyed by
        the database's address and the query): workers close and rebuild
        the connectors of many tenants, and the probe costs a round trip
        and a statement compiled anew each time.
        """
        shape = self._shapes.get(stream)
        if shape is not None:
            return shape
        spec = _STREAMS[stream]
        # The settings the query is made of, not the query itself: building
        # and guarding it is most of the cost this cache saves.
        known = (
            self._role_url("read").render_as_string(hide_password=True),
            conn.dialect.name,
            stream,
            self.settings[spec.query_setting] or "",
            self.settings[spec.table_setting] or "",
        )
        shape = _SHAPES.get(known)
        if shape is not None:
            _SHAPES.move_to_end(known)
            self._shapes[stream] = shape
            return shape
        query = self._query(stream, conn.dialect)
        if conn.dialect.name in _CTE_OUTSIDE:
            try:
                prefix, main = _split_with(query)
            except QueryError as exc:
                raise SettingsError(
                    f"the {stream} query is not allowed: {exc}",
                    hint=f"check {spec.query_setting} in the source's settings",
                ) from None
        else:
            prefix, main = None, query.sql
        probe = select(literal_column("*")).select_from(_literal_sql(main).columns().subquery("q"))
        probe = probe.where(false())
        statement = probe if prefix is None else _Prefixed(_literal_sql(prefix), probe)
        labels = tuple(conn.execute(statement).keys())
        key = _find_label(labels, spec.keys)
        if key is None:
            raise SettingsError(
                f"the {stream} query returns no {spec.noun} code: it needs a column named "
                f"{' or '.join(spec.keys)}, and it returns {', '.join(labels)}",
                hint=f"check {spec.query_setting} in the source's settings",
            )
        variant = _find_label(labels, spec.order)
        order = (key,) if variant is None or variant == key else (key, variant)
        shape = _Shape(prefix=prefix, main=main, labels=labels, key=key, order=order)
        self._shapes[stream] = _SHAPES[known] = shape
        while len(_SHAPES) > _SHAPES_KEPT:
            _SHAPES.popitem(last=False)
        return shape

    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        """Keyed paging that ends every page on a key boundary.

        Fetch ``limit`` rows after the cursor in key order. A full page may
        have cut the last key's rows short, so its rows are dropped from the
        tail and read again whole; the next page starts after that key.
        """

        def work(conn: Connection) -> Page:
            shape = self._shape(conn, stream)
            rows = conn.execute(shape.page(cursor, limit)).all()
            records = [shape.record(row) for row in rows]
            if len(rows) < limit:
                return Page(records=records, next_cursor=None)
            last = rows[-1][shape.labels.index(shape.key)]
            whole = [shape.record(row) for row in conn.execute(shape.group(last)).all()]
            last_safe = _json_safe(last)
            pending = Counter(_fingerprint(record) for record in whole)
            # Drop the tail rows of the last key: equal in Python, or equal in
            # the database's collation (found among the rows read again).
            while records:
                fingerprint = _fingerprint(records[-1])
                if pending[fingerprint] > 0:
                    pending[fingerprint] -= 1
                elif records[-1].get(shape.key) != last_safe:
                    break
                records.pop()
            records.extend(whole)
            return Page(records=records, next_cursor=last_safe)

        return self._run("read", work, self._doing(stream))

    def check(self) -> str:
        def work(conn: Connection) -> tuple[int, int]:
            shape = self._shape(conn, "products")
            total, keyed = conn.execute(shape.count()).one()
            return int(total), int(keyed)

        total, keyed = self._run("read", work, self._doing("products"))
        message = f"reached {self._target('read')}: {total:,} product rows"
        if keyed != total:
            message += f" ({total - keyed:,} without a product code, which cannot be synced)"
        return message

    # ---- orders ----------------------------------------------------------

    def _orders_doing(self, what: str) -> _Doing:
        return _Doing(
            what=what,
            settings_hint="check order_table, order_line_table and orders_url (a user "
            "allowed to insert) in the source's settings",
            rejects=True,
        )

    def _row(self, table_: Table, values: Mapping[str, Any], code: str, where: str) -> dict:
        writable = {c.name for c in table_.columns if c.name != "id"}
        unknown = sorted(set(values) - writable)
        if unknown:
            raise RejectedError(
                f"order {code}: the {where} has fields that table {table_.name} lacks: "
                f"{', '.join(unknown)}",
                hint="correct the order mapping, or the staging table",
            )
        row: dict[str, Any] = {}
        for name, value in values.items():
            try:
                row[name] = _coerce(table_.c[name], value)
            except ValueError as exc:
                raise RejectedError(
                    f"order {code}: {name} in the {where} {exc}",
                    hint="correct the order (or the order mapping) and replay it",
                ) from None
        return row

    def _prepare(self, payload: Mapping[str, Any]) -> tuple[str, dict, list[dict]]:
        header = payload.get("header") if isinstance(payload, Mapping) else None
        if not isinstance(header, Mapping):
            raise RejectedError("the order has no header", hint="correct the order mapping")
        code = header.get("channel_order_code")
        if code is None or not str(code).strip():
            raise RejectedError(
                "the order has no channel_order_code", hint="correct the order mapping"
            )
        code = str(code)
        lines = payload.get("lines")
        if not isinstance(lines, list) or not lines:
            raise RejectedError(
                f"order {code} has no lines", hint="an order needs at least one line item"
            )
        head = self._row(self._header, header, code, "header")
        if head.get("created_at") is None:
            head["created_at"] = datetime.now(UTC).replace(tzinfo=None)
        rows: list[dict[str, Any]] = []
        seen: set[int] = set()
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, Mapping):
                raise RejectedError(
                    f"order {code}: line {number} is not a set of fields",
                    hint="correct the order mapping",
                )
            values = dict(line)
            if values.get("channel_order_code") is None:
                values["channel_order_code"] = code
            elif str(values["channel_order_code"]) != code:
                raise RejectedError(
                    f"order {code}: line {number} belongs to order {values['channel_order_code']}",
                    hint="correct the order mapping",
                )
            if values.get("line_no") is None:
                values["line_no"] = number
            row = self._row(self._lines, values, code, f"line {number}")
            if row["line_no"] in seen:
                raise RejectedError(
                    f"order {code}: line_no {row['line_no']} appears twice",
                    hint="correct the order mapping",
                )
            seen.add(row["line_no"])
            rows.append(row)
        return code, head, rows

    def raise_order(self, payload: dict[str, Any]) -> str:
        """Insert header and lines in one transaction; a repeat returns the first id.

        The unique channel_order_code makes a retry safe: a second insert
        fails on the key and the existing header's id is returned instead.
        A failure during commit is transient and ambiguous; the caller asks
        ``find_order`` before trying again.
        """
        code, head, rows = self._prepare(payload)

        def work(conn: Connection) -> str:
            try:
                with conn.begin():
                    result = conn.execute(self._header.insert(), head)
                    document = result.inserted_primary_key[0]
                    conn.execute(self._lines.insert(), rows)
            except IntegrityError as exc:
                existing = self._lookup(conn, code)
                if existing is not None:
                    return existing
                raise RejectedError(
                    f"the ERP refused order {code}: {self._detail(exc)}",
                    hint="correct the order (or the order mapping) and replay it",
                ) from None
            return str(document)

        return self._run("orders", work, self._orders_doing(f"raising order {code}"))

    def raise_orders(self, payloads: Sequence[dict[str, Any]]) -> list[RaiseOutcome]:
        """Insert many orders at once; one refused order never sinks the others.

        First all headers in one multi-row INSERT (ids returned in the
        payloads' order) and all lines in another, in one transaction: a
        batch of a hundred orders costs a handful of round trips instead of a
        transaction each. If the ERP refuses anything in it (a constraint, a
        value its column cannot take, an order already there), that
        transaction is rolled back and the batch is inserted again one order
        at a time, each under its own savepoint (on SQLite, whose driver
        mishandles savepoints, its own transaction), so every good order
        lands once and each refused one gets the ERP's own words. An order
        already in the table answers with its existing id, as in
        ``raise_order``. A lost connection or a failed commit is raised as a
        ``TransientError`` for the whole batch (ambiguous: the hub asks
        ``find_order`` before sending any of them again).
        """
        outcomes: list[RaiseOutcome] = [None] * len(payloads)
        ready: list[tuple[int, str, dict[str, Any], list[dict[str, Any]]]] = []
        for index, payload in enumerate(payloads):
            try:
                code, head, rows = self._prepare(payload)
            except RejectedError as exc:
                outcomes[index] = exc
                continue
            ready.append((index, code, head, rows))
        if not ready:
            return outcomes
        codes = [code for _, code, _, _ in ready]
        if len(set(codes)) != len(codes):
            # Two payloads for one order code: only the one-by-one path can
            # tell the second that it is the first one's repeat.
            return self._raise_each(ready, outcomes)

        def work(conn: Connection) -> bool:
            try:
                with conn.begin():
                    ids = (
                        conn.execute(
                            self._header.insert().returning(
                                self._header.c.id, sort_by_parameter_order=True
                            ),
                            [head for _, _, head, _ in ready],
                        )
                        .scalars()
                        .all()
                    )
                    conn.execute(self._lines.insert(), [r for *_, rows in ready for r in rows])
            except (IntegrityError, DataError):
                return False
            for (index, *_), document in zip(ready, ids, strict=True):
                outcomes[index] = str(document)
            return True

        what = f"raising {len(ready)} orders ({codes[0]}…{codes[-1]})"
        if self._run("orders", work, self._orders_doing(what)):
            return outcomes
        return self._raise_each(ready, outcomes)

    def _raise_each(
        self,
        ready: list[tuple[int, str, dict[str, Any], list[dict[str, Any]]]],
        outcomes: list[RaiseOutcome],
    ) -> list[RaiseOutcome]:
        """The batch one order at a time, each in a savepoint of one transaction."""

        def work(conn: Connection) -> list[RaiseOutcome]:
            own_transactions = conn.dialect.name == "sqlite"
            outer = contextlib.nullcontext() if own_transactions else conn.begin()
            with outer:
                for index, code, head, rows in ready:
                    scope = conn.begin() if own_transactions else conn.begin_nested()
                    try:
                        with scope:
                            result = conn.execute(self._header.insert(), head)
                            document = result.inserted_primary_key[0]
                            conn.execute(self._lines.insert(), rows)
                    except (IntegrityError, DataError) as exc:
                        existing = self._lookup(conn, code)
                        if own_transactions and conn.in_transaction():
                            conn.commit()
                        outcomes[index] = existing or RejectedError(
                            f"the ERP refused order {code}: {self._detail(exc)}",
                            hint="correct the order (or the order mapping) and replay it",
                        )
                        continue
                    outcomes[index] = str(document)
            return outcomes

        what = f"raising {len(ready)} orders one by one"
        return self._run("orders", work, self._orders_doing(what))

    def _lookup(self, conn: Connection, reference: str) -> str | None:
        found = conn.execute(
            select(self._header.c.id).where(self._header.c.channel_order_code == reference)
        ).first()
        return None if found is None else str(found[0])

    def find_order(self, reference: str) -> str | None:
        return self._run(
            "orders",
            lambda conn: self._lookup(conn, str(reference)),
            self._orders_doing(f"looking up order {reference}"),
        )
