"""An emulated WooCommerce store: the REST API v3 a channel connector pushes to.

Written from WooCommerce's public REST API documentation (with core's code
where the docs are silent, see /work/shared/reference/channel-formats.md
Part B), not from a client: products and variations under
``/wp-json/wc/v3`` with their list filters and pagination headers, batch
endpoints (at most 100 items, each committed on its own, errors per item),
trash versus ``force=true``, SKUs unique across products and variations
(``product_invalid_sku`` naming the holder), WordPress's parameter
validation, and API-key auth: HTTP Basic or query-string keys only over SSL
(``assume_https``, or ``X-Forwarded-Proto: https``), one-legged OAuth 1.0a
otherwise.

A test holds :class:`RunningServer` from :func:`serve`: ``faults`` switches
failures on (5xx, 429 with ``Retry-After``, a refused SKU, a connection
dropped after the write was stored) and counts what arrived; the helpers
show what the shop holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from emulators import serving

from . import render
from .app import ConnectionDropped, create_app
from .auth import Authenticator
from .errors import RestError
from .faults import Faults
from .shop import Shop
from .store import Product, Store

__all__ = [
    "ConnectionDropped",
    "Faults",
    "RestError",
    "RunningServer",
    "Shop",
    "Store",
    "create_app",
    "serve",
]

DEFAULT_KEY = "ck_0e2a5d1f6c3b4a798e0d2c1b5a4f3e6d7c8b9a01"
DEFAULT_SECRET = "cs_7f3e9a1b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f"


@dataclass
class RunningServer:
    """A served store: where it listens, its API key, the shop and the faults a test sets."""

    base_url: str
    consumer_key: str
    consumer_secret: str
    shop: Shop

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/wp-json/wc/v3"

    @property
    def faults(self) -> Faults:
        return self.shop.faults

    @property
    def store(self) -> Store:
        return self.shop.store

    @property
    def auth(self) -> tuple[str, str]:
        """The key pair as ``(user, password)`` for HTTP Basic."""
        return (self.consumer_key, self.consumer_secret)

    def products(self) -> list[dict[str, Any]]:
        """Every product (trashed ones too, by status) as the API shows it, with
        ``variations`` holding the variations themselves rather than their ids."""
        with self.store.lock:
            return [
                self._with_variations(p)
                for p in sorted(self.store.products.values(), key=lambda p: p.id)
            ]

    def sku_counts(self) -> dict[str, int]:
        """How many live (not trashed) products and variations hold each SKU."""
        with self.store.lock:
            return self.store.sku_counts()

    def product_by_sku(self, sku: str) -> dict[str, Any] | None:
        """The live product holding ``sku`` itself or through one of its variations."""
        with self.store.lock:
            holder = self.store.holder(sku)
            item = self.store.get(holder) if holder is not None else None
            if item is not None and not isinstance(item, Product):
                item = self.store.products.get(item.parent_id)
            return self._with_variations(item) if item is not None else None

    def writes(self) -> dict[str, int]:
        """Writes that took effect, e.g. ``{"product.created": 3, "variation.updated": 1}``
        (kinds: product/variation × created/updated/trashed/deleted)."""
        return dict(self.faults.snapshot()["writes"])

    def _with_variations(self, product: Product) -> dict[str, Any]:
        data = render.product(self.store, product, self.base_url)
        data["variations"] = [
            render.with_parent(render.variation(self.store, v, self.base_url), v)
            for v in self.store.children(product.id, include_trash=True)
        ]
        return data


@contextmanager
def serve(
    *,
    consumer_key: str = DEFAULT_KEY,
    consumer_secret: str = DEFAULT_SECRET,
    permissions: str = "read_write",
    assume_https: bool = True,
    store: Store | None = None,
    faults: Faults | None = None,
    batch_limit: int = 100,
    trash_supported: bool = True,
    clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Run the emulated store on a local port until the block ends (see ``emulators.serving``).

    ``assume_https`` says the store stands behind a TLS terminator, so HTTP
    Basic and query-string keys count; with False only OAuth 1.0a (or a
    request carrying ``X-Forwarded-Proto: https``) authenticates.
    """
    shop = Shop(
        store or Store(clock=clock),
        faults or Faults(),
        batch_limit=batch_limit,
        trash_supported=trash_supported,
    )
    authenticator = Authenticator(
        consumer_key,
        consumer_secret,
        permissions=permissions,
        assume_https=assume_https,
        clock=clock,
    )
    app = create_app(shop, authenticator)
    with serving.in_thread(
        app,
        title="WooCommerce",
        host=host,
        port=port,
        startup_timeout=startup_timeout,
        lifespan="off",
    ) as base_url:
        yield RunningServer(base_url, consumer_key, consumer_secret, shop)
