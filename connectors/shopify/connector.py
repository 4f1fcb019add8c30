"""The Shopify channel: products, prices and stock pushed through the Admin
GraphQL API (``reference/channel-formats.md`` Part A).

One ``productSet`` per listing upserts the whole product by the hub's key (a
custom id, ``s2s.product_key``), so a push repeated after a lost answer, or
by a worker that replaces a killed one, updates what the first attempt made
instead of creating a second product. Variants the store does not have yet
get their stock in the same call; known variants' stock, and stock-only
changes, go out afterwards in ``inventorySetQuantities`` calls of up to 250
quantities for the whole batch. A listing whose data did not change and
whose stock did not either sends nothing.

A large first push goes through a bulk mutation operation instead (``.bulk``):
one staged JSONL file of productSet variables, no rate limit, one poll every
few seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import SettingsError
from connectors.channel import Bound, ChannelConnector, Listing, Outcome, PushItem, listing_problem

from . import bulk, documents
from .graphql import AdminApi
from .inputs import identifier, permanent, product_set_variables, words
from .stock import StockJob, set_stock

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2025-10"
DEFAULT_BULK_THRESHOLD = 1000
DEFAULT_TIMEOUT = 30.0
DEFAULT_POLL_INTERVAL = 3.0
DEFAULT_BULK_TIMEOUT = 3600.0

# What a write wants done about stock afterwards: (sku, inventory item id, quantity).
Wanted = list[tuple[str, str, int]]


@dataclass(frozen=True)
class Location:
    id: str
    name: str


@dataclass
class _Draft:
    """One listing's outcome while the batch is under way."""

    key: str
    product_id: str | None = None
    variants: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    permanent: bool = False

    @classmethod
    def of(cls, key: str, bound: Bound | None) -> _Draft:
        if bound is None:
            return cls(key)
        return cls(
            key, bound.product_id, dict(bound.variants), dict(bound.items), dict(bound.stock)
        )

    def fail(self, words: str, permanent: bool = True) -> _Draft:
        self.errors.append(words)
        self.permanent = self.permanent or permanent
        return self

    def outcome(self) -> Outcome:
        bound = (
            Bound(self.product_id, self.variants, self.items, self.stock)
            if self.product_id
            else None
        )
        if not self.errors:
            return Outcome(self.key, bound=bound)
        return Outcome(
            self.key, bound=bound, error="; ".join(self.errors), permanent=self.permanent
        )


def _writes(item: PushItem) -> bool:
    """Whether the item needs productSet: its data changed, or its stock did and
    the store's inventory items are not all known yet (stock alone needs them)."""
    if item.send_product:
        return True
    if not item.send_stock:
        return False
    known = item.bound.items if item.bound else {}
    return any(v.qty is not None and v.sku not in known for v in item.listing.variants)


def _stock_changes(listing: Listing, bound: Bound) -> Wanted:
    return [
        (v.sku, bound.items[v.sku], v.qty)
        for v in listing.variants
        if v.qty is not None and bound.stock.get(v.sku) != v.qty
    ]


def _nodes(connection: Any) -> tuple[list[Mapping[str, Any]], str | None]:
    """A connection's nodes, and the cursor after them when there are more."""
    if not isinstance(connection, Mapping):
        return [], None
    nodes = [n for n in connection.get("nodes") or [] if isinstance(n, Mapping)]
    page = connection.get("pageInfo") or {}
    more = page.get("endCursor") if page.get("hasNextPage") else None
    return nodes, more


def _item_id(node: Mapping[str, Any]) -> str | None:
    item = node.get("inventoryItem")
    return str(item["id"]) if isinstance(item, Mapping) and item.get("id") else None


