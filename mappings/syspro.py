"""SYSPRO (seed 003): stock and customers to the hub, canonical orders to SORTOI.

The three maps are seed 003's three tables, row for row, so that
``render()`` prints the seed. What the seed leaves to "a field" or "a table"
is decided by the source's settings, which reach every computed row:

* ``UserField1-5 -> product_active``: ``active_user_field`` (1-5, default 1)
  chooses the field. A value in ``active_values`` (default ``["Y"]``) means
  Active. With ``delete_values`` unset, any other value -- blank included --
  means Delete, because a product whose web flag an operator cleared must
  leave the channels. With ``delete_values`` set, those values mean Delete
  and anything else means Ignore (the hub leaves the product as it is): the
  tri-state of the canonical model, for sites that use a third value.
  Values compare stripped and case-insensitively (SYSPRO user fields are
  padded CHAR columns typed by people).
* ``InvPrice Table -> csv_price_tiers``: one tier per price row. With
  ``price_codes`` empty each code is its own tier name ("A"); with a
  mapping (``{"A": "retail", "B": "wholesale"}``) only the listed codes
  become tiers, under the given names, so internal price lists stay home.
* ``InvWarehouse Table -> variants.qty``: the sum of ``QtyOnHand -
  QtyAllocated`` over the warehouses in ``warehouses`` (default: all). The
  same rows give ``variants.qty_availability`` (one entry per warehouse):
  the seed's table has one line for both, so the products map carries that
  second output as a *derived* row, applied but not rendered.

* Customers keep what the seed's table leaves out and ArCustomer has:
  ``PriceCode -> price_tier`` (named as the products' tiers are) and the
  sold-to and ship-to lines as a billing and a shipping address, with the
  account's telephone (``mappings.syspro_customers``). Seed 003's rows come
  first in the rendered table, these after them.

The connector hands over one record per stock code: the ``InvMaster``
columns plus ``InvPrice`` and ``InvWarehouse`` lists of their rows (see
``connectors.syspro``). The orders map builds a plain payload (header,
lines, freight) that the connector renders into SORTOIDOC XML; it never
holds a credential, since payloads may be logged or previewed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from mappings.addresses import AddressesMap
from mappings.core import (
    Flat,
    Map,
    MappingError,
    MissingSettingError,
    Row,
    computed,
    const,
    register,
    shown,
)
from mappings.syspro_customers import ADDRESSES, SHARED, price_tier
from mappings.syspro_settings import (
    active_field,
    chosen_warehouses,
    folded_values,
    price_code_names,
    setting_text,
)

ERP: Final = "syspro"
TRADE_CHANNEL: Final = "trade"
TITLE: Final = "Syspro"

# SORTOIDOC field limits (erp-wire-formats.md 3b). The connector enforces the
# same numbers when it renders XML and when it looks an order up.
PO_NUMBER_MAX: Final = 30
SHIP_ADDRESS_MAX: Final = 40
SHIP_ADDRESS_LINES: Final = 5
CENT: Final = Decimal("0.01")
DEFAULT_ORDER_TYPE: Final = "00"
DEFAULT_ACTIVE_VALUES: Final = ("Y",)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


# --------------------------------------------------------------------------
# Products
# --------------------------------------------------------------------------


def _product_active(record: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Active, Delete or Ignore from the chosen user field (see the module's notes)."""
    name = active_field(settings)
    value = record.get(name)
    if value is not None and not isinstance(value, str | int | float | Decimal):
        raise MappingError(f'{name} "{shown(value)}" is not text')
    text = "" if value is None else str(value).strip().casefold()
    active = folded_values(settings.get("active_values"))
    if active is None or not active:
        active = frozenset(v.casefold() for v in DEFAULT_ACTIVE_VALUES)
    if text in active:
        return "active"
    deleting = folded_values(settings.get("delete_values"))
    if deleting is None or text in deleting:
        return "delete"
    return "ignore"


def _rows(record: Mapping[str, Any], table: str) -> list[Mapping[str, Any]]:
    rows = record.get(table)
    if rows is None:
        return []
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise MappingError(f"{table} is not a list of {table} rows")
    return rows


