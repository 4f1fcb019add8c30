"""Sales channels' order webhooks: signature checks and the canonical order.

A webhook is trusted only when its signature is right, so the checks are
constant-time and never raise: a bad or missing header is simply False, and
the caller answers 401 without learning anything more.

The transforms turn a channel's own order JSON (Shopify's `orders/create`
webhook body; WooCommerce's `order.created` body, the WC REST v3 order) into
the canonical order of canonical-model.md, which `hub.schemas.load_order`
validates. They are pure: no I/O, nothing looked up.

Money rules, because an ERP invoice is built from these figures and
recomputes its totals (canonical-model.md "Prices"):

- Every amount is read as a Decimal from the channel's string, never through
  a float, and never rounded before the arithmetic is done.
- A line's `price` is per unit, ex tax and ex discount; its `total_discount`
  is the discount on the whole line, ex tax. The ERP's line net is
  `qty * price - total_discount`, so that is what must equal the ex-tax
  amount the channel charged for the line.
- Figures worked out here (a per-unit price from a line total, anything with
  tax taken out) keep 4 decimal places, the hub's own precision: rounding
  100.00 / 3 to 33.33 would put 99.99 on the invoice. Figures copied from
  the channel (tax amounts, shipping, the order's discount summary) are
  rounded to cents.
- Tax is taken out of a tax-inclusive Shopify line in proportion: the line's
  tax lines give the tax the channel charged on what the customer actually
  paid (after discounts), so the ex-tax share of that amount is applied to
  both the unit price and the discount. Subtracting the tax per unit from
  the unit price is the same thing on an undiscounted line, and wrong on a
  discounted one, because the tax was charged on the discounted amount.
- Shipping has no discount field in the canonical model, so a shipping
  discount is taken off the shipping price.
- The order's `total_discount` is only the channel's summary (the ERP
  mappings never subtract it again); it is reported ex tax like the lines.

Anything malformed raises `ChannelPayloadError` whose message names the
payload field (`line_items[2].price "abc" is not a number`), so an operator
can find it in the channel's JSON. A line without a SKU is kept, not
dropped: `load_order` refuses it by name, which is better than raising an
order short of one line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

__all__ = [
    "SIGNATURE_HEADERS",
    "WEBHOOK_ID_HEADERS",
    "ChannelPayloadError",
    "shopify_order",
    "sign_shopify",
    "sign_woocommerce",
    "verify_shopify",
    "verify_woocommerce",
    "woocommerce_order",
]

WEBHOOK_ID_HEADERS: Final[dict[str, str]] = {
    "shopify": "X-Shopify-Webhook-Id",
    "woocommerce": "X-WC-Webhook-Delivery-ID",
}
SIGNATURE_HEADERS: Final[dict[str, str]] = {
    "shopify": "X-Shopify-Hmac-Sha256",
    "woocommerce": "X-WC-Webhook-Signature",
}

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
_CENT: Final = Decimal("0.01")
_UNIT: Final = Decimal("0.0001")
# Larger than any real order amount, small enough that quantizing to 4
# places stays inside Decimal's default 28 digits.
_MAX_DIGITS_BEFORE_POINT: Final = 15


class ChannelPayloadError(ValueError):
    """A channel order that cannot become a canonical order.

    The message names the field in the channel's own JSON, since that is what
    the operator has in front of them when the order is held back.
    """


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------


def _secret_bytes(secret: str | bytes | None) -> bytes | None:
    if isinstance(secret, str):
        return secret.encode("utf-8") if secret else None
    if isinstance(secret, bytes | bytearray):
        return bytes(secret) if secret else None
    return None


def _sign(body: bytes, secret: str | bytes) -> str:
    key = _secret_bytes(secret)
    if key is None:
        raise ValueError("a webhook secret is required to sign a body")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("a webhook body is signed as the raw bytes sent")
    digest = hmac.new(key, bytes(body), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _verify(body: bytes, header: str | None, secret: str | bytes | None) -> bool:
    key = _secret_bytes(secret)
    if key is None or not isinstance(header, str) or not header.strip():
        return False
    if not isinstance(body, bytes | bytearray | memoryview):
        return False
    expected = _sign(body, key).encode("ascii")
    # Compared as bytes so that a header with odd characters is just unequal.
    given = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def sign_shopify(body: bytes, secret: str) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify would send for this body."""
    return _sign(body, secret)


