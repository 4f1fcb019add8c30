"""The SQL-based ERP template ("connector_name", seed 002), corrected.

The seed's product table swaps two targets; read here `qty` -> variants.qty
and `price` -> variants.retail_price. Its customer and order tables are
copies of the product table, so the customer map follows the reference
(erp-wire-formats.md section 4) and the order map documents the staging
tables the hub writes.

A source's query may also alias columns straight to hub paths
(`SELECT code AS source_product_code, on_hand AS "variants.qty"`), which is
how one template serves Sage, Pastel, Omni and bespoke databases; such an
alias wins over the template column a row reads. A customer query may give
two addresses as ``billing_address1`` ... ``shipping_country`` (see
``ADDRESS_ALIASES``), the customer's ``phone`` and its ``price_tier``; the
template's own customers table has none of them, so they come only from a
query that aliases them, and any it leaves out is simply not there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from mappings.addresses import AddressColumns, AddressesMap, AddressField
from mappings.core import (
    Compute,
    Map,
    MappingError,
    MissingSettingError,
    Row,
    computed,
    const,
    hub_paths,
    number,
    register,
)

ERP: Final = "sql"
TITLE: Final = "{{connector_name}}"

PRODUCTS: Final = register(
    Map(
        erp=ERP,
        erp_title=TITLE,
        stream="products",
        rows=(
            Row("Prod", "source_product_code", "Groups variants; equals SKU for a simple product"),
            Row("SKU", "source_variant_code", "The item code of this variant"),
            Row("WebName", "title", "The product title shown on the channels"),
            Row("product_active", "product_active", "Active, Delete or Ignore (1/0 also work)"),
            Row("qty", "variants.qty", "Stock on hand; negative stock is stored as 0"),
            Row("price", "variants.retail_price", "Selling price ex tax: price and retail tier"),
            Row("SKU", "variants.sku", "The code orders are routed by"),
            const("true", "variants.inventory_management", True, "Always true: stock is tracked"),
        ),
        passthrough=hub_paths("products"),
    )
)


def _customer_active(record: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
    """A customer query need not have an active column: without one, all are active."""
    return record.get("customer_active", True)


# The aliases a customer query may give for its addresses: <type>_<part>.
ADDRESS_ALIASES: Final = (
    ("address1", "address1", "line 1 (street)"),
    ("address2", "address2", "line 2"),
    ("city", "city", "city or town"),
    ("province", "province", "province or state"),
    ("postal_code", "zip", "postal code"),
    ("country", "country", "country"),
    ("phone", "phone", "telephone (else the phone column)"),
)


def _aliased(kind: str) -> AddressColumns:
    return AddressColumns(
        kind,
        tuple(
            AddressField(name, (f"{kind}_{alias}",), words)
            for alias, name, words in ADDRESS_ALIASES
        ),
    )


CUSTOMERS: Final = register(
    AddressesMap(
        erp=ERP,
        erp_title=TITLE,
        stream="customers",
        rows=(
            computed(
                "'true' or customer_active",
                "customer_active",
                _customer_active,
                "The customer_active column if the query has one, else true",
            ),
            Row("Customer", "source_customer_code", "The account code orders are raised against"),
            Row("FirstName", "first_name", "Customer's first name"),
            Row("LastName", "last_name", "Customer's last name"),
            Row("Email", "email", "Customer's email address"),
            Row(
                "price_tier",
                "price_tier",
                "The price tier the customer buys at, if the query has it",
            ),
        ),
        # A custom query's aliases: billing_address1 ... shipping_country and
        # phone, each optional (a missing alias is a missing field, and an
        # address without any line is left out); any hub path (price_tier,
        # "meta.rep") also comes through as it is.
        addresses=(_aliased("billing"), _aliased("shipping")),
        shared=(
            AddressField(
                "phone", ("phone",), "The customer's telephone, on each address without its own"
            ),
        ),
        passthrough=hub_paths("customers"),
    )
)


# --------------------------------------------------------------------------
# Orders: the hub writes a header row and its lines into staging tables
# (defaults s2s_order and s2s_order_line) that the ERP imports.
# --------------------------------------------------------------------------


def _setting(settings: Mapping[str, Any], name: str) -> str | None:
    value = settings.get(name)
    if value is None:
        return None
    return str(value).strip() or None


def _amount(value: Any, what: str) -> Decimal:
    """Money and quantities as Decimal, so totals round the way an invoice does."""
    try:
        parsed = number(value, what)
    except MappingError as exc:
        raise ValueError(str(exc)) from None
    return Decimal(repr(parsed)) if parsed is not None else Decimal(0)


def _line_sources(order: Mapping[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lines as the line rows read them, the shipping line last.

    Shipping becomes one service line because the ERPs price shipping as a
    stock-less item (the source's `shipping_code`); several shipping lines
    are summed into it. Free shipping writes no line and needs no setting.
    """
    code = order.get("channel_order_code")
    lines: list[dict[str, Any]] = []
    for item in order.get("line_items") or ():
        qty = _amount(item.get("qty"), "qty")
        if qty != qty.to_integral_value():
            raise ValueError(f'line {len(lines) + 1} qty "{qty}" is not a whole number')
        lines.append(
            {
                "channel_order_code": code,
                "line_no": len(lines) + 1,
                "sku": item.get("sku"),
                "title": item.get("title"),
                "qty": qty,
                "price": _amount(item.get("price"), "price"),
                "total_discount": _amount(item.get("total_discount"), "total_discount"),
            }
        )
    shipping = order.get("shipping_lines") or ()
    shipping_total = sum((_amount(s.get("price"), "shipping price") for s in shipping), Decimal(0))
    if shipping_total:
        shipping_code = _setting(settings, "shipping_code")
        if shipping_code is None:
            raise MissingSettingError(
                "shipping_code",
                "the order has shipping but the source has no shipping_code setting: "
                "set shipping_code to the ERP item that shipping is raised against",
            )
        titles = [str(s.get("title")).strip() for s in shipping if s.get("title")]
        lines.append(
            {
                "channel_order_code": code,
                "line_no": len(lines) + 1,
                "sku": shipping_code,
                "title": " + ".join(titles) or "Shipping",
                "qty": Decimal(1),
                "price": shipping_total,
                "total_discount": Decimal(0),
            }
        )
    return lines


