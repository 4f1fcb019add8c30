"""Assembling the hub's canonical shapes from flat mapped records.

`Map.apply` yields one flat record per raw row; here rows sharing a product
code become one product with its variants, customer rows get their address
and meta nested, and every record that cannot be written becomes a
`RecordError` carrying its raw data, for the quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from mappings.maps import Map
from mappings.paths import INBOUND, UNKNOWN_KEY
from mappings.rows import RecordError

KeyOf = Callable[[Mapping[str, Any]], str]


_PRODUCT_LEVEL: Final = ("title", "body_html", "collection", "product_type", "vendor", "tags")
_VARIANT_SIMPLE: Final = (
    ("source_variant_code", "source_variant_code"),
    ("variants.sku", "sku"),
    ("variants.barcode", "barcode"),
    ("variants.qty", "qty"),
    ("variants.grams", "grams"),
    ("variants.option1", "option1"),
    ("variants.option2", "option2"),
    ("variants.option3", "option3"),
    ("variants.qty_availability", "qty_availability"),
)
RETAIL_TIER: Final = "retail"


def product_key(flat: Mapping[str, Any]) -> str:
    """A product row's natural key for errors: its SKU, else its codes."""
    for path in ("variants.sku", "source_variant_code", "source_product_code"):
        value = flat.get(path)
        if value:
            return str(value)
    return UNKNOWN_KEY


def customer_key(flat: Mapping[str, Any]) -> str:
    value = flat.get("source_customer_code")
    return str(value) if value else UNKNOWN_KEY


def _raw_of(flat: Mapping[str, Any]) -> dict[str, Any]:
    raw = getattr(flat, "raw", None)
    return dict(raw) if raw is not None else dict(flat)