def verify_shopify(body: bytes, header: str | None, secret: str) -> bool:
    """Whether Shopify signed exactly these bytes with the app's secret.

    The raw body must be checked before it is parsed: re-serialised JSON
    would not hash the same.
    """
    return _verify(body, header, secret)


def sign_woocommerce(body: bytes, secret: str) -> str:
    """The `X-WC-Webhook-Signature` value WooCommerce would send for this body."""
    return _sign(body, secret)


def verify_woocommerce(body: bytes, header: str | None, secret: str) -> bool:
    """Whether WooCommerce signed exactly these bytes with the webhook's secret.

    WooCommerce's creation ping ("webhook_id=…") carries no order; a caller
    that wants to accept it must do so before asking for a signature.
    """
    return _verify(body, header, secret)


# --------------------------------------------------------------------------
# Reading the channel's JSON
# --------------------------------------------------------------------------


def _shown(value: Any) -> str:
    s = value if isinstance(value, str) else repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _object(value: Any, path: str) -> Mapping[str, Any] | None:
    """An optional nested object; null or absent is None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ChannelPayloadError(f"{path} must be an object")
    return value


def _entries(value: Any, path: str) -> list[Any]:
    """An optional list; null or absent is empty."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ChannelPayloadError(f"{path} must be a list")
    return list(value)


