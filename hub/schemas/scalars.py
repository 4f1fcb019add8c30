"""The hub's scalar coercers: one raw value to the canonical field's type.

Shared by the sync's fast loaders and the marshmallow fields, so each rule
is written once. `shown`, `coerce_text`, `parse_number` and `coerce_bool`
(with `TRUE_WORDS` / `FALSE_WORDS`) are the hub's copy of the maps' scalar
vocabulary (`mappings.scalars`): the hub imports nothing of the maps, and
tests/unit/test_scalar_vocabulary.py holds the two copies equal. The rest
(quantities floored, prices rounded, the tri-state) are the hub's own rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

Action = Literal["active", "delete", "ignore"]
Errors = list[tuple[str, str]]
Coerce = Callable[[Any, str], Any]

CODE_MAX: Final = 255


class CoercionError(ValueError):
    """A value that breaks a rule; the message is the sentence a user reads."""


# --------------------------------------------------------------------------
# The scalar vocabulary, the hub's copy of mappings.scalars (held equal by
# tests/unit/test_scalar_vocabulary.py): shown, coerce_text, parse_number,
# coerce_bool and the words of a flag
# --------------------------------------------------------------------------

SHOWN_MAX: Final = 60
TRUE_WORDS: Final = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS: Final = frozenset({"false", "f", "0", "", "no", "n", "off"})
_ACTIVE: Final = frozenset({"active", "true", "t", "1", "yes", "y"})
_DELETE: Final = frozenset({"delete", "false", "f", "0", "", "no", "n"})
_IGNORE: Final = frozenset({"ignore"})


def shown(value: Any) -> str:
    """The value as an error message quotes it: short enough to read."""
    s = value if isinstance(value, str) else repr(value)
    return s if len(s) <= SHOWN_MAX else s[:57] + "..."


def storable(text: str) -> bool:
    """Whether PostgreSQL can hold ``text``: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def kept_text(text: str) -> str:
    """``text`` as PostgreSQL can keep it, a NUL or a lone surrogate written
    as its escape (``\\u0000``, ``\\ud800``): for what the hub stores for
    the record rather than as data (a quarantine entry reporting such a
    value, a channel's raw body), which must not fail with the value."""
    if storable(text):
        return text
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


