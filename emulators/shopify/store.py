"""The emulated shop's data and the rules Shopify applies when it changes.

``productSet`` here follows the reference: the input is the whole product
(variants left out of the list are removed), an ``identifier`` (id, handle,
or a custom id held in a unique metafield) finds the product to update and
otherwise one is created, so a retried set never makes a second product.
Invalid input is answered with ``userErrors`` and changes nothing.

``inventorySetQuantities`` checks quantities as the API version in the URL
says (see :mod:`.schema`); ``metafieldDefinitionCreate`` keeps definitions
per owner type, namespace and key, refusing a second one as ``TAKEN``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

GID = "gid://shopify/"
# ERA_2026_01 and ERA_2026_04 of .schema, repeated so the store needs no schema.
CHANGE_FROM_ERA, CHANGE_FROM_REQUIRED_ERA = 1, 2
# Metafield types a definition may have (a part of the reference's list).
METAFIELD_TYPES = frozenset(
    {
        "boolean",
        "date",
        "id",
        "json",
        "multi_line_text_field",
        "number_decimal",
        "number_integer",
        "single_line_text_field",
        "url",
    }
)
QUANTITY_NAMES = ("available", "on_hand")
# The reasons inventorySetQuantities accepts, from the reference's list.
REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)


def gid(kind: str, number: int) -> str:
    return f"{GID}{kind}/{number}"


def parse_gid(value: Any, kind: str) -> int | None:
    """The number of a global id of ``kind``; None when it is not one."""
    prefix = f"{GID}{kind}/"
    if not isinstance(value, str) or not value.startswith(prefix):
        return None
    tail = value[len(prefix) :].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


class UserErrors(Exception):
    """Input Shopify refuses: the payload carries these and nothing changes."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "")
        self.errors = errors


def user_error(path: list[str], message: str, code: str | None) -> dict[str, Any]:
    return {"field": path, "message": message, "code": code}


@dataclass
class Variant:
    id: int
    inventory_item_id: int
    sku: str | None
    price: Decimal
    compare_at_price: Decimal | None
    options: list[tuple[str, str]]
    barcode: str | None = None
    tracked: bool = False
    weight: tuple[float, str] | None = None


@dataclass
class Product:
    id: int
    handle: str
    title: str
    status: str
    options: list[tuple[str, list[str]]]
    variants: list[Variant]
    metafields: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    updated: int = 0
    vendor: str = ""
    product_type: str = ""
    description_html: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass
class Location:
    id: int
    name: str


@dataclass
class MetafieldDefinition:
    id: int
    name: str
    namespace: str
    key: str
    type: str
    owner_type: str


