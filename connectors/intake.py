"""What every channel's order intake shares: signatures, and reading a
channel's order JSON with exact money.

A webhook is trusted only when its signature is right, so the checks are
constant-time and never raise: a bad or missing header is simply False, and
the caller answers 401 without learning anything more. Shopify and
WooCommerce both sign the raw body with HMAC-SHA256, base64-encoded.

Each channel kind's transform (``connectors.<kind>.intake``) turns the
channel's own order JSON into the canonical order of canonical-model.md,
which ``hub.schemas.load_order`` validates. They are pure: no I/O, nothing
looked up. Text is the maps' scalar vocabulary (``mappings.scalars``: the
one arrow from connectors to another package of ours, so that a value reads
the same from an ERP and from a channel); amounts are Decimals.

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

from mappings.scalars import MappingError, shown, text

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


def read_object(value: Any, path: str) -> Mapping[str, Any] | None:
    """An optional nested object; null or absent is None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ChannelPayloadError(f"{path} must be an object")
    return value


def read_entries(value: Any, path: str) -> list[Any]:
    """An optional list; null or absent is empty."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ChannelPayloadError(f"{path} must be a list")
    return list(value)


def read_entry(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ChannelPayloadError(f"{path} must be an object")
    return value


def read_text(value: Any, path: str) -> str | None:
    """The vocabulary's `text` for JSON: ids that arrive as numbers become text.

    A number with a point is no id a channel sends, so it is refused here
    rather than spelt out.
    """
    # Most of an order's fields are plain strings or null: answered before
    # the checks (a Shopify order reads about forty of them).
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, float | Decimal):
        raise ChannelPayloadError(f'{path} "{shown(value)}" is not text')
    try:
        return text(value, path)
    except MappingError as exc:
        raise ChannelPayloadError(str(exc)) from None


def read_decimal(value: Any, path: str, *, required: bool = False) -> Decimal | None:
    """A Decimal from the channel's string (or JSON number), exactly as sent.

    Not the vocabulary's `number`: that gives floats, and an invoice is
    worked out here, where 0.1 + 0.2 must be 0.3.
    """
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
        raise ChannelPayloadError(f'{path} "{shown(value)}" is not a number')
    if parsed != 0 and parsed.adjusted() >= _MAX_DIGITS_BEFORE_POINT:
        raise ChannelPayloadError(f'{path} "{shown(value)}" is too large')
    return parsed


def read_money(value: Any, path: str, *, required: bool = False) -> Decimal:
    out = read_decimal(value, path, required=required)
    return ZERO if out is None else out


def read_quantity(value: Any, path: str) -> int:
    """Whole units, at least one: a per-unit price is worked out by dividing by it."""
    n = read_money(value, path, required=True)
    if n != n.to_integral_value():
        raise ChannelPayloadError(f'{path} "{shown(value)}" is not a whole number')
    if n < 1:
        raise ChannelPayloadError(f'{path} "{shown(value)}" must be at least 1')
    return int(n)


def read_flag(value: Any, path: str) -> bool:
    """JSON's true or false (or that spelt as text), and nothing else.

    Stricter than the vocabulary's `flag` on purpose: a channel sends a JSON
    boolean, so "yes" or 1 here is a malformed payload, not an ERP's habit.
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", ""):
        return value.strip().lower() == "true"
    raise ChannelPayloadError(f'{path} "{shown(value)}" is not true or false')


def to_cents(value: Decimal) -> float:
    out = float(value.quantize(_CENT, rounding=ROUND_HALF_UP))
    return out if out else 0.0


def to_unit(value: Decimal) -> float:
    out = float(value.quantize(_UNIT, rounding=ROUND_HALF_UP))
    return out if out else 0.0


