"""The staging tables orders are raised into, and making a payload's JSON
values fit their columns (``reference/erp-wire-formats.md`` section 4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

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
)


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
