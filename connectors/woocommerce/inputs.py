"""A listing in WooCommerce's words (``reference/channel-formats.md`` Part B):
the product and variation bodies a batch carries, and the SKUs a product
is looked up by.

A listing without options is a ``simple`` product whose SKU, price and stock
are the one variant's. A listing with options is a ``variable`` product: each
option a product-local attribute (``name``, ``variation: true``, ``options``
the distinct values in the listing's order) and each variant a variation
choosing one value per attribute. The parent's SKU is the product code in
the hub's key (see ``parent_sku``).

Prices follow the hub's compare-at rule: a compare-at price that differs from
the price is the regular price and the price is the sale price; otherwise the
price is the regular price and the sale price is cleared (``""``), so a sale
that ended in the ERP ends in the store. Stock is managed per product or
variation when the hub sends a quantity, and left to the merchant when it
sends none (``qty`` None: ``manage_stock: false``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.channel import Listing, ListingVariant

# The product meta the hub's key is written into (B2 ``meta_data``); the
# leading underscore keeps it out of the storefront's custom fields box.
KEY_META = "_s2s_product_key"
PUBLISH = "publish"
DELETED = ("draft", "trash")


def product_code(key: str) -> str:
    """The ERP's product code in a hub key: the hub spells keys
    ``<source>:<product code>``; a key without ``:`` is taken whole."""
    return key.split(":", 1)[1].strip() if ":" in key else key.strip()


def variable(listing: Listing) -> bool:
    return bool(listing.options)


def parent_sku(listing: Listing) -> str | None:
    """The SKU the product itself carries: a simple product's is its variant's.

    A variable product's is the product code of its key, which ties the
    parent to the ERP's product so that it can be looked up by SKU like a
    simple one (``GET /products`` matches parents only, never variations).
    WooCommerce keeps SKUs unique across products *and* variations, so a code
    equal to one of the product's own variant SKUs (or empty) cannot be the
    parent's: such a parent carries none.
    """
    if not variable(listing):
        return listing.variants[0].sku if listing.variants else None
    code = product_code(listing.key)
    if not code or code in {v.sku for v in listing.variants}:
        return None
    return code


def prices(variant: ListingVariant) -> dict[str, Any]:
    out: dict[str, Any] = {}
    compare = variant.compare_at_price
    if compare is not None and variant.price is not None and compare != variant.price:
        return {"regular_price": compare, "sale_price": variant.price}
    if variant.price is not None:
        out["regular_price"] = variant.price
    out["sale_price"] = ""
    return out


def stock(variant: ListingVariant) -> dict[str, Any]:
    if variant.qty is None:
        return {"manage_stock": False}
    return {"manage_stock": True, "stock_quantity": variant.qty}


def attributes(listing: Listing) -> list[dict[str, Any]]:
    values: list[list[str]] = [[] for _ in listing.options]
    for variant in listing.variants:
        for n, value in enumerate(variant.options):
            if value not in values[n]:
                values[n].append(value)
    return [
        {"name": name, "position": n, "visible": True, "variation": True, "options": chosen}
        for n, (name, chosen) in enumerate(zip(listing.options, values, strict=True))
    ]


def product_body(
    listing: Listing, status: str, tags: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The whole product as a batch's create or update item (without ``id``).

    ``status``: WooCommerce's (``publish``, ``draft``); ``tags``: the tag
    references to send (see the connector's note on tags).
    """
    body: dict[str, Any] = {
        "name": listing.title,
        "status": status,
        "tags": [dict(t) for t in tags],
        "meta_data": [{"key": KEY_META, "value": listing.key}],
    }
    if listing.body_html is not None:
        body["description"] = listing.body_html
    if variable(listing):
        body["type"] = "variable"
        body["sku"] = parent_sku(listing) or ""
        body["manage_stock"] = False
        body["attributes"] = attributes(listing)
        return body
    (only,) = listing.variants
    body["type"] = "simple"
    body["sku"] = only.sku
    body.update(prices(only))
    body.update(stock(only))
    return body


def variation_body(listing: Listing, variant: ListingVariant) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": variant.sku,
        # A listed variant is for sale: this also brings back a variation
        # trashed with its product when the product is published again.
        "status": PUBLISH,
        "attributes": [
            {"name": name, "option": value}
            for name, value in zip(listing.options, variant.options, strict=True)
        ],
    }
    body.update(prices(variant))
    body.update(stock(variant))
    return body


def key_of(product: Mapping[str, Any]) -> str | None:
    """The hub key a stored product carries in its meta, if any."""
    for meta in product.get("meta_data") or []:
        if isinstance(meta, Mapping) and meta.get("key") == KEY_META:
            value = meta.get("value")
            return str(value) if value not in (None, "") else None
    return None
