"""The executable schema: the SDL with resolvers over the emulated store.

Objects are answered as plain dicts (graphql-core's default resolver reads
their keys); only fields with arguments, the roots and ``Node`` resolution
need code. The execution context (``info.context``) is a :class:`Context`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
)
from graphql.execution.values import get_directive_values

from .schema import ERA_2025_10, ERA_2026_04, sdl
from .store import Product, Store, UserErrors, Variant, gid, parse_gid


@dataclass
class Context:
    """What resolvers reach: the store, the server's hooks and what was done."""

    store: Store
    base_url: str
    hooks: Any  # the server's state (faults, bulk operations, uploads)
    mutated: list[str] = field(default_factory=list)
    schema_era: int = ERA_2025_10


def _cursor(number: int) -> str:
    return base64.b64encode(f"c:{number}".encode()).decode()


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.b64decode(cursor).decode().split(":", 1)[1])
    except (ValueError, IndexError):
        return 0


def _connection(
    items: list[Any],
    key: Callable[[Any], int],
    first: int | None,
    after: str | None,
    view: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    start = _after(after)
    rest = [i for i in items if key(i) > start]
    page = rest[: first if first is not None else 50]
    nodes = [view(i) for i in page]
    return {
        "nodes": nodes,
        "edges": [{"cursor": _cursor(key(i)), "node": n} for i, n in zip(page, nodes, strict=True)],
        "pageInfo": {
            "hasNextPage": len(rest) > len(page),
            "hasPreviousPage": start > 0,
            "startCursor": _cursor(key(page[0])) if page else None,
            "endCursor": _cursor(key(page[-1])) if page else None,
        },
    }


def product_view(product: Product) -> dict[str, Any]:
    return {
        "__typename": "Product",
        "id": gid("Product", product.id),
        "handle": product.handle,
        "title": product.title,
        "status": product.status,
        "vendor": product.vendor,
        "productType": product.product_type,
        "descriptionHtml": product.description_html,
        "tags": list(product.tags),
        "updatedAt": f"2026-01-01T00:00:{product.updated % 60:02d}Z",
        "_product": product,
    }


def variant_view(product: Product, variant: Variant) -> dict[str, Any]:
    title = " / ".join(v for _, v in variant.options) or "Default Title"
    return {
        "__typename": "ProductVariant",
        "id": gid("ProductVariant", variant.id),
        "sku": variant.sku,
        "barcode": variant.barcode,
        "title": title,
        "price": str(variant.price),
        "compareAtPrice": None
        if variant.compare_at_price is None
        else str(variant.compare_at_price),
        "selectedOptions": [{"name": n, "value": v} for n, v in variant.options],
        "inventoryItem": item_view(variant),
    }


def item_view(variant: Variant) -> dict[str, Any]:
    return {
        "__typename": "InventoryItem",
        "id": gid("InventoryItem", variant.inventory_item_id),
        "sku": variant.sku,
        "tracked": variant.tracked,
        "measurement": {
            "id": gid("InventoryItemMeasurement", variant.inventory_item_id),
            "weight": None
            if variant.weight is None
            else {"value": variant.weight[0], "unit": variant.weight[1]},
        },
        "_item": variant.inventory_item_id,
    }


def location_view(location: Any) -> dict[str, Any]:
    return {
        "__typename": "Location",
        "id": gid("Location", location.id),
        "name": location.name,
        "isActive": True,
    }


# ------------------------------------------------------------------ fields


def _variants(
    parent: dict[str, Any],
    info: GraphQLResolveInfo,
    first: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    product: Product = parent["_product"]
    return _connection(
        product.variants, lambda v: v.id, first, after, lambda v: variant_view(product, v)
    )


def _options(
    parent: dict[str, Any], info: GraphQLResolveInfo, first: int | None = None
) -> list[dict[str, Any]]:
    product: Product = parent["_product"]
    return [
        {
            "id": gid("ProductOption", product.id * 100 + i),
            "name": name,
            "position": i + 1,
            "optionValues": [{"name": v} for v in values],
        }
        for i, (name, values) in enumerate(product.options[:first])
    ]


def _metafield(
    parent: dict[str, Any], info: GraphQLResolveInfo, key: str, namespace: str | None = None
) -> dict[str, Any] | None:
    product: Product = parent["_product"]
    found = product.metafields.get((namespace or "custom", key))
    if found is None:
        return None
    return {
        "id": gid("Metafield", product.id),
        "namespace": namespace or "custom",
        "key": key,
        "value": found[0],
        "type": found[1],
    }


def _inventory_level(
    parent: dict[str, Any], info: GraphQLResolveInfo, locationId: str
) -> dict[str, Any] | None:
    store: Store = info.context.store
    location = parse_gid(locationId, "Location")
    item = parent["_item"]
    with store.lock:
        if location not in store.locations or (item, location) not in store.levels:
            return None
        return {
            "id": f"gid://shopify/InventoryLevel/{item}?inventory_item_id={item}",
            "location": location_view(store.locations[location]),
            "_key": (item, location),
        }


def _quantities(
    parent: dict[str, Any], info: GraphQLResolveInfo, names: list[str]
) -> list[dict[str, Any]]:
    level = info.context.store.levels.get(parent["_key"], {})
    return [{"name": n, "quantity": level.get(n, 0)} for n in names]


# ------------------------------------------------------------------- roots


def _products(
    _: Any,
    info: GraphQLResolveInfo,
    first: int | None = None,
    after: str | None = None,
    query: str | None = None,
    **__: Any,
) -> dict[str, Any]:
    return _connection(info.context.store.search(query), lambda p: p.id, first, after, product_view)


def _product(_: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    found = info.context.store.find({"id": id})
    return product_view(found) if found else None


def _product_by_identifier(
    _: Any, info: GraphQLResolveInfo, identifier: dict[str, Any]
) -> dict[str, Any] | None:
    found = info.context.store.find(identifier)
    return product_view(found) if found else None


def _locations(
    _: Any, info: GraphQLResolveInfo, first: int | None = None, after: str | None = None
) -> dict[str, Any]:
    store: Store = info.context.store
    return _connection(
        sorted(store.locations.values(), key=lambda loc: loc.id),
        lambda loc: loc.id,
        first,
        after,
        location_view,
    )


def _location(_: Any, info: GraphQLResolveInfo, id: str | None = None) -> dict[str, Any] | None:
    """A location by id; with no id, the shop's primary location (here: its first)."""
    store: Store = info.context.store
    with store.lock:
        if id is None:
            return location_view(store.locations[min(store.locations)]) if store.locations else None
        number = parse_gid(id, "Location")
        found = store.locations.get(number) if number is not None else None
        return location_view(found) if found else None


def _shop(_: Any, info: GraphQLResolveInfo) -> dict[str, Any]:
    store: Store = info.context.store
    return {
        "id": gid("Shop", 1),
        "name": store.name,
        "myshopifyDomain": store.domain,
        "currencyCode": "USD",
    }


def _node(_: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    store: Store = info.context.store
    kind = id.split("/")[3] if id.startswith("gid://shopify/") and id.count("/") >= 4 else ""
    number = parse_gid(id, kind) if kind else None
    if number is None:
        return None
    if kind == "Product":
        return _product(None, info, id)
    if kind == "Location" and number in store.locations:
        return location_view(store.locations[number])
    if kind in ("InventoryItem", "ProductVariant"):
        for product in list(store.products.values()):
            for variant in product.variants:
                if (variant.inventory_item_id if kind == "InventoryItem" else variant.id) == number:
                    return (
                        item_view(variant)
                        if kind == "InventoryItem"
                        else variant_view(product, variant)
                    )
    if kind == "BulkOperation":
        return info.context.hooks.bulk_view(number)  # type: ignore[no-any-return]
    return None


def _inventory_item(_: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    return _node(None, info, id) if "/InventoryItem/" in id else None


def _product_set(
    _: Any,
    info: GraphQLResolveInfo,
    input: dict[str, Any],
    identifier: dict[str, Any] | None = None,
    synchronous: bool = True,
) -> dict[str, Any]:
    ctx: Context = info.context
    refused = ctx.hooks.refused_sku(input)
    if refused is not None:
        return {"product": None, "productSetOperation": None, "userErrors": [refused]}
    try:
        product = ctx.store.product_set(input, identifier)
    except UserErrors as exc:
        return {"product": None, "productSetOperation": None, "userErrors": exc.errors}
    ctx.mutated.append("productSet")
    return {"product": product_view(product), "productSetOperation": None, "userErrors": []}


def _idempotency_key(info: GraphQLResolveInfo) -> str | None:
    """The ``@idempotent(key:)`` on the field, where this version's schema has the directive."""
    directive = info.schema.get_directive("idempotent")
    if directive is None:
        return None
    values = get_directive_values(directive, info.field_nodes[0], info.variable_values)
    return None if values is None else str(values["key"])


def _inventory_set(_: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
    """Set quantities; a key seen before answers what it answered then, changing nothing.

    From 2026-04 the directive is required; the changelog says only that
    leaving it out fails at runtime, so that is a plain GraphQL error here.
    """
    ctx: Context = info.context
    key = _idempotency_key(info)
    if key is None and ctx.schema_era >= ERA_2026_04:
        raise GraphQLError(
            "An idempotency key is required for inventorySetQuantities:"
            " add the @idempotent(key:) directive."
        )
    if key is None:
        return _inventory_set_once(ctx, info, input)
    fingerprint = json.dumps(input, sort_keys=True, default=str)
    with ctx.store.lock:
        seen = ctx.store.idempotency.get(key)
        if seen is not None and seen[0] != fingerprint:
            message = "The same idempotency key cannot be used with different operation parameters."
            error = {
                "field": None,
                "message": message,
                "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
            }
            return {"inventoryAdjustmentGroup": None, "userErrors": [error]}
        if seen is not None:
            return seen[1]
        payload = _inventory_set_once(ctx, info, input)
        ctx.store.idempotency[key] = (fingerprint, payload)
        return payload


def _inventory_set_once(
    ctx: Context, info: GraphQLResolveInfo, input: dict[str, Any]
) -> dict[str, Any]:
    try:
        changes = ctx.store.set_quantities(input, ctx.schema_era)
    except UserErrors as exc:
        return {"inventoryAdjustmentGroup": None, "userErrors": exc.errors}
    ctx.mutated.append("inventorySetQuantities")
    store = ctx.store
    views = [
        {
            "name": c["name"],
            "delta": c["delta"],
            "quantityAfterChange": None,
            "item": _node(None, info, gid("InventoryItem", c["item"])),
            "location": location_view(store.locations[c["location"]]),
        }
        for c in changes
    ]
    group = {
        "id": gid("InventoryAdjustmentGroup", store.new_id()),
        "reason": input["reason"],
        "referenceDocumentUri": input.get("referenceDocumentUri"),
        "changes": views,
    }
    return {"inventoryAdjustmentGroup": group, "userErrors": []}


def _metafield_definition_create(
    _: Any, info: GraphQLResolveInfo, definition: dict[str, Any]
) -> dict[str, Any]:
    ctx: Context = info.context
    try:
        created = ctx.store.define_metafield(definition)
    except UserErrors as exc:
        errors = [{**e, "elementIndex": None} for e in exc.errors]
        return {"createdDefinition": None, "userErrors": errors}
    ctx.mutated.append("metafieldDefinitionCreate")
    view = {
        "__typename": "MetafieldDefinition",
        "id": gid("MetafieldDefinition", created.id),
        "name": created.name,
        "namespace": created.namespace,
        "key": created.key,
        "type": {"name": created.type},
        "ownerType": created.owner_type,
    }
    return {"createdDefinition": view, "userErrors": []}


def _changes(parent: dict[str, Any], info: GraphQLResolveInfo, **_: Any) -> list[dict[str, Any]]:
    return parent["changes"]  # type: ignore[no-any-return]


def _staged(_: Any, info: GraphQLResolveInfo, input: list[dict[str, Any]]) -> dict[str, Any]:
    return info.context.hooks.staged_uploads(input, info.context.base_url)  # type: ignore[no-any-return]


def _bulk_run(
    _: Any, info: GraphQLResolveInfo, mutation: str, stagedUploadPath: str, **__: Any
) -> dict[str, Any]:
    return info.context.hooks.run_bulk(mutation, stagedUploadPath, info.context)  # type: ignore[no-any-return]


def _current_bulk(_: Any, info: GraphQLResolveInfo, type: str = "QUERY") -> dict[str, Any] | None:
    return info.context.hooks.current_bulk(type)  # type: ignore[no-any-return]


_RESOLVERS: dict[str, dict[str, Callable[..., Any]]] = {
    "QueryRoot": {
        "products": _products,
        "product": _product,
        "productByIdentifier": _product_by_identifier,
        "locations": _locations,
        "location": _location,
        "shop": _shop,
        "node": _node,
        "inventoryItem": _inventory_item,
        "currentBulkOperation": _current_bulk,
    },
    "Mutation": {
        "productSet": _product_set,
        "inventorySetQuantities": _inventory_set,
        "metafieldDefinitionCreate": _metafield_definition_create,
        "stagedUploadsCreate": _staged,
        "bulkOperationRunMutation": _bulk_run,
    },
    "Product": {"variants": _variants, "options": _options, "metafield": _metafield},
    "InventoryItem": {"inventoryLevel": _inventory_level},
    "InventoryLevel": {"quantities": _quantities},
    "InventoryAdjustmentGroup": {"changes": _changes},
}


def build(schema_era: int = ERA_2025_10) -> GraphQLSchema:
    """The schema of one API era (see :mod:`.schema`), with the resolvers above attached."""
    schema = build_schema(sdl(schema_era))
    for type_name, fields in _RESOLVERS.items():
        gtype = schema.get_type(type_name)
        assert isinstance(gtype, GraphQLObjectType)
        for name, resolver in fields.items():
            gtype.fields[name].resolve = resolver
    node = schema.get_type("Node")
    node.resolve_type = lambda value, *_: value.get("__typename")  # type: ignore[union-attr]
    return schema
