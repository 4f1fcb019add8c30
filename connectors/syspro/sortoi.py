"""SORTOIDOC: rendering the orders map's payload as the XML SYSPRO's
``SORTOI`` business object imports, and reading what SYSPRO answers.

Kept apart from the connector so that the map's tests and the emulator's
can render and parse without a database or an e.net service.
"""

from __future__ import annotations

import re
import string
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from connectors import xmlsafe
from connectors.http import ci_get as _ci

BUSINESS_OBJECT: Final = "SORTOI"


def _parameters(validate_only: bool) -> str:
    return (
        "<SalesOrders><Parameters><Process>Import</Process>"
        f"<ValidateOnly>{'Y' if validate_only else 'N'}</ValidateOnly>"
        "<IgnoreWarnings>W</IgnoreWarnings><AllocationAction>A</AllocationAction>"
        "<AlwaysUsePriceEntered>Y</AlwaysUsePriceEntered>"
        "<AllowDuplicateOrderNumbers>N</AllowDuplicateOrderNumbers>"
        "<CheckForCustomerPoNumbers>Y</CheckForCustomerPoNumbers>"
        "<OrderStatus>1</OrderStatus></Parameters></SalesOrders>"
    )


# The reference's exact parameters: import now, allocate, take our price, and
# refuse a CustomerPoNumber SYSPRO already holds (the retry guard).
SORTOI_PARAMETERS: Final = _parameters(validate_only=False)
# The same with ValidateOnly=Y: SORTOI checks the document as it would import
# it and answers, recording nothing (what ``check`` sends).
SORTOI_VALIDATE_PARAMETERS: Final = _parameters(validate_only=True)
PO_NUMBER_MAX: Final = 30
SHIP_ADDRESS_MAX: Final = 40
MAX_QUOTED_ERRORS: Final = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_DUPLICATE_PO = re.compile(
    r"(purchase order|po number|customer ?po|customerponumber).{0,80}"
    r"(already|exists|duplicate|used)|duplicate.{0,40}(purchase order|po\b)",
    re.IGNORECASE,
)

_HEADER_ORDER: Final = (
    "CustomerPoNumber",
    "OrderActionType",
    "Customer",
    "OrderDate",
    "Salesperson",
    "OrderType",
    "Email",
    "ShipAddress1",
    "ShipAddress2",
    "ShipAddress3",
    "ShipAddress4",
    "ShipAddress5",
    "ShipPostalCode",
    "Warehouse",
)
_LINE_ORDER: Final = (
    "CustomerPoLine",
    "LineActionType",
    "StockCode",
    "Warehouse",
    "OrderQty",
    "Price",
)
_LIMITS: Final = {
    "CustomerPoNumber": PO_NUMBER_MAX,
    **{f"ShipAddress{n}": SHIP_ADDRESS_MAX for n in range(1, 6)},
}
_PRICE = re.compile(r"\A-?\d{1,13}\.\d{2}\Z")


def _xml_text(value: Any, limit: int | None = None) -> str:
    """Text XML 1.0 can carry, cut to SYSPRO's column width (escaping is ElementTree's)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        value = format(value, "f")
    text = unicodedata.normalize("NFC", str(value))
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:limit].rstrip() if limit is not None else text


def po_number(reference: Any) -> str:
    """The CustomerPoNumber an order is raised under: what find_order must look up."""
    return _xml_text(reference, PO_NUMBER_MAX)


# What CustomerPoNumber is made of. The default is the channel's order number
# alone, as every order raised so far was, so that a source with one channel
# (most clients) and its orders already in SorMaster are unchanged.
PO_TEMPLATE_DEFAULT: Final = "{channel_order_code}"
PO_PLACEHOLDERS: Final = ("channel", "channel_order_code")


def check_po_template(template: str) -> None:
    """Refuse a ``po_number`` template that could not tell orders apart.

    Only ``{channel}`` and ``{channel_order_code}`` may appear, without
    format specs (``{channel:.2}`` would cut "shopify" and "shop" alike),
    and ``{channel_order_code}`` must: a PO number without the order's own
    number would be one for every order. Raises ValueError saying which.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"is not a template: {exc} (write {{{{ and }}}} for a brace)") from None
    names: list[str] = []
    for literal, name, spec, conversion in parts:
        if _CONTROL.search(literal):
            raise ValueError("must not contain control characters")
        if name is None:
            continue
        if name not in PO_PLACEHOLDERS or spec or conversion:
            raise ValueError(
                f'has "{{{name}{"!" + conversion if conversion else ""}'
                f'{":" + spec if spec else ""}}}"; only {{channel}} and '
                "{channel_order_code} may appear, as they are"
            )
        names.append(name)
    if "channel_order_code" not in names:
        raise ValueError("must contain {channel_order_code}, the channel's order number")
    if len(template.format(channel="", channel_order_code="")) >= PO_NUMBER_MAX:
        raise ValueError(f"leaves no room for the order number in {PO_NUMBER_MAX} characters")


def compose_po(template: str, channel: str, channel_order_code: str) -> str:
    """The CustomerPoNumber for one channel's order under a ``po_number`` template.

    The default template keeps today's behaviour, a reference longer than
    30 characters cut to 30. Any other template exists to keep references
    apart, so a result longer than SYSPRO's 30 characters is refused
    (ValueError naming the order and the field) rather than cut: two cut
    references could be the same, which is what the template is there to
    prevent.
    """
    if template == PO_TEMPLATE_DEFAULT:
        return po_number(channel_order_code)
    code = _xml_text(channel_order_code)
    if not code:
        raise ValueError("the order has no channel_order_code")
    po = _xml_text(template.format(channel=_xml_text(channel), channel_order_code=code))
    if len(po) > PO_NUMBER_MAX:
        raise ValueError(
            f'order {code} from {channel}: CustomerPoNumber "{po}" is {len(po)} characters '
            f"and SYSPRO holds {PO_NUMBER_MAX}"
        )
    return po