def _get(row: Mapping[str, Any], name: str) -> Any:
    """A column of a nested row, whatever the case its driver gave it."""
    if name in row:
        return row[name]
    low = name.lower()
    for key, value in row.items():
        if isinstance(key, str) and key.lower() == low:
            return value
    return None


def _decimal(value: Any, what: str) -> Decimal | None:
    """An ERP number as Decimal (blank is null); refuses what is not plainly a number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise MappingError(f'{what} "{shown(value)}" is not a number')
    text = str(value).strip() if isinstance(value, str) else value
    if text == "":
        return None
    try:
        number = Decimal(str(text))
    except InvalidOperation:
        raise MappingError(f'{what} "{shown(value)}" is not a number') from None
    if not number.is_finite():
        raise MappingError(f'{what} "{shown(value)}" is not a number')
    return number


def _plain(number: Decimal) -> int | float:
    return int(number) if number == number.to_integral_value() else float(number)


def _price_tiers(record: Mapping[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One {tier, price} per InvPrice row whose code the source uses."""
    names = price_code_names(settings)
    out: list[dict[str, Any]] = []
    for row in _rows(record, "InvPrice"):
        code = _get(row, "PriceCode")
        code = str(code).strip() if code is not None else ""
        if not code:
            raise MappingError("InvPrice has a row without a PriceCode")
        if names is None:
            tier = code
        elif code.upper() in names:
            tier = names[code.upper()]
        else:
            continue
        price = _decimal(_get(row, "SellingPrice"), f"InvPrice {code} SellingPrice")
        out.append({"tier": tier, "price": None if price is None else _plain(price)})
    return out


def _available(record: Mapping[str, Any], settings: Mapping[str, Any]) -> list[tuple[str, Decimal]]:
    chosen = chosen_warehouses(settings)
    found: list[tuple[str, Decimal]] = []
    for row in _rows(record, "InvWarehouse"):
        name = _get(row, "Warehouse")
        name = str(name).strip() if name is not None else ""
        if not name:
            raise MappingError("InvWarehouse has a row without a Warehouse")
        if chosen is not None and name.upper() not in chosen:
            continue
        on_hand = _decimal(_get(row, "QtyOnHand"), f"InvWarehouse {name} QtyOnHand") or Decimal(0)
        allocated = _decimal(_get(row, "QtyAllocated"), f"InvWarehouse {name} QtyAllocated")
        found.append((name, on_hand - (allocated or Decimal(0))))
    return found


def _qty(record: Mapping[str, Any], settings: Mapping[str, Any]) -> int | float | None:
    """Sum of QtyOnHand - QtyAllocated over the chosen warehouses; null without any."""
    found = _available(record, settings)
    if not found:
        return None
    return _plain(sum((qty for _, qty in found), Decimal(0)))


def _qty_availability(
    record: Mapping[str, Any], settings: Mapping[str, Any]
) -> list[dict[str, Any]]:
    return [{"description": name, "qty": _plain(qty)} for name, qty in _available(record, settings)]


