"""IQ Retail's settings: seed 000's prerequisites, field by field, plus what a
site may tune. Blank values mean "use the default" (``SettingsSchema``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, ValidationError, fields, validate

from connectors.base import SettingsSchema
from connectors.iq_retail.wire import API_PATH, CONTROL, IDENTIFIER
from mappings.iq_retail import QTY_FORMULAS


class _Code(fields.String):
    """A number IQ keys by as text ("002", "99").

    ``allow_number`` accepts a bare whole number (a user number typed into a
    YAML file without quotes). The company number refuses one: YAML reads
    ``002`` as 2 and the leading zeros select the company.
    """

    def __init__(self, *, allow_number: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_number = allow_number

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if not self.allow_number:
                raise ValidationError(
                    'must be text such as "002": quote it, since a number loses its leading zeros'
                )
            value = str(value)
        text = super()._deserialize(value, attr, data, **kwargs)
        text = text.strip()
        if not text:
            raise ValidationError("must not be blank")
        if CONTROL.search(text):
            raise ValidationError("must not contain control characters")
        return text


class _RequestUrl(fields.String):
    """The site's base address, normalised so that loading twice changes nothing.

    Operators paste the address in several forms; a trailing slash or the
    API path itself is trimmed here rather than failing every call with 404.
    User names and passwords in the address are refused: they would travel
    into every message that names the address.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "must be an http:// or https:// address, e.g. http://10.0.0.5:8080"
            )
        if parts.username is not None or parts.password is not None:
            raise ValidationError(
                "must not contain a user name or password: give them as user_number and "
                "user_password"
            )
        if parts.query or parts.fragment:
            raise ValidationError("must be the server's base address, without ? or #")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValidationError("has a port that is not a number from 1 to 65535") from None
        path = parts.path.rstrip("/")
        if path.lower().endswith(API_PATH.lower()):
            path = path[: -len(API_PATH)].rstrip("/")
        return f"{parts.scheme.lower()}://{parts.netloc}{path}"


class IqRetailSettingsSchema(SettingsSchema):
    """Seed 000's prerequisites, field by field, plus what a site may tune."""

    class Meta:
        unknown = RAISE

    request_url = _RequestUrl(
        required=True,
        metadata={"description": "Request URL of the IQ API Interface, e.g. http://iq.local:8080"},
    )
    company_number = _Code(
        required=True,
        allow_number=False,
        validate=validate.Length(max=32),
        metadata={"description": 'IQ Company Number, as text with its zeros, e.g. "002"'},
    )
    user_number = _Code(
        required=True,
        validate=validate.Length(max=32),
        metadata={"description": "IQ User Number the API logs in as"},
    )
    user_password = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "IQ User Password (the API key)"},
    )
    terminal_number = _Code(
        load_default="1",
        validate=validate.Length(max=32),
        metadata={"description": "Terminal orders are processed against"},
    )
    sales_rep_number = fields.Integer(
        load_default=1,
        validate=validate.Range(min=0),
        metadata={"description": "Sales representative orders are processed with"},
    )
    default_debtor_account = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Debtor account for orders without a customer code, e.g. CASH01"},
    )
    shipping_code = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Stock code of the service item shipping is raised as"},
    )
    partner_passphrase = fields.String(
        load_default="",
        metadata={"secret": True, "description": "IQ_Partner_Passphrase, when IQ issued one"},
    )
    page_size = fields.Integer(
        load_default=500,
        validate=validate.Range(1, 5000),
        metadata={"description": "Stock items per page the hub asks for"},
    )
    timeout = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=0.1, max=600),
        metadata={"description": "Seconds to wait for IQ to answer one call"},
    )
    overlap_minutes = fields.Integer(
        load_default=10,
        validate=validate.Range(0, 24 * 60),
        metadata={
            "description": "Incremental reads start this long before the last change seen, "
            "so items saved while a sync ran are not missed"
        },
    )
    stock_table = fields.String(
        load_default="Stock",
        validate=validate.Regexp(IDENTIFIER, error="must be a plain table name"),
        metadata={"description": "Table stock is read from"},
    )
    qty_formula = fields.String(
        load_default=QTY_FORMULAS[0],
        validate=validate.OneOf(QTY_FORMULAS, error="must be one of {choices}, not {input!r}"),
        metadata={
            "description": "What a variant's qty is: onhand (seed 000), or "
            "onhand_less_sales_orders (onhand - salesorder; below 0 is stored as 0)"
        },
    )
    overrides = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        load_default=lambda: ["ideNegativeStock"],
        metadata={"description": "IQ_Overrides sent with every sales order"},
    )
