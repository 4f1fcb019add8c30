"""An emulated Shopify store: the Admin GraphQL API a channel connector pushes to.

Written from Shopify's public Admin GraphQL reference, not from a client:
``productSet`` (upsert by id, handle or custom id), ``productByIdentifier``
and ``products`` for finding a product again, ``inventorySetQuantities``
(with the compare-and-swap and ``@idempotent`` rules of the URL's API
version), ``metafieldDefinitionCreate``, ``shop``, ``location`` and
``locations``, staged uploads and bulk mutation operations, access-token
auth, and the calculated-cost leaky bucket (standard plan: 2000 points,
100 restored per second; a mutation costs 10; a single query at most 1000).

A test holds :class:`RunningServer` from :func:`serve`: ``faults`` switches
failures on (5xx, forced THROTTLED, a userError for a SKU, a connection
dropped after the mutation took effect, a bulk operation that fails
half-way) and counts what arrived; ``store`` and the helpers here show what
the shop holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from emulators import serving

from .app import ConnectionDropped, Faults, Shop, create_app
from .cost import DEFAULT_MAXIMUM, DEFAULT_RESTORE_RATE, CostBucket
from .store import Product, Store, gid

__all__ = [
    "ConnectionDropped",
    "CostBucket",
    "Faults",
    "RunningServer",
    "Shop",
    "Store",
    "create_app",
    "serve",
]

API_VERSION = "2025-07"


@dataclass
class RunningServer:
    """A served emulator: where it listens, its shop and the faults a test sets."""

    base_url: str
    access_token: str
    shop: Shop

    @property
    def faults(self) -> Faults:
        return self.shop.faults

    @property
    def store(self) -> Store:
        return self.shop.store

    @property
    def bucket(self) -> CostBucket:
        return self.shop.bucket

    def graphql_url(self, version: str = API_VERSION) -> str:
        return f"{self.base_url}/admin/api/{version}/graphql.json"

    @property
    def location_id(self) -> str:
        """The global id of the shop's first location."""
        return gid("Location", min(self.store.locations))

    def products(self) -> list[dict[str, Any]]:
        """Every product as plain data: variants with prices and stock per location."""
        with self.store.lock:
            return [
                self._product(p) for p in sorted(self.store.products.values(), key=lambda p: p.id)
            ]

    def product_by_sku(self, sku: str) -> dict[str, Any] | None:
        return next(
            (p for p in self.products() if any(v["sku"] == sku for v in p["variants"])), None
        )

    def available(self, sku: str, location_id: str | None = None) -> int | None:
        """The ``available`` quantity of a SKU at a location (the first by default)."""
        location = int((location_id or self.location_id).rsplit("/", 1)[1])
        with self.store.lock:
            for product in self.store.products.values():
                for variant in product.variants:
                    if variant.sku == sku:
                        return self.store.quantity(variant.inventory_item_id, location)
        return None

    def definitions(self) -> list[dict[str, str]]:
        """The metafield definitions made, as plain data."""
        with self.store.lock:
            return [
                {
                    "owner_type": d.owner_type,
                    "namespace": d.namespace,
                    "key": d.key,
                    "type": d.type,
                    "name": d.name,
                }
                for d in self.store.definitions.values()
            ]

    def mutations(self, name: str | None = None) -> int:
        """Mutations that took effect (all, or of one root field such as ``productSet``)."""
        counts = self.faults.mutations
        return counts[name] if name else sum(counts.values())

    def _product(self, product: Product) -> dict[str, Any]:
        stock: Callable[[int], dict[str, int]] = lambda item: {  # noqa: E731
            gid("Location", loc): level.get("available", 0)
            for (it, loc), level in self.store.levels.items()
            if it == item
        }
        return {
            "id": gid("Product", product.id),
            "handle": product.handle,
            "title": product.title,
            "status": product.status,
            "vendor": product.vendor,
            "product_type": product.product_type,
            "description_html": product.description_html,
            "tags": list(product.tags),
            "options": [(n, list(v)) for n, v in product.options],
            "metafields": {f"{ns}.{k}": v[0] for (ns, k), v in product.metafields.items()},
            "variants": [
                {
                    "id": gid("ProductVariant", v.id),
                    "sku": v.sku,
                    "barcode": v.barcode,
                    "tracked": v.tracked,
                    "weight": v.weight,
                    "price": v.price,
                    "compare_at_price": v.compare_at_price,
                    "options": list(v.options),
                    "inventory_item_id": gid("InventoryItem", v.inventory_item_id),
                    "available": stock(v.inventory_item_id),
                }
                for v in product.variants
            ],
        }


@contextmanager
def serve(
    *,
    access_token: str = "shpat_emulated",
    store: Store | None = None,
    faults: Faults | None = None,
    maximum: float = DEFAULT_MAXIMUM,
    restore_rate: float = DEFAULT_RESTORE_RATE,
    clock: Callable[[], float] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Run the emulator on a local port until the block ends (see ``emulators.serving``)."""
    bucket = (
        CostBucket(maximum, restore_rate, clock) if clock else CostBucket(maximum, restore_rate)
    )
    shop = Shop(store or Store(), faults or Faults(), bucket)
    app = create_app(shop, access_token=access_token)
    with serving.in_thread(
        app, title="Shopify", host=host, port=port, startup_timeout=startup_timeout, lifespan="off"
    ) as base_url:
        shop.base_url = base_url
        yield RunningServer(base_url=base_url, access_token=access_token, shop=shop)
