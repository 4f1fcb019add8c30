"""SYSPRO's settings: seed 003's prerequisites, field by field, plus what
the seed leaves to each site. Codes SYSPRO keys by as text are refused as
bare numbers, since YAML reads ``001`` as 1 and the zeros are the code."""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from marshmallow import RAISE, ValidationError, fields, validate
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connectors.base import SettingsSchema
from connectors.syspro.reads import MAX_PAGE
from connectors.syspro.sortoi import PO_TEMPLATE_DEFAULT, check_po_template

_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\Z")


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


def _po_template(value: str) -> None:
    try:
        check_po_template(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _code(max_length: int, **kwargs: Any) -> fields.String:
    return _Text(
        validate=[
            validate.Length(min=1, max=max_length),
            validate.Regexp(r"\A[^\x00-\x1f\x7f]*\Z", error="must not contain control characters"),
        ],
        **kwargs,
    )


class SysproSettingsSchema(SettingsSchema):
    """Seed 003's prerequisites, field by field, plus what the seed leaves to each site."""

    class Meta:
        unknown = RAISE

    # A blank password is a real value: the passwords keep "".
    blank_kept: ClassVar[frozenset[str]] = frozenset({"operator_password", "company_password"})

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
    po_number = fields.String(
        load_default=PO_TEMPLATE_DEFAULT,
        validate=_po_template,
        metadata={
            "description": "What orders are raised (and found again) under as SYSPRO's "
            'CustomerPoNumber (30 characters): "{channel_order_code}" (the default, for one '
            'channel), or e.g. "{channel}-{channel_order_code}" when two channels may share '
            "an order number; a longer result is refused, never cut"
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
