"""The shop's products and variations, and the rules core applies when they are saved.

Products and variations are WordPress posts, so they share one id sequence.
A SKU is held by at most one product or variation that is not in the trash
(core's ``is_existing_sku`` ignores trashed posts); :meth:`Store.check_sku`
refuses a duplicate with core's ``product_invalid_sku`` error, naming the
holder (``resource_id``) and a free alternative (``unique_sku``, as
``wc_product_generate_unique_sku`` makes it: ``SKU-1``, ``SKU-2``, …).

Stock follows ``WC_Product::validate_props``: without ``manage_stock`` there
is no quantity and backorders are ``no``; with it the stock status follows
the quantity (above 0: ``instock``; else ``onbackorder`` when backorders are
allowed, otherwise ``outofstock``). A variable product that does not manage
stock takes its status from its variations.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import RestError


def sanitize_title(text: str) -> str:
    """WordPress's ``sanitize_title``: lower-case ASCII, dashes for spaces, nothing else."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9 _-]", "", ascii_text.lower())
    slug = re.sub(r"[\s-]+", "-", slug)
    return slug.strip("-")


def decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value) if value != "" else None
    except InvalidOperation:
        return None


@dataclass
class Meta:
    id: int
    key: str
    value: Any


@dataclass
class Attribute:
    """A product-local attribute (``pa_*`` global attributes are not emulated)."""

    name: str
    position: int = 0
    visible: bool = False
    variation: bool = False
    options: list[str] = field(default_factory=list)


@dataclass
class Item:
    """What products and variations share: the post, SKU, prices, stock and meta."""

    id: int
    status: str = "publish"
    description: str = ""
    sku: str = ""
    regular_price: str = ""
    sale_price: str = ""
    virtual: bool = False
    downloadable: bool = False
    tax_status: str = "taxable"
    tax_class: str = ""
    manage_stock: bool = False
    stock_quantity: int | None = None
    stock_status: str = "instock"
    backorders: str = "no"
    weight: str = ""
    dimensions: dict[str, str] = field(
        default_factory=lambda: {"length": "", "width": "", "height": ""}
    )
    menu_order: int = 0
    meta: list[Meta] = field(default_factory=list)
    created: float = 0.0
    modified: float = 0.0

    def on_sale(self) -> bool:
        sale, regular = decimal(self.sale_price), decimal(self.regular_price)
        return sale is not None and regular is not None and regular > sale

    def own_price(self) -> str:
        return self.sale_price if self.on_sale() else self.regular_price

    def validate_stock(self) -> None:
        """``WC_Product::validate_props``: quantity only with ``manage_stock``, status from it."""
        if not self.manage_stock:
            self.stock_quantity = None
            self.backorders = "no"
            return
        if (self.stock_quantity or 0) > 0:
            self.stock_status = "instock"
        elif self.backorders != "no":
            self.stock_status = "onbackorder"
        else:
            self.stock_status = "outofstock"


@dataclass
class Product(Item):
    name: str = ""
    slug: str = ""
    type: str = "simple"
    featured: bool = False
    catalog_visibility: str = "visible"
    short_description: str = ""
    external_url: str = ""
    button_text: str = ""
    parent_id: int = 0
    attributes: list[Attribute] = field(default_factory=list)
    default_attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Variation(Item):
    parent_id: int = 0
    # sanitized parent attribute name -> the chosen option ("" = any)
    attributes: dict[str, str] = field(default_factory=dict)