class Store:
    """Products, locations and stock levels; every change under one lock."""

    def __init__(
        self,
        locations: tuple[str, ...] = ("Shop location",),
        *,
        name: str = "Emulated Shop",
        domain: str = "emulated-shop.myshopify.com",
    ) -> None:
        self.lock = threading.RLock()
        self.name = name
        self.domain = domain
        self.definitions: dict[tuple[str, str, str], MetafieldDefinition] = {}
        # @idempotent keys seen: the input's fingerprint and the payload answered.
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}
        self._next = 1000
        self.products: dict[int, Product] = {}
        self.locations: dict[int, Location] = {}
        self.levels: dict[tuple[int, int], dict[str, int]] = {}
        self._item_variant: dict[int, tuple[int, int]] = {}
        # Lookups by handle and by custom id are indexed, as a store's are:
        # a catalogue of thousands is upserted by custom id line after line.
        self._handles: dict[str, int] = {}
        self._custom: dict[tuple[str, str, str], int] = {}
        self._indexed: dict[int, tuple[str, list[tuple[str, str, str]]]] = {}
        self.changes = 0
        for name in locations:
            self.add_location(name)

    def new_id(self) -> int:
        with self.lock:
            self._next += 1
            return self._next

    def add_location(self, name: str) -> Location:
        location = Location(self.new_id(), name)
        self.locations[location.id] = location
        return location

    # ------------------------------------------------------------- lookups

    def find(self, identifier: dict[str, Any] | None) -> Product | None:
        """The product an identifier (id, handle or customId) names, if any."""
        if not identifier:
            return None
        with self.lock:
            if identifier.get("id") is not None:
                number = parse_gid(identifier["id"], "Product")
                return self.products.get(number) if number is not None else None
            if identifier.get("handle") is not None:
                found = self._handles.get(identifier["handle"])
                return self.products.get(found) if found is not None else None
            custom = identifier.get("customId")
            if custom:
                wanted = (custom.get("namespace") or "custom", custom["key"], custom["value"])
                found = self._custom.get(wanted)
                return self.products.get(found) if found is not None else None
        return None

    def _index(self, product: Product) -> None:
        """Bring the handle and custom-id indexes up to date with ``product``."""
        old = self._indexed.pop(product.id, None)
        if old is not None:
            handle, customs = old
            if self._handles.get(handle) == product.id:
                del self._handles[handle]
            for key in customs:
                if self._custom.get(key) == product.id:
                    del self._custom[key]
        self._handles[product.handle] = product.id
        customs = [(ns, key, value) for (ns, key), (value, _) in product.metafields.items()]
        for key in customs:
            self._custom.setdefault(key, product.id)
        self._indexed[product.id] = (product.handle, customs)

    def variant_of_item(self, item_id: int) -> tuple[Product, Variant] | None:
        with self.lock:
            found = self._item_variant.get(item_id)
            if found is None:
                return None
            product = self.products[found[0]]
            variant = next(v for v in product.variants if v.id == found[1])
            return product, variant

    def quantity(self, item_id: int, location_id: int, name: str = "available") -> int | None:
        with self.lock:
            level = self.levels.get((item_id, location_id))
            return None if level is None else level.get(name, 0)

    def search(self, query: str | None) -> list[Product]:
        """Products in id order, filtered by the few search terms the hub uses."""
        with self.lock:
            products = sorted(self.products.values(), key=lambda p: p.id)
        for term in (query or "").split():
            name, _, value = term.partition(":")
            value = value.strip("'\"")
            if name == "sku":
                products = [p for p in products if any(v.sku == value for v in p.variants)]
            elif name == "handle":
                products = [p for p in products if p.handle == value]
            elif name == "status":
                products = [p for p in products if p.status.lower() == value.lower()]
            elif name == "title":
                products = [p for p in products if value.lower() in p.title.lower()]
        return products

    # ------------------------------------------------ metafield definitions

    def define_metafield(self, data: dict[str, Any]) -> MetafieldDefinition:
        """``metafieldDefinitionCreate``: one definition per owner, namespace and key."""
        namespace = data.get("namespace") or "custom"
        path = ["definition"]
        errors = []
        if not (data.get("name") or "").strip():
            errors.append(user_error([*path, "name"], "Name can't be blank", "BLANK"))
        if not (data.get("key") or "").strip():
            errors.append(user_error([*path, "key"], "Key can't be blank", "BLANK"))
        if data.get("type") not in METAFIELD_TYPES:
            errors.append(
                user_error([*path, "type"], "Type name is not included in the list", "INCLUSION")
            )
        wanted = (data["ownerType"], namespace, data.get("key") or "")
        with self.lock:
            if not errors and wanted in self.definitions:
                owner = data["ownerType"].capitalize()
                errors.append(
                    user_error(
                        [*path, "key"],
                        f"Key is in use for {owner} metafields on the '{namespace}' namespace.",
                        "TAKEN",
                    )
                )
            if errors:
                raise UserErrors(errors)
            definition = MetafieldDefinition(
                self.new_id(), data["name"], namespace, wanted[2], data["type"], wanted[0]
            )
            self.definitions[wanted] = definition
            return definition

    # ---------------------------------------------------------- productSet

    def product_set(self, data: dict[str, Any], identifier: dict[str, Any] | None) -> Product:
        """Create or update a product as ``productSet`` does; UserErrors when refused."""
        with self.lock:
            target = self._target(data, identifier)
            errors = _validate(data, creating=target is None)
            if errors:
                raise UserErrors(errors)
            if target is None:
                target = self._create(data, identifier)
            self._apply(target, data)
            self._index(target)
            self.changes += 1
            target.updated = self.changes
            return target

    def _target(self, data: dict[str, Any], identifier: dict[str, Any] | None) -> Product | None:
        if data.get("id") is not None or (identifier and identifier.get("id") is not None):
            wanted = data.get("id") or (identifier or {}).get("id")
            found = self.find({"id": wanted})
            if found is None:
                path = ["input", "id"] if data.get("id") else ["identifier", "id"]
                raise UserErrors(
                    [user_error(path, "Product does not exist", "PRODUCT_DOES_NOT_EXIST")]
                )
            return found
        return self.find(identifier)

    def _create(self, data: dict[str, Any], identifier: dict[str, Any] | None) -> Product:
        handle = data.get("handle") or (identifier or {}).get("handle") or _handleize(data["title"])
        base, n = handle, 1
        while handle in self._handles:
            handle, n = f"{base}-{n}", n + 1
        product = Product(self.new_id(), handle, data["title"], "ACTIVE", [], [])
        custom = (identifier or {}).get("customId")
        if custom:
            key = (custom.get("namespace") or "custom", custom["key"])
            product.metafields[key] = (custom["value"], "id")
        self.products[product.id] = product
        return product

    def _apply(self, product: Product, data: dict[str, Any]) -> None:
        for name, attribute in _PRODUCT_FIELDS:
            if data.get(name) is not None:
                setattr(product, attribute, data[name])
        if data.get("tags") is not None:
            product.tags = sorted({t.strip() for t in data["tags"] if t.strip()})
        for mf in data.get("metafields") or []:
            key = (mf.get("namespace") or "custom", mf.get("key") or "")
            product.metafields[key] = (
                str(mf.get("value") or ""),
                mf.get("type") or "single_line_text_field",
            )
        if data.get("productOptions") is not None:
            product.options = [
                (o.get("name") or "", [v.get("name") or "" for v in o.get("values") or []])
                for o in data["productOptions"]
            ]
        if data.get("variants") is not None:
            before = {v.inventory_item_id for v in product.variants}
            product.variants = [self._variant(product, v) for v in data["variants"]]
            for item in before - {v.inventory_item_id for v in product.variants}:
                if self._item_variant.get(item, (None, None))[0] == product.id:
                    del self._item_variant[item]
        if not product.variants:
            product.variants = [self._variant(product, {"optionValues": []})]

    def _variant(self, product: Product, data: dict[str, Any]) -> Variant:
        options = [
            (o.get("optionName") or "", o.get("name") or "") for o in data.get("optionValues") or []
        ]
        existing = _match_variant(product, data, options)
        if existing is None:
            existing = Variant(self.new_id(), self.new_id(), None, Decimal("0.00"), None, options)
        item = data.get("inventoryItem") or {}
        existing.sku = data.get("sku") or item.get("sku") or existing.sku
        if "barcode" in data:
            existing.barcode = data["barcode"] or None
        if item.get("tracked") is not None:
            existing.tracked = bool(item["tracked"])
        weight = (item.get("measurement") or {}).get("weight")
        if weight:
            existing.weight = (float(weight["value"]), weight["unit"])
        if data.get("price") is not None:
            existing.price = _money(data["price"])
        if "compareAtPrice" in data:
            raw = data["compareAtPrice"]
            existing.compare_at_price = None if raw in (None, "") else _money(raw)
        existing.options = options
        self._item_variant[existing.inventory_item_id] = (product.id, existing.id)
        for q in data.get("inventoryQuantities") or []:
            location = parse_gid(q["locationId"], "Location")
            if location in self.locations:
                level = self.levels.setdefault((existing.inventory_item_id, location), {})
                level[q["name"]] = q["quantity"]
        return existing

    # ---------------------------------------------------------- inventory

    def set_quantities(self, data: dict[str, Any], schema_era: int = 0) -> list[dict[str, Any]]:
        """``inventorySetQuantities``: all quantities or none; the changes made.

        ``schema_era`` (of :mod:`.schema`) says which compare-and-swap rules apply.
        """
        with self.lock:
            errors = self._inventory_errors(data, schema_era)
            if errors:
                raise UserErrors(errors)
            changes = []
            for q in data["quantities"]:
                key = (
                    parse_gid(q["inventoryItemId"], "InventoryItem") or 0,
                    parse_gid(q["locationId"], "Location") or 0,
                )
                level = self.levels.setdefault(key, {})
                before = level.get(data["name"], 0)
                level[data["name"]] = q["quantity"]
                if data["name"] == "available":
                    level["on_hand"] = level.get("on_hand", 0) + q["quantity"] - before
                changes.append(
                    {
                        "item": key[0],
                        "location": key[1],
                        "name": data["name"],
                        "delta": q["quantity"] - before,
                        "after": q["quantity"],
                    }
                )
            self.changes += 1
            return changes

    def _inventory_errors(self, data: dict[str, Any], schema_era: int) -> list[dict[str, Any]]:
        errors = []
        if data["name"] not in QUANTITY_NAMES:
            errors.append(
                user_error(
                    ["input", "name"],
                    "The quantity name must be either 'available' or 'on_hand'.",
                    "INVALID_NAME",
                )
            )
        if data["reason"] not in REASONS:
            errors.append(
                user_error(
                    ["input", "reason"], "The specified reason is invalid.", "INVALID_REASON"
                )
            )
        for i, q in enumerate(data["quantities"]):
            path = ["input", "quantities", str(i)]
            item = parse_gid(q["inventoryItemId"], "InventoryItem")
            location = parse_gid(q["locationId"], "Location")
            if item is None or item not in self._item_variant:
                errors.append(
                    user_error(
                        [*path, "inventoryItemId"],
                        "The specified inventory item could not be found.",
                        "INVALID_INVENTORY_ITEM",
                    )
                )
            if location is None or location not in self.locations:
                errors.append(
                    user_error(
                        [*path, "locationId"],
                        "The specified location could not be found.",
                        "INVALID_LOCATION",
                    )
                )
            if errors:
                continue
            persisted = self.quantity(item or 0, location or 0, data["name"]) or 0
            if schema_era >= CHANGE_FROM_REQUIRED_ERA or (
                schema_era >= CHANGE_FROM_ERA and "changeFromQuantity" in q
            ):
                errors.extend(_change_from_errors(q, path, persisted))
                continue
            if data.get("ignoreCompareQuantity"):
                continue
            if q.get("compareQuantity") is None:
                errors.append(
                    user_error(
                        [*path, "compareQuantity"],
                        "The compareQuantity argument must be given to each quantity or"
                        " ignored using ignoreCompareQuantity.",
                        "COMPARE_QUANTITY_REQUIRED",
                    )
                )
            elif q["compareQuantity"] != persisted:
                errors.append(
                    user_error(
                        [*path, "compareQuantity"],
                        "The compareQuantity value does not match persisted value.",
                        "COMPARE_QUANTITY_STALE",
                    )
                )
        return errors