def _meta(flat: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    try:
        # Most records have no meta: one C-speed search over the joined
        # paths (a path starting with the prefix contains it) says so.
        if prefix not in "\n".join(flat):
            return []
    except TypeError:
        pass  # a path that is not a str: the loop below says what is wrong
    n = len(prefix)
    return [
        {"key": path[n:], "value": value}
        for path, value in flat.items()
        if path.startswith(prefix) and len(path) > n
    ]


def _variant(flat: Mapping[str, Any]) -> dict[str, Any]:
    variant: dict[str, Any] = {}
    for path, key in _VARIANT_SIMPLE:
        if path in flat:
            variant[key] = flat[path]
    tier_list: list[dict[str, Any]] | None = None
    for path in ("csv_price_tiers", "variants.price_tiers"):
        if path in flat:
            tier_list = [*(tier_list or []), *flat[path]]
    if "variants.retail_price" in flat:
        retail = flat["variants.retail_price"]
        variant["price"] = retail
        tier_list = [t for t in (tier_list or []) if str(t.get("tier", "")).lower() != RETAIL_TIER]
        if retail is not None:
            tier_list.append({"tier": RETAIL_TIER, "price": retail})
    if "variants.price" in flat:
        variant["price"] = flat["variants.price"]
    if tier_list is not None:
        variant["price_tiers"] = tier_list
    for path in ("variants.inventory_management", "inventory_management"):
        if path in flat:
            variant["inventory_management"] = flat[path]
    meta = _meta(flat, "variants.meta.")
    if meta:
        variant["meta"] = meta
    return variant


_OPTION_PATHS: Final = (("options.option1", 1), ("options.option2", 2), ("options.option3", 3))


def build_products(
    flat_records: Iterable[Mapping[str, Any]], key_of: KeyOf = product_key
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """Group flat rows by `source_product_code` into nested products.

    Rows sharing a product code are one variable product; product-level
    fields come from the first row. A product is all or nothing: if any of
    its rows failed to map, none of it is returned (writing the others would
    make the hub delete the failed variant), and each failure becomes a
    `RecordError` naming that row's key. Products keep first-seen order.
    """
    errors: list[RecordError] = []
    products: list[dict[str, Any]] = []
    for code, rows in _by_product(flat_records, key_of, errors).items():
        failed = False
        for flat in rows:
            if getattr(flat, "errors", None):
                failed = True
                break
        if failed:
            _hold_back(code, rows, key_of, errors)
            continue
        product = _product(code, rows, key_of, errors)
        if product is not None:
            products.append(product)
    return products, errors


def _by_product(
    flat_records: Iterable[Mapping[str, Any]], key_of: KeyOf, errors: list[RecordError]
) -> dict[str, list[Mapping[str, Any]]]:
    """A page's rows grouped by product code, in first-seen order.

    A row without a code belongs to no product, so it is an error on its
    own: its mapping errors if it has any (the code itself may be what
    failed), else the missing code.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for flat in flat_records:
        code = flat.get("source_product_code")
        if code:
            groups.setdefault(code, []).append(flat)
            continue
        bad = getattr(flat, "errors", None)
        if bad:
            for path, message in bad:
                errors.append(RecordError(key_of(flat), path, message, _raw_of(flat)))
        else:
            errors.append(
                RecordError(
                    key_of(flat),
                    "source_product_code",
                    "source_product_code is missing",
                    _raw_of(flat),
                )
            )
    return groups


def _hold_back(
    code: str, rows: list[Mapping[str, Any]], key_of: KeyOf, errors: list[RecordError]
) -> None:
    """Every mapping error of a product none of which is written.

    Each message says the product's other variants are held back too, so
    the operator does not look for a second fault in rows that mapped.
    """
    others = len(rows) - 1
    held = (
        f" (product {code} is held back with its other "
        f"{'variant' if others == 1 else f'{others} variants'})"
        if others
        else ""
    )
    for flat in rows:
        for path, message in getattr(flat, "errors", None) or ():
            errors.append(RecordError(key_of(flat), path, message + held, _raw_of(flat)))


def _product(
    code: str, rows: list[Mapping[str, Any]], key_of: KeyOf, errors: list[RecordError]
) -> dict[str, Any] | None:
    """One product from its rows, or None when two rows share a variant code.

    Two variants under one code would overwrite each other in the hub, so
    the product is refused and each repeated row named.
    """
    first = rows[0]
    product: dict[str, Any] = {"source_product_code": code}
    for path in _PRODUCT_LEVEL:
        if path in first:
            product[path] = first[path]
    if "product_active" in first:
        product["product_active"] = first["product_active"]
    options = [
        {"name": first[path], "position": position}
        for path, position in _OPTION_PATHS
        if first.get(path)
    ]
    if options:
        product["options"] = options
    meta = _meta(first, "meta.")
    if meta:
        product["meta"] = meta

    variants: list[dict[str, Any]] = []
    seen: set[Any] = set()
    duplicate = False
    for flat in rows:
        variant = _variant(flat)
        vcode = variant.get("source_variant_code")
        if vcode is not None and vcode in seen:
            duplicate = True
            errors.append(
                RecordError(
                    key_of(flat),
                    "source_variant_code",
                    f'source_variant_code "{vcode}" appears twice in product {code}',
                    _raw_of(flat),
                )
            )
        seen.add(vcode)
        variants.append(variant)
    if duplicate:
        return None
    product["variants"] = variants
    return product


def build_customers(
    flat_records: Iterable[Mapping[str, Any]], key_of: KeyOf = customer_key
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """Nest flat customer rows: `addresses.*` into one address, `meta.*` into meta.

    A customer code seen twice in one page is an error on the second row:
    two different records under one key would overwrite each other in an
    order that depends on paging.
    """
    customers: list[dict[str, Any]] = []
    errors: list[RecordError] = []
    seen: set[str] = set()
    for flat in flat_records:
        bad = getattr(flat, "errors", None)
        if bad:
            for path, message in bad:
                errors.append(RecordError(key_of(flat), path, message, _raw_of(flat)))
            continue
        code = flat.get("source_customer_code")
        if not code:
            errors.append(
                RecordError(
                    key_of(flat),
                    "source_customer_code",
                    "source_customer_code is missing",
                    _raw_of(flat),
                )
            )
            continue
        if code in seen:
            errors.append(
                RecordError(
                    code,
                    "source_customer_code",
                    f'source_customer_code "{code}" appears twice in this page',
                    _raw_of(flat),
                )
            )
            continue
        seen.add(code)
        customer: dict[str, Any] = {}
        address: dict[str, Any] = {}
        for path, value in flat.items():
            if path.startswith("addresses."):
                address[path[len("addresses.") :]] = value
            elif not path.startswith("meta."):
                customer[path] = value
        if address:
            customer["addresses"] = [address]
        meta = _meta(flat, "meta.")
        if meta:
            customer["meta"] = meta
        customers.append(customer)
    return customers, errors


def map_records(
    m: Map, records: Iterable[Mapping[str, Any]], settings: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """A page of raw records to nested canonical records plus their errors."""
    if m.stream not in INBOUND:
        raise ValueError(f"the {m.erp} {m.stream} map goes to the ERP; use Map.apply(order, ...)")
    flats = [m.apply(record, settings) for record in records]
    if m.stream == "products":
        return build_products(flats)
    return build_customers(flats)
