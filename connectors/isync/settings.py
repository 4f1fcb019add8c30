"""iSync's settings: seed 001's prerequisites (username and password), plus
what a site may tune. Blank values mean "use the default" (``SettingsSchema``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, ValidationError, fields, validate

from connectors.base import SettingsSchema
from connectors.isync.wire import NAME, NOT_XML
from mappings.isync import ORDER_LINE_KEYS


class _ServiceUrl(fields.String):
    """The MessageService.svc address, normalised so that loading twice changes nothing.

    A pasted ``?wsdl`` is dropped (it is the same service); other queries,
    fragments and credentials in the address are refused, since the address
    appears in messages.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "must be an http:// or https:// address, e.g. "
                "https://isync.example.com/MessageService.svc"
            )
        if parts.username is not None or parts.password is not None:
            raise ValidationError(
                "must not contain a user name or password: give them as username and password"
            )
        query = parts.query.lower()
        if (query and query not in ("wsdl", "singlewsdl")) or parts.fragment:
            raise ValidationError("must be the service's address, without ? or #")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValidationError("has a port that is not a number from 1 to 65535") from None
        netloc = parts.netloc.lower()
        return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


class _Name(fields.String):
    """An operation name: it becomes the text of ``Operation``, so keep it plain."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not NAME.fullmatch(text):
            raise ValidationError("must be a plain name (letters, digits, _ . -)")
        return text


class _Text(fields.String):
    """Text that ends up inside iSync's XML: stripped, no control characters."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            raise ValidationError("must not be blank")
        if NOT_XML.search(text):
            raise ValidationError("must not contain control characters")
        return text


class IsyncSettingsSchema(SettingsSchema):
    """Seed 001's prerequisites (username and password), plus what a site may tune.

    The namespace, SOAPAction prefix and operation names are unverified in
    public (erp-wire-formats.md section 2), so they are settings: a site
    that differs changes them without code.
    """

    class Meta:
        unknown = RAISE

    service_url = _ServiceUrl(
        required=True,
        metadata={"description": "The iSync MessageService.svc address"},
    )
    username = _Text(
        required=True,
        validate=validate.Length(max=256),
        metadata={"description": "iSync Username/Email"},
    )
    password = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "iSync Password"},
    )
    shipping_code = _Text(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "ProductStockID of the service item shipping is raised as"},
    )
    default_customer_code = _Text(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "CustomerCode for orders without a customer code"},
    )
    order_line_key = fields.String(
        load_default=ORDER_LINE_KEYS[0],
        validate=validate.OneOf(ORDER_LINE_KEYS, error="must be one of {choices}, not {input!r}"),
        metadata={
            "description": "What an order line's ProductStockID is: sku (seed 001), or "
            "stock_line_id (the ProductStockID of the synced stock line with that SKU)"
        },
    )
    prices_include_vat = fields.Boolean(
        load_default=False,
        error_messages={"invalid": "must be true or false, not {input!r}"},
        metadata={
            "description": "false: SellingPrice per unit ex VAT; true: with the line's tax "
            "added, as the price appears on the website"
        },
    )
    page_size = fields.Integer(
        load_default=500,
        validate=validate.Range(1, 5000),
        metadata={"description": "Stock lines per page the hub asks for"},
    )
    namespace = fields.String(
        load_default="http://tempuri.org/",
        validate=validate.Length(min=1, max=500),
        metadata={"description": "XML namespace of the service's operations"},
    )
    soap_action_prefix = fields.String(
        load_default="http://tempuri.org/IMessageService/",
        validate=validate.Length(min=1, max=500),
        metadata={"description": "SOAPAction is this prefix followed by Login or Execute"},
    )
    op_get_products = _Name(
        load_default="GetProducts",
        metadata={"description": "Operation that lists stock lines"},
    )
    op_create_sales_order = _Name(
        load_default="CreateSalesOrder",
        metadata={"description": "Operation that raises a sales order"},
    )
    op_get_sales_order = _Name(
        load_default="GetSalesOrder",
        metadata={"description": "Operation that finds a sales order by PONumber"},
    )
    timeout = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=0.1, max=600),
        metadata={"description": "Seconds to wait for iSync to answer one call"},
    )
    overlap_minutes = fields.Integer(
        load_default=10,
        validate=validate.Range(0, 24 * 60),
        metadata={
            "description": "Incremental reads start this long before the last change seen, "
            "so lines saved while a sync ran are not missed"
        },
    )