class Store:
    """Everything the shop holds; callers take :attr:`lock` around reads and writes."""

    def __init__(self, clock: Callable[[], float] = time.time, first_id: int = 10) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.products: dict[int, Product] = {}
        self.variations: dict[int, Variation] = {}
        self._next_id = first_id
        self._next_meta_id = 1
        # Indexes, so a push of thousands of products does not scan the shop per item.
        self._holders: dict[str, set[int]] = {}
        self._held: dict[int, str] = {}
        self._slugs: dict[str, int] = {}
        self._children: dict[int, set[int]] = {}

    # ------------------------------------------------------------ ids and SKUs

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def new_meta_id(self) -> int:
        self._next_meta_id += 1
        return self._next_meta_id - 1

    def get(self, number: int) -> Product | Variation | None:
        return self.products.get(number) or self.variations.get(number)

    def holder(self, sku: str, other_than: int = 0) -> int | None:
        """The id of a live product or variation holding ``sku``, other than ``other_than``."""
        ids = self._holders.get(sku, set()) - {other_than}
        return min(ids) if ids else None

    def check_sku(self, sku: str, own_id: int) -> None:
        """Core's ``set_sku``: refuse a SKU another live product or variation holds."""
        found = self.holder(sku, own_id) if sku else None
        if found is None:
            return
        suffix = 1
        while self.holder(f"{sku}-{suffix}", own_id) is not None:
            suffix += 1
        raise RestError(
            "product_invalid_sku",
            "Invalid or duplicated SKU.",
            400,
            resource_id=found,
            unique_sku=f"{sku}-{suffix}",
        )

    def index(self, item: Item) -> None:
        """Keep the SKU index true to ``item`` after it changed, was trashed or removed."""
        old = self._held.pop(item.id, None)
        if old is not None:
            self._holders[old].discard(item.id)
            if not self._holders[old]:
                del self._holders[old]
        live = self.get(item.id) is item and item.status != "trash"
        if item.sku and live:
            self._holders.setdefault(item.sku, set()).add(item.id)
            self._held[item.id] = item.sku

    def sku_counts(self) -> dict[str, int]:
        return {sku: len(ids) for sku, ids in self._holders.items()}

    # ------------------------------------------------------------ saving

    def unique_slug(self, wanted: str, own_id: int) -> str:
        """``wp_unique_post_slug``: ``slug``, then ``slug-2``, ``slug-3``, …"""
        base = sanitize_title(wanted) or str(own_id)
        slug, n = base, 2
        while self._slugs.get(slug, own_id) != own_id:
            slug, n = f"{base}-{n}", n + 1
        return slug

    def save(self, item: Product | Variation) -> None:
        """Store ``item`` (new when its id is 0), give new meta rows ids, update the index."""
        now = self.clock()
        if item.id == 0:
            item.id = self.new_id()
            item.created = now
        item.modified = now
        item.meta = [m for m in item.meta if m.value is not None]
        for meta in item.meta:
            if meta.id == 0:
                meta.id = self.new_meta_id()
        if isinstance(item, Product):
            old = self.products.get(item.id)
            if old is not None:
                self._slugs.pop(old.slug, None)
            item.slug = self.unique_slug(item.slug or item.name, item.id)
            self._slugs[item.slug] = item.id
            self.products[item.id] = item
        else:
            old_variation = self.variations.get(item.id)
            if old_variation is not None:
                self._children.get(old_variation.parent_id, set()).discard(item.id)
            self._children.setdefault(item.parent_id, set()).add(item.id)
            self.variations[item.id] = item
        self.index(item)

    def trash(self, item: Product | Variation) -> None:
        """Move to the trash; trashing a product trashes its variations too (``WC_Post_Data``)."""
        item.status = "trash"
        item.modified = self.clock()
        self.index(item)
        if isinstance(item, Product):
            for child in self.children(item.id, include_trash=False):
                child.status = "trash"
                self.index(child)

    def remove(self, item: Product | Variation) -> None:
        """Delete permanently; a product's variations go with it."""
        if isinstance(item, Product):
            for child in self.children(item.id, include_trash=True):
                self.remove(child)
            del self.products[item.id]
            self._slugs.pop(item.slug, None)
        else:
            del self.variations[item.id]
            self._children.get(item.parent_id, set()).discard(item.id)
        self.index(item)

    # ------------------------------------------------------------ reading

    def children(self, product_id: int, *, include_trash: bool) -> list[Variation]:
        found = [
            v
            for number in self._children.get(product_id, ())
            if (v := self.variations[number]) and (include_trash or v.status != "trash")
        ]
        return sorted(found, key=lambda v: (v.menu_order, v.id))

    def price(self, item: Product | Variation) -> str:
        """The effective price; a variable product's is its cheapest published variation's."""
        if isinstance(item, Product) and item.type == "variable":
            prices = [
                d
                for v in self.children(item.id, include_trash=False)
                if v.status == "publish" and (d := decimal(v.own_price())) is not None
            ]
            return f"{min(prices):.2f}" if prices else ""
        return item.own_price()

    def stock_status(self, item: Product | Variation) -> str:
        if isinstance(item, Product) and item.type == "variable" and not item.manage_stock:
            statuses = {v.stock_status for v in self.children(item.id, include_trash=False)}
            for status in ("instock", "onbackorder"):
                if status in statuses:
                    return status
            return "outofstock"
        return item.stock_status

    def all_items(self) -> Iterable[Product | Variation]:
        yield from self.products.values()
        yield from self.variations.values()
