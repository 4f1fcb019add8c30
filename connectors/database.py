"""What the connectors that read an ERP's own database share (the SQL
template, SYSPRO): an engine per role and process, database failures read
as settings, transient or rejected errors from a table of rules, and rows
made JSON-safe.

Both connectors face the same drivers and the same failures; keeping one
copy of the engine's life and of the classification keeps a fix in one
place. Where the two word a failure differently (SYSPRO sends operators to
``database_url``, the template to its parts), their rule tables and class
attributes carry the difference, not the code.
"""

from __future__ import annotations

import abc
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.sql import Select

from connectors.base import Connector, ConnectorError, SettingsError, TransientError
from connectors.engines import build_engine

T = TypeVar("T")

# What the drivers say when a login is refused, a database is missing or a
# server's name is unknown (PostgreSQL, SQL Server, MySQL, SQLite).
AUTH = re.compile(
    r"login failed|password authentication failed|authentication failed|access denied"
    r"|not authorized|no password supplied",
    re.IGNORECASE,
)
MISSING_DATABASE = re.compile(
    r"cannot open database|unknown database|database \S+ does not exist"
    r"|unable to open database file",
    re.IGNORECASE,
)
UNKNOWN_HOST = re.compile(
    r"could not translate host name|name or service not known|nodename nor servname"
    r"|unknown (mysql )?server host|no such host",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Doing:
    """What the connector was doing, for the sentence an error becomes."""

    what: str  # "the products query", "raising order 1001"
    settings_hint: str = ""  # what to change when the database says the SQL is wrong
    rejects: bool = False  # data errors are the document's fault (orders)


@dataclass(frozen=True)
class Rule:
    """One row of a classification table: which failures it covers and what they are.

    A row applies when the exception is one of ``errors``, its driver's
    message matches ``matches`` (when given) and not ``unless``, the pool
    invalidated the connection (``invalidated``), and the work was raising
    orders (``rejects``). ``message`` and ``hint`` are templates over
    ``detail`` (the driver's words, secrets scrubbed), ``what`` and
    ``thing`` (what was being done, without "raising "), ``settings_hint``
    and what the connector adds (``target``, ``driver``, settings names).
    """

    kind: type[ConnectorError]
    message: str
    hint: str
    errors: tuple[type[BaseException], ...] = (BaseException,)
    matches: re.Pattern[str] | None = None
    unless: re.Pattern[str] | None = None
    invalidated: bool = False
    rejects: bool = False

    def applies(self, exc: BaseException, raw: str, doing: Doing | None) -> bool:
        if not isinstance(exc, self.errors):
            return False
        if self.invalidated and not (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return False
        if self.rejects and not (doing is not None and doing.rejects):
            return False
        if self.matches is not None and not self.matches.search(raw):
            return False
        return self.unless is None or not self.unless.search(raw)


# The row both connectors open their statement tables with.
INTERRUPTED = Rule(
    TransientError,
    "{what} was interrupted: {detail}",
    "the database connection failed; the hub will try again",
    invalidated=True,
)

# What ``create_engine`` raises, in words an operator can act on; a table
# of the connector's own replaces it where the setting to fix has a name.
ENGINE_RULES: tuple[Rule, ...] = (
    Rule(
        SettingsError,
        "the hub cannot talk to {driver} databases: that driver is not installed",
        "install the driver's package on the hub, or choose another driver",
        errors=(NoSuchModuleError, ImportError),
    ),
    Rule(
        SettingsError,
        "the database connection settings are not usable: {detail}",
        "check driver, server, port and database in the source's settings",
        errors=(ArgumentError,),
    ),
)


def raw_message(exc: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement and link."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    # pymssql puts (number, b"message") in args; the tuple's repr is unreadable.
    if args and isinstance(args[-1], bytes):
        return args[-1].decode("utf-8", "replace")
    return str(orig).split("\n[SQL:", 1)[0]


def first_line(message: str) -> str:
    for line in message.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


_PLAIN_TYPES = (str, int, float, bool)


def json_safe(value: Any, *, fixed_decimals: bool = False) -> Any:
    """The hub stores pages as JSON; drivers hand over Decimal, datetime, bytes.

    ``fixed_decimals`` writes a Decimal without an exponent (``0E-8`` as
    ``0.00000000``); the SQL template keeps ``str``'s spelling, since its
    stored records' hashes were made with it.
    """
    if value is None or isinstance(value, _PLAIN_TYPES):
        return value
    if isinstance(value, Decimal):
        return format(value, "f") if fixed_decimals else str(value)
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


class DatabaseConnector(Connector):
    """A connector that reads (and may write) an ERP's database with SQLAlchemy.

    One engine per role ("read", and for the SQL template "orders") and
    process, made on first use: Celery's prefork pool forks workers, and a
    pool inherited across a fork would be shared by two processes. Every
    database exception leaves ``_run`` as a connector error chosen by the
    subclass's ``connect_rules`` and ``statement_rules`` (first match
    wins, the last row should match anything).
    """

    roles: ClassVar[tuple[str, ...]] = ("read",)
    connect_rules: ClassVar[tuple[Rule, ...]]
    statement_rules: ClassVar[tuple[Rule, ...]]
    engine_rules: ClassVar[tuple[Rule, ...]] = ENGINE_RULES
    # The template quotes a driver's first line; SYSPRO its whole message on one line.
    detail_first_line: ClassVar[bool] = False
    fixed_decimals: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self._engines: dict[str, tuple[int, Engine]] = {}

    @abc.abstractmethod
    def _engine_url(self, role: str) -> URL:
        """The database a role connects to."""

    @abc.abstractmethod
    def _connect_seconds(self) -> int:
        """How long a connection attempt may take."""

    @abc.abstractmethod
    def _connect_words(self, role: str) -> dict[str, str]:
        """What the connect rules' templates name: ``target`` at least."""

    def _engine_ready(self, engine: Engine) -> None:
        """Called once for each engine made (event listeners go here)."""
        return None

    def extra_secrets(self) -> Iterable[str]:
        """The databases' passwords, also as a URL spells them."""
        yield from super().extra_secrets()
        for role in self.roles:
            password = self._engine_url(role).password
            if password:
                yield from (str(password), quote_plus(str(password)), quote(str(password), safe=""))

    # ---- the engine's life -------------------------------------------------

    def _engine(self, role: str = "read") -> Engine:
        """This process's engine for ``role``, made on first use."""
        pid = os.getpid()
        cached = self._engines.get(role)
        if cached is not None:
            if cached[0] == pid:
                return cached[1]
            cached[1].dispose(close=False)
        url = self._engine_url(role)
        try:
            engine = build_engine(url, self._connect_seconds())
        except (NoSuchModuleError, ImportError, ArgumentError) as exc:
            words = {"driver": url.drivername}
            raise self._classified(self.engine_rules, exc, None, words) from None
        self._engine_ready(engine)
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
        """Close this process's pools (and whatever the next base holds)."""
        pid = os.getpid()
        for owner, engine in self._engines.values():
            engine.dispose(close=owner == pid)
        self._engines.clear()
        super().close()

    # ---- running work ------------------------------------------------------

    def _run(self, role: str, work: Callable[[Connection], T], doing: Doing) -> T:
        """``work`` on a connection of ``role``; every database failure typed."""
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

    def _rows(self, conn: Connection, statement: Select[Any]) -> list[dict[str, Any]]:
        """A statement's rows as JSON-safe records."""
        result = conn.execute(statement)
        keys = list(result.keys())
        return [
            {key: self._json_safe(value) for key, value in zip(keys, row, strict=True)}
            for row in result.all()
        ]

    def _json_safe(self, value: Any) -> Any:
        return json_safe(value, fixed_decimals=self.fixed_decimals)

    # ---- errors --------------------------------------------------------------

    def _detail(self, exc: BaseException) -> str:
        """The driver's words for an operator: secrets scrubbed, one line, at
        most 300 characters."""
        raw = self._scrub(raw_message(exc))
        line = first_line(raw) if self.detail_first_line else " ".join(raw.split())
        line = line or type(exc).__name__
        return line if len(line) <= 300 else line[:297] + "..."

    def _classified(
        self,
        rules: tuple[Rule, ...],
        exc: BaseException,
        doing: Doing | None,
        words: Mapping[str, str],
    ) -> ConnectorError:
        raw = raw_message(exc)
        rule = next((r for r in rules if r.applies(exc, raw, doing)), None)
        if rule is None:
            raise exc
        every = {"detail": self._detail(exc), **words}
        if doing is not None:
            every.update(
                what=doing.what,
                thing=doing.what.removeprefix("raising "),
                settings_hint=doing.settings_hint,
            )
        hint = rule.hint.format(**every)
        return self._error(rule.kind, rule.message.format(**every), hint or None)

    def _connect_error(self, exc: BaseException, role: str) -> ConnectorError:
        return self._classified(self.connect_rules, exc, None, self._connect_words(role))

    def _statement_error(self, exc: BaseException, doing: Doing) -> ConnectorError:
        return self._classified(self.statement_rules, exc, doing, {})