def render_sortoidoc(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The SORTOIDOC ``XmlIn`` for the orders map's payload, and its CustomerPoNumber.

    ElementTree escapes every text; control characters are removed and the
    30- and 40-character limits are applied again here, so that a payload
    built by hand is as safe as the map's. Raises ValueError for a payload
    that cannot be an order (no PO number, no lines, a price that is not a
    two-place decimal).
    """
    header = _ci(payload, "header")
    lines = _ci(payload, "lines")
    if not isinstance(header, Mapping):
        raise ValueError("the order payload has no header")
    po = po_number(_ci(header, "CustomerPoNumber"))
    if not po:
        raise ValueError("the order payload has no CustomerPoNumber")
    if not isinstance(lines, list) or not lines:
        raise ValueError(f"order {po} has no lines")
    root = ET.Element("SalesOrders")
    orders = ET.SubElement(root, "Orders")
    head = ET.SubElement(orders, "OrderHeader")
    known = {k.lower() for k in _HEADER_ORDER}
    names = list(_HEADER_ORDER) + [
        k for k in header if isinstance(k, str) and k.lower() not in known
    ]
    for name in names:
        value = _ci(header, name)
        if value is None:
            continue
        ET.SubElement(head, name).text = _xml_text(value, _LIMITS.get(name))
    head.find("CustomerPoNumber").text = po  # type: ignore[union-attr]
    details = ET.SubElement(orders, "OrderDetails")
    for index, line in enumerate(lines, start=1):
        if not isinstance(line, Mapping):
            raise ValueError(f"order {po}: line {index} is not a set of fields")
        price = _xml_text(_ci(line, "Price"))
        if price and not _PRICE.match(price):
            raise ValueError(f'order {po}: line {index} Price "{price}" is not a two-place decimal')
        if not _xml_text(_ci(line, "StockCode")):
            raise ValueError(f"order {po}: line {index} has no StockCode")
        stock = ET.SubElement(details, "StockLine")
        for name in _LINE_ORDER:
            value = _ci(line, name)
            if value is not None and _xml_text(value) != "":
                ET.SubElement(stock, name).text = _xml_text(value)
    freight = _ci(payload, "freight")
    if isinstance(freight, Mapping) and _ci(freight, "FreightValue") is not None:
        value = _xml_text(_ci(freight, "FreightValue"))
        if not _PRICE.match(value):
            raise ValueError(f'order {po}: FreightValue "{value}" is not a two-place decimal')
        line = ET.SubElement(details, "FreightLine")
        ET.SubElement(line, "FreightValue").text = value
    return ET.tostring(root, encoding="unicode"), po


@dataclass(frozen=True)
class SortoiAnswer:
    """What SYSPRO said about one posted order: its number, or why not."""

    sales_order: str | None
    errors: tuple[str, ...]
    rejected_items: int | None
    recognised: bool  # False: no SalesOrder element anywhere (not a SORTOI answer)

    @property
    def duplicate_po(self) -> bool:
        """SYSPRO refused the CustomerPoNumber as one it holds: an earlier
        attempt, whose answer was lost, got the order in."""
        return any(_DUPLICATE_PO.search(error) for error in self.errors)

    def refusal(self) -> str:
        """Why no sales order was created, quoting SYSPRO where it said why."""
        if self.errors:
            quoted = self.errors[:MAX_QUOTED_ERRORS]
            more = len(self.errors) - len(quoted)
            return "; ".join(quoted) + (f"; and {more} more" if more > 0 else "")
        if self.rejected_items:
            return f"{self.rejected_items} item(s) rejected without a reason given"
        return "no sales order was created and no reason was given"


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_sortoi_answer(root: ET.Element) -> SortoiAnswer:
    """Read a SORTOI answer whatever the case of its elements.

    Each ``ErrorDescription`` is kept verbatim and labelled by the line it
    sits under (``StockLine`` with its ``StockCode``), so an operator sees
    exactly what SYSPRO said and where.
    """
    node = xmlsafe.find(root, "SalesOrder")
    errors: list[str] = []

    def walk(element: ET.Element, label: str) -> None:
        name = xmlsafe.local(element.tag)
        if name == "stockline":
            code = xmlsafe.text_of(xmlsafe.child(element, "StockCode"))
            line = xmlsafe.text_of(xmlsafe.child(element, "CustomerPoLine"))
            label = "stock line" + (f" {line}" if line else "") + (f" ({code})" if code else "")
        elif name == "freightline":
            label = "freight line"
        if name in ("errordescription", "errormessage") and len(element) == 0:
            text = xmlsafe.text_of(element)
            if text:
                errors.append(f"{label}: {text}" if label else text)
            return
        for item in element:
            walk(item, label)

    walk(root, "")
    return SortoiAnswer(
        sales_order=xmlsafe.text_of(node) if node is not None else None,
        errors=tuple(dict.fromkeys(errors)),
        rejected_items=_int(xmlsafe.text_of(root, "ItemsRejectedWithWarnings")),
        recognised=node is not None,
    )
