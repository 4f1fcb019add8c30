"""IQ Retail's wire format: the SQL text GenericSQL runs, the JSON envelope
every call is sent in, and the shapes of its answers (erp-wire-formats.md
section 1).

**GenericSQL takes text, not parameters**, so every value the hub puts in a
statement goes through :func:`sql_literal` (quotes doubled, control
characters refused) and every statement is built by :func:`stock_page_sql`
or a constant. Nothing else reaches IQ's SQL. Answers are read defensively:
key case varies between versions, so keys are folded to lower case once, at
every level, and numbers may arrive as padded text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from connectors import http

API_PATH: Final = "/IQRetailRestAPI/v1"
METHOD_SQL: Final = "IQ_API_Request_GenericSQL"
METHOD_SALES_ORDER: Final = "IQ_API_Submit_Document_Sales_Order"
STOCK_COLUMNS: Final = ("code", "descript", "webitem", "sellprice1", "onhand", "modified")
# Read as well when the source's qty_formula subtracts it from onhand.
SALES_ORDER_COLUMN: Final = "salesorder"
STAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

IDENTIFIER = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# --------------------------------------------------------------------------
# SQL text for GenericSQL
# --------------------------------------------------------------------------


def sql_literal(value: str) -> str:
    """``value`` as a DBISAM string literal: single quotes doubled.

    GenericSQL has no bound parameters, so this is the only thing standing
    between a stock code (or an order number from a channel) and IQ's SQL.
    Control characters are refused rather than escaped: DBISAM has no
    portable escape for them, and a line break inside a literal is how
    statement splitting tricks start. Backslash is an ordinary character in
    DBISAM (and standard SQL) literals, so it needs nothing.
    """
    if not isinstance(value, str):
        raise TypeError(f"an SQL literal must be text, not {type(value).__name__}")
    bad = CONTROL.search(value)
    if bad:
        raise ValueError(
            f"{value!r} contains a control character ({bad.group()!r}), "
            "which cannot be put into IQ's SQL safely"
        )
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain table name (letters, digits and _)")
    return name


def stock_columns(qty_formula: str = "onhand") -> tuple[str, ...]:
    """The Stock columns the products fetch reads: ``salesorder`` too when
    the source's qty_formula is ``onhand_less_sales_orders``."""
    if qty_formula == "onhand":
        return STOCK_COLUMNS
    return (*STOCK_COLUMNS, SALES_ORDER_COLUMN)


def stock_count_sql(table: str, web_items_only: bool = False) -> str:
    """How many stock rows there are, or (``web_items_only``) how many are
    ticked ``webitem``: the ones that sync as products. The fetch reads
    every row, since an unticked one removes its product from the hub."""
    where = " WHERE webitem = TRUE" if web_items_only else ""
    name = "web_items" if web_items_only else "stock_items"
    return f"SELECT COUNT(*) AS {name} FROM {identifier(table)}{where}"


def stock_page_sql(
    table: str,
    limit: int,
    after: str | None = None,
    modified_since: str | None = None,
    columns: tuple[str, ...] = STOCK_COLUMNS,
) -> str:
    """One keyed page of stock: ``TOP limit`` rows after ``after`` in code order.

    Keyed paging (``code > last``) rather than offsets, so that items added
    or removed between pages are neither skipped nor read twice.
    ``modified_since`` is a ``YYYY-MM-DD HH:MM:SS`` text compared with the
    ``modified`` column; ``columns`` are :func:`stock_columns`.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1, not {limit!r}")
    conditions: list[str] = []
    if after is not None:
        conditions.append(f"code > {sql_literal(after)}")
    if modified_since is not None:
        conditions.append(f"modified >= {sql_literal(modified_since)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT TOP {limit} {', '.join(columns)} FROM {identifier(table)}{where} ORDER BY code"


def find_order_sql(reference: str) -> str:
    """The sales order documents raised under ``reference`` (IQ does not deduplicate)."""
    literal = sql_literal(reference)
    return f"SELECT document FROM sorders WHERE ordernum = {literal} ORDER BY document"


def envelope(
    method: str, credentials: Mapping[str, Any], method_fields: Mapping[str, Any]
) -> bytes:
    """The body of one call: ``{"IQ_API": {method: {credentials..., fields...}}}``.

    IQ repeats the login in every body; NaN and infinities are refused, since
    IQ's JSON reader would fail on them (ValueError, as for what JSON cannot
    carry at all: TypeError).
    """
    call: dict[str, Any] = dict(credentials)
    call.update(method_fields)
    return json.dumps({"IQ_API": {method: call}}, allow_nan=False).encode()


def json_answer(response: httpx.Response) -> dict[str, Any] | None:
    """The answer as a mapping with keys in lower case, or None when it is not a JSON object."""
    try:
        answer = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return lower_keys(answer) if isinstance(answer, Mapping) else None


def lower_keys(value: Any) -> Any:
    """IQ answers in lower case, other versions and proxies do not: fold once."""
    if isinstance(value, Mapping):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def as_int(value: Any) -> int | None:
    """Codes arrive as 0, 0.0, "0" or " 0 "; anything else is unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if number.is_integer() else None
    return None


def document_number(answer: Mapping[str, Any]) -> str | None:
    """``iq_api_success_items[0][0].data``, found by its field name when there are several."""
    success = answer.get("iq_api_success")
    items = success.get("iq_api_success_items") if isinstance(success, Mapping) else success
    entries: list[Mapping[str, Any]] = []

    def flatten(value: Any) -> None:
        if isinstance(value, Mapping):
            entries.append(value)
        elif isinstance(value, list):
            for child in value:
                flatten(child)

    flatten(items)
    for entry in entries:
        if str(entry.get("fieldname", "")).strip().lower() == "document_number":
            data = entry.get("data")
            if data is not None and str(data).strip():
                return str(data).strip()
    for entry in entries:
        data = entry.get("data")
        if data is not None and str(data).strip():
            return str(data).strip()
    return None


def result_rows(answer: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The rows of a GenericSQL answer, or None when the answer has no recognisable rows."""
    result = answer.get("iq_api_result_data")
    if isinstance(result, str):
        # Some gateways send the result data as JSON inside a string.
        try:
            result = lower_keys(json.loads(result))
        except ValueError:
            return None
    if result is None:
        return []
    if isinstance(result, Mapping):
        if "records" in result:
            result = result["records"]
        else:
            lists = [v for v in result.values() if isinstance(v, list)]
            result = lists[0] if len(lists) == 1 else [] if not lists else None
    if result is None:
        return []
    if not isinstance(result, list) or not all(isinstance(r, Mapping) for r in result):
        return None
    return [dict(r) for r in result]


parse_stamp = http.naive_stamp
