"""Reading a channel's order JSON: the scalar vocabulary plus exact money.

Text is the maps' vocabulary (`mappings.scalars`); amounts are Decimals read
from the channel's strings, never through a float, and the figures written
out are rounded once, at the end (see `s2s.channels` for the money rules).
Every refusal is a `ChannelPayloadError` naming the field in the channel's
own JSON.
"""

from __future__ import annotations

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
