"""The SQL template's settings: the seed's prerequisites, field by field,
plus what a site may tune. Queries are guarded here already, so a bad one
is refused when the source is saved rather than on its first run."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from marshmallow import RAISE, ValidationError, fields, validate, validates_schema
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from connectors.base import SettingsSchema
from connectors.sql.guard import QueryError, guard_query

# Rows a page when the source does not say (``SqlConnector.default_page_size``).
SQL_PAGE_SIZE = 2000

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


class SqlSettingsSchema(SettingsSchema):
    """The seed's prerequisites, field by field, plus what a site may tune.

    Either ``url`` (any SQLAlchemy URL) or the parts the seed asks for:
    server, database, read-only username and password.
    """

    class Meta:
        unknown = RAISE

    # Its fields take None as "not set", and _consistent tells them apart by it.
    blank_to_none: ClassVar[bool] = True

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
            "LastName, Email, customer_active FROM <customers_table>. A custom query may "
            "add price_tier, phone and the addresses as billing_address1, billing_address2, "
            "billing_city, billing_province, billing_postal_code, billing_country, "
            "billing_phone and the same with shipping_"
        },
    )
    page_size = fields.Integer(
        load_default=SQL_PAGE_SIZE,
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
