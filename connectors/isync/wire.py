"""iSync's wire format: the SOAP envelopes and MessageXml documents sent, and
the stock lines read back (erp-wire-formats.md section 2).

Values are escaped as they are written, and what XML 1.0 cannot carry at
all is refused (ValueError naming the field) rather than sent to be
refused. Answers are parsed elsewhere through :mod:`connectors.xmlsafe`;
this module reads the elements that come out of it.

**Never split a product in a full read.** Stock lines sharing a
``JobProductID`` are one product, and the hub replaces a product's variants
whenever it writes it; so :func:`hold_back_last_product` keeps the lines of
a page's last product for the next page, and :func:`grouped` regroups a
page that is not in product order.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final
from xml.sax.saxutils import escape

from connectors import http, xmlsafe

SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
STAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
PRODUCT_ID: Final = "JobProductID"
LINE_IDS: Final = ("ProductStockID", "SKU")
DELIVERY_FIELDS: Final = (
    "Name",
    "Address1",
    "Address2",
    "City",
    "Province",
    "PostalCode",
    "Country",
    "Phone",
    "Email",
)
CENT: Final = Decimal("0.01")

# Characters XML 1.0 cannot carry at all, not even escaped.
NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,127}\Z")

# --------------------------------------------------------------------------
# Request documents
# --------------------------------------------------------------------------


def _xml_text(value: Any, what: str) -> str:
    """``value`` as XML character data; ValueError for what XML cannot carry."""
    text = "" if value is None else str(value)
    bad = NOT_XML.search(text)
    if bad:
        raise ValueError(f"{what} contains a control character ({bad.group()!r}) XML cannot carry")
    return escape(text)


def element(name: str, value: Any, what: str | None = None) -> str:
    return f"<{name}>{_xml_text(value, what or name)}</{name}>"


def soap_envelope(namespace: str, operation: str, params: Sequence[tuple[str, Any]]) -> bytes:
    """A SOAP 1.1 request: ``<operation xmlns=namespace>`` holding ``params`` in order.

    Parameter values are escaped here, which is how ``Execute`` carries its
    MessageXml: as text, not as nested elements.
    """
    if not NAME.fullmatch(operation):
        raise ValueError(f"{operation!r} is not an XML element name")
    body = "".join(element(name, value) for name, value in params)
    ns = escape(namespace, {'"': "&quot;"})
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<{operation} xmlns="{ns}">{body}</{operation}>'
        "</soap:Body></soap:Envelope>"
    ).encode()


def products_request_xml(page: int, size: int, modified_since: str | None = None) -> str:
    """The GetProducts MessageXml for one page, optionally of lines changed since a time."""
    parts = [element("PageNumber", int(page)), element("PageSize", int(size))]
    if modified_since is not None:
        parts.append(element("ModifiedSince", modified_since))
    return f"<GetProducts>{''.join(parts)}</GetProducts>"


def get_sales_order_xml(reference: str) -> str:
    """The GetSalesOrder MessageXml that looks an order up by its PONumber."""
    return f"<GetSalesOrder>{element('PONumber', reference)}</GetSalesOrder>"


def plain(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _units(value: Any, label: str) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{label} Units {value!r} is not a whole number above 0")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{label} Units {value!r} is not a whole number above 0") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 1:
        raise ValueError(f"{label} Units {value!r} is not a whole number above 0")
    return str(int(number))


def _price(value: Any, label: str) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{label} SellingPrice {value!r} is not a price")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{label} SellingPrice {value!r} is not a price") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{label} SellingPrice {value!r} is not a price of 0 or more")
    return str(number.quantize(CENT, rounding=ROUND_HALF_UP))


def sales_order_xml(payload: Mapping[str, Any], default_customer_code: str | None = None) -> str:
    """The CreateSalesOrder MessageXml for the orders map's payload.

    The payload is ``{PONumber, CustomerCode, DeliveryDetail: {Name, ...},
    Lines: [{ProductStockID, Units, SellingPrice}]}`` (keys in any case; a
    ``SalesOrder`` wrapper is accepted). Elements are written in the
    reference's order, every DeliveryDetail element present (blank when
    unknown), Units as whole numbers and prices with two decimals. Raises
    ValueError naming the line and field at fault: the payload, not iSync,
    is wrong, and sending it could only be refused.
    """
    wrapped = http.ci_get(payload, "SalesOrder")
    order = wrapped if isinstance(wrapped, Mapping) else payload
    if not isinstance(order, Mapping):
        raise ValueError("the order payload is not a set of fields")
    po = plain(http.ci_get(order, "PONumber"))
    if not po:
        raise ValueError("the order payload has no PONumber")
    customer = plain(http.ci_get(order, "CustomerCode")) or plain(default_customer_code)
    if not customer:
        raise ValueError(
            "the order has no CustomerCode and the source has no default_customer_code"
        )
    lines = http.ci_get(order, "Lines")
    if isinstance(lines, Mapping):  # {"Line": [...]}, as XML-minded code may write it
        lines = http.ci_get(lines, "Line")
    if not isinstance(lines, list) or not lines:
        raise ValueError(f"order {po} has no lines to raise")
    delivery = http.ci_get(order, "DeliveryDetail")
    delivery = delivery if isinstance(delivery, Mapping) else {}
    parts = [
        element("PONumber", po),
        element("CustomerCode", customer),
        "<DeliveryDetail>"
        + "".join(
            element(name, plain(http.ci_get(delivery, name)), f"DeliveryDetail {name}")
            for name in DELIVERY_FIELDS
        )
        + "</DeliveryDetail>",
        "<Lines>",
    ]
    for index, line in enumerate(lines, start=1):
        label = f"line {index}"
        if not isinstance(line, Mapping):
            raise ValueError(f"{label} is not a set of fields")
        code = plain(http.ci_get(line, "ProductStockID"))
        if not code:
            raise ValueError(f"{label} has no ProductStockID")
        parts.append(
            "<Line>"
            + element("ProductStockID", code, f"{label} ProductStockID")
            + element("Units", _units(http.ci_get(line, "Units"), label))
            + element("SellingPrice", _price(http.ci_get(line, "SellingPrice"), label))
            + "</Line>"
        )
    parts.append("</Lines>")
    return f"<SalesOrder>{''.join(parts)}</SalesOrder>"


# --------------------------------------------------------------------------
# Reading answers
# --------------------------------------------------------------------------


def attr(node: ET.Element, name: str) -> str | None:
    """An attribute without regard to namespace or case."""
    wanted = name.lower()
    for key, value in node.attrib.items():
        if xmlsafe.local(key) == wanted:
            return value.strip()
    return None


def whole(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def stock_line(node: ET.Element) -> dict[str, Any]:
    """One ``Product`` element as a flat dict: element names as sent, text stripped.

    Blank elements become None. Nested elements (none are documented) are
    left out rather than flattened into something a map might misread.
    """
    record: dict[str, Any] = {}
    for item in node:
        if len(item):
            continue
        name = item.tag.rsplit("}", 1)[-1]
        text = item.text.strip() if item.text is not None else ""
        record[name] = text or None
    return record


def field(record: Mapping[str, Any], name: str) -> Any:
    value = record.get(name)
    return value if value is not None else http.ci_get(record, name)


def _product_of(record: Mapping[str, Any]) -> str:
    return plain(field(record, PRODUCT_ID))


def _line_id(record: Mapping[str, Any]) -> str | None:
    for name in LINE_IDS:
        value = plain(field(record, name))
        if value:
            return value
    return None


def grouped(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Lines deduplicated by stock line, grouped by product in first-seen order.

    Returns the lines and whether the input was out of product order. The
    same line twice happens when page-number paging meets a line inserted
    between two pages: the later copy is the fresher one and wins.
    """
    by_line: dict[str, int] = {}
    unique: list[dict[str, Any]] = []
    for line in lines:
        key = _line_id(line)
        if key is not None and key in by_line:
            unique[by_line[key]] = line
            continue
        if key is not None:
            by_line[key] = len(unique)
        unique.append(line)
    groups: dict[str, list[dict[str, Any]]] = {}
    order_broken = False
    previous: str | None = None
    for line in unique:
        product = _product_of(line)
        if product in groups and product != previous:
            order_broken = True
        groups.setdefault(product, []).append(line)
        previous = product
    return [line for group in groups.values() for line in group], order_broken


def hold_back_last_product(
    lines: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split grouped ``lines`` into those to emit now and the last product's lines.

    The last product of a page that is not the listing's last may continue
    on the next page; emitting part of it would make the hub replace its
    variants with that part. When one product fills the whole page, nothing
    is emitted and all of it is carried on.
    """
    if not lines:
        return [], []
    last = _product_of(lines[-1])
    cut = len(lines)
    while cut > 0 and _product_of(lines[cut - 1]) == last:
        cut -= 1
    return lines[:cut], lines[cut:]


parse_stamp = http.naive_stamp