def kept_value(value: Any) -> Any:
    """A JSON value with every string, keys included, ``kept_text``."""
    if isinstance(value, str):
        return kept_text(value)
    if isinstance(value, dict):
        return {kept_value(k): kept_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [kept_value(v) for v in value]
    return value


def not_unicode_message(field: str) -> str:
    """What a quarantine entry or an order's 422 says of ``not_unicode``'s field."""
    return (
        f"{field} holds text that is not valid Unicode (a lone surrogate such as "
        "\\ud800, which no database stores)"
    )


def not_unicode(value: Any, path: str = "") -> str | None:
    """The path of the first text in ``value`` that UTF-8 cannot encode (a
    lone surrogate, as a JSON ERP may send with a stray ``\\ud800`` escape)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return path or "value"
        return None
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = ((f"[{n}]", v) for n, v in enumerate(value))
    else:
        return None
    for key, sub in items:
        key = str(key)
        where = f"{path}{key}" if key.startswith("[") else f"{path}.{key}" if path else key
        found = not_unicode(sub, where)
        if found is not None:
            return found
    return None


def coerce_text(value: Any, name: str) -> str | None:
    """Stripped text; blank is null; numbers become their plain spelling.

    The vocabulary's `text` with the store's one extra rule: no NUL.
    """
    if value is None:
        return None
    if value.__class__ is str or isinstance(value, str):
        if "\x00" in value:
            # PostgreSQL stores no NUL in text or JSONB: refused here, by
            # name, rather than failing the whole page's write later.
            raise CoercionError(f"{name} contains a NUL character, which cannot be stored")
        return str(value).strip() or None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise CoercionError(f'{name} "{shown(value)}" is not text')
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise CoercionError(f'{name} "{shown(value)}" is not text')
        if value == int(value):
            return str(int(value))
    return str(value)


def coerce_code(value: Any, name: str) -> str:
    """A required key (product, variant, customer code, SKU): text, at most 255 long."""
    out = coerce_text(value, name)
    if out is None:
        raise CoercionError(f"{name} is required")
    if len(out) > CODE_MAX:
        raise CoercionError(f"{name} is longer than {CODE_MAX} characters")
    return out


def coerce_required_text(value: Any, name: str) -> str:
    out = coerce_text(value, name)
    if out is None:
        raise CoercionError(f"{name} is required")
    return out


def parse_number(value: Any, name: str) -> int | float | None:
    """A number from str, int, float or Decimal; blank is null.

    Thousands separators and decimal commas are refused rather than guessed
    at. Each coercer below adds its own range rule.
    """
    # The exact-class tests are the fast path; mypy narrows only on
    # isinstance, hence the two ignores.
    kind = value.__class__
    if kind is int:
        return value  # type: ignore[no-any-return]
    if value is None:
        return None
    if kind is float:
        if math.isfinite(value):
            return value  # type: ignore[no-any-return]
    elif kind is str:
        s = value.strip()
        if not s:
            return None
        if "_" not in s:
            try:
                return int(s)
            except ValueError:
                pass
            try:
                f = float(s)
            except ValueError:
                pass
            else:
                if math.isfinite(f):
                    return f
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return int(value)
    elif isinstance(value, float | Decimal):
        f = float(value)
        if math.isfinite(f):
            return f
    raise CoercionError(f'{name} "{shown(value)}" is not a number')


MAX_QTY = 2_147_483_647


def coerce_qty(value: Any, name: str) -> int | None:
    """Stock in whole units: fractions round down, negative stock is 0."""
    n = parse_number(value, name)
    if n is None:
        return None
    if n.__class__ is not int:
        n = math.floor(n)
    if n > MAX_QTY:
        # The stored quantity is a 32-bit column: refused here, by name,
        # rather than failing the whole page's write.
        raise CoercionError(f'{name} "{shown(value)}" is more stock than the hub can hold')
    return n if n > 0 else 0


def coerce_order_qty(value: Any, name: str) -> int | None:
    """An ordered quantity: whole and at least 1, never adjusted."""
    n = parse_number(value, name)
    if n is None:
        return None
    if n != int(n):
        raise CoercionError(f'{name} "{shown(value)}" is not a whole number')
    if n < 1:
        raise CoercionError(f'{name} "{shown(value)}" must be at least 1')
    return int(n)


def coerce_price(value: Any, name: str) -> float | None:
    """A float rounded to 4 places, so sums do not leave 8.000000000000001 behind."""
    n = parse_number(value, name)
    if n is None:
        return None
    try:
        out = round(float(n), 4)
    except OverflowError:
        raise CoercionError(f'{name} "{shown(value)}" is too large to be a price') from None
    if not math.isfinite(out):
        raise CoercionError(f'{name} "{shown(value)}" is too large to be a price')
    return out if out != 0 else 0.0


def coerce_grams(value: Any, name: str) -> int | None:
    n = parse_number(value, name)
    if n is None:
        return None
    if n < 0:
        raise CoercionError(f'{name} "{shown(value)}" is negative')
    return round(n)


def coerce_bool(value: Any, name: str) -> bool:
    """A plain true/false field: "false", "0" and blank are false."""
    if value is None:
        return False
    if value is True or value is False:
        return value
    if isinstance(value, str):
        s = value.strip().lower()
        if s in TRUE_WORDS:
            return True
        if s in FALSE_WORDS:
            return False
    elif isinstance(value, int | float | Decimal) and value in (0, 1):
        return bool(value)
    raise CoercionError(f'{name} "{shown(value)}" is not true or false')


def tri_state(value: Any, field: str = "product_active") -> Action:
    """An ERP's active flag as Active, Delete or Ignore.

    Unticked, false, 0, blank and null all mean Delete: an ERP that leaves
    the flag empty is saying "not on the web". Anything unrecognised is an
    error rather than a guess, because guessing Delete would take products
    off the channels.
    """
    if value is None or value is False:
        return "delete"
    if value is True:
        return "active"
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _ACTIVE:
            return "active"
        if s in _DELETE:
            return "delete"
        if s in _IGNORE:
            return "ignore"
    elif isinstance(value, int | float | Decimal):
        if value == 1:
            return "active"
        if value == 0:
            return "delete"
    raise CoercionError(f'{field} "{shown(value)}" is not Active, Delete or Ignore')


def coerce_tags(value: Any, name: str) -> str | None:
    """Comma-separated tags (or a list of them), sorted and de-duplicated."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        parts = [coerce_text(v, name) for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        raise CoercionError(f'{name} "{shown(value)}" is not text')
    tags = sorted({p for p in parts if p})
    return ",".join(tags) if tags else None


def coerce_position(value: Any, name: str) -> int | None:
    n = parse_number(value, name)
    if n is None:
        return None
    if n not in (1, 2, 3):
        raise CoercionError(f'{name} "{shown(value)}" is not 1, 2 or 3')
    return int(n)


def coerce_rate(value: Any, name: str) -> float | None:
    """A tax rate as a fraction (0.15), rounded to 6 places; a number too large
    for a float is named, not an OverflowError (an order's 500)."""
    n = parse_number(value, name)
    if n is None:
        return None
    try:
        out = round(float(n), 6)
    except OverflowError:
        raise CoercionError(f'{name} "{shown(value)}" is too large to be a rate') from None
    if not math.isfinite(out):
        raise CoercionError(f'{name} "{shown(value)}" is too large to be a rate')
    return out


def coerce_datetime(value: Any, name: str) -> str | None:
    """An ISO-8601 date and time, stored as ISO text; naive times are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise CoercionError(
                f'{name} "{shown(value)}" is not an ISO-8601 date and time'
            ) from None
    else:
        raise CoercionError(f'{name} "{shown(value)}" is not an ISO-8601 date and time')
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


INSTRUCTIONS: Final = ("add_order", "sync_order")


def coerce_instruction(value: Any, name: str) -> str:
    s = coerce_text(value, name)
    if s is None:
        return "add_order"
    if s not in INSTRUCTIONS:
        raise CoercionError(f'{name} "{shown(value)}" is not add_order or sync_order')
    return s
