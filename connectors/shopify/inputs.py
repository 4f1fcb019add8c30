"""A listing in Shopify's words: productSet's input, and Shopify's refusals in
the hub's.

The input is the whole product, as productSet replaces it (variants left out
are removed), with two rules from the reference's open points: the SKU is set
in one place only (``inventoryItem.sku``, open point 6), and the hub's key
goes into the product's own metafields on a first push as well as into the
identifier (open point 7: whether an upsert by custom id writes the
metafield is not stated, and without it the next push would create the
product again). Later pushes leave ``metafields`` out, since the list
replaces the product's metafields and the merchant may keep others there.

Stock goes into ``inventoryQuantities`` only for variants the store does not
have yet (the reference: quantities on an existing variant can be set only
where it is already stocked); known variants' stock is set by
``inventorySetQuantities`` (``.stock``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.channel import ACTIVE, ARCHIVED, Bound, Listing

from .documents import KEY, NAMESPACE

STATUSES = {ACTIVE: "ACTIVE", ARCHIVED: "ARCHIVED"}
# What Shopify calls the single option of a product without options.
DEFAULT_OPTION = ("Title", "Default Title")
# userError codes that say "try again", not "this product is wrong".
TRANSIENT_CODES = frozenset(
    {
        "GENERIC_ERROR",
        "JOB_ERROR",
        "INTERNAL_ERROR",
        "SERVICE_UNAVAILABLE",
        "IDEMPOTENCY_CONCURRENT_REQUEST",
        "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED",
        "SET_ON_HAND_QUANTITIES_FAILED",
    }
)
_VERSION = re.compile(r"^(\d{4})-(\d{2})$")


def version_stamp(api_version: str) -> tuple[int, int]:
    """``2025-10`` as (2025, 10); ``unstable`` (and anything else) as the newest."""
    found = _VERSION.match(api_version.strip())
    return (int(found.group(1)), int(found.group(2))) if found else (9999, 12)


def identifier(key: str) -> dict[str, Any]:
    return {"customId": {"namespace": NAMESPACE, "key": KEY, "value": key}}


def _option_values(listing: Listing) -> list[tuple[str, list[str]]]:
    if not listing.options:
        return [(DEFAULT_OPTION[0], [DEFAULT_OPTION[1]])]
    values: list[list[str]] = [[] for _ in listing.options]
    for variant in listing.variants:
        for n, value in enumerate(variant.options):
            if value not in values[n]:
                values[n].append(value)
    return list(zip(listing.options, values, strict=True))


def product_input(listing: Listing, bound: Bound | None, location_id: str) -> dict[str, Any]:
    """productSet's ``input`` for a listing; variants the bound knows carry their id."""
    known = bound.variants if bound else {}
    data: dict[str, Any] = {
        "title": listing.title,
        "status": STATUSES[listing.status],
        "tags": list(listing.tags),
    }
    for name, value in (
        ("descriptionHtml", listing.body_html),
        ("vendor", listing.vendor),
        ("productType", listing.product_type),
    ):
        if value is not None:
            data[name] = value
    options = _option_values(listing)
    data["productOptions"] = [
        {"name": name, "position": n + 1, "values": [{"name": v} for v in values]}
        for n, (name, values) in enumerate(options)
    ]
    variants = []
    for variant in listing.variants:
        chosen = variant.options if listing.options else (DEFAULT_OPTION[1],)
        entry: dict[str, Any] = {
            "optionValues": [
                {"optionName": name, "name": value}
                for (name, _), value in zip(options, chosen, strict=True)
            ],
            "compareAtPrice": variant.compare_at_price,
            "inventoryItem": {"sku": variant.sku, "tracked": True},
        }
        if variant.price is not None:
            entry["price"] = variant.price
        if variant.barcode is not None:
            entry["barcode"] = variant.barcode
        if variant.grams is not None:
            weight = {"value": float(variant.grams), "unit": "GRAMS"}
            entry["inventoryItem"]["measurement"] = {"weight": weight}
        if variant.sku in known:
            entry["id"] = known[variant.sku]
        elif variant.qty is not None:
            quantity = {"locationId": location_id, "name": "available", "quantity": variant.qty}
            entry["inventoryQuantities"] = [quantity]
        variants.append(entry)
    data["variants"] = variants
    if bound is None or bound.product_id is None:
        data["metafields"] = [
            {"namespace": NAMESPACE, "key": KEY, "type": "id", "value": listing.key}
        ]
    return data


def product_set_variables(
    listing: Listing, bound: Bound | None, location_id: str
) -> dict[str, Any]:
    return {
        "identifier": identifier(listing.key),
        "input": product_input(listing, bound, location_id),
        "first": max(1, min(250, len(listing.variants))),
    }


def _where(path: Any, listing: Listing | None) -> str:
    """A userError's field path, with the SKU of the variant it points at."""
    if not isinstance(path, Sequence) or isinstance(path, str) or not path:
        return ""
    parts = [str(p) for p in path]
    text = ".".join(parts)
    if listing is not None and "variants" in parts:
        at = parts.index("variants") + 1
        if at < len(parts) and parts[at].isdigit() and int(parts[at]) < len(listing.variants):
            text += f" (SKU {listing.variants[int(parts[at])].sku})"
    return text


def words(errors: Sequence[Mapping[str, Any]], listing: Listing | None = None) -> str:
    """Shopify's userErrors as one line: each message with the field it names."""
    out = []
    for error in errors:
        message = str(error.get("message") or error.get("code") or "refused")
        where = _where(error.get("field"), listing)
        out.append(f"{where}: {message}" if where else message)
    return "; ".join(out) or "refused"


def permanent(errors: Sequence[Mapping[str, Any]]) -> bool:
    """Whether sending the same again cannot help: any error that is not a passing one."""
    return any(str(e.get("code") or "") not in TRANSIENT_CODES for e in errors)
