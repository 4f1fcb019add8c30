"""The source settings the SYSPRO maps read, read defensively.

A map may be previewed with partial settings (`s2s mappings show`), so
these never assume a setting is there or well typed: unset is None, and a
setting that cannot mean anything is a `MappingError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.scalars import MappingError, shown


def setting_text(settings: Mapping[str, Any], name: str) -> str | None:
    """A text setting, stripped; blank or unset is None."""
    value = settings.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def folded_values(values: Any) -> frozenset[str] | None:
    """A list setting as stripped, case-folded strings; None when unset."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    return frozenset(str(v).strip().casefold() for v in values if v is not None)


def active_field(settings: Mapping[str, Any]) -> str:
    """``UserField<n>`` for the source's ``active_user_field`` (1-5, default 1)."""
    raw = settings.get("active_user_field")
    number = 1 if raw in (None, "") else raw
    try:
        n = int(str(number).strip().removeprefix("UserField").removeprefix("userfield"))
    except ValueError:
        n = 0
    if not 1 <= n <= 5:
        raise MappingError(f'active_user_field "{shown(raw)}" is not a user field from 1 to 5')
    return f"UserField{n}"


def chosen_warehouses(settings: Mapping[str, Any]) -> frozenset[str] | None:
    """The warehouses the source sums, stripped and upper-cased; None means all."""
    values = settings.get("warehouses")
    if not values:
        return None
    if isinstance(values, str):
        values = [values]
    return frozenset(str(v).strip().upper() for v in values if str(v).strip())


def price_code_names(settings: Mapping[str, Any]) -> dict[str, str] | None:
    """PriceCode (upper case) -> tier name; None means every code as its own name."""
    codes = settings.get("price_codes")
    if not codes or not isinstance(codes, Mapping):
        return None
    return {str(k).strip().upper(): str(v).strip() for k, v in codes.items()}
