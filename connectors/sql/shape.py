"""A stream's query as the database answers it, and the statements paging it.

Pages are keyed, never offset: a product's variants are several rows
sharing the product code and a page never splits them, so the hub always
sees whole products, and rows are neither skipped nor repeated when the
table changes between pages.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, column, func, select
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import Select, Subquery

from connectors.database import json_safe
from connectors.sql.guard import _literal_sql, _Prefixed

PRODUCT_COLUMNS = ("Prod", "SKU", "WebName", "product_active", "qty", "price")
CUSTOMER_COLUMNS = ("Customer", "FirstName", "LastName", "Email", "customer_active")

_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})


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
                return {label: json_safe(v) for label, v in zip(self.labels, row, strict=True)}
        return dict(zip(self.labels, row, strict=True))


def _find_label(labels: tuple[str, ...], candidates: tuple[str, ...]) -> str | None:
    # Databases fold unquoted names (PostgreSQL to lower case), so the label
    # the query returns is found case-insensitively.
    by_lower = {label.lower(): label for label in labels}
    for candidate in candidates:
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    return None


# Query shapes learnt by any connector of this process, least recently used
# first (see ``SqlConnector._shape``); a few hundred bytes each.
SHAPES: OrderedDict[tuple[str, ...], _Shape] = OrderedDict()
SHAPES_KEPT = 2048
