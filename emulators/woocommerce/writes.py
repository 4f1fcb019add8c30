"""Validated parameters applied to a product or variation, in core's order.

These mirror ``prepare_object_for_database`` of the v3 products and
variations controllers: only the fields a request names change, the SKU is
checked when it is set (so a duplicate refuses the whole item before
anything is saved), prices of variable and grouped products are cleared,
stock follows the ``manage_stock`` rules, attributes are replaced as a whole
and sorted by position, and ``meta_data`` is merged by key or id (a ``null``
value deletes the row), as ``WC_Data::update_meta_data`` does.
"""

from __future__ import annotations

from typing import Any

from .errors import RestError
from .store import Attribute, Meta, Product, Store, Variation, sanitize_title


def clean(text: str) -> str:
    """``wc_clean`` for plain values: surrounding whitespace removed."""
    return text.strip()


def apply_meta(meta: list[Meta], items: list[Any]) -> None:
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        key, value, meta_id = item["key"], item.get("value"), item.get("id")
        target: Meta | None = None
        if meta_id:
            target = next((m for m in meta if m.id == meta_id), None)
        else:
            matches = [m for m in meta if m.key == key]
            for match in matches:
                match.value = None
            target = matches[0] if matches else None
        if target is None:
            meta.append(Meta(0, key, value))
        else:
            target.key, target.value = key, value


def _options(raw: Any) -> list[str]:
    """Local attribute terms as core stores them: joined by ``|``, split and trimmed again."""
    values = raw if isinstance(raw, list) else [raw]
    parts = (part.strip() for value in values for part in str(value).split("|"))
    return [part for part in parts if part]


def product_attributes(items: list[Any]) -> list[Attribute]:
    by_key: dict[str, Attribute] = {}
    for item in items:
        name = clean(item.get("name") or "")
        # An ``id`` names a global pa_* attribute; this shop has none, so core would find
        # no taxonomy for it and the attribute is dropped.
        if item.get("id") or not name or "options" not in item:
            continue
        by_key[sanitize_title(name)] = Attribute(
            name=name,
            position=abs(item.get("position", 0)),
            visible=bool(item.get("visible")),
            variation=bool(item.get("variation")),
            options=_options(item["options"]),
        )
    return sorted(by_key.values(), key=lambda a: a.position)


def _default_attributes(product: Product, items: list[Any]) -> dict[str, str]:
    own = {sanitize_title(a.name): a for a in product.attributes}
    chosen: dict[str, str] = {}
    for item in items:
        key = sanitize_title(item.get("name") or "")
        option = clean(item.get("option") or "")
        if key in own and own[key].variation and option:
            chosen[key] = option
    return chosen


_PRODUCT_TEXT = (
    "name",
    "description",
    "short_description",
    "tax_status",
    "tax_class",
    "catalog_visibility",
    "weight",
)


def apply_product(store: Store, product: Product, params: dict[str, Any]) -> None:
    for name in _PRODUCT_TEXT:
        if name in params:
            setattr(product, name, params[name])
    for name in ("type", "status", "featured", "virtual", "downloadable", "menu_order"):
        if name in params:
            setattr(product, name, params[name])
    if "slug" in params:
        product.slug = sanitize_title(params["slug"])
    if "dimensions" in params:
        product.dimensions.update(
            {k: v for k, v in params["dimensions"].items() if k in product.dimensions}
        )
    if "sku" in params:
        sku = clean(params["sku"])
        store.check_sku(sku, product.id)
        product.sku = sku
    if "attributes" in params:
        product.attributes = product_attributes(params["attributes"])
    if product.type in ("variable", "grouped"):
        product.regular_price = product.sale_price = ""
    else:
        for name in ("regular_price", "sale_price"):
            if name in params:
                setattr(product, name, params[name])
    if "parent_id" in params:
        product.parent_id = params["parent_id"]
    _product_stock(product, params)
    if product.type == "external":
        product.external_url = params.get("external_url", product.external_url)
        product.button_text = params.get("button_text", product.button_text)
    if product.type == "variable" and "default_attributes" in params:
        product.default_attributes = _default_attributes(product, params["default_attributes"])
    if "meta_data" in params:
        apply_meta(product.meta, params["meta_data"])
    product.validate_stock()


def _product_stock(product: Product, params: dict[str, Any]) -> None:
    status = params.get("stock_status", product.stock_status)
    if "manage_stock" in params:
        product.manage_stock = params["manage_stock"]
    if "backorders" in params:
        product.backorders = params["backorders"]
    if product.type in ("grouped", "external"):
        product.manage_stock, product.backorders, product.stock_quantity = False, "no", None
        product.stock_status = status if product.type == "grouped" else "instock"
    elif product.manage_stock:
        if product.type != "variable":
            product.stock_status = status
        if "stock_quantity" in params:
            product.stock_quantity = params["stock_quantity"]
    else:
        product.stock_quantity = None
        product.stock_status = status


def apply_variation(
    store: Store, variation: Variation, parent: Product | None, params: dict[str, Any]
) -> None:
    for name in ("status", "virtual", "downloadable", "weight", "tax_status", "tax_class"):
        if name in params:
            setattr(variation, name, params[name])
    if "sku" in params:
        sku = clean(params["sku"])
        store.check_sku(sku, variation.id)
        variation.sku = sku
    if "dimensions" in params:
        variation.dimensions.update(
            {k: v for k, v in params["dimensions"].items() if k in variation.dimensions}
        )
    for name in ("manage_stock", "stock_status", "backorders"):
        if name in params:
            setattr(variation, name, params[name])
    if variation.manage_stock and "stock_quantity" in params:
        variation.stock_quantity = params["stock_quantity"]
    for name in ("regular_price", "sale_price", "description"):
        if name in params:
            setattr(variation, name, params[name])
    if "attributes" in params:
        if parent is None:
            raise RestError(
                "woocommerce_rest_product_variation_invalid_parent",
                "Cannot set attributes due to invalid parent product.",
                404,
            )
        variation.attributes = _variation_attributes(parent, params["attributes"])
    if params.get("menu_order"):
        variation.menu_order = params["menu_order"]
    if "meta_data" in params:
        apply_meta(variation.meta, params["meta_data"])
    variation.validate_stock()


def _variation_attributes(parent: Product, items: list[Any]) -> dict[str, str]:
    """One option per variation attribute of the parent; names the parent lacks are dropped."""
    own = {sanitize_title(a.name): a for a in parent.attributes}
    chosen: dict[str, str] = {}
    for item in items:
        key = sanitize_title(item.get("name") or "")
        if item.get("id") or key not in own or not own[key].variation:
            continue
        chosen[key] = clean(item.get("option") or "")
    return chosen