class ShopifyConnector(ChannelConnector):
    """One Shopify store.

    Settings: ``store_url``, ``api_version`` (default 2025-10), ``location``
    (a Location gid or name; default the shop's primary location),
    ``bulk_threshold`` (default 1000; None or 0: never bulk), ``timeout``
    (seconds, default 30), ``bulk_poll_interval`` (seconds, default 3),
    ``bulk_timeout`` (seconds, default 3600). Secrets: ``access_token``.
    ``sleep`` and ``clock`` are for tests (waits for the cost bucket and
    between bulk polls).
    """

    kind = "shopify"
    title = "Shopify"
    # 50 productSet calls at the standard plan's 100 points a second keep a
    # batch (and a worker) to seconds, and one inventorySetQuantities call
    # takes the stock changes of a whole batch (≤ 250 quantities).
    batch_size = 50

    def __init__(
        self,
        settings: Mapping[str, Any],
        secrets: Mapping[str, Any],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, secrets)
        store_url = str(self.settings.get("store_url") or "").strip()
        if not store_url:
            raise SettingsError(
                "store_url is not set", hint="set store_url to https://<shop>.myshopify.com"
            )
        token = self._secrets.get("access_token", "").strip()
        if not token:
            raise SettingsError(
                "access_token is not set", hint="set the app's Admin API access token"
            )
        self.api_version = str(self.settings.get("api_version") or DEFAULT_API_VERSION).strip()
        self.store_url = store_url.rstrip("/")
        self.api = AdminApi(
            self.store_url,
            self.api_version,
            token,
            timeout=float(self.settings.get("timeout") or DEFAULT_TIMEOUT),
            scrub=self._scrub,
            sleep=sleep,
            clock=clock,
        )
        self._sleep = sleep
        self._shop: tuple[str, Location] | None = None
        self._key_defined = False

    def __repr__(self) -> str:
        return f"ShopifyConnector({self.store_url!r}, api_version={self.api_version!r})"

    def close(self) -> None:
        self.api.close()

    @property
    def bulk_threshold(self) -> int | None:
        if "bulk_threshold" not in self.settings:
            return DEFAULT_BULK_THRESHOLD
        value = self.settings["bulk_threshold"]
        return int(value) if value else None

    # ---- the store, its location and the key's definition ---------------

    def _where(self) -> tuple[str, Location]:
        """The shop's name and the location stock goes to, read once."""
        if self._shop is None:
            data = self.api.run("shopAndLocations", documents.SHOP)
            shop = data.get("shop") or {}
            name = str(shop.get("name") or shop.get("myshopifyDomain") or self.store_url)
            self._shop = (name, self._location(data))
        return self._shop

    def _location(self, data: Mapping[str, Any]) -> Location:
        nodes, _ = _nodes(data.get("locations"))
        known = [
            Location(str(n["id"]), str(n.get("name") or n["id"])) for n in nodes if n.get("id")
        ]
        wanted = str(self.settings.get("location") or "").strip()
        if not wanted:
            primary = data.get("location")
            if isinstance(primary, Mapping) and primary.get("id"):
                return Location(str(primary["id"]), str(primary.get("name") or primary["id"]))
            active = [
                Location(str(n["id"]), str(n.get("name"))) for n in nodes if n.get("isActive")
            ]
            if active or known:
                return (active or known)[0]
            raise SettingsError(
                f"the Shopify store {self.store_url} has no location to hold stock",
                hint="add a location in Shopify, or set location",
            )
        for location in known:
            if (
                wanted in (location.id, location.name)
                or wanted.casefold() == location.name.casefold()
            ):
                return location
        names = ", ".join(repr(loc.name) for loc in known) or "none"
        raise SettingsError(
            f"location {wanted!r} is not a location of the Shopify store {self.store_url}"
            f" (it has {names})",
            hint="set location to one of the store's location names or ids",
        )

    def _define_key(self) -> None:
        """Create the custom-id definition the upserts look products up by, once."""
        if self._key_defined:
            return
        definition = {
            "name": "Hub product key",
            "namespace": documents.NAMESPACE,
            "key": documents.KEY,
            "description": "The integration hub's identity of this product; do not edit.",
            "type": "id",
            "ownerType": "PRODUCT",
        }
        data = self.api.repeatable(
            "metafieldDefinitionCreate", documents.DEFINE_KEY, {"definition": definition}
        )
        errors = (data.get("metafieldDefinitionCreate") or {}).get("userErrors") or []
        refused = [
            e
            for e in errors
            if e.get("code") != "TAKEN" and "in use" not in str(e.get("message", "")).lower()
        ]
        if refused:
            raise SettingsError(
                f"the Shopify store {self.store_url} would not define the product key"
                f" {documents.NAMESPACE}.{documents.KEY}: {words(refused)}",
                hint="check that access_token may write products and metafield definitions",
            )
        self._key_defined = True

    def _prepare(self) -> str:
        location = self._where()[1]
        self._define_key()
        return location.id

    # ---- the contract -----------------------------------------------------

    def check(self) -> str:
        self._shop = None
        name, location = self._where()
        return (
            f"Shopify store {name!r} ({self.store_url}): API {self.api_version},"
            f" location {location.name!r}"
        )

    def find(self, key: str) -> Bound | None:
        location = self._where()[1]
        variables = {"identifier": identifier(key), "location": location.id}
        product = self.api.run("productByIdentifier", documents.FIND, variables).get(
            "productByIdentifier"
        )
        if not isinstance(product, Mapping) or not product.get("id"):
            return None
        nodes, more = _nodes(product.get("variants"))
        while more:
            page = {"id": product["id"], "after": more, "location": location.id}
            found = self.api.run("moreVariants", documents.FIND_MORE, page).get("product") or {}
            extra, more = _nodes(found.get("variants"))
            nodes += extra
        variants: dict[str, str] = {}
        items: dict[str, str] = {}
        stock: dict[str, int] = {}
        for node in nodes:
            sku = node.get("sku")
            if not sku:
                continue
            variants[sku] = str(node["id"])
            item = node.get("inventoryItem") or {}
            if item.get("id"):
                items[sku] = str(item["id"])
            level = item.get("inventoryLevel") or {}
            for quantity in level.get("quantities") or []:
                if quantity.get("name") == "available":
                    stock[sku] = int(quantity["quantity"])
        return Bound(str(product["id"]), variants, items, stock)

    def push(self, items: Sequence[PushItem]) -> list[Outcome]:
        if not items:
            return []
        location_id = self._prepare()
        drafts: list[_Draft] = []
        jobs: list[StockJob] = []
        for n, item in enumerate(items):
            if _writes(item):
                draft, wanted = self._write(item.listing, item.bound, location_id)
            else:
                draft = _Draft.of(item.listing.key, item.bound)
                wanted = []
                if item.send_stock and item.bound is not None:
                    wanted = _stock_changes(item.listing, item.bound)
            drafts.append(draft)
            jobs += [StockJob(n, sku, item_id, qty) for sku, item_id, qty in wanted]
        self._set_stock(drafts, jobs, location_id)
        return self._outcomes(drafts)

    def push_bulk(self, items: Sequence[PushItem]) -> list[Outcome]:
        if not items:
            return []
        location_id = self._prepare()
        drafts: list[_Draft] = [_Draft.of(i.listing.key, i.bound) for i in items]
        wanted: dict[int, Wanted] = {}
        lines: list[dict[str, Any]] = []
        sent: list[int] = []
        for n, item in enumerate(items):
            if not _writes(item):
                if item.send_stock and item.bound:
                    wanted[n] = _stock_changes(item.listing, item.bound)
                continue
            problem = listing_problem(item.listing)
            if problem:
                drafts[n].fail(problem)
                continue
            variables = product_set_variables(item.listing, item.bound, location_id)
            lines.append({"identifier": variables["identifier"], "input": variables["input"]})
            sent.append(n)
        results = bulk.run_lines(
            self.api,
            lines,
            sleep=self._sleep,
            poll_interval=float(self.settings.get("bulk_poll_interval") or DEFAULT_POLL_INTERVAL),
            max_wait=float(self.settings.get("bulk_timeout") or DEFAULT_BULK_TIMEOUT),
        )
        for n, result in zip(sent, results, strict=True):
            item = items[n]
            if result.error is not None:
                drafts[n].fail(result.error, result.permanent)
                continue
            drafts[n], wanted[n] = self._written(item.listing, item.bound, result.payload)
        jobs = [StockJob(n, *job) for n in sorted(wanted) for job in wanted[n]]
        self._set_stock(drafts, jobs, location_id)
        return self._outcomes(drafts)

    # ---- one product ------------------------------------------------------

    def _write(
        self, listing: Listing, bound: Bound | None, location_id: str
    ) -> tuple[_Draft, Wanted]:
        problem = listing_problem(listing)
        if problem:
            return _Draft.of(listing.key, bound).fail(problem), []
        variables = product_set_variables(listing, bound, location_id)
        data = self.api.repeatable(
            "productSet",
            documents.PRODUCT_SET,
            variables,
            cost_kind=f"productSet/{variables['first']}",
        )
        return self._written(listing, bound, data.get("productSet"))

    def _written(
        self, listing: Listing, bound: Bound | None, payload: Any
    ) -> tuple[_Draft, Wanted]:
        """The draft of a productSet answer, and the known variants' stock to set."""
        payload = payload if isinstance(payload, Mapping) else {}
        errors = [e for e in payload.get("userErrors") or [] if isinstance(e, Mapping)]
        if errors:
            return _Draft.of(listing.key, bound).fail(words(errors, listing), permanent(errors)), []
        product = payload.get("product")
        if not isinstance(product, Mapping) or not product.get("id"):
            draft = _Draft.of(listing.key, bound)
            return draft.fail("Shopify saved nothing and gave no reason", permanent=False), []
        draft = _Draft(listing.key, str(product["id"]))
        for node in self._variant_nodes(product):
            item_id = _item_id(node)
            if node.get("sku") and item_id:
                draft.variants[str(node["sku"])] = str(node["id"])
                draft.items[str(node["sku"])] = item_id
        known = bound.variants if bound else {}
        before = bound.stock if bound else {}
        wanted: Wanted = []
        for variant in listing.variants:
            if variant.sku not in draft.items:
                draft.fail(f"SKU {variant.sku} is missing from Shopify's answer", permanent=False)
            elif variant.qty is None:
                continue
            elif variant.sku not in known or before.get(variant.sku) == variant.qty:
                draft.stock[variant.sku] = variant.qty  # set by productSet, or unchanged
            else:
                wanted.append((variant.sku, draft.items[variant.sku], variant.qty))
        return draft, wanted

    def _variant_nodes(self, product: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        nodes, more = _nodes(product.get("variants"))
        while more:
            page = {"id": product["id"], "after": more}
            found = self.api.run("moreVariants", documents.MORE_VARIANTS, page).get("product")
            extra, more = _nodes((found or {}).get("variants"))
            nodes += extra
        return nodes

    def _outcomes(self, drafts: list[_Draft]) -> list[Outcome]:
        outcomes = [d.outcome() for d in drafts]
        refused = sum(1 for o in outcomes if not o.confirmed)
        log.info(
            "shopify: %d listings, %d refused; %d requests and %.1f s waited so far",
            len(outcomes),
            refused,
            self.api.requests,
            self.api.waited,
        )
        return outcomes

    def _set_stock(self, drafts: list[_Draft], jobs: list[StockJob], location_id: str) -> None:
        if not jobs:
            return
        refused = set_stock(self.api, jobs, location_id)
        for n, job in enumerate(jobs):
            if n in refused:
                drafts[job.owner].fail(refused[n].words, refused[n].permanent)
            else:
                drafts[job.owner].stock[job.sku] = job.quantity
