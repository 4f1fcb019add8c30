"""iSync (seed 001): stock lines to products, canonical orders to iSync sales orders.

The products map is seed 001's product table row for row, followed by the
rows the seed leaves implicit: the retail price as the variant's price,
and the ``Size`` and ``Colour`` elements of each stock line as the
variant's options. Lines sharing a ``JobProductID`` become one product
(``build_products`` groups them); every product declares the same two
option names, whether or not a line carries values, so that a product's
options never depend on which of its lines was read first (an incremental
read may bring any one of them).

Price tiers: ``RetailSellingPrice`` is tier ``retail`` (the canonical
model's name for the default price) and ``SellingPrice`` is tier
``selling``; a blank price makes no tier.

Customers have no map: iSync does not sync them (seed 001).

The orders map documents seed 001's order table and builds the payload the
connector writes as the ``CreateSalesOrder`` MessageXml
(erp-wire-formats.md section 2)::

    {"PONumber": "#1001", "CustomerCode": "CASH01",
     "DeliveryDetail": {"Name", "Address1", "Address2", "City", "Province",
                        "PostalCode", "Country", "Phone", "Email"},
     "Lines": [{"ProductStockID": "A1", "Units": 2, "SellingPrice": 460.0}, ...]}

Shipping is one more line whose ProductStockID is the source's
``shipping_code`` (seed 001). Credentials never pass through a map, whose
payloads may be logged or previewed.

Two questions the public material leaves open are source settings, with
the seed's reading as default (each listed by ``s2s mappings show isync
orders``):

* ``order_line_key``: ``sku`` (default) sends the line's SKU as
  ProductStockID, as seed 001's table says; ``stock_line_id`` sends the
  stock line's own ProductStockID, for installations whose lines are keyed
  by a number. The products map keeps every line's ProductStockID in the
  variant's meta, and the raise task hands it to this map on each line item
  (``variant_meta``, see ``Map.line_meta``); a SKU without one is refused
  (``UnknownStockLineError``), never sent as a guess. With ``stock_line_id``
  the ``shipping_code`` is the service item's ProductStockID too.
* ``prices_include_vat``: false (default) sends SellingPrice per unit ex
  VAT and ex discount, the canonical line price, as IQ Retail and SYSPRO
  take it; true sends the price as it appears on the website: the same
  plus the tax the channel charged on the line (its ``tax_lines`` amounts)
  spread over its units, and likewise for shipping. iSync's documents carry
  no VAT flag of their own, so the setting must say what the site expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from mappings.core import (
    Map,
    MappingError,
    MissingSettingError,
    Row,
    computed,
    const,
    flag,
    number,
    register,
)
from mappings.maps import Choice

ERP: Final = "isync"
TITLE: Final = "iSync"
RETAIL_TIER: Final = "retail"
SELLING_TIER: Final = "selling"
OPTION_NAMES: Final = ("Size", "Colour")
# The variant meta key the products map keeps each stock line's id under.
STOCK_LINE_ID: Final = "ProductStockID"
ORDER_LINE_KEYS: Final = ("sku", "stock_line_id")


def _price_tiers(record: Mapping[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Both of iSync's master-warehouse prices as tiers; each error names its own field."""
    out = []
    for field, tier in (("RetailSellingPrice", RETAIL_TIER), ("SellingPrice", SELLING_TIER)):
        price = number(record.get(field), field)
        if price is not None:
            out.append({"tier": tier, "price": price})
    return out


