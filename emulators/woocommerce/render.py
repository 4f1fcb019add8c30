"""Products and variations as the v3 API answers them (``prepare_object_for_response``).

Dates are in the site's time zone with a ``*_gmt`` twin; this emulated site
runs on UTC, so the two are equal. Money is a string, ids are integers.
A variation found through ``GET /products?sku=…`` is answered in the
product shape (``type: "variation"``, its ``parent_id``), as core does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .store import Item, Product, Store, Variation, sanitize_title

API = "/wp-json/wc/v3"


def date(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _dates(item: Item) -> dict[str, Any]:
    created, modified = date(item.created), date(item.modified)
    return {
        "date_created": created,
        "date_created_gmt": created,
        "date_modified": modified,
        "date_modified_gmt": modified,
    }


def _common(store: Store, item: Product | Variation) -> dict[str, Any]:
    price = store.price(item)
    status = store.stock_status(item)
    managing = _managing_stock(store, item)
    return {
        "sku": item.sku,
        "price": price,
        "regular_price": item.regular_price,
        "sale_price": item.sale_price,
        "date_on_sale_from": None,
        "date_on_sale_from_gmt": None,
        "date_on_sale_to": None,
        "date_on_sale_to_gmt": None,
        "on_sale": item.on_sale(),
        "purchasable": price != "" and item.status == "publish",
        "virtual": item.virtual,
        "downloadable": item.downloadable,
        "downloads": [],
        "download_limit": -1,
        "download_expiry": -1,
        "tax_status": item.tax_status,
        "tax_class": item.tax_class,
        "manage_stock": managing,
        "stock_quantity": _quantity(store, item, managing),
        "stock_status": status,
        "backorders": item.backorders,
        "backorders_allowed": item.backorders != "no",
        "backordered": status == "onbackorder",
        "low_stock_amount": None,
        "weight": item.weight,
        "dimensions": dict(item.dimensions),
        "shipping_class": "",
        "shipping_class_id": 0,
        "menu_order": item.menu_order,
        "meta_data": [{"id": m.id, "key": m.key, "value": m.value} for m in item.meta],
    }


def _managing_stock(store: Store, item: Product | Variation) -> bool | str:
    """A variation that does not manage stock under a parent that does answers ``"parent"``."""
    if isinstance(item, Variation) and not item.manage_stock:
        parent = store.products.get(item.parent_id)
        if parent is not None and parent.manage_stock:
            return "parent"
    return item.manage_stock


def _quantity(store: Store, item: Product | Variation, managing: bool | str) -> int | None:
    if managing == "parent":
        return store.products[item.parent_id].stock_quantity
    return item.stock_quantity


def _links(base: str, path: str, collection: str, up: str | None = None) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": [{"href": f"{base}{API}/{path}"}],
        "collection": [{"href": f"{base}{API}/{collection}"}],
    }
    if up:
        links["up"] = [{"href": f"{base}{API}/{up}"}]
    return links


def product(store: Store, item: Product, base: str) -> dict[str, Any]:
    own = {sanitize_title(a.name): a.name for a in item.attributes}
    data: dict[str, Any] = {
        "id": item.id,
        "name": item.name,
        "slug": item.slug,
        "permalink": f"{base}/product/{item.slug}/",
        **_dates(item),
        "type": item.type,
        "status": item.status,
        "featured": item.featured,
        "catalog_visibility": item.catalog_visibility,
        "description": item.description,
        "short_description": item.short_description,
        **_common(store, item),
        "external_url": item.external_url,
        "button_text": item.button_text,
        "total_sales": 0,
        "parent_id": item.parent_id,
        "categories": [],
        "tags": [],
        "images": [],
        "attributes": [
            {
                "id": 0,
                "name": a.name,
                "position": a.position,
                "visible": a.visible,
                "variation": a.variation,
                "options": list(a.options),
            }
            for a in item.attributes
        ],
        "default_attributes": [
            {"id": 0, "name": own.get(key, key), "option": option}
            for key, option in item.default_attributes.items()
        ],
        "variations": [v.id for v in store.children(item.id, include_trash=False)]
        if item.type == "variable"
        else [],
        "grouped_products": [],
    }
    data["_links"] = _links(base, f"products/{item.id}", "products")
    return data


def _chosen(store: Store, item: Variation) -> list[dict[str, Any]]:
    parent = store.products.get(item.parent_id)
    names = {sanitize_title(a.name): a.name for a in parent.attributes} if parent else {}
    return [
        {"id": 0, "name": names.get(key, key), "option": option}
        for key, option in item.attributes.items()
        if option != ""
    ]


def variation(store: Store, item: Variation, base: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": item.id,
        **_dates(item),
        "description": item.description,
        "permalink": f"{base}/?p={item.id}",
        "status": item.status,
        **_common(store, item),
        "image": None,
        "attributes": _chosen(store, item),
    }
    base_path = f"products/{item.parent_id}/variations"
    data["_links"] = _links(
        base, f"{base_path}/{item.id}", base_path, up=f"products/{item.parent_id}"
    )
    return data


def title(store: Store, item: Product | Variation) -> str:
    """A product's name; a variation's is its parent's with up to two chosen options."""
    if isinstance(item, Product):
        return item.name
    parent = store.products.get(item.parent_id)
    options = [c["option"] for c in _chosen(store, item)]
    name = parent.name if parent else ""
    return f"{name} - {', '.join(options)}" if options and len(options) < 3 else name


def variation_as_product(store: Store, item: Variation, base: str) -> dict[str, Any]:
    """A variation answered by the products controller (``/products?sku=``, ``/products/{id}``)."""
    name = title(store, item)
    data: dict[str, Any] = {
        "id": item.id,
        "name": name,
        "slug": sanitize_title(name),
        "permalink": f"{base}/?p={item.id}",
        **_dates(item),
        "type": "variation",
        "status": item.status,
        "featured": False,
        "catalog_visibility": "visible",
        "description": item.description,
        "short_description": "",
        **_common(store, item),
        "parent_id": item.parent_id,
        "categories": [],
        "tags": [],
        "images": [],
        "attributes": _chosen(store, item),
        "default_attributes": [],
        "variations": [],
        "grouped_products": [],
    }
    data["_links"] = _links(base, f"products/{item.id}", "products")
    return data


def with_parent(data: dict[str, Any], item: Variation) -> dict[str, Any]:
    """The WC 10.3+ ``/variations`` shape: a variation with its ``parent_id``."""
    return {**data, "parent_id": item.parent_id}
