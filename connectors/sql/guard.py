"""The query guard: only one SELECT (or WITH ... SELECT) gets through.

The operator's SQL is trusted to describe data, never to change it; every
value the hub adds is a bound parameter. Also here: splitting a WITH query
for SQL Server, which refuses a WITH inside a derived table, and the
statement that puts the user's CTE list before the hub's wrapper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import Select

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
