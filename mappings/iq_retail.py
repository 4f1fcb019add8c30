"""IQ Retail (seed 000): stock to products, canonical orders to IQ sales orders.

The products map is seed 000's product table row for row. Customers have no
map: IQ Retail does not sync them (seed 000), and the connector answers a
request for them with "not supported".

What ``variants.qty`` means is the source's ``qty_formula`` (listed by
``s2s mappings show iq_retail products``): ``onhand`` (default), as seed
000's table says, or ``onhand_less_sales_orders``, ``onhand - salesorder``
(stock not yet committed to sales orders), as older integrations read it.
Either may come out below zero; the hub stores a negative quantity as 0
(canonical-model.md), so the formula does not clamp on its own. The
connector reads ``salesorder`` only when the formula needs it.

The orders map documents seed 000's order table and builds the
``IQ_API_Submit_Document_Sales_Order`` method fields the connector sends
(erp-wire-formats.md section 1): the company and terminal the order is
processed in, and the ``IQ_Root_JSON`` document. Credentials and
``IQ_Overrides`` are the connector's business; they never pass through a
map, whose payloads may be logged or previewed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from mappings.core import (
    Map,
    MappingError,
    MissingSettingError,
    Row,
    computed,
    const,
    number,
    register,
    shown,
)
from mappings.maps import Choice

ERP: Final = "iq_retail"
TITLE: Final = "IQ Retail"
QTY_FORMULAS: Final = ("onhand", "onhand_less_sales_orders")
SALES_ORDER_COLUMN: Final = "salesorder"


def qty_formula(settings: Mapping[str, Any]) -> str:
    """The source's ``qty_formula``; unset or blank is ``onhand`` (seed 000)."""
    raw = settings.get("qty_formula")
    value = "" if raw is None else str(raw).strip().lower()
    if not value:
        return QTY_FORMULAS[0]
    if value not in QTY_FORMULAS:
        raise MappingError(
            f'qty_formula "{shown(raw)}" is not one of {", ".join(QTY_FORMULAS)}: '
            "correct the source's settings"
        )
    return value


def _qty(record: Mapping[str, Any], settings: Mapping[str, Any]) -> int | float | None:
    """``onhand``, or ``onhand - salesorder``; a blank salesorder holds nothing back.

    Worked in Decimal so that 3.3 - 0.3 is 3, not 2.999...; the hub floors
    fractions and stores a negative result as 0.
    """
    onhand = number(record.get("onhand"), "onhand")
    if qty_formula(settings) == "onhand" or onhand is None:
        return onhand
    if SALES_ORDER_COLUMN not in record:
        raise MappingError(
            "the stock row has no salesorder column, which qty_formula "
            "onhand_less_sales_orders reads"
        )
    held = number(record.get(SALES_ORDER_COLUMN), SALES_ORDER_COLUMN)
    if held is None:
        return onhand
    left = Decimal(repr(onhand)) - Decimal(repr(held))
    return int(left) if left == left.to_integral_value() else float(left)


PRODUCTS: Final = register(
    Map(
        erp=ERP,
        erp_title=TITLE,
        stream="products",
        rows=(
            Row("code", "source_product_code", "The unique identifier of a product"),
            Row("code", "source_variant_code", "The unique identifier of a product"),
            Row("descript", "title", "The title/name of a product"),
            Row("WebItem", "product_active", "This is a default field in IQ Retail as a tick box"),
            Row("sellprice1", "variants.price", "Price lists of the product"),
            computed("onhand", "variants.qty", _qty, "Stock qty of the product"),
            Row("code", "variants.sku", "The unique identifier of a product"),
            const(
                "true",
                "variants.inventory_management",
                True,
                "Manage whether a product is inventory managed",
            ),
        ),
        choices=(
            Choice(
                "qty_formula",
                "variants.qty",
                (
                    ("onhand", "onhand"),
                    (
                        "onhand_less_sales_orders",
                        "onhand - salesorder, the stock not yet committed to sales orders "
                        "(stored as 0 when below 0)",
                    ),
                ),
            ),
        ),
    )
)


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------

