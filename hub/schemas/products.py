"""Products: the documented schema and the sync's fast loader, side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from marshmallow import post_load

from hub.schemas.fields import Canonical, Coerced, ListOf, MetaSchema, load_with, settle_active
from hub.schemas.lists import (
    finish_availability,
    finish_meta,
    finish_options,
    finish_tiers,
    finish_variants,
)
from hub.schemas.loading import (
    Loaded,
    Spec,
    action_of,
    flat_item,
    key_only,
    load_list,
    load_meta,
    load_scalars,
)
from hub.schemas.scalars import (
    Errors,
    coerce_bool,
    coerce_code,
    coerce_grams,
    coerce_position,
    coerce_price,
    coerce_qty,
    coerce_required_text,
    coerce_tags,
    coerce_text,
    tri_state,
)


class OptionSchema(Canonical):
    error_messages = {"type": "an option must be an object"}
    name = Coerced(coerce_text, required=True)
    position = Coerced(coerce_position, load_default=None)


class PriceTierSchema(Canonical):
    error_messages = {"type": "a price tier must be an object"}
    tier = Coerced(coerce_text, required=True)
    price = Coerced(coerce_price, load_default=None)


class QtyAvailabilitySchema(Canonical):
    error_messages = {"type": "a warehouse entry must be an object"}
    description = Coerced(coerce_text, required=True)
    qty = Coerced(coerce_qty, load_default=None)


class VariantSchema(Canonical):
    error_messages = {"type": "a variant must be an object"}
    source_variant_code = Coerced(coerce_code, required=True)
    sku = Coerced(coerce_code, required=True)
    barcode = Coerced(coerce_text, load_default=None)
    qty = Coerced(coerce_qty, load_default=None)
    qty_availability = ListOf(
        QtyAvailabilitySchema,
        finish=finish_availability,
        item_message=QtyAvailabilitySchema.error_messages["type"],
    )
    price = Coerced(coerce_price, load_default=None)
    price_tiers = ListOf(
        PriceTierSchema, finish=finish_tiers, item_message=PriceTierSchema.error_messages["type"]
    )
    inventory_management = Coerced(coerce_bool, load_default=True)
    grams = Coerced(coerce_grams, load_default=None)
    option1 = Coerced(coerce_text, load_default=None)
    option2 = Coerced(coerce_text, load_default=None)
    option3 = Coerced(coerce_text, load_default=None)
    meta = ListOf(MetaSchema, finish=finish_meta, item_message=MetaSchema.error_messages["type"])


class ProductSchema(Canonical):
    """A product with its variants (canonical-model.md "Product")."""

    error_messages = {"type": "a product must be an object"}
    source_product_code = Coerced(coerce_code, required=True)
    title = Coerced(coerce_required_text, required=True)
    body_html = Coerced(coerce_text, load_default=None)
    collection = Coerced(coerce_text, load_default=None)
    product_type = Coerced(coerce_text, load_default=None)
    vendor = Coerced(coerce_text, load_default=None)
    tags = Coerced(coerce_tags, load_default=None)
    product_active = Coerced(tri_state, load_only=True)
    active = Coerced(tri_state)
    options = ListOf(
        OptionSchema,
        finish=finish_options,
        max_items=3,
        item_message=OptionSchema.error_messages["type"],
    )
    meta = ListOf(MetaSchema, finish=finish_meta, item_message=MetaSchema.error_messages["type"])
    variants = ListOf(
        VariantSchema,
        finish=finish_variants,
        required=True,
        min_items=1,
        min_message="a product needs at least one variant",
        item_message=VariantSchema.error_messages["type"],
    )

    @post_load
    def _active(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return settle_active(data, "product_active")


_PRODUCT_SCHEMA: Final = ProductSchema()

_OPTION_SPEC: Final[Spec] = (
    ("name", coerce_text, None, True),
    ("position", coerce_position, None, False),
)
_TIER_SPEC: Final[Spec] = (("tier", coerce_text, None, True), ("price", coerce_price, None, False))
_AVAIL_SPEC: Final[Spec] = (
    ("description", coerce_text, None, True),
    ("qty", coerce_qty, None, False),
)
_VARIANT_SPEC: Final[Spec] = (
    ("source_variant_code", coerce_code, None, True),
    ("sku", coerce_code, None, True),
    ("barcode", coerce_text, None, False),
    ("qty", coerce_qty, None, False),
    ("price", coerce_price, None, False),
    ("inventory_management", coerce_bool, True, False),
    ("grams", coerce_grams, None, False),
    ("option1", coerce_text, None, False),
    ("option2", coerce_text, None, False),
    ("option3", coerce_text, None, False),
)
_PRODUCT_SPEC: Final[Spec] = (
    ("source_product_code", coerce_code, None, True),
    ("title", coerce_required_text, None, True),
    ("body_html", coerce_text, None, False),
    ("collection", coerce_text, None, False),
    ("product_type", coerce_text, None, False),
    ("vendor", coerce_text, None, False),
    ("tags", coerce_tags, None, False),
)


_load_option: Final = flat_item(_OPTION_SPEC)
_load_tier: Final = flat_item(_TIER_SPEC)
_load_avail: Final = flat_item(_AVAIL_SPEC)


def _load_variant(raw: Mapping[str, Any], prefix: str, errors: Errors) -> dict[str, Any]:
    out = load_scalars(raw, _VARIANT_SPEC, prefix, errors)
    out["qty_availability"] = load_list(
        raw,
        "qty_availability",
        prefix,
        errors,
        _load_avail,
        "a warehouse entry must be an object",
        finish_availability,
    )
    out["price_tiers"] = load_list(
        raw,
        "price_tiers",
        prefix,
        errors,
        _load_tier,
        "a price tier must be an object",
        finish_tiers,
    )
    out["meta"] = load_list(
        raw, "meta", prefix, errors, load_meta, "a meta entry must be an object", finish_meta
    )
    return out


def load_product(raw: Any) -> Loaded:
    """Validate one nested product (as `mappings.build_products` makes it).

    The sync hot path: the same rules as `ProductSchema`, several times
    faster. Error paths look like `variants[SKU-RED].qty`.
    """
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("product", "a product must be an object")])
    errors: Errors = []
    action = action_of(raw, "product_active", errors)
    if action is not None and action != "active":
        return key_only(raw, "source_product_code", action)
    out = load_scalars(raw, _PRODUCT_SPEC, "", errors)
    out["options"] = load_list(
        raw,
        "options",
        "",
        errors,
        _load_option,
        "an option must be an object",
        finish_options,
        max_items=3,
    )
    out["meta"] = load_list(
        raw, "meta", "", errors, load_meta, "a meta entry must be an object", finish_meta
    )
    out["variants"] = load_list(
        raw,
        "variants",
        "",
        errors,
        _load_variant,
        "a variant must be an object",
        finish_variants,
        min_items=1,
        min_message="a product needs at least one variant",
    )
    if errors:
        return Loaded(None, action, errors)
    out["active"] = True
    return Loaded(out, action, [])


def load_product_via_schema(raw: Any) -> Loaded:
    """`load_product` through marshmallow: the reference the fast path is held to."""
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("product", "a product must be an object")])
    pre: Errors = []
    action = action_of(raw, "product_active", pre)
    if action is not None and action != "active":
        return key_only(raw, "source_product_code", action)
    record, errors = load_with(_PRODUCT_SCHEMA, raw)
    return Loaded(record, action, errors)