PRODUCTS: Final = register(
    Map(
        erp=ERP,
        erp_title=TITLE,
        stream="products",
        rows=(
            # Seed 001's product table, in its order.
            Row(
                "JobProductID",
                "source_product_code",
                "Used for Grouping Variable Products. Equal to Item Code for simple product setup",
            ),
            Row("SKU", "source_variant_code", "Product Ref Code/ Item No"),
            Row("JobDescription", "title", "Used as the title on the product"),
            computed(
                "RetailSellingPrice / SellingPrice",
                "csv_price_tiers",
                _price_tiers,
                "Array of the price list on the item from the Master warehouse",
            ),
            Row("AvailableUnits", "variants.qty", "Stock quantity of the product"),
            Row("SKU", "variants.sku", "Can be StkItem.Code if syncing simple products only"),
            Row(
                "WebSale",
                "product_active",
                "User Defined field with 3 options: Ignore, Active, Delete",
            ),
            const(
                "TRUE",
                "inventory_management",
                True,
                'This will be hardcoded to "true" in Stock2Shop',
            ),
            # Beyond the seed's table: what the wire format carries that the
            # canonical model needs.
            Row("RetailSellingPrice", "variants.price", "The variant's default (retail) price"),
            const("Size", "options.option1", OPTION_NAMES[0], "Option name of every product"),
            Row("Size", "variants.option1", "The variant's size"),
            const("Colour", "options.option2", OPTION_NAMES[1], "Option name of every product"),
            Row("Colour", "variants.option2", "The variant's colour"),
            Row("ThirdPartyBarcode", "variants.barcode", "The variant's barcode"),
            Row(
                STOCK_LINE_ID,
                f"variants.meta.{STOCK_LINE_ID}",
                "The stock line's own id: orders quote it when order_line_key is stock_line_id",
            ),
        ),
    )
)

# How many rows of PRODUCTS are seed 001's table; the rest extend it.
SEED_PRODUCT_ROWS: Final = 8


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------

CENT: Final = Decimal("0.01")


def order_line_key(settings: Mapping[str, Any]) -> str:
    """What an order line's ProductStockID is: ``sku`` (unset or blank) or ``stock_line_id``.

    Read defensively, since a map may meet settings no schema loaded; a
    value that means neither is the source's to fix, hence
    MissingSettingError (its fix names the setting).
    """
    raw = settings.get("order_line_key")
    value = "" if raw is None else str(raw).strip().lower()
    if not value:
        return ORDER_LINE_KEYS[0]
    if value not in ORDER_LINE_KEYS:
        raise MissingSettingError(
            "order_line_key",
            f'order_line_key "{raw}" is not one of {", ".join(ORDER_LINE_KEYS)}',
        )
    return value


def prices_include_vat(settings: Mapping[str, Any]) -> bool:
    """Whether SellingPrice is sent with the line's tax in it (unset: no)."""
    raw = settings.get("prices_include_vat")
    try:
        return flag(raw, "prices_include_vat")
    except MappingError as exc:
        raise MissingSettingError("prices_include_vat", f"{exc} (true or false)") from None


class UnknownStockLineError(MappingError):
    """An order line whose SKU the hub knows no iSync stock line id for.

    Raised only with ``order_line_key: stock_line_id``. No retry changes
    it: the stock lines must be synced again (the hub keeps each line's
    ProductStockID since the products map does), or the setting corrected.
    ``error_class`` and ``fix`` are what the dead letter shows.
    """

    error_class = "unknown_stock_line"
    fix = (
        "resync the iSync source's products in full (s2s resync CLIENT SOURCE --full), "
        "so that the hub keeps each stock line's ProductStockID; or set order_line_key "
        "to sku if this iSync takes SKUs as ProductStockID"
    )

    def __init__(self, order_code: str, sku: str) -> None:
        super().__init__(
            f"order {order_code}: SKU {sku} has no iSync stock line id (ProductStockID) "
            "among the stock lines synced from iSync, and the source's order_line_key is "
            "stock_line_id"
        )
        self.order_code = order_code
        self.sku = sku

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.order_code, self.sku))