def _entry(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ChannelPayloadError(f"{path} must be an object")
    return value


def _text(value: Any, path: str) -> str | None:
    """Text as the canonical model wants it; ids that arrive as numbers become text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ChannelPayloadError(f'{path} "{_shown(value)}" is not text')


def _number(value: Any, path: str, *, required: bool = False) -> Decimal | None:
    """A Decimal from the channel's string (or JSON number), exactly as sent."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ChannelPayloadError(f"{path} is missing")
        return None
    parsed: Decimal | None = None
    if isinstance(value, bool):
        parsed = None
    elif isinstance(value, int):
        parsed = Decimal(value)
    elif isinstance(value, float):
        # repr is the shortest spelling that round-trips: 0.15, not 0.1499999…
        parsed = Decimal(repr(value))
    elif isinstance(value, Decimal):
        parsed = value
    elif isinstance(value, str) and "_" not in value:
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            parsed = None
    if parsed is None or not parsed.is_finite():
        raise ChannelPayloadError(f'{path} "{_shown(value)}" is not a number')
    if parsed != 0 and parsed.adjusted() >= _MAX_DIGITS_BEFORE_POINT:
        raise ChannelPayloadError(f'{path} "{_shown(value)}" is too large')
    return parsed


def _money(value: Any, path: str, *, required: bool = False) -> Decimal:
    out = _number(value, path, required=required)
    return ZERO if out is None else out


def _quantity(value: Any, path: str) -> int:
    """Whole units, at least one: a per-unit price is worked out by dividing by it."""
    n = _money(value, path, required=True)
    if n != n.to_integral_value():
        raise ChannelPayloadError(f'{path} "{_shown(value)}" is not a whole number')
    if n < 1:
        raise ChannelPayloadError(f'{path} "{_shown(value)}" must be at least 1')
    return int(n)


def _flag(value: Any, path: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", ""):
        return value.strip().lower() == "true"
    raise ChannelPayloadError(f'{path} "{_shown(value)}" is not true or false')


def _cents(value: Decimal) -> float:
    out = float(value.quantize(_CENT, rounding=ROUND_HALF_UP))
    return out if out else 0.0


def _unit(value: Decimal) -> float:
    out = float(value.quantize(_UNIT, rounding=ROUND_HALF_UP))
    return out if out else 0.0


def _rate(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _instruction(status: str | None, add_order_status: str) -> str:
    """Only the configured status raises the order; any other is stored, not raised."""
    wanted = add_order_status.strip().lower()
    return "add_order" if status is not None and status.lower() == wanted else "sync_order"


def _meta(pairs: list[tuple[str, str | None]]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in pairs if value is not None]


def _line_list(order: Mapping[str, Any]) -> list[Any]:
    if "line_items" not in order or order["line_items"] is None:
        raise ChannelPayloadError("line_items is missing")
    lines = _entries(order["line_items"], "line_items")
    if not lines:
        raise ChannelPayloadError("line_items is empty: an order needs at least one line")
    return lines


def _order_object(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise ChannelPayloadError(f'order "{_shown(payload)}" must be an object')
    return payload


def _tax_share(net_incl: Decimal, taxes: list[tuple[Decimal, Decimal | None]]) -> Decimal:
    """The ex-tax fraction of a tax-inclusive amount.

    From the tax the channel actually charged on that amount when there is
    an amount; from the rates when the line was given away (nothing paid, so
    nothing to take a share of); otherwise the amount is taken as tax-free.
    """
    tax = sum((price for price, _ in taxes), ZERO)
    if net_incl > 0:
        return (net_incl - tax) / net_incl
    rates = [rate for _, rate in taxes]
    if rates and all(rate is not None for rate in rates):
        return ONE / (ONE + sum((rate for rate in rates if rate is not None), ZERO))
    return ONE


# --------------------------------------------------------------------------
# Shopify
# --------------------------------------------------------------------------


def _shopify_address(value: Any, path: str) -> dict[str, str | None] | None:
    raw = _object(value, path)
    if raw is None:
        return None
    return {
        "first_name": _text(raw.get("first_name"), f"{path}.first_name"),
        "last_name": _text(raw.get("last_name"), f"{path}.last_name"),
        "company": _text(raw.get("company"), f"{path}.company"),
        "address1": _text(raw.get("address1"), f"{path}.address1"),
        "address2": _text(raw.get("address2"), f"{path}.address2"),
        "city": _text(raw.get("city"), f"{path}.city"),
        "province": _text(raw.get("province"), f"{path}.province"),
        "province_code": _text(raw.get("province_code"), f"{path}.province_code"),
        "country": _text(raw.get("country"), f"{path}.country"),
        "country_code": _text(raw.get("country_code"), f"{path}.country_code"),
        "zip": _text(raw.get("zip"), f"{path}.zip"),
        "phone": _text(raw.get("phone"), f"{path}.phone"),
    }


ShopifyTax = tuple[dict[str, Any], Decimal, Decimal | None]


def _shopify_taxes(value: Any, path: str) -> list[ShopifyTax]:
    """Canonical tax lines, with the amounts and rates kept exact for the arithmetic."""
    out: list[ShopifyTax] = []
    for index, raw in enumerate(_entries(value, path)):
        where = f"{path}[{index}]"
        tax = _entry(raw, where)
        price = _money(tax.get("price"), f"{where}.price")
        rate = _number(tax.get("rate"), f"{where}.rate")
        line = {
            "code": None,
            "title": _text(tax.get("title"), f"{where}.title"),
            "price": _cents(price),
            "rate": _rate(rate),
        }
        out.append((line, price, rate))
    return out


def _shopify_allocated(raw: Mapping[str, Any], path: str) -> Decimal:
    """The discount on a line or shipping line.

    `discount_allocations` carries every discount (line-level and the
    order's, spread across lines); the older `total_discount` is read only
    when there are no allocations, so nothing is counted twice.
    """
    allocations = _entries(raw.get("discount_allocations"), f"{path}.discount_allocations")
    if allocations:
        total = ZERO
        for index, allocation in enumerate(allocations):
            where = f"{path}.discount_allocations[{index}]"
            total += _money(_entry(allocation, where).get("amount"), f"{where}.amount")
        return total
    return _money(raw.get("total_discount"), f"{path}.total_discount")


def _shopify_code(order: Mapping[str, Any]) -> str:
    for key in ("name", "order_number", "id"):
        code = _text(order.get(key), key)
        if code is not None:
            return code
    raise ChannelPayloadError("name is missing, and so are order_number and id")


def shopify_order(payload: dict[str, Any], *, add_order_status: str = "paid") -> dict[str, Any]:
    """A Shopify order webhook body as the hub's canonical order.

    `add_order_status` is the `financial_status` at which the order is raised
    into the ERP ("paid" by default; "authorized" for shops that capture on
    fulfilment). Any other status is stored only.
    """
    order = _order_object(payload)
    taxes_included = _flag(order.get("taxes_included"), "taxes_included")
    discounts = ZERO  # as the channel states them: tax-inclusive when prices are
    tax_in_discounts = ZERO

    line_items: list[dict[str, Any]] = []
    for index, raw in enumerate(_line_list(order)):
        path = f"line_items[{index}]"
        item = _entry(raw, path)
        qty = _quantity(item.get("quantity"), f"{path}.quantity")
        unit = _money(item.get("price"), f"{path}.price", required=True)
        discount = _shopify_allocated(item, path)
        discounts += discount
        taxes = _shopify_taxes(item.get("tax_lines"), f"{path}.tax_lines")
        share = ONE
        if taxes_included:
            share = _tax_share(unit * qty - discount, [(p, r) for _, p, r in taxes])
            tax_in_discounts += discount - discount * share
        title = _text(item.get("name"), f"{path}.name") or _text(item.get("title"), f"{path}.title")
        line_items.append(
            {
                "sku": _text(item.get("sku"), f"{path}.sku"),
                "title": title,
                "qty": qty,
                "price": _unit(unit * share),
                "total_discount": _unit(discount * share),
                "tax_lines": [line for line, _, _ in taxes],
            }
        )

    shipping_lines: list[dict[str, Any]] = []
    for index, raw in enumerate(_entries(order.get("shipping_lines"), "shipping_lines")):
        path = f"shipping_lines[{index}]"
        ship = _entry(raw, path)
        price = _money(ship.get("price"), f"{path}.price")
        discount = _shopify_allocated(ship, path)
        discounts += discount
        taxes = _shopify_taxes(ship.get("tax_lines"), f"{path}.tax_lines")
        share = ONE
        if taxes_included:
            share = _tax_share(price - discount, [(p, r) for _, p, r in taxes])
            tax_in_discounts += discount - discount * share
        shipping_lines.append(
            {
                "title": _text(ship.get("title"), f"{path}.title"),
                "price": _cents((price - discount) * share),
                "tax_lines": [line for line, _, _ in taxes],
            }
        )

    stated = _number(order.get("total_discounts"), "total_discounts")
    total_discount = (discounts if stated is None else stated) - tax_in_discounts

    customer = _object(order.get("customer"), "customer") or {}
    billing = _shopify_address(order.get("billing_address"), "billing_address")
    names = billing or {}
    email = _text(customer.get("email"), "customer.email") or _text(order.get("email"), "email")
    codes: list[str] = []
    for index, raw in enumerate(_entries(order.get("discount_codes"), "discount_codes")):
        where = f"discount_codes[{index}]"
        code = _text(_entry(raw, where).get("code"), f"{where}.code")
        if code is not None:
            codes.append(code)
    status = _text(order.get("financial_status"), "financial_status")

    return {
        "channel": "shopify",
        "channel_order_code": _shopify_code(order),
        "instruction": _instruction(status, add_order_status),
        "ordered_date": _text(order.get("created_at"), "created_at"),
        "notes": _text(order.get("note"), "note"),
        "customer": {
            "channel_customer_code": _text(customer.get("id"), "customer.id"),
            "first_name": _text(customer.get("first_name"), "customer.first_name")
            or names.get("first_name"),
            "last_name": _text(customer.get("last_name"), "customer.last_name")
            or names.get("last_name"),
            "email": email,
        },
        "billing_address": billing,
        "shipping_address": _shopify_address(order.get("shipping_address"), "shipping_address"),
        "line_items": line_items,
        "shipping_lines": shipping_lines,
        "total_discount": _cents(total_discount),
        "meta": _meta(
            [
                ("channel_order_id", _text(order.get("id"), "id")),
                ("channel_status", status),
                ("currency", _text(order.get("currency"), "currency")),
                ("discount_codes", ",".join(codes) or None),
                ("taxes_included", "true" if taxes_included else "false"),
            ]
        ),
    }


# --------------------------------------------------------------------------
# WooCommerce
# --------------------------------------------------------------------------


def _woo_address(value: Any, path: str) -> dict[str, str | None] | None:
    """WooCommerce keeps only codes for state and country.

    The code goes into the name field as well as the code field: the ERP's
    delivery address reads `province`, and a code there beats a blank. An
    address with nothing filled in (a virtual order's shipping) is None.
    """
    raw = _object(value, path)
    if raw is None:
        return None
    state = _text(raw.get("state"), f"{path}.state")
    country = _text(raw.get("country"), f"{path}.country")
    address = {
        "first_name": _text(raw.get("first_name"), f"{path}.first_name"),
        "last_name": _text(raw.get("last_name"), f"{path}.last_name"),
        "company": _text(raw.get("company"), f"{path}.company"),
        "address1": _text(raw.get("address_1"), f"{path}.address_1"),
        "address2": _text(raw.get("address_2"), f"{path}.address_2"),
        "city": _text(raw.get("city"), f"{path}.city"),
        "province": state,
        "province_code": state,
        "country": country,
        "country_code": country,
        "zip": _text(raw.get("postcode"), f"{path}.postcode"),
        "phone": _text(raw.get("phone"), f"{path}.phone"),
    }
    return address if any(v is not None for v in address.values()) else None


WooRates = dict[str, tuple[str | None, str | None, Decimal | None]]


def _woo_rates(order: Mapping[str, Any]) -> WooRates:
    """The order's tax rates by rate id: a line's taxes name only the id."""
    rates: WooRates = {}
    for index, raw in enumerate(_entries(order.get("tax_lines"), "tax_lines")):
        where = f"tax_lines[{index}]"
        line = _entry(raw, where)
        rate_id = _text(line.get("rate_id"), f"{where}.rate_id")
        if rate_id is None:
            continue
        percent = _number(line.get("rate_percent"), f"{where}.rate_percent")
        rates[rate_id] = (
            _text(line.get("rate_code"), f"{where}.rate_code"),
            _text(line.get("label"), f"{where}.label"),
            None if percent is None else percent / 100,
        )
    return rates


def _woo_taxes(value: Any, path: str, rates: WooRates) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, raw in enumerate(_entries(value, path)):
        where = f"{path}[{index}]"
        tax = _entry(raw, where)
        amount = _number(tax.get("total"), f"{where}.total")
        if amount is None:
            # WooCommerce lists every rate of the tax class; a blank total is
            # a rate that did not apply to this line.
            continue
        code, title, rate = rates.get(_text(tax.get("id"), f"{where}.id") or "", (None, None, None))
        out.append({"code": code, "title": title, "price": _cents(amount), "rate": _rate(rate)})
    return out


def woocommerce_order(
    payload: dict[str, Any], *, add_order_status: str = "processing"
) -> dict[str, Any]:
    """A WooCommerce order webhook body (WC REST v3 order) as the canonical order.

    `add_order_status` is the order `status` at which it is raised into the
    ERP ("processing": paid and waiting to be fulfilled). WooCommerce keeps
    line subtotals and totals ex tax whether or not the shop's prices include
    tax, so nothing needs taking out here.

    A non-zero fee line is refused: the canonical order has nowhere to put
    it, and raising the order without it would invoice the wrong amount.
    """
    order = _order_object(payload)
    rates = _woo_rates(order)

    line_items: list[dict[str, Any]] = []
    for index, raw in enumerate(_line_list(order)):
        path = f"line_items[{index}]"
        item = _entry(raw, path)
        qty = _quantity(item.get("quantity"), f"{path}.quantity")
        subtotal = _money(item.get("subtotal"), f"{path}.subtotal", required=True)
        total = _money(item.get("total"), f"{path}.total", required=True)
        line_items.append(
            {
                "sku": _text(item.get("sku"), f"{path}.sku"),
                "title": _text(item.get("name"), f"{path}.name"),
                "qty": qty,
                "price": _unit(subtotal / qty),
                "total_discount": _unit(subtotal - total),
                "tax_lines": _woo_taxes(item.get("taxes"), f"{path}.taxes", rates),
            }
        )

    shipping_lines: list[dict[str, Any]] = []
    for index, raw in enumerate(_entries(order.get("shipping_lines"), "shipping_lines")):
        path = f"shipping_lines[{index}]"
        ship = _entry(raw, path)
        shipping_lines.append(
            {
                "title": _text(ship.get("method_title"), f"{path}.method_title"),
                "price": _cents(_money(ship.get("total"), f"{path}.total")),
                "tax_lines": _woo_taxes(ship.get("taxes"), f"{path}.taxes", rates),
            }
        )

    for index, raw in enumerate(_entries(order.get("fee_lines"), "fee_lines")):
        path = f"fee_lines[{index}]"
        fee = _entry(raw, path)
        amount = _money(fee.get("total"), f"{path}.total")
        if amount:
            name = _text(fee.get("name"), f"{path}.name") or "fee"
            raise ChannelPayloadError(
                f'{path}.total "{_shown(fee.get("total"))}" ({name}) cannot be raised: '
                "the canonical order has no place for fees"
            )

    billing = _woo_address(order.get("billing"), "billing")
    raw_billing = _object(order.get("billing"), "billing") or {}
    customer_id = _text(order.get("customer_id"), "customer_id")
    codes: list[str] = []
    for index, raw in enumerate(_entries(order.get("coupon_lines"), "coupon_lines")):
        where = f"coupon_lines[{index}]"
        code = _text(_entry(raw, where).get("code"), f"{where}.code")
        if code is not None:
            codes.append(code)
    status = _text(order.get("status"), "status")
    code = _text(order.get("number"), "number") or _text(order.get("id"), "id")
    if code is None:
        raise ChannelPayloadError("number is missing, and so is id")
    ordered = _text(order.get("date_created_gmt"), "date_created_gmt")
    if ordered is not None and not _has_zone(ordered):
        ordered += "Z"
    prices_include_tax = _flag(order.get("prices_include_tax"), "prices_include_tax")

    return {
        "channel": "woocommerce",
        "channel_order_code": code,
        "instruction": _instruction(status, add_order_status),
        "ordered_date": ordered or _text(order.get("date_created"), "date_created"),
        "notes": _text(order.get("customer_note"), "customer_note"),
        "customer": {
            # customer_id 0 is a guest checkout: there is no account to name.
            "channel_customer_code": None if customer_id in (None, "0") else customer_id,
            "first_name": billing["first_name"] if billing else None,
            "last_name": billing["last_name"] if billing else None,
            "email": _text(raw_billing.get("email"), "billing.email"),
        },
        "billing_address": billing,
        "shipping_address": _woo_address(order.get("shipping"), "shipping"),
        "line_items": line_items,
        "shipping_lines": shipping_lines,
        "total_discount": _cents(_money(order.get("discount_total"), "discount_total")),
        "meta": _meta(
            [
                ("channel_order_id", _text(order.get("id"), "id")),
                ("channel_status", status),
                ("currency", _text(order.get("currency"), "currency")),
                ("discount_codes", ",".join(codes) or None),
                ("taxes_included", "true" if prices_include_tax else "false"),
            ]
        ),
    }


def _has_zone(value: str) -> bool:
    """Whether an ISO time already says its offset (WooCommerce's `_gmt` never does)."""
    time = value.partition("T")[2]
    return time.endswith(("Z", "z")) or "+" in time or "-" in time
