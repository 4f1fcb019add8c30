"""What the hub keeps about an order's variants, handed to the maps that quote it.

An orders map is pure: it cannot look anything up. Some ERPs key order lines
by their own line id rather than by SKU (iSync with ``order_line_key:
stock_line_id``), an id the hub kept in the variant's meta when it synced
the stock line. Such a map names the meta keys it needs
(``Map.line_meta_keys``); here they are read from the source's live
variants with one query, and each line item of a copy of the order carries
them as ``variant_meta`` ({key: value}; empty when the hub knows none, for
the map to refuse by name). The order as stored is never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import Product, Variant


def _skus(orders: Iterable[Mapping[str, Any]]) -> set[str]:
    found: set[str] = set()
    for order in orders:
        for item in order.get("line_items") or ():
            if isinstance(item, Mapping):
                sku = str(item.get("sku") or "").strip()
                if sku:
                    found.add(sku)
    return found


def stored_meta(
    s: Session, source_id: int, skus: Iterable[str], keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """SKU -> {key: value} of ``keys`` (matched without regard to case) in the
    meta of the source's live variants with those SKUs; blank values left out."""
    wanted = {key.lower(): key for key in keys}
    chosen = sorted(set(skus))
    if not wanted or not chosen:
        return {}
    found: dict[str, dict[str, Any]] = {}
    rows = s.execute(
        select(Variant.sku, Product.data)
        .join(Product, Product.id == Variant.product_id)
        .where(
            Variant.source_id == source_id,
            Variant.sku.in_(chosen),
            Product.deleted_at.is_(None),
        )
    )
    for sku, data in rows:
        for variant in (data or {}).get("variants") or ():
            if not isinstance(variant, Mapping) or variant.get("sku") != sku:
                continue
            meta: dict[str, Any] = {}
            for entry in variant.get("meta") or ():
                if not isinstance(entry, Mapping):
                    continue
                key = wanted.get(str(entry.get("key") or "").lower())
                value = entry.get("value")
                if key is not None and value is not None and str(value).strip():
                    meta[key] = value
            found[sku] = meta
    return found


def attach(
    s: Session, source_id: int, keys: Sequence[str], orders: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Copies of ``orders`` whose line items carry ``variant_meta``; the
    orders themselves (as plain copies) when ``keys`` is empty."""
    if not keys:
        return [dict(order) for order in orders]
    found = stored_meta(s, source_id, _skus(orders), keys)
    out: list[dict[str, Any]] = []
    for order in orders:
        lines: list[Any] = []
        for item in order.get("line_items") or ():
            if isinstance(item, Mapping):
                sku = str(item.get("sku") or "").strip()
                item = {**item, "variant_meta": dict(found.get(sku, {}))}
            lines.append(item)
        out.append({**order, "line_items": lines})
    return out