@dataclass(frozen=True)
class DerivedRowsMap(Map):
    """A map whose seed line yields more than one hub field.

    Seed 003 documents ``InvWarehouse Table -> variants.qty`` on one line,
    but the same rows also give each warehouse's availability. ``derived``
    rows are applied exactly like ``rows`` (errors and all) but are not
    rendered, so the documentation stays the seed's table.
    """

    derived: tuple[Row, ...] = ()
    _extra: Map | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        extra = Map(self.erp, self.erp_title, self.stream, self.derived) if self.derived else None
        object.__setattr__(self, "_extra", extra)

    def apply(
        self, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        out = super().apply(record, settings)
        if self._extra is not None and isinstance(out, Flat):
            more = self._extra.apply(record, settings)
            for path, value in more.items():
                out.setdefault(path, value)
            out.errors.extend(getattr(more, "errors", ()))
        return out


PRODUCTS: Final = register(
    DerivedRowsMap(
        erp=ERP,
        erp_title=TITLE,
        stream="products",
        rows=(
            Row("StockCode", "source_product_code", "The unique identifier of a product"),
            Row("StockCode", "source_variant_code", "The unique identifier of a product"),
            Row("Description", "title", "The title/name of a product"),
            computed(
                "UserField1-5",
                "product_active",
                _product_active,
                "User field to mark product active is Stock2Shop",
            ),
            computed(
                "InvPrice Table",
                "csv_price_tiers",
                _price_tiers,
                "Retrieves Price Code and Selling Price",
            ),
            computed(
                "InvWarehouse Table",
                "variants.qty",
                _qty,
                "Retrives Warehouse with QtyOnHand QtyAllocated",
            ),
            Row("StockCode", "variants.sku", "The unique identifier of a product"),
            const(
                "true",
                "variants.inventory_management",
                True,
                "Manage whether a product is inventory managed",
            ),
        ),
        derived=(
            computed(
                "InvWarehouse Table",
                "variants.qty_availability",
                _qty_availability,
                "QtyOnHand - QtyAllocated per warehouse the source uses",
            ),
        ),
    )
)


# --------------------------------------------------------------------------
# Customers
# --------------------------------------------------------------------------


def _customer_active(record: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
    """True, or the raw value of ``customer_active_field`` for the hub's tri-state."""
    name = setting_text(settings, "customer_active_field")
    if name is None:
        return True
    return record.get(name)


@dataclass(frozen=True)
class CustomersMap(DerivedRowsMap, AddressesMap):
    """The customers map: the seed's rows, the derived channel, and the
    sold-to (billing) and ship-to (shipping) addresses of ArCustomer."""


CUSTOMERS: Final = register(
    CustomersMap(
        erp=ERP,
        erp_title=TITLE,
        stream="customers",
        addresses=ADDRESSES,
        shared=SHARED,
        # SYSPRO's customers are trade accounts: the hub marks them for the
        # B2B trade store channel only (seed 003), not the web shops.
        derived=(
            const(
                "'trade'",
                "meta.channels",
                TRADE_CHANNEL,
                "Channels the customer is offered to: the B2B trade store only",
            ),
        ),
        rows=(
            computed(
                "'true'",
                "customer_active",
                _customer_active,
                "We will either hardcode this to true or require a field on the customer "
                "to determine whether they are active or not.",
            ),
            Row(
                "Customer", "source_customer_code", "The account code for the customer in IQ Retail"
            ),
            Row("Name", "first_name", "There is no first name field, Name is used"),
            Row("Name", "last_name", "There is no last name field, Name is used"),
            Row("Email", "email", "email field for the email address of the customer"),
            computed(
                "PriceCode",
                "price_tier",
                price_tier,
                "The customer's price list: the code, or its tier name under price_codes "
                "(a code not listed there gives no tier)",
            ),
        ),
    )
)


# --------------------------------------------------------------------------
# Orders: a payload the connector renders as SORTOIDOC
# --------------------------------------------------------------------------


def clean_text(value: Any, limit: int | None = None) -> str:
    """Text SYSPRO can store: control characters removed, whitespace folded, cut to ``limit``.

    XML 1.0 cannot carry most control characters at all, and SORTOI
    refuses fields longer than SYSPRO's columns, so both are handled here
    rather than by a rejection after the order was sent.
    """
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:limit].rstrip() if limit is not None else text


def po_number(reference: Any) -> str:
    """The CustomerPoNumber an order is raised (and looked up) under: at most 30 characters."""
    return clean_text(reference, PO_NUMBER_MAX)


def _meta(order: Mapping[str, Any], key: str) -> str | None:
    """An order-level setting from ``meta`` ([{key, value}] or a dict), any key case."""
    meta = order.get("meta")
    if isinstance(meta, Mapping):
        pairs: Iterable[tuple[Any, Any]] = meta.items()
    elif isinstance(meta, list):
        pairs = [(m.get("key"), m.get("value")) for m in meta if isinstance(m, Mapping)]
    else:
        return None
    wanted = key.lower()
    for name, value in pairs:
        if isinstance(name, str) and name.strip().lower() == wanted and value is not None:
            text = str(value).strip()
            if text:
                return text
    return None


def _label(order: Mapping[str, Any]) -> str:
    code = order.get("channel_order_code")
    return f"order {clean_text(code)}" if code not in (None, "") else "the order"


def _money(value: Any, what: str, order: Mapping[str, Any]) -> Decimal:
    try:
        number = _decimal(value, what)
    except MappingError as exc:
        raise MappingError(f"{_label(order)}: {exc}") from None
    return Decimal(0) if number is None else number


def two_places(value: Decimal) -> str:
    """``460`` -> ``"460.00"``: SORTOI refuses anything but a plain two-place decimal."""
    return format(value.quantize(CENT, rounding=ROUND_HALF_UP), "f")


def _sales_rep(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    """Order meta ``sales_rep_id`` wins, then the source's ``sales_rep``; else SYSPRO's default."""
    return (
        _meta(order, "sales_rep_id")
        or _meta(order, "sales_representative_number")
        or setting_text(settings, "sales_rep")
        or setting_text(settings, "sales_rep_id")
    )


def _order_type(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    return _meta(order, "order_type") or setting_text(settings, "order_type") or DEFAULT_ORDER_TYPE


def _customer(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    customer = order.get("customer")
    code = customer.get("source_customer_code") if isinstance(customer, Mapping) else None
    text = clean_text(code)
    if text:
        return text
    fallback = setting_text(settings, "default_customer_code")
    if fallback is None:
        raise MissingSettingError(
            "default_customer_code",
            f"{_label(order)} has no source_customer_code and the source has no "
            "default_customer_code setting: set it to SYSPRO's cash account",
        )
    return fallback


def _line_items(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = order.get("line_items")
    if not isinstance(items, list) or not items:
        raise MappingError(f"{_label(order)} has no line_items")
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise MappingError(f"{_label(order)}: line {index} is not a set of fields")
    return items


def _line_value(name: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Any]:
    def read(line: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
        return line[name]

    return read


ORDER_ROWS: Final = (
    computed("Salesperson", "sales_rep_id", _sales_rep, "Sale Rep for the order"),
    computed("OrderType", "order_type", _order_type, "Should the order be an Invoice or"),
    computed(
        "Customer",
        "source_customer_code",
        _customer,
        "The name/code of the customer account to process the order against",
    ),
    computed(
        "StockCode", "line_item.sku", _line_value("StockCode"), "Unique identifier of the line item"
    ),
    computed(
        "OrderQty",
        "line_item.qty",
        _line_value("OrderQty"),
        "Qty of the line item that was ordered",
    ),
    computed(
        "Price",
        "line_item.price",
        _line_value("Price"),
        "Price of the line item that the customer paid ex tax and ex discount",
    ),
)


def _order_date(order: Mapping[str, Any]) -> str | None:
    """The channel's own calendar date (offset kept, not converted), as SYSPRO's YYYY-MM-DD."""
    value = order.get("ordered_date")
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = clean_text(value)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise MappingError(
            f'{_label(order)}: ordered_date "{shown(text)}" is not an ISO-8601 date'
        ) from None


def _ship_lines(order: Mapping[str, Any]) -> tuple[list[str], str]:
    """ShipAddress1..5 (at most 40 characters each) and ShipPostalCode.

    Lines: the addressee (name or company), address1, address2, city,
    province with country. Blank parts are skipped so that no line is
    wasted, and the five are padded with blanks.
    """
    address = order.get("shipping_address") or order.get("billing_address") or {}
    if not isinstance(address, Mapping):
        address = {}
    name = clean_text(
        " ".join(clean_text(address.get(k)) for k in ("first_name", "last_name")).strip()
    )
    region = ", ".join(
        p for p in (clean_text(address.get(k)) for k in ("province", "country")) if p
    )
    parts = [
        name or clean_text(address.get("company")),
        clean_text(address.get("address1")),
        clean_text(address.get("address2")),
        clean_text(address.get("city")),
        region,
    ]
    lines = [clean_text(p, SHIP_ADDRESS_MAX) for p in parts if p][:SHIP_ADDRESS_LINES]
    lines += [""] * (SHIP_ADDRESS_LINES - len(lines))
    return lines, clean_text(address.get("zip"), 10)


def _order_lines(order: Mapping[str, Any], warehouse: str | None) -> list[dict[str, Any]]:
    """SORTOIDOC's stock lines: the price per unit with the line's discount spread over its units.

    SORTOI has no line discount of its own, so a discount that would take
    the unit price below zero is refused rather than sent.
    """
    lines: list[dict[str, Any]] = []
    for index, item in enumerate(_line_items(order), start=1):
        code = clean_text(item.get("sku"))
        if not code:
            raise MappingError(f"{_label(order)}: line {index} has no sku")
        qty = _money(item.get("qty"), f"line {index} qty", order)
        if qty <= 0:
            raise MappingError(
                f'{_label(order)}: line {index} qty "{item.get("qty")}" is not above 0'
            )
        price = _money(item.get("price"), f"line {index} price", order)
        discount = _money(item.get("total_discount"), f"line {index} total_discount", order)
        unit = price - discount / qty
        if unit < 0:
            raise MappingError(
                f"{_label(order)}: line {index} price less its discount is below zero"
            )
        lines.append(
            {
                "CustomerPoLine": index,
                "LineActionType": "A",
                "StockCode": code,
                "Warehouse": warehouse,
                "OrderQty": format(qty.normalize(), "f"),
                "Price": two_places(unit),
            }
        )
    return lines


def order_payload(order: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical order as ``{"header", "lines", "freight"}`` for SORTOIDOC,
    plus ``reference`` (channel and order number) when the order names its
    channel, from which the connector makes the CustomerPoNumber.

    Values are final text: prices with exactly two places (``Decimal``,
    never a float's ``8.000000000000001``), quantities without a trailing
    ``.0``, limits applied. A line's price is per unit ex tax with the
    line's discount spread over its units, as seed 003 asks. Raises
    ``MappingError`` (a ValueError) naming the order and field, or
    ``MissingSettingError`` naming the setting to fix; a retry would change
    neither. Shipping needs no setting: SORTOI takes it as a FreightLine.
    """
    if not isinstance(order, Mapping):
        raise MappingError("the order is not a set of fields")
    po = po_number(order.get("channel_order_code"))
    if not po:
        raise MappingError("the order has no channel_order_code")
    warehouse = setting_text(settings, "order_warehouse")
    ship, postal = _ship_lines(order)
    given = order.get("customer")
    customer = given if isinstance(given, Mapping) else {}
    header: dict[str, Any] = {
        "CustomerPoNumber": po,
        "OrderActionType": "A",
        "Customer": _customer(order, settings),
        "OrderDate": _order_date(order),
        "Salesperson": _sales_rep(order, settings),
        "OrderType": _order_type(order, settings),
        "Email": clean_text(customer.get("email"), 255) or None,
        **{f"ShipAddress{n}": ship[n - 1] for n in range(1, SHIP_ADDRESS_LINES + 1)},
        "ShipPostalCode": postal or None,
        "Warehouse": warehouse,
    }
    lines = _order_lines(order, warehouse)
    shipping = sum(
        (
            _money(s.get("price"), "shipping price", order)
            for s in order.get("shipping_lines") or ()
            if isinstance(s, Mapping)
        ),
        Decimal(0),
    )
    freight = {"FreightValue": two_places(shipping)} if shipping > 0 else None
    payload: dict[str, Any] = {"header": header, "lines": lines, "freight": freight}
    channel = clean_text(order.get("channel"))
    if channel:
        # The connector makes CustomerPoNumber from the source's po_number
        # template, which may name the channel: two channels of one client
        # can share an order number. The code goes uncut, so that a result
        # too long for SYSPRO is refused there rather than cut into another
        # order's reference.
        payload["reference"] = {
            "channel": channel,
            "channel_order_code": clean_text(order.get("channel_order_code")),
        }
    return payload


ORDERS: Final = register(
    Map(erp=ERP, erp_title=TITLE, stream="orders", rows=ORDER_ROWS, build=order_payload)
)