CENT: Final = Decimal("0.01")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _meta(order: Mapping[str, Any], key: str) -> Any:
    """An order-level setting from ``meta`` ([{key, value}] or a dict), any key case."""
    meta = order.get("meta")
    wanted = key.lower()
    if isinstance(meta, Mapping):
        pairs = list(meta.items())
    elif isinstance(meta, list):
        pairs = [(m.get("key"), m.get("value")) for m in meta if isinstance(m, Mapping)]
    else:
        return None
    for name, value in pairs:
        if isinstance(name, str) and name.strip().lower() == wanted and _text(value) is not None:
            return value
    return None


def _decimal(value: Any, what: str) -> Decimal:
    """Money and quantities as Decimal, so that rounding is the invoice's, not binary's."""
    try:
        parsed = number(value, what)
    except MappingError as exc:
        raise ValueError(str(exc)) from None
    return Decimal(repr(parsed)) if parsed is not None else Decimal(0)


def _company(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The order's ``iq_company_number`` meta, else the source's company_number."""
    value = _text(_meta(order, "iq_company_number")) or _text(settings.get("company_number"))
    if value is None:
        raise MissingSettingError(
            "company_number",
            "the source has no company_number setting: set it to the IQ company "
            'orders go into, e.g. "002"',
        )
    return value


def _terminal(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The order's ``iq_terminal_number`` meta, else terminal_number (IQ's default 1)."""
    return (
        _text(_meta(order, "iq_terminal_number")) or _text(settings.get("terminal_number")) or "1"
    )


def _sales_rep(order: Mapping[str, Any], settings: Mapping[str, Any]) -> int:
    """Meta ``sales_representative_number`` or ``sales_rep_id``, else sales_rep_number."""
    for key in ("sales_representative_number", "sales_rep_id"):
        value = _meta(order, key)
        if value is not None:
            break
    else:
        key = "sales_rep_number"
        value = settings.get("sales_rep_number")
        if _text(value) is None:
            return 1
    rep = _decimal(value, key)
    if rep != rep.to_integral_value() or rep < 0:
        raise ValueError(f'{key} "{value}" is not a sales representative number')
    return int(rep)


def _debtor(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The customer's ERP account, else the source's cash account."""
    customer = order.get("customer") or {}
    code = _text(customer.get("source_customer_code")) if isinstance(customer, Mapping) else None
    if code is not None:
        return code
    fallback = _text(settings.get("default_debtor_account"))
    if fallback is None:
        raise MissingSettingError(
            "default_debtor_account",
            "the order has no source_customer_code and the source has no "
            "default_debtor_account setting: set it to IQ's cash account, e.g. CASH01",
        )
    return fallback


def _stock_code(line: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    code = _text(line.get("sku"))
    if code is None:
        raise ValueError(f"line {line.get('line_no', '?')} has no sku")
    return code


def _quantity(line: Mapping[str, Any], settings: Mapping[str, Any]) -> int:
    qty = line["qty"]
    return int(qty)


def _unit_price(line: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
    """Per unit ex tax, less the line's discount spread over its units, to the cent."""
    qty, price, discount = line["qty"], line["price"], line["total_discount"]
    unit = price - discount / qty if qty else price
    return float(unit.quantize(CENT, rounding=ROUND_HALF_UP))


def _lines(order: Mapping[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Line items as Decimals, shipping last as one service item.

    IQ prices shipping as a stock-less item (the source's ``shipping_code``);
    several shipping lines are summed into it and free shipping adds none.
    """
    lines: list[dict[str, Any]] = []
    for index, item in enumerate(order.get("line_items") or (), start=1):
        if not isinstance(item, Mapping):
            raise ValueError(f"line {index} is not a set of fields")
        qty = _decimal(item.get("qty"), f"line {index} qty")
        if qty != qty.to_integral_value() or qty < 1:
            raise ValueError(f'line {index} qty "{item.get("qty")}" is not a whole number above 0')
        lines.append(
            {
                "line_no": index,
                "sku": item.get("sku"),
                "qty": qty,
                "price": _decimal(item.get("price"), f"line {index} price"),
                "total_discount": _decimal(
                    item.get("total_discount"), f"line {index} total_discount"
                ),
            }
        )
    shipping = sum(
        (
            _decimal(s.get("price"), "shipping price")
            for s in order.get("shipping_lines") or ()
            if isinstance(s, Mapping)
        ),
        Decimal(0),
    )
    if shipping > 0:
        code = _text(settings.get("shipping_code"))
        if code is None:
            raise MissingSettingError(
                "shipping_code",
                "the order has shipping but the source has no shipping_code setting: "
                "set shipping_code to the IQ service item shipping is raised as",
            )
        lines.append(
            {
                "line_no": len(lines) + 1,
                "sku": code,
                "qty": Decimal(1),
                "price": shipping,
                "total_discount": Decimal(0),
            }
        )
    return lines


def _order_date(order: Mapping[str, Any]) -> str | None:
    """The channel's own calendar date of the order (its offset kept, not converted)."""
    value = order.get("ordered_date")
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise ValueError(f'ordered_date "{text}" is not an ISO-8601 date and time') from None


def _delivery_address(order: Mapping[str, Any]) -> list[str]:
    """IQ's four delivery lines: address1, address2, city, province (blank when absent)."""
    address = order.get("shipping_address") or order.get("billing_address") or {}
    if not isinstance(address, Mapping):
        address = {}
    return [_text(address.get(k)) or "" for k in ("address1", "address2", "city", "province")]


ORDER_ROWS: Final = (
    computed(
        "iQ_company_number",
        "iq_company_number",
        _company,
        "Company id / number that the orders must process into",
    ),
    computed(
        "iQ_terminal_number",
        "iq_terminal_number",
        _terminal,
        "Terminal number that orders must be processed against",
    ),
    computed(
        "sales_representative_number",
        "sales_representative_number",
        _sales_rep,
        "Sales representative number that orders must be processed with",
    ),
    computed(
        "debtor_account",
        "source_customer_code",
        _debtor,
        "The name / code of the customer account to process the order against",
    ),
    computed(
        "stock_code",
        "line_item.sku",
        _stock_code,
        "Unique identifier of the line item",
    ),
    computed(
        "quantity",
        "line_item.qty",
        _quantity,
        "Qty of the line item that was ordered",
    ),
    computed(
        "unit_ex_discount_ex_tax",
        "line_item.price",
        _unit_price,
        "Price of the line item that the customer paid ex tax and ex discount",
    ),
)


def order_payload(order: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical order as the sales order method fields the connector sends.

    Returns ``{"IQ_Company_Number", "IQ_Terminal_Number", "IQ_Submit_Data":
    {"IQ_Root_JSON": ...}}``. Raises ValueError naming the setting to fix
    (default_debtor_account, shipping_code, company_number) or the value at
    fault: no retry would change either.
    """
    company = _company(order, settings)
    document: dict[str, Any] = {
        "Order_Number": _text(order.get("channel_order_code")) or "",
        "Debtor_Account": _debtor(order, settings),
        "Sales_Representative_Number": _sales_rep(order, settings),
        "Document_Includes_VAT": False,
        "Delivery_Address_Information": _delivery_address(order),
    }
    ordered = _order_date(order)
    if ordered is not None:
        document["Order_Information"] = {"Order_Date": ordered}
    items = [
        {
            "Stock_Code": _stock_code(line, settings),
            "Quantity": _quantity(line, settings),
            "Item_Price_Exclusive": _unit_price(line, settings),
        }
        for line in _lines(order, settings)
    ]
    root = {
        "IQ_Identification_Info": {"Company_Code": company},
        "Processing_Documents": [
            {"Export_Class": "Sales_Order", "Document": document, "Items": items}
        ],
    }
    return {
        "IQ_Company_Number": company,
        "IQ_Terminal_Number": _terminal(order, settings),
        "IQ_Submit_Data": {"IQ_Root_JSON": root},
    }


ORDERS: Final = register(
    Map(erp=ERP, erp_title=TITLE, stream="orders", rows=ORDER_ROWS, build=order_payload)
)