def _line_meta(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The variant meta the order lines need: the stock line id, when orders quote it."""
    return (STOCK_LINE_ID,) if order_line_key(settings) == "stock_line_id" else ()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _decimal(value: Any, what: str) -> Decimal | None:
    """Money and quantities as Decimal, so that rounding is the invoice's, not binary's."""
    parsed = number(value, what)
    return Decimal(repr(parsed)) if parsed is not None else None


def _po_number(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    code = _text(order.get("channel_order_code"))
    if code is None:
        raise MappingError("the order has no channel_order_code to send as PONumber")
    return code


def _customer_code(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The customer's iSync account, else the source's default (cash) customer."""
    customer = order.get("customer")
    code = _text(customer.get("source_customer_code")) if isinstance(customer, Mapping) else None
    if code is not None:
        return code
    fallback = _text(settings.get("default_customer_code"))
    if fallback is None:
        raise MissingSettingError(
            "default_customer_code",
            "the order has no source_customer_code and the source has no "
            "default_customer_code setting: set it to iSync's cash customer",
        )
    return fallback


def _delivery(order: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, str]:
    """DeliveryDetail from the shipping address (else the billing one), blank when unknown."""
    address = order.get("shipping_address") or order.get("billing_address") or {}
    if not isinstance(address, Mapping):
        address = {}
    customer = order.get("customer")
    customer = customer if isinstance(customer, Mapping) else {}
    name = " ".join(
        part for part in (_text(address.get("first_name")), _text(address.get("last_name"))) if part
    )
    name = name or _text(address.get("company")) or ""
    if not name:
        name = " ".join(
            part
            for part in (_text(customer.get("first_name")), _text(customer.get("last_name")))
            if part
        )
    return {
        "Name": name,
        "Address1": _text(address.get("address1")) or "",
        "Address2": _text(address.get("address2")) or "",
        "City": _text(address.get("city")) or "",
        "Province": _text(address.get("province")) or _text(address.get("province_code")) or "",
        "PostalCode": _text(address.get("zip")) or "",
        "Country": _text(address.get("country")) or _text(address.get("country_code")) or "",
        "Phone": _text(address.get("phone")) or "",
        "Email": _text(customer.get("email")) or "",
    }


def _order_lines(order: Mapping[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The order's line items as iSync lines: per-unit price less the line's discount.

    The canonical ``price`` is per unit, ex tax and ex discount; iSync takes
    one SellingPrice per unit, so the line's discount is spread over its
    units (and with ``prices_include_vat`` its tax added the same way) and
    the result rounded half up to the cent.
    """
    items = order.get("line_items") or ()
    if not isinstance(items, list | tuple) or not items:
        raise MappingError("the order has no line items")
    by_stock_line = order_line_key(settings) == "stock_line_id"
    with_vat = prices_include_vat(settings)
    lines: list[dict[str, Any]] = []
    for index, item in enumerate(items, start=1):
        label = f"line {index}"
        if not isinstance(item, Mapping):
            raise MappingError(f"{label} is not a set of fields")
        sku = _text(item.get("sku"))
        if sku is None:
            raise MappingError(f"{label} has no sku")
        qty = _decimal(item.get("qty"), f"{label} qty")
        if qty is None or qty != qty.to_integral_value() or qty < 1:
            raise MappingError(f'{label} qty "{item.get("qty")}" is not a whole number above 0')
        price = _decimal(item.get("price"), f"{label} price")
        if price is None or price < 0:
            raise MappingError(f'{label} price "{item.get("price")}" is not a price of 0 or more')
        discount = _decimal(item.get("total_discount"), f"{label} total_discount") or Decimal(0)
        if discount < 0:
            raise MappingError(f'{label} total_discount "{item.get("total_discount")}" is negative')
        unit = price - discount / qty
        if unit.quantize(CENT, rounding=ROUND_HALF_UP) < 0:
            raise MappingError(f"{label} total_discount is more than the line's price")
        if with_vat:
            unit += _tax(item, label) / qty
        code = _stock_line_id(order, item, sku) if by_stock_line else sku
        lines.append(
            {
                "ProductStockID": code,
                "Units": int(qty),
                "SellingPrice": float(unit.quantize(CENT, rounding=ROUND_HALF_UP)),
            }
        )
    return lines


def _tax(line: Mapping[str, Any], label: str) -> Decimal:
    """The tax the channel charged on a line (or shipping line): its tax_lines' amounts."""
    taxes = line.get("tax_lines") or ()
    if not isinstance(taxes, list | tuple):
        raise MappingError(f"{label} tax_lines is not a list")
    total = Decimal(0)
    for position, tax in enumerate(taxes, start=1):
        if not isinstance(tax, Mapping):
            raise MappingError(f"{label} tax line {position} is not a set of fields")
        amount = _decimal(tax.get("price"), f"{label} tax line {position} price") or Decimal(0)
        if amount < 0:
            raise MappingError(
                f'{label} tax line {position} price "{tax.get("price")}" is negative'
            )
        total += amount
    return total


def _stock_line_id(order: Mapping[str, Any], item: Mapping[str, Any], sku: str) -> str:
    """The synced stock line's ProductStockID the raise task put on the line item."""
    meta = item.get("variant_meta")
    if isinstance(meta, Mapping):
        wanted = STOCK_LINE_ID.lower()
        for key, value in meta.items():
            if str(key).lower() == wanted and _text(value) is not None:
                return str(_text(value))
    raise UnknownStockLineError(_text(order.get("channel_order_code")) or "(no number)", sku)


def _shipping_line(order: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """All shipping lines as one service line (seed 001); free shipping adds none."""
    with_vat = prices_include_vat(settings)
    total = Decimal(0)
    for index, line in enumerate(order.get("shipping_lines") or (), start=1):
        if not isinstance(line, Mapping):
            raise MappingError(f"shipping line {index} is not a set of fields")
        price = _decimal(line.get("price"), f"shipping line {index} price") or Decimal(0)
        if price < 0:
            raise MappingError(f'shipping line {index} price "{line.get("price")}" is negative')
        total += price + (_tax(line, f"shipping line {index}") if with_vat else 0)
    if total <= 0:
        return None
    code = _text(settings.get("shipping_code"))
    if code is None:
        raise MissingSettingError(
            "shipping_code",
            "the order has shipping but the source has no shipping_code setting: "
            "set shipping_code to the iSync service item shipping is raised as",
        )
    return {
        "ProductStockID": code,
        "Units": 1,
        "SellingPrice": float(total.quantize(CENT, rounding=ROUND_HALF_UP)),
    }


def _line_field(name: str) -> Any:
    def read(order: Mapping[str, Any], settings: Mapping[str, Any]) -> list[Any]:
        return [line[name] for line in _order_lines(order, settings)]

    return read


def _shipping_code(order: Mapping[str, Any], settings: Mapping[str, Any]) -> str | None:
    line = _shipping_line(order, settings)
    return line["ProductStockID"] if line is not None else None


ORDER_ROWS: Final = (
    computed(
        "PONumber",
        "channel_order_code",
        _po_number,
        "The transaction number generated for orders posted to iSync",
    ),
    computed(
        "DeliveryDetail",
        "shipping_address",
        _delivery,
        "Shipping address as entered on the website",
    ),
    computed(
        "ProductStockID",
        "line_item.sku",
        _line_field("ProductStockID"),
        "The unique sku code, as entered on the website, that is ordered as a line item",
    ),
    computed(
        "Units",
        "line_item.qty",
        _line_field("Units"),
        "Quantity of each line item on an order",
    ),
    computed(
        "SellingPrice",
        "line_item.price",
        _line_field("SellingPrice"),
        "Price of the line item as it appears on the website",
    ),
    computed(
        "ProductStockID",
        "shipping_code",
        _shipping_code,
        "Shipping charge applied to the order, processed against a single, pre-defined, "
        "service line item",
    ),
)


def order_payload(order: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical order as the payload the connector sends as CreateSalesOrder.

    Raises MappingError (a ValueError) naming the setting to fix
    (default_customer_code, shipping_code, order_line_key,
    prices_include_vat), the line and field at fault, or the SKU without a
    synced stock line id: no retry would change any of them.
    """
    lines = _order_lines(order, settings)
    shipping = _shipping_line(order, settings)
    if shipping is not None:
        lines.append(shipping)
    return {
        "PONumber": _po_number(order, settings),
        "CustomerCode": _customer_code(order, settings),
        "DeliveryDetail": _delivery(order, settings),
        "Lines": lines,
    }


ORDER_CHOICES: Final = (
    Choice(
        "order_line_key",
        "ProductStockID",
        (
            ("sku", "line_item.sku"),
            (
                "stock_line_id",
                "the synced stock line's ProductStockID for line_item.sku, "
                "refusing an order whose SKU has none",
            ),
        ),
    ),
    Choice(
        "prices_include_vat",
        "SellingPrice",
        (
            ("false", "line_item.price less its discount, per unit, ex VAT"),
            (
                "true",
                "the same plus the line's tax_lines amounts per unit, as on the website, "
                "shipping likewise",
            ),
        ),
    ),
)

ORDERS: Final = register(
    Map(
        erp=ERP,
        erp_title=TITLE,
        stream="orders",
        rows=ORDER_ROWS,
        build=order_payload,
        line_meta=_line_meta,
        choices=ORDER_CHOICES,
    )
)
