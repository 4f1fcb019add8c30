"""One listing's work during a push, and the outcome it ends in.

A job starts from what the hub knows (its ``Bound``), learns the store's ids
as the push goes (looked up, adopted, created), collects WooCommerce's
refusals, and at the end says what the store holds: the hub records exactly
that, so the next push updates those ids instead of creating again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.channel import Bound, Listing, ListingVariant, Outcome, PushItem

from .inputs import variable

# What a push does with a listing.
WRITE = "write"  # the whole product (and its variations)
STOCK = "stock"  # quantities only, on ids the hub already knows
ARCHIVE = "archive"  # draft or trash, as the ``deleted`` setting says


@dataclass(eq=False)
class Job:
    """One listing's state while the batch is under way.

    ``product_id``: the store's product, once known; ``variations``: the
    store's variation ids by SKU; ``fresh``: created by this push, so it has
    no variations yet; ``listed``: its variations were read from the store,
    so ``variations`` is complete; ``claim``: a product another write said
    holds the listing's SKU (``resource_id``), with WooCommerce's words, to
    be checked before it is adopted.
    """

    listing: Listing
    bound: Bound | None
    action: str
    product_id: int | None = None
    variations: dict[str, int] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    permanent: bool = False
    looked_up: bool = False
    fresh: bool = False
    listed: bool = False
    written: bool = False
    claim: tuple[int, str] | None = None

    @classmethod
    def of(cls, item: PushItem, action: str) -> Job:
        bound = item.bound
        job = cls(item.listing, bound, action)
        if bound is not None and bound.product_id:
            try:
                job.product_id = int(bound.product_id)
            except ValueError:
                job.product_id = None  # not a WooCommerce id: looked up instead
            if job.product_id is not None and variable(item.listing):
                # A simple product's bound names the product itself for its SKU.
                job.variations = {
                    sku: int(vid)
                    for sku, vid in bound.variants.items()
                    if vid.isdigit() and int(vid) != job.product_id
                }
            job.stock = dict(bound.stock) if job.product_id is not None else {}
        return job

    @property
    def key(self) -> str:
        return self.listing.key

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def fail(self, words: str, permanent: bool = True) -> Job:
        self.errors.append(words)
        self.permanent = self.permanent or permanent
        return self

    def forget(self) -> None:
        """The store no longer has the product the hub knew: look it up anew."""
        self.product_id = None
        self.variations = {}
        self.stock = {}
        self.looked_up = False
        self.listed = False

    def adopt(self, product_id: int) -> None:
        if product_id != self.product_id:
            self.variations = {}
            self.stock = {}
            self.listed = False
        self.product_id = product_id
        self.looked_up = True

    def confirm_stock(self, variant: ListingVariant) -> None:
        if variant.qty is None:
            self.stock.pop(variant.sku, None)
        else:
            self.stock[variant.sku] = variant.qty

    def bound_now(self) -> Bound | None:
        if self.product_id is None:
            return None
        pid = str(self.product_id)
        if self.action == ARCHIVE and self.bound is not None and self.bound.product_id == pid:
            return self.bound  # archiving changes no id (the listing may carry no variants)
        if variable(self.listing):
            ids = {sku: str(vid) for sku, vid in self.variations.items()}
        else:
            ids = {v.sku: pid for v in self.listing.variants}
        stock = {sku: qty for sku, qty in self.stock.items() if sku in ids}
        return Bound(pid, ids, dict(ids), stock)

    def outcome(self) -> Outcome:
        bound = self.bound_now()
        if self.errors:
            return Outcome(
                self.key, bound=bound, error="; ".join(self.errors), permanent=self.permanent
            )
        return Outcome(self.key, bound=bound if bound is not None else Bound())
