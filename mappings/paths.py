"""The hub paths an inbound map may write, and the parser that fits a raw value to each.

This is the target side of every map: `Map` checks its rows against these
paths when it is built (so a typo in a map fails at import, not mid-sync),
and `s2s mappings` lists them. It holds no maps, only what they map into.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from mappings.scalars import MappingError, flag, number, shown, text

STREAMS: Final = ("products", "customers", "orders")
INBOUND: Final = frozenset({"products", "customers"})
UNKNOWN_KEY: Final = "<unknown>"
# The hub path that keys each inbound stream's records (and groups a
# product's variant rows).
KEY_PATHS: Final[Mapping[str, str]] = {
    "products": "source_product_code",
    "customers": "source_customer_code",
}


def raw_state(value: Any, name: str) -> Any:
    """Tri-state flags pass through (stripped): the hub decides Active/Delete/Ignore."""
    return value.strip() if isinstance(value, str) else value


def _pairs(value: Any, name: str, label: str, amount: str) -> list[dict[str, Any]]:
    """A list of {label, amount} from a list, a dict or "a:1,b:2" text.

    The text form exists because a SQL alias can only produce a scalar, so a
    query that wants several price tiers or warehouses concatenates them.
    """
    if value is None:
        return []
    items: list[tuple[Any, Any]]
    if isinstance(value, str):
        items = []
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, val = part.rpartition(":")
            if not sep or not key.strip():
                raise MappingError(f'{name} "{shown(value)}" is not a list of name:value pairs')
            items.append((key, val))
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = []
        for item in value:
            if not isinstance(item, Mapping) or label not in item:
                raise MappingError(f"{name} entries need a {label} and a {amount}")
            items.append((item.get(label), item.get(amount)))
    else:
        raise MappingError(f'{name} "{shown(value)}" is not a list of name:value pairs')
    out = []
    for key, val in items:
        code = text(key, name)
        if code is None:
            raise MappingError(f"{name} has an entry without a {label}")
        out.append({label: code, amount: number(val, f"{name} {code}")})
    return out


def tiers(value: Any, name: str) -> list[dict[str, Any]]:
    """Price tiers as [{tier, price}]."""
    return _pairs(value, name, "tier", "price")


def availability(value: Any, name: str) -> list[dict[str, Any]]:
    """Per-warehouse stock as [{description, qty}]."""
    return _pairs(value, name, "description", "qty")


Parser = Callable[[Any, str], Any]

# Every hub path an inbound map may produce, with the parser that makes a
# raw value fit it. The seeds spell two of them without the "variants."
# prefix (iSync's `inventory_management`, and `csv_price_tiers`); both
# spellings are accepted and `build_products` files them under the variant.
PRODUCT_PATHS: Final[Mapping[str, Parser]] = {
    "source_product_code": text,
    "title": text,
    "body_html": text,
    "collection": text,
    "product_type": text,
    "vendor": text,
    "tags": text,
    "product_active": raw_state,
    "options.option1": text,
    "options.option2": text,
    "options.option3": text,
    "source_variant_code": text,
    "variants.sku": text,
    "variants.barcode": text,
    "variants.qty": number,
    "variants.price": number,
    "variants.retail_price": number,
    "variants.grams": number,
    "variants.inventory_management": flag,
    "inventory_management": flag,
    "variants.option1": text,
    "variants.option2": text,
    "variants.option3": text,
    "csv_price_tiers": tiers,
    "variants.price_tiers": tiers,
    "variants.qty_availability": availability,
}
ADDRESS_FIELDS: Final = (
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "city",
    "province",
    "province_code",
    "country",
    "country_code",
    "zip",
    "phone",
)
CUSTOMER_PATHS: Final[Mapping[str, Parser]] = {
    "source_customer_code": text,
    "first_name": text,
    "last_name": text,
    "email": text,
    "customer_active": raw_state,
    "price_tier": text,
    "qty_availability": text,
    **{f"addresses.{name}": text for name in ADDRESS_FIELDS},
}
# Free-form keys: "meta.brand" becomes meta {key: "brand"}.
PATH_PREFIXES: Final[Mapping[str, tuple[str, ...]]] = {
    "products": ("meta.", "variants.meta."),
    "customers": ("meta.",),
}
_PATHS: Final[Mapping[str, Mapping[str, Parser]]] = {
    "products": PRODUCT_PATHS,
    "customers": CUSTOMER_PATHS,
}


def parser_for(stream: str, path: str) -> Parser | None:
    """The parser of a hub path, or None when the stream has no such path."""
    paths = _PATHS.get(stream)
    if paths is None:
        return None
    found = paths.get(path)
    if found is not None:
        return found
    for prefix in PATH_PREFIXES[stream]:
        if path.startswith(prefix) and len(path) > len(prefix):
            return text
    return None


def hub_paths(stream: str) -> frozenset[str]:
    """Every hub path of an inbound stream; prefixes appear as "meta.*"."""
    return frozenset(_PATHS[stream]) | {p + "*" for p in PATH_PREFIXES[stream]}
