"""Shopify's order intake: the `orders/create` webhook's signature, and its
body as the canonical order (the money rules are ``connectors.intake``'s)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from connectors import intake
from connectors.intake import (
    ONE,
    ZERO,
    ChannelPayloadError,
    instruction,
    order_meta,
    read_codes,
    read_decimal,
    read_entries,
    read_entry,
    read_flag,
    read_lines,
    read_money,
    read_object,
    read_order,
    read_quantity,
    read_text,
    tax_share,
    to_cents,
    to_rate,
    to_unit,
)
from mappings.paths import ADDRESS_FIELDS

SIGNATURE_HEADER: Final = "X-Shopify-Hmac-Sha256"
# Redeliveries carry the same id (Shopify also sends X-Shopify-Event-Id).
DELIVERY_HEADER: Final = "X-Shopify-Webhook-Id"
DEFAULT_ADD_ORDER_STATUS: Final = "paid"


# Both stores sign the raw body the same way (``connectors.intake``).
sign = intake.sign
verify = intake.verify


def is_ping(body: bytes) -> bool:
    """Shopify sends no unsigned ping: every delivery is an order."""
    return False


def _shopify_address(value: Any, path: str) -> dict[str, str | None] | None:
    """Shopify names an address's fields as the canonical model does."""
    raw = read_object(value, path)
    if raw is None:
        return None
    out: dict[str, str | None] = {}
    for key in ADDRESS_FIELDS:
        value = raw.get(key)
        # The field's path is spelt out only for a value that is not plain text.
        out[key] = (
            (value.strip() or None) if type(value) is str else read_text(value, f"{path}.{key}")
        )
    return out


ShopifyTax = tuple[dict[str, Any], Decimal, Decimal | None]


def _shopify_taxes(value: Any, path: str) -> list[ShopifyTax]:
    """Canonical tax lines, with the amounts and rates kept exact for the arithmetic."""
    out: list[ShopifyTax] = []
    for index, raw in enumerate(read_entries(value, path)):
        where = f"{path}[{index}]"
        tax = read_entry(raw, where)
        price = read_money(tax.get("price"), f"{where}.price")
        rate = read_decimal(tax.get("rate"), f"{where}.rate")
        line = {
            "code": None,
            "title": read_text(tax.get("title"), f"{where}.title"),
            "price": to_cents(price),
            "rate": to_rate(rate),
        }
        out.append((line, price, rate))
    return out


def _shopify_allocated(raw: Mapping[str, Any], path: str) -> Decimal:
    """The discount on a line or shipping line.

    `discount_allocations` carries every discount (line-level and the
    order's, spread across lines); the older `total_discount` is read only
    when there are no allocations, so nothing is counted twice.
    """
    allocations = read_entries(raw.get("discount_allocations"), f"{path}.discount_allocations")
    if allocations:
        total = ZERO
        for index, allocation in enumerate(allocations):
            where = f"{path}.discount_allocations[{index}]"
            total += read_money(read_entry(allocation, where).get("amount"), f"{where}.amount")
        return total
    return read_money(raw.get("total_discount"), f"{path}.total_discount")


def _shopify_code(order: Mapping[str, Any]) -> str:
    for key in ("name", "order_number", "id"):
        code = read_text(order.get(key), key)
        if code is not None:
            return code
    raise ChannelPayloadError("name is missing, and so are order_number and id")


