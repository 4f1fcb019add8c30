"""List finishers: the checks and the order that need a whole list.

Run after each item's scalars are coerced, by the fast loaders and the
marshmallow `ListOf` alike; `label` is how an error path names an item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from hub.schemas.scalars import CoercionError

NATURAL_KEYS: Final = ("source_variant_code", "tier", "description", "key", "name")


def _unique(items: list[dict[str, Any]], key: str, name: str, fold: bool = False) -> None:
    seen: set[Any] = set()
    for item in items:
        value = item.get(key)
        marker = value.lower() if fold and isinstance(value, str) else value
        if marker in seen:
            raise CoercionError(f'{name} {key} "{value}" appears twice')
        seen.add(marker)


def finish_meta(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Sorted by key; keys unique ignoring case, since lookups ignore case."""
    if len(items) > 1:
        _unique(items, "key", name, fold=True)
        items.sort(key=lambda m: (m["key"].lower(), m["key"]))
    return items


def finish_options(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Positions default to list order; sorted by position."""
    for index, option in enumerate(items, start=1):
        if option.get("position") is None:
            option["position"] = index
    if len(items) > 1:
        _unique(items, "position", name)
        _unique(items, "name", name, fold=True)
        items.sort(key=lambda o: o["position"])
    return items


def finish_tiers(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    if len(items) > 1:
        _unique(items, "tier", name)
        items.sort(key=lambda t: t["tier"])
    return items


def finish_availability(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    if len(items) > 1:
        _unique(items, "description", name)
        items.sort(key=lambda q: q["description"])
    return items


def finish_variants(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Codes unique within the product; ERP order is kept for display."""
    if len(items) > 1:
        _unique(items, "source_variant_code", name)
    return items


def label(item: Any, index: int) -> str:
    """How an error path names a list item: its natural key, else its index."""
    if item.__class__ is dict or isinstance(item, Mapping):
        for key in NATURAL_KEYS:
            value = item.get(key)
            if isinstance(value, str):
                value = value.strip()
                if value:
                    return value
            elif isinstance(value, int) and not isinstance(value, bool):
                return str(value)
    return str(index)
