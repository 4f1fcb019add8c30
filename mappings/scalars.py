"""The scalar vocabulary: how one raw value becomes text, a number or a flag.

Every map is written in these words, the ERP maps (`mappings.core`'s
parsers) and the sales channels' order transforms (`connectors.intake`) alike, so
"blank is null", "1,5 is refused, not guessed at" and "'n' is false" mean the
same wherever a value comes in, and an error quotes the value the same way.

The hub keeps its own copy (`hub.schemas.scalars`, since the hub imports
nothing of the maps), and tests/unit/test_scalar_vocabulary.py holds the two
equal on a table of awkward values, so neither can drift alone.

These only make a raw value *parseable* (a number is a number, a code is a
stripped string); the canonical rules (qty floored and clamped, prices
rounded, tags sorted) belong to hub.schemas, which runs after the map. The
map still parses so that a bad value is quarantined with the raw record and
the ERP's own field name, which is what the user can go and fix.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final

# Spellings of a plain true/false column, lower-cased and stripped.
TRUE_WORDS: Final = frozenset({"true", "t", "1", "yes", "y", "on"})
FALSE_WORDS: Final = frozenset({"false", "f", "0", "", "no", "n", "off"})
# Python's ints have no limit, but the schema works in floats and the store
# in database numbers: a map refuses an integer this large or larger.
AMOUNT_LIMIT: Final = 10**15
SHOWN_MAX: Final = 60


class MappingError(ValueError):
    """A value that cannot become the hub field it maps to.

    The message is the sentence an operator reads in the quarantine list, so
    it names the ERP field and the offending value.
    """


def shown(value: Any) -> str:
    """The value as an error message quotes it: short enough to read."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN_MAX else text[:57] + "..."


def text(value: Any, name: str) -> str | None:
    """Codes and names: stripped (CHAR columns arrive space-padded), blank is null.

    A number becomes its plain spelling (12.0 is "12"), since ERPs keep codes
    in numeric columns.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise MappingError(f'{name} "{shown(value)}" is not text')
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise MappingError(f'{name} "{shown(value)}" is not text')
        if value == int(value):
            return str(int(value))
    return str(value)


def parse_number(value: Any, name: str) -> int | float | None:
    """A number from whatever the driver returned: str, int, float or Decimal.

    Blank is null. Thousands separators and decimal commas are refused rather
    than guessed at: "1,234" is a thousand or one point something depending
    on the locale, and guessing wrong silently corrupts prices. No range
    rule: `number` adds the map's.
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
    raise MappingError(f'{name} "{shown(value)}" is not a number')


def number(value: Any, name: str) -> int | float | None:
    """`parse_number`, refusing an integer of 16 digits or more.

    10**400 would crash the schema's floats and the store's numbers rather
    than be quarantined, so it is refused here, by the ERP field's name.
    """
    out = parse_number(value, name)
    if isinstance(out, int) and not abs(out) < AMOUNT_LIMIT:
        raise MappingError(f'{name} "{shown(value)}" is too large (at most 15 digits)')
    return out


def flag(value: Any, name: str) -> bool:
    """A plain true/false column: "false", "0" and blank are false."""
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
    raise MappingError(f'{name} "{shown(value)}" is not true or false')


__all__ = [
    "AMOUNT_LIMIT",
    "FALSE_WORDS",
    "TRUE_WORDS",
    "MappingError",
    "flag",
    "number",
    "parse_number",
    "shown",
    "text",
]