def _change_from_errors(q: dict[str, Any], path: list[str], persisted: int) -> list[dict[str, Any]]:
    """The 2026-01 check: ``changeFromQuantity`` (null skips it); from 2026-04 it must be there.

    The reference says only that leaving it out "returns an error"; no code
    is documented for that, so the error here has none.
    """
    if "changeFromQuantity" not in q:
        message = (
            "The changeFromQuantity argument must be given to each quantity;"
            " pass null to skip the check."
        )
        return [user_error([*path, "changeFromQuantity"], message, None)]
    expected = q["changeFromQuantity"]
    if expected is None or expected == persisted:
        return []
    return [
        user_error(
            [*path, "changeFromQuantity"],
            "The changeFromQuantity value does not match persisted value.",
            "CHANGE_FROM_QUANTITY_STALE",
        )
    ]


_PRODUCT_FIELDS = (
    ("title", "title"),
    ("handle", "handle"),
    ("status", "status"),
    ("vendor", "vendor"),
    ("productType", "product_type"),
    ("descriptionHtml", "description_html"),
)


def _match_variant(
    product: Product, data: dict[str, Any], options: list[tuple[str, str]]
) -> Variant | None:
    """The existing variant this input updates: by id, then by options, then by SKU."""
    number = parse_gid(data.get("id"), "ProductVariant")
    for variant in product.variants:
        if number is not None and variant.id == number:
            return variant
    if number is not None:
        return None
    for variant in product.variants:
        if options and variant.options == options:
            return variant
    sku = data.get("sku") or (data.get("inventoryItem") or {}).get("sku")
    return next((v for v in product.variants if sku and v.sku == sku), None)


