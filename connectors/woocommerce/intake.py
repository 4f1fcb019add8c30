"""WooCommerce's order intake: the `order.created` webhook's signature, its
unsigned creation ping, and its body (the WC REST v3 order) as the canonical
order (the money rules are ``connectors.intake``'s)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from connectors import intake
from connectors.intake import (
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
    to_cents,
    to_rate,
    to_unit,
)
from mappings.scalars import shown

SIGNATURE_HEADER: Final = "X-WC-Webhook-Signature"
DELIVERY_HEADER: Final = "X-WC-Webhook-Delivery-ID"
DEFAULT_ADD_ORDER_STATUS: Final = "processing"


# Both stores sign the raw body the same way (``connectors.intake``).
sign = intake.sign
verify = intake.verify


def is_ping(body: bytes) -> bool:
    """WooCommerce's ping when a webhook is created (``webhook_id=…``, form
    encoded): unsigned, holds no order, to be answered 200 and not stored."""
    return body.startswith(b"webhook_id=")


def _woo_address(value: Any, path: str) -> dict[str, str | None] | None:
    """WooCommerce keeps only codes for state and country.

    The code goes into the name field as well as the code field: the ERP's
    delivery address reads `province`, and a code there beats a blank. An
    address with nothing filled in (a virtual order's shipping) is None.
    """
    raw = read_object(value, path)
    if raw is None:
        return None
    state = read_text(raw.get("state"), f"{path}.state")
    country = read_text(raw.get("country"), f"{path}.country")
    address = {
        "first_name": read_text(raw.get("first_name"), f"{path}.first_name"),
        "last_name": read_text(raw.get("last_name"), f"{path}.last_name"),
        "company": read_text(raw.get("company"), f"{path}.company"),
        "address1": read_text(raw.get("address_1"), f"{path}.address_1"),
        "address2": read_text(raw.get("address_2"), f"{path}.address_2"),
        "city": read_text(raw.get("city"), f"{path}.city"),
        "province": state,
        "province_code": state,
        "country": country,
        "country_code": country,
        "zip": read_text(raw.get("postcode"), f"{path}.postcode"),
        "phone": read_text(raw.get("phone"), f"{path}.phone"),
    }
    return address if any(v is not None for v in address.values()) else None


WooRates = dict[str, tuple[str | None, str | None, Decimal | None]]


def _woo_rates(order: Mapping[str, Any]) -> WooRates:
    """The order's tax rates by rate id: a line's taxes name only the id."""
    rates: WooRates = {}
    for index, raw in enumerate(read_entries(order.get("tax_lines"), "tax_lines")):
        where = f"tax_lines[{index}]"
        line = read_entry(raw, where)
        rate_id = read_text(line.get("rate_id"), f"{where}.rate_id")
        if rate_id is None:
            continue
        percent = read_decimal(line.get("rate_percent"), f"{where}.rate_percent")
        rates[rate_id] = (
            read_text(line.get("rate_code"), f"{where}.rate_code"),
            read_text(line.get("label"), f"{where}.label"),
            None if percent is None else percent / 100,
        )
    return rates


def _woo_taxes(value: Any, path: str, rates: WooRates) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(read_entries(value, path)):
        where = f"{path}[{index}]"
        tax = read_entry(raw, where)
        amount = read_decimal(tax.get("total"), f"{where}.total")
        if amount is None:
            # WooCommerce lists every rate of the tax class; a blank total is
            # a rate that did not apply to this line.
            continue
        code, title, rate = rates.get(
            read_text(tax.get("id"), f"{where}.id") or "", (None, None, None)
        )
        out.append({"code": code, "title": title, "price": to_cents(amount), "rate": to_rate(rate)})
    return out


def _woo_lines(order: Mapping[str, Any], rates: WooRates) -> list[dict[str, Any]]:
    """The canonical line items: a per-unit price from the line's subtotal.

    The discount is what the line's total lost against its subtotal; both
    are ex tax in WooCommerce whatever the shop's prices include.
    """
    line_items: list[dict[str, Any]] = []
    for index, raw in enumerate(read_lines(order)):
        path = f"line_items[{index}]"
        item = read_entry(raw, path)
        qty = read_quantity(item.get("quantity"), f"{path}.quantity")
        subtotal = read_money(item.get("subtotal"), f"{path}.subtotal", required=True)
        total = read_money(item.get("total"), f"{path}.total", required=True)
        line_items.append(
            {
                "sku": read_text(item.get("sku"), f"{path}.sku"),
                "title": read_text(item.get("name"), f"{path}.name"),
                "qty": qty,
                "price": to_unit(subtotal / qty),
                "total_discount": to_unit(subtotal - total),
                "tax_lines": _woo_taxes(item.get("taxes"), f"{path}.taxes", rates),
            }
        )
    return line_items


def _woo_shipping(order: Mapping[str, Any], rates: WooRates) -> list[dict[str, Any]]:
    """The canonical shipping lines: WooCommerce's `total` is already ex tax and discount."""
    shipping_lines: list[dict[str, Any]] = []
    for index, raw in enumerate(read_entries(order.get("shipping_lines"), "shipping_lines")):
        path = f"shipping_lines[{index}]"
        ship = read_entry(raw, path)
        shipping_lines.append(
            {
                "title": read_text(ship.get("method_title"), f"{path}.method_title"),
                "price": to_cents(read_money(ship.get("total"), f"{path}.total")),
                "tax_lines": _woo_taxes(ship.get("taxes"), f"{path}.taxes", rates),
            }
        )
    return shipping_lines


def _woo_refuse_fees(order: Mapping[str, Any]) -> None:
    """A non-zero fee line cannot be raised: the canonical order has no place for it."""
    for index, raw in enumerate(read_entries(order.get("fee_lines"), "fee_lines")):
        path = f"fee_lines[{index}]"
        fee = read_entry(raw, path)
        amount = read_money(fee.get("total"), f"{path}.total")
        if amount:
            name = read_text(fee.get("name"), f"{path}.name") or "fee"
            raise ChannelPayloadError(
                f'{path}.total "{shown(fee.get("total"))}" ({name}) cannot be raised: '
                "the canonical order has no place for fees"
            )


def _woo_ordered(order: Mapping[str, Any]) -> str | None:
    """The order's time in UTC: `date_created_gmt` says none, so it is given its Z."""
    ordered = read_text(order.get("date_created_gmt"), "date_created_gmt")
    if ordered is not None and not _has_zone(ordered):
        ordered += "Z"
    return ordered


def order(
    payload: dict[str, Any], *, add_order_status: str = DEFAULT_ADD_ORDER_STATUS
) -> dict[str, Any]:
    """A WooCommerce order webhook body (WC REST v3 order) as the canonical order.

    `add_order_status` is the order `status` at which it is raised into the
    ERP ("processing": paid and waiting to be fulfilled). WooCommerce keeps
    line subtotals and totals ex tax whether or not the shop's prices include
    tax, so nothing needs taking out here.

    A non-zero fee line is refused: the canonical order has nowhere to put
    it, and raising the order without it would invoice the wrong amount.
    """
    order = read_order(payload)
    rates = _woo_rates(order)
    line_items = _woo_lines(order, rates)
    shipping_lines = _woo_shipping(order, rates)
    _woo_refuse_fees(order)

    billing = _woo_address(order.get("billing"), "billing")
    raw_billing = read_object(order.get("billing"), "billing") or {}
    customer_id = read_text(order.get("customer_id"), "customer_id")
    codes = read_codes(order, "coupon_lines")
    status = read_text(order.get("status"), "status")
    code = read_text(order.get("number"), "number") or read_text(order.get("id"), "id")
    if code is None:
        raise ChannelPayloadError("number is missing, and so is id")
    ordered = _woo_ordered(order)
    prices_include_tax = read_flag(order.get("prices_include_tax"), "prices_include_tax")

    return {
        "channel": "woocommerce",
        "channel_order_code": code,
        "instruction": instruction(status, add_order_status),
        "ordered_date": ordered or read_text(order.get("date_created"), "date_created"),
        "notes": read_text(order.get("customer_note"), "customer_note"),
        "customer": {
            # customer_id 0 is a guest checkout: there is no account to name.
            "channel_customer_code": None if customer_id in (None, "0") else customer_id,
            "first_name": billing["first_name"] if billing else None,
            "last_name": billing["last_name"] if billing else None,
            "email": read_text(raw_billing.get("email"), "billing.email"),
        },
        "billing_address": billing,
        "shipping_address": _woo_address(order.get("shipping"), "shipping"),
        "line_items": line_items,
        "shipping_lines": shipping_lines,
        "total_discount": to_cents(read_money(order.get("discount_total"), "discount_total")),
        "meta": order_meta(order, status, codes, prices_include_tax),
    }


def _has_zone(value: str) -> bool:
    """Whether an ISO time already says its offset (WooCommerce's `_gmt` never does)."""
    time = value.partition("T")[2]
    return time.endswith(("Z", "z")) or "+" in time or "-" in time