def _total_ex_tax(order: Mapping[str, Any], settings: Mapping[str, Any]) -> float:
    """Sum of the lines written, never the channel's figure.

    Line discounts are the canonical place for discounts; the order's own
    `total_discount` is the channel's summary of them and is not subtracted
    again. The header therefore always equals the sum of its lines.
    """
    total = sum(
        (ln["qty"] * ln["price"] - ln["total_discount"] for ln in _line_sources(order, settings)),
        Decimal(0),
    )
    return float(total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _customer_code(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    customer = order.get("customer") or {}
    code = customer.get("source_customer_code")
    if code is not None and str(code).strip():
        return str(code).strip()
    fallback = _setting(settings, "default_customer_code")
    if fallback is None:
        raise MissingSettingError(
            "default_customer_code",
            "the order has no source_customer_code and the source has no "
            "default_customer_code setting: set it to the ERP's cash account",
        )
    return fallback


def _ordered_date(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    value = order.get("ordered_date")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value) if value is not None else None


def _ship(name: str) -> Compute:
    def read(order: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
        return (order.get("shipping_address") or {}).get(name)

    return read


def _ship_name(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """The shipping address's name, else the customer's: a parcel needs a name."""
    for part in (order.get("shipping_address") or {}, order.get("customer") or {}):
        name = " ".join(
            str(part.get(k)).strip() for k in ("first_name", "last_name") if part.get(k)
        ).strip()
        if name:
            return name
    return None


def _order_field(name: str) -> Compute:
    def read(order: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
        return order.get(name)

    return read


def _line_field(name: str, convert: Callable[[Any], Any] | None = None) -> Compute:
    def read(line: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
        value = line.get(name)
        return convert(value) if convert is not None else value

    return read


def _money(value: Decimal) -> float:
    return round(float(value), 4)


HEADER_ROWS: Final = (
    computed(
        "header.channel_order_code",
        "channel_order_code",
        _order_field("channel_order_code"),
        "Unique key: a retry cannot insert the order twice",
    ),
    computed(
        "header.customer_code",
        "customer.source_customer_code",
        _customer_code,
        "Else the source's default_customer_code setting",
    ),
    computed(
        "header.ordered_date",
        "ordered_date",
        _ordered_date,
        "When the channel took the order (ISO-8601)",
    ),
    computed(
        "header.email",
        "customer.email",
        lambda o, s: (o.get("customer") or {}).get("email"),
        "Customer's email",
    ),
    computed(
        "header.ship_name",
        "shipping_address.first_name + last_name",
        _ship_name,
        "Else the customer's name",
    ),
    computed("header.ship_address1", "shipping_address.address1", _ship("address1")),
    computed("header.ship_address2", "shipping_address.address2", _ship("address2")),
    computed("header.ship_city", "shipping_address.city", _ship("city")),
    computed("header.ship_province", "shipping_address.province", _ship("province")),
    computed("header.ship_zip", "shipping_address.zip", _ship("zip")),
    computed("header.ship_country", "shipping_address.country", _ship("country")),
    computed("header.ship_phone", "shipping_address.phone", _ship("phone")),
    computed("header.notes", "notes", _order_field("notes"), "Customer's order notes"),
    computed(
        "header.total_ex_tax",
        "line_items + shipping_lines",
        _total_ex_tax,
        "Computed: sum of qty x price - discounts + shipping, 2 places",
    ),
)

LINE_ROWS: Final = (
    computed(
        "line.channel_order_code",
        "channel_order_code",
        _line_field("channel_order_code"),
        "Joins the line to its header",
    ),
    computed("line.line_no", "line_items[] position", _line_field("line_no"), "1-based"),
    computed(
        "line.sku",
        "line_item.sku",
        _line_field("sku"),
        "The shipping line uses the shipping_code setting",
    ),
    computed("line.title", "line_item.title", _line_field("title"), "Item or shipping title"),
    computed("line.qty", "line_item.qty", _line_field("qty", int), "Quantity ordered"),
    computed(
        "line.unit_price",
        "line_item.price",
        _line_field("price", _money),
        "Per unit, ex tax and ex discount",
    ),
    computed(
        "line.total_discount",
        "line_item.total_discount",
        _line_field("total_discount", _money),
        "Discount on the whole line, ex tax",
    ),
)


def _plan(rows: tuple[Row, ...]) -> tuple[tuple[str, Compute], ...]:
    """(column, function) pairs: the rows' ERP column without its table prefix."""
    return tuple((row.erp.split(".", 1)[1], row.compute) for row in rows if row.compute)


_HEADER: Final = _plan(HEADER_ROWS)
_LINES: Final = _plan(LINE_ROWS)


def order_payload(order: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical order as the connector's header row and line rows.

    Raises ValueError naming the setting to fix when the order needs a
    setting the source lacks (shipping_code, default_customer_code), or
    when an amount is not a number; those are permanent errors for the
    raise task, not something a retry would change.
    """
    header = {column: fn(order, settings) for column, fn in _HEADER}
    lines = [
        {column: fn(src, settings) for column, fn in _LINES}
        for src in _line_sources(order, settings)
    ]
    return {"header": header, "lines": lines}


ORDERS: Final = register(
    Map(
        erp=ERP,
        erp_title=TITLE,
        stream="orders",
        rows=HEADER_ROWS + LINE_ROWS,
        build=order_payload,
    )
)