def _shopify_lines(
    order: Mapping[str, Any], taxes_included: bool
) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
    """The canonical line items, the discounts as stated, and the tax in them.

    On a tax-inclusive line the tax is taken out of the unit price and the
    discount in proportion (see the module's money rules); the tax that
    came out of the discounts is returned so that the order's summary can
    be stated ex tax as well.
    """
    discounts = ZERO  # as the channel states them: tax-inclusive when prices are
    tax_in_discounts = ZERO
    line_items: list[dict[str, Any]] = []
    for index, raw in enumerate(read_lines(order)):
        path = f"line_items[{index}]"
        item = read_entry(raw, path)
        qty = read_quantity(item.get("quantity"), f"{path}.quantity")
        unit = read_money(item.get("price"), f"{path}.price", required=True)
        discount = _shopify_allocated(item, path)
        discounts += discount
        taxes = _shopify_taxes(item.get("tax_lines"), f"{path}.tax_lines")
        share = ONE
        if taxes_included:
            share = tax_share(unit * qty - discount, [(p, r) for _, p, r in taxes])
            tax_in_discounts += discount - discount * share
        title = read_text(item.get("name"), f"{path}.name") or read_text(
            item.get("title"), f"{path}.title"
        )
        line_items.append(
            {
                "sku": read_text(item.get("sku"), f"{path}.sku"),
                "title": title,
                "qty": qty,
                "price": to_unit(unit * share),
                "total_discount": to_unit(discount * share),
                "tax_lines": [line for line, _, _ in taxes],
            }
        )
    return line_items, discounts, tax_in_discounts


def _shopify_shipping(
    order: Mapping[str, Any], taxes_included: bool, discounts: Decimal, tax_in_discounts: Decimal
) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
    """The canonical shipping lines, with the running discount totals carried on.

    A shipping discount is taken off the shipping price, since the canonical
    shipping line has no discount of its own.
    """
    shipping_lines: list[dict[str, Any]] = []
    for index, raw in enumerate(read_entries(order.get("shipping_lines"), "shipping_lines")):
        path = f"shipping_lines[{index}]"
        ship = read_entry(raw, path)
        price = read_money(ship.get("price"), f"{path}.price")
        discount = _shopify_allocated(ship, path)
        discounts += discount
        taxes = _shopify_taxes(ship.get("tax_lines"), f"{path}.tax_lines")
        share = ONE
        if taxes_included:
            share = tax_share(price - discount, [(p, r) for _, p, r in taxes])
            tax_in_discounts += discount - discount * share
        shipping_lines.append(
            {
                "title": read_text(ship.get("title"), f"{path}.title"),
                "price": to_cents((price - discount) * share),
                "tax_lines": [line for line, _, _ in taxes],
            }
        )
    return shipping_lines, discounts, tax_in_discounts


def order(
    payload: dict[str, Any], *, add_order_status: str = DEFAULT_ADD_ORDER_STATUS
) -> dict[str, Any]:
    """A Shopify order webhook body as the hub's canonical order.

    `add_order_status` is the `financial_status` at which the order is raised
    into the ERP ("paid" by default; "authorized" for shops that capture on
    fulfilment). Any other status is stored only.
    """
    order = read_order(payload)
    taxes_included = read_flag(order.get("taxes_included"), "taxes_included")
    line_items, discounts, tax_in_discounts = _shopify_lines(order, taxes_included)
    shipping_lines, discounts, tax_in_discounts = _shopify_shipping(
        order, taxes_included, discounts, tax_in_discounts
    )
    stated = read_decimal(order.get("total_discounts"), "total_discounts")
    total_discount = (discounts if stated is None else stated) - tax_in_discounts

    customer = read_object(order.get("customer"), "customer") or {}
    billing = _shopify_address(order.get("billing_address"), "billing_address")
    names = billing or {}
    email = read_text(customer.get("email"), "customer.email") or read_text(
        order.get("email"), "email"
    )
    codes = read_codes(order, "discount_codes")
    status = read_text(order.get("financial_status"), "financial_status")

    return {
        "channel": "shopify",
        "channel_order_code": _shopify_code(order),
        "instruction": instruction(status, add_order_status),
        "ordered_date": read_text(order.get("created_at"), "created_at"),
        "notes": read_text(order.get("note"), "note"),
        "customer": {
            "channel_customer_code": read_text(customer.get("id"), "customer.id"),
            "first_name": read_text(customer.get("first_name"), "customer.first_name")
            or names.get("first_name"),
            "last_name": read_text(customer.get("last_name"), "customer.last_name")
            or names.get("last_name"),
            "email": email,
        },
        "billing_address": billing,
        "shipping_address": _shopify_address(order.get("shipping_address"), "shipping_address"),
        "line_items": line_items,
        "shipping_lines": shipping_lines,
        "total_discount": to_cents(total_discount),
        "meta": order_meta(order, status, codes, taxes_included),
    }