def to_rate(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def instruction(status: str | None, add_order_status: str) -> str:
    """Only the configured status raises the order; any other is stored, not raised."""
    wanted = add_order_status.strip().lower()
    return "add_order" if status is not None and status.lower() == wanted else "sync_order"


def _meta(pairs: list[tuple[str, str | None]]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in pairs if value is not None]


def read_lines(order: Mapping[str, Any]) -> list[Any]:
    if "line_items" not in order or order["line_items"] is None:
        raise ChannelPayloadError("line_items is missing")
    lines = read_entries(order["line_items"], "line_items")
    if not lines:
        raise ChannelPayloadError("line_items is empty: an order needs at least one line")
    return lines


def read_order(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise ChannelPayloadError(f'order "{shown(payload)}" must be an object')
    return payload


def read_codes(order: Mapping[str, Any], key: str) -> str | None:
    """The discount (or coupon) codes the customer used, comma-separated."""
    codes: list[str] = []
    for index, raw in enumerate(read_entries(order.get(key), key)):
        where = f"{key}[{index}]"
        code = read_text(read_entry(raw, where).get("code"), f"{where}.code")
        if code is not None:
            codes.append(code)
    return ",".join(codes) or None


def order_meta(
    order: Mapping[str, Any], status: str | None, codes: str | None, taxes_included: bool
) -> list[dict[str, str]]:
    """What the channel said that the canonical order has no field for."""
    return _meta(
        [
            ("channel_order_id", read_text(order.get("id"), "id")),
            ("channel_status", status),
            ("currency", read_text(order.get("currency"), "currency")),
            ("discount_codes", codes),
            ("taxes_included", "true" if taxes_included else "false"),
        ]
    )


def tax_share(net_incl: Decimal, taxes: list[tuple[Decimal, Decimal | None]]) -> Decimal:
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


# ---------------------------------------------------------------- signatures


def _secret_bytes(secret: str | bytes | None) -> bytes | None:
    if isinstance(secret, str):
        return secret.encode("utf-8") if secret else None
    if isinstance(secret, bytes | bytearray):
        return bytes(secret) if secret else None
    return None


def sign(body: bytes, secret: str | bytes) -> str:
    """The base64 HMAC-SHA256 of the raw body, as Shopify and WooCommerce send it."""
    key = _secret_bytes(secret)
    if key is None:
        raise ValueError("a webhook secret is required to sign a body")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("a webhook body is signed as the raw bytes sent")
    return base64.b64encode(_hmac_sha256(key, body)).decode("ascii")


# OpenSSL's HMAC keeps the GIL for an update shorter than this (CPython's
# HASHLIB_GIL_MINSIZE); ``hmac.digest`` lets it go on every call.
_GIL_KEPT_BELOW: Final = 2048


def _hmac_sha256(key: bytes, body: bytes | bytearray | memoryview) -> bytes:
    """HMAC-SHA256 of ``body`` fed in pieces that never let the GIL go.

    The webhook handler signs a body of up to 64 KiB on the API's event loop
    (``s2s.api_parts.off_loop``). Letting the GIL go there hands it to a
    threadpool thread busy with another request's database work, and the
    loop waits for it back up to the interpreter's switch interval (5 ms).
    Signing a 1.2 kB body beside four threads querying PostgreSQL took
    10-31 µs with ``hmac.digest`` and 4-5 µs in pieces; beside one
    CPU-bound thread, 50-500 µs against 5-7 µs. The pieces add a call per
    2 kB, under a microsecond each.
    """
    mac = hmac.new(key, digestmod=hashlib.sha256)
    view = memoryview(body)
    for start in range(0, len(view), _GIL_KEPT_BELOW - 1):
        mac.update(view[start : start + _GIL_KEPT_BELOW - 1])
    return mac.digest()


def verify(body: bytes, header: str | None, secret: str | bytes | None) -> bool:
    """Whether ``header`` signs exactly these bytes with ``secret``; never raises.

    The raw body must be checked before it is parsed: re-serialised JSON
    would not hash the same.
    """
    key = _secret_bytes(secret)
    if key is None or not isinstance(header, str) or not header.strip():
        return False
    if not isinstance(body, bytes | bytearray | memoryview):
        return False
    expected = sign(body, key).encode("ascii")
    # Compared as bytes so that a header with odd characters is just unequal.
    given = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)
