"""Map a page of raw ERP records to store items: mapping, then validation.

The mapping (pure, per ERP) turns raw rows into nested canonical records;
the hub's schema applies the canonical coercion rules and the tri-state flag.
Anything either stage rejects becomes a quarantine entry naming the record
and the field, and the rest of the page goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hub.schemas import canonical_hash, load_customer, load_product
from hub.store import StoreItem
from mappings import get_map
from mappings import map_records as build_records

LOADERS = {
    "products": (load_product, "source_product_code"),
    "customers": (load_customer, "source_customer_code"),
}


def map_records(
    kind: str, stream: str, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
) -> tuple[list[StoreItem], list[dict[str, Any]]]:
    """Return the page's valid items and its quarantine entries."""
    built, record_errors = build_records(get_map(kind, stream), records, settings)
    errors: list[dict[str, Any]] = [
        {"key": e.key, "field": e.field, "message": e.message, "raw": e.raw} for e in record_errors
    ]
    load, key_field = LOADERS[stream]
    items: list[StoreItem] = []
    for raw in built:
        record, action, problems = load(raw)
        key = str(raw.get(key_field) or "<unknown>")
        if record is None or action is None:
            for field, message in problems or [("record", "could not be read")]:
                errors.append({"key": key, "field": field, "message": message, "raw": raw})
            continue
        if action == "active":
            items.append(StoreItem(key, "active", record, canonical_hash(record)))
        else:
            items.append(StoreItem(key, action))
    return items, errors