def _money(raw: Any) -> Decimal:
    return Decimal(str(raw)).quantize(Decimal("0.01"))


def _price_error(raw: Any, path: list[str]) -> dict[str, Any] | None:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return user_error(path, "Price must be a number", "INVALID")
    if not value.is_finite():
        return user_error(path, "Price must be a number", "INVALID")
    if value < 0:
        return user_error(
            path, "Variant price must be greater than or equal to zero.", "GREATER_THAN_OR_EQUAL_TO"
        )
    return None


def _validate(data: dict[str, Any], *, creating: bool) -> list[dict[str, Any]]:
    errors = []
    if (creating or "title" in data) and not (data.get("title") or "").strip():
        errors.append(user_error(["input", "title"], "Title can't be blank", "BLANK"))
    seen: set[str] = set()
    for i, variant in enumerate(data.get("variants") or []):
        path = ["input", "variants", str(i)]
        for name in ("price", "compareAtPrice"):
            if variant.get(name) not in (None, ""):
                error = _price_error(variant[name], [*path, name])
                if error:
                    errors.append(error)
        sku = variant.get("sku") or (variant.get("inventoryItem") or {}).get("sku")
        if sku and sku in seen:
            errors.append(
                user_error(
                    [*path, "sku"],
                    f"SKU '{sku}' is used by more than one variant of this product",
                    "DUPLICATED_INPUT",
                )
            )
        if sku:
            seen.add(sku)
    return errors


def _handleize(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "product"
