"""How the SQL template words a database's failures: its rule tables.

No database exception leaves the connector raw. Each becomes a transient,
settings or rejected error with a sentence that names the problem and never
a password; the first row that applies decides (see ``connectors.database``).
"""

from __future__ import annotations

import re

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from connectors.base import PermanentError, RejectedError, SettingsError, TransientError
from connectors.database import AUTH, INTERRUPTED, MISSING_DATABASE, UNKNOWN_HOST, Rule

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
_QUERY = re.compile(
    r"no such (column|table)|does not exist|doesn't exist|syntax|invalid (column|object) name"
    r"|unknown (column|table)|ambiguous|permission denied|must appear in the group by"
    r"|invalid input|no such function|could not convert|conversion failed|read-only",
    re.IGNORECASE,
)

# A role PostgreSQL does not know is a login problem too.
_AUTH = re.compile(AUTH.pattern + r"|role \S+ does not exist", re.IGNORECASE)
_TEMPORARY = re.compile("temporary failure", re.IGNORECASE)

# The hints name ``login``, ``database`` and ``server``: the settings to
# check, which are orders_url alone when the orders connection failed.
CONNECT_RULES: tuple[Rule, ...] = (
    Rule(
        SettingsError,
        "{target} refused the login: {detail}",
        "check {login} in the source's settings",
        matches=_AUTH,
    ),
    Rule(
        SettingsError,
        "could not open {target}: {detail}",
        "check {database} in the source's settings",
        matches=MISSING_DATABASE,
    ),
    Rule(
        SettingsError,
        "could not find the server of {target}: {detail}",
        "check {server} in the source's settings",
        matches=UNKNOWN_HOST,
        unless=_TEMPORARY,
    ),
    Rule(
        TransientError,
        "could not reach {target}: {detail}",
        "check that the database server is running and reachable from the hub; "
        "the hub will try again",
    ),
)

_SETTINGS = ("{what} failed: {detail}", "{settings_hint}")

STATEMENT_RULES: tuple[Rule, ...] = (
    INTERRUPTED,
    Rule(
        TransientError,
        "{what} was interrupted: {detail}",
        "the database connection failed; the hub will try again",
        matches=_TRANSIENT,
        unless=_QUERY,
    ),
    Rule(
        RejectedError,
        "the ERP refused {thing}: {detail}",
        "correct the order (or the order mapping) and replay it",
        errors=(DataError, IntegrityError),
        rejects=True,
    ),
    Rule(SettingsError, *_SETTINGS, errors=(ProgrammingError, DataError, IntegrityError)),
    Rule(SettingsError, *_SETTINGS, matches=_QUERY),
    Rule(SettingsError, *_SETTINGS, matches=_AUTH),
    Rule(
        TransientError,
        "{what} failed: {detail}",
        "the database reported a temporary problem; the hub will try again",
        errors=(DBAPIError, PoolTimeoutError, OSError),
    ),
    Rule(
        PermanentError,
        "{what} failed inside the hub: {detail}",
        "report this to the hub's developers",
    ),
)
