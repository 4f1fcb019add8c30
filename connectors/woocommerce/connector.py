"""The WooCommerce channel: products, prices and stock pushed through the REST
API v3 (``reference/channel-formats.md`` Part B).

A push writes its products in ``POST /products/batch`` calls of at most 100
items, creates and updates together, then each variable product's
variations in ``POST /products/{id}/variations/batch``. A listing changed
only in stock sends only ``manage_stock``/``stock_quantity``, through the
same endpoints; one unchanged sends nothing. An archived listing becomes a
draft (``deleted: draft``, an update in the batch) or goes to the trash
(``deleted: trash``, ``DELETE`` without ``force``: a batch delete would be
permanent).

Never a product twice. WooCommerce has no upsert and cannot find a product
by meta, so the hub's key (meta ``_s2s_product_key``) is written for the
record and the SKU is what finds a product: before creating a product the
hub has no id for, the push looks it up by SKU and updates what it finds
(``.lookup``, which also says which products may be adopted); a create
refused as a duplicate SKU (``product_invalid_sku`` with ``resource_id``) is
turned into an update of that product; and when a batch's answer is lost,
its new products are looked up again before the batch is sent once more.

The parent's SKU. A simple product's SKU is its one variant's. A variable
product's parent carries the product code of the hub's key (``source:CODE``
→ ``CODE``): the variations are created only after the parent, so a parent
whose answer was lost has no variation to be found by, and only its own SKU
finds it again. WooCommerce keeps SKUs unique across products and
variations, so when the code is one of the product's own variant SKUs the
parent carries none, and is found through its variations' SKUs (core's
``/products?sku=`` matches variations too, answering their ``parent_id``)
or, after a lost answer, among the newest products by its key. A code that
another product already holds refuses the listing with the holder named
rather than taking that product over.

A refusal of one item fails that listing alone, in WooCommerce's words
(``code: message``), permanent for a 4xx status and not for a 5xx one.

Tags are sent by name (``[{"name": ...}]``). Core's REST controller sets a
product's tags by term id only, so a live store keeps its tags unchanged
until names are resolved to ids through ``/products/tags`` (not done yet).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.base import SettingsError
from connectors.channel import (
    ARCHIVED,
    Bound,
    ChannelConnector,
    Listing,
    Outcome,
    PushItem,
    listing_problem,
)

from .inputs import DELETED, PUBLISH, key_of, product_body, product_code, stock
from .jobs import ARCHIVE, STOCK, WRITE, Job
from .lookup import products_by_sku, resolve, variations_of
from .rest import Answer, AnswerLost, StoreApi, error_status, log_requests, said, total
from .variations import push_variations

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
BATCH_LIMIT = 100
# Rounds of "send, then adopt what a duplicate SKU named or look up what
# vanished" per push.
ROUNDS = 3
# Times a batch is sent again after its answer was lost.
RESENDS = 2
# Update refusals that mean the product the hub knew is gone from the store.
GONE = frozenset({"woocommerce_rest_product_invalid_id", "woocommerce_rest_invalid_id"})
TRASH_HANDLED = (
    "woocommerce_rest_already_trashed",
    "woocommerce_rest_trash_not_supported",
    *sorted(GONE),
)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _store_url(settings: Mapping[str, Any]) -> str:
    url = str(settings.get("store_url") or "").strip().rstrip("/")
    if not url:
        raise SettingsError(
            "store_url is not set", hint="set store_url to the site's address, https://..."
        )
    lowered = url.lower()
    if lowered.startswith("http://") and not _flag(settings.get("allow_http")):
        raise SettingsError(
            f"store_url {url} is plain http:// and allow_http is not set: WooCommerce takes"
            " the REST keys only over HTTPS, and they would cross the network in clear",
            hint="use the site's https:// address (allow_http: true is for a local emulator)",
        )
    if not lowered.startswith(("https://", "http://")):
        raise SettingsError(
            f"store_url {url} is not a web address",
            hint="set store_url to the site's address, https://...",
        )
    return url


def _action(item: PushItem) -> str | None:
    """What the push does with an item; None: nothing changed."""
    if not item.send_product and not item.send_stock:
        return None
    if item.listing.status == ARCHIVED:
        return ARCHIVE
    if item.send_product:
        return WRITE
    bound = item.bound
    known = bound is not None and str(bound.product_id or "").isdigit()
    if known and bound is not None and all(v.sku in bound.variants for v in item.listing.variants):
        return STOCK
    return WRITE


class WooCommerceConnector(ChannelConnector):
    """One WooCommerce store.

    Settings: ``store_url`` (the site's address; the API is under
    ``/wp-json/wc/v3``), ``allow_http`` (default false: a plain http:// site
    is refused, since core takes Basic auth only over HTTPS; true, for a
    local emulator, sends it anyway), ``deleted`` (``draft``, the default, or
    ``trash``: what an archived listing becomes), ``timeout`` (seconds,
    default 30). Secrets: ``consumer_key``, ``consumer_secret`` (a REST API
    key with read/write permissions). ``sleep`` waits out a short
    Retry-After (tests pass their own).
    """

    kind = "woocommerce"
    title = "WooCommerce"
    # The batch endpoints' limit (B4): one push is one products batch.
    batch_size = BATCH_LIMIT

    def __init__(
        self,
        settings: Mapping[str, Any],
        secrets: Mapping[str, Any],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, secrets)
        self.store_url = _store_url(self.settings)
        self.deleted = str(self.settings.get("deleted") or "draft").strip().lower()
        if self.deleted not in DELETED:
            raise SettingsError(
                f"deleted {self.settings.get('deleted')!r} is not draft or trash",
                hint="set deleted to draft (unpublish) or trash",
            )
        try:
            timeout = float(self.settings.get("timeout") or DEFAULT_TIMEOUT)
        except (TypeError, ValueError):
            timeout = -1.0
        if timeout <= 0:
            raise SettingsError(
                f"timeout {self.settings.get('timeout')!r} is not a positive number of seconds",
                hint="set timeout in seconds, e.g. 30",
            )
        missing = [n for n in ("consumer_key", "consumer_secret") if not self._secrets.get(n)]
        if missing:
            raise SettingsError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set",
                hint="create a REST API key with read/write permissions in WooCommerce >"
                " Settings > Advanced > REST API",
            )
        self.api = StoreApi(
            self.store_url,
            self._secrets["consumer_key"].strip(),
            self._secrets["consumer_secret"].strip(),
            timeout=timeout,
            scrub=self._scrub,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"WooCommerceConnector({self.store_url!r}, deleted={self.deleted!r})"

    def close(self) -> None:
        self.api.close()

    # ---- the contract -----------------------------------------------------

    def check(self) -> str:
        answer = self.api.get("/products", {"per_page": 1}, what="counting products")
        count = total(answer)
        counted = f"{count} products" if count is not None else "products listed"
        return f"WooCommerce store {self.store_url}: REST v3, {counted}"

    def find(self, key: str) -> Bound | None:
        """The product carrying ``key`` in its meta, found by the key's product
        code as SKU (WooCommerce cannot filter by meta): a variable product's
        parent SKU, or a simple product's SKU when it is the product code.
        Other products are found by their listing (:meth:`find_listing`)."""
        code = product_code(key)
        if not code:
            return None
        product = products_by_sku(self.api, [code]).get(code)
        if product is None or key_of(product) != key:
            return None
        return self._bound_of(product)

    def find_listing(self, listing: Listing) -> Bound | None:
        """The store's product a push of ``listing`` would update (by its SKUs,
        as a push looks it up), or None when it would create one."""
        if listing_problem(listing):
            return None
        job = Job(listing, None, WRITE)
        resolve(self.api, [job])
        if job.product_id is None:
            return None
        found = self.api.get(f"/products/{job.product_id}", what="reading a product")
        return self._bound_of(found.body)

    def push(self, items: Sequence[PushItem]) -> list[Outcome]:
        if not items:
            return []
        jobs: list[Job | None] = []
        for item in items:
            action = _action(item)
            if action is None:
                jobs.append(None)
                continue
            job = Job.of(item, action)
            problem = listing_problem(item.listing)
            archived_known = action == ARCHIVE and job.product_id is not None
            if problem and not archived_known:
                job.fail(problem)
            jobs.append(job)
        live = [j for j in jobs if j is not None and not j.failed]
        trash = [j for j in live if j.action == ARCHIVE and self.deleted == "trash"]
        self._products([j for j in live if j not in trash])
        self._trash(trash)
        for job in live:
            if job.failed or job.product_id is None or not job.listing.options:
                continue
            if job.action in (WRITE, STOCK):
                push_variations(self.api, job, stock_only=job.action == STOCK)
        outcomes = [
            job.outcome() if job is not None else Outcome(item.listing.key, bound=item.bound)
            for item, job in zip(items, jobs, strict=True)
        ]
        log_requests(self.api, len(outcomes), sum(1 for o in outcomes if not o.confirmed))
        return outcomes

    # ---- products -----------------------------------------------------------

    def _entry(self, job: Job) -> dict[str, Any] | None:
        """The job's products-batch item (without ``id``); None: none needed."""
        listing = job.listing
        if job.action == WRITE:
            tags = [{"name": t} for t in listing.tags]
            return product_body(listing, PUBLISH, tags)
        if job.action == ARCHIVE:
            return {"status": "draft"} if job.product_id is not None else None
        if listing.options:
            return None  # a variable product's stock is its variations'
        (only,) = listing.variants
        return stock(only) if job.stock.get(only.sku) != only.qty else None

    def _products(self, jobs: Sequence[Job]) -> None:
        for _ in range(ROUNDS):
            pending = [j for j in jobs if not j.failed and not j.written]
            if not pending:
                return
            resolve(self.api, [j for j in pending if j.claim or not j.looked_up])
            ready: list[Job] = []
            for job in pending:
                if job.failed:
                    continue
                if job.claim is None and (job.product_id is not None or job.looked_up):
                    if self._entry(job) is None:
                        job.written = True  # nothing to send: unchanged stock, no product
                    elif job.product_id is not None or job.action == WRITE:
                        ready.append(job)
            for start in range(0, len(ready), BATCH_LIMIT):
                self._send_products(ready[start : start + BATCH_LIMIT])
        for job in jobs:
            if not job.failed and not job.written:
                job.fail(f"the store did not save the product after {ROUNDS} rounds", False)

    def _send_products(self, chunk: list[Job]) -> None:
        for attempt in range(RESENDS + 1):
            creates = [j for j in chunk if j.product_id is None]
            updates = [j for j in chunk if j.product_id is not None]
            body: dict[str, Any] = {}
            if creates:
                body["create"] = [self._entry(j) for j in creates]
            if updates:
                body["update"] = [{"id": j.product_id, **(self._entry(j) or {})} for j in updates]
            what = f"sending a batch of {len(chunk)} products"
            try:
                answer = self.api.post("/products/batch", body, what=what)
                break
            except AnswerLost as exc:
                if attempt == RESENDS:
                    raise
                log.warning("woocommerce: %s; looking the new products up and sending again", exc)
                resolve(self.api, creates, lost=True)
                chunk = [j for j in chunk if not j.failed]
                if not chunk:
                    return
        answered = answer.body if isinstance(answer.body, Mapping) else {}
        self._read(answered.get("create"), creates, created=True)
        self._read(answered.get("update"), updates, created=False)

    def _read(self, raw: Any, sent: list[Job], *, created: bool) -> None:
        if not sent:
            return
        results = [r for r in raw if isinstance(r, Mapping)] if isinstance(raw, list) else []
        if len(results) != len(sent):
            for job in sent:
                job.fail(
                    f"the store's answer lists {len(results)} results for {len(sent)} products",
                    permanent=False,
                )
            return
        for job, result in zip(sent, results, strict=True):
            error = result.get("error")
            if isinstance(error, Mapping):
                self._refused(job, error, created=created)
            elif isinstance(result.get("id"), int) and result["id"] > 0:
                job.product_id = result["id"]
                job.written = True
                job.fresh = created
                if job.action in (WRITE, STOCK) and not job.listing.options:
                    job.confirm_stock(job.listing.variants[0])
            else:
                job.fail("the store answered without the product's id", permanent=False)

    def _refused(self, job: Job, error: Mapping[str, Any], *, created: bool) -> None:
        code = str(error.get("code") or "")
        data = error.get("data") if isinstance(error.get("data"), Mapping) else {}
        holder = data.get("resource_id") if isinstance(data, Mapping) else None
        words = said(error)
        if created and code == "product_invalid_sku" and isinstance(holder, int) and holder:
            job.claim = (holder, words)  # adopted next round, if it is ours to take
            return
        if not created and code in GONE:
            log.info(
                "woocommerce: product %s of %s is gone; looking it up", job.product_id, job.key
            )
            job.forget()
            if job.action == STOCK:
                job.action = WRITE
            return
        if code == "product_invalid_sku":
            sku = job.listing.variants[0].sku if not job.listing.options else None
            words += f" (sku {sku})" if sku else ""
        status = error_status(error)
        job.fail(words, permanent=status is None or status < 500)

    # ---- archived in trash ----------------------------------------------------

    def _trash(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        resolve(self.api, [j for j in jobs if j.product_id is None])
        for job in jobs:
            if job.failed or job.product_id is None:
                continue  # a product the store never had stays out of it
            answer = self._delete(job.product_id)
            if answer.code == "woocommerce_rest_trash_not_supported":
                job.fail(f"{said(answer.body)} (the store keeps no trash: set deleted to draft)")

    def _delete(self, product_id: int) -> Answer:
        """DELETE without force: the trash. Sent again after a lost answer,
        since trashing twice is answered ``already_trashed``."""
        for attempt in range(RESENDS + 1):
            try:
                return self.api.delete(
                    f"/products/{product_id}",
                    what=f"moving product {product_id} to the trash",
                    handled=TRASH_HANDLED,
                )
            except AnswerLost as exc:
                if attempt == RESENDS:
                    raise
                log.warning("woocommerce: %s; sending it again", exc)
        raise AssertionError("unreachable")

    # ---- reading back ---------------------------------------------------------

    def _bound_of(self, product: Any) -> Bound | None:
        if not isinstance(product, Mapping) or not isinstance(product.get("id"), int):
            return None
        pid = product["id"]
        if product.get("type") != "variable":
            sku = str(product.get("sku") or "")
            stocked = _stocked(product)
            ids = {sku: str(pid)} if sku else {}
            return Bound(
                str(pid), ids, dict(ids), {sku: stocked} if sku and stocked is not None else {}
            )
        variants: dict[str, str] = {}
        levels: dict[str, int] = {}
        for variation in variations_of(self.api, pid):
            sku = str(variation.get("sku") or "")
            if sku and isinstance(variation.get("id"), int):
                variants[sku] = str(variation["id"])
                stocked = _stocked(variation)
                if stocked is not None:
                    levels[sku] = stocked
        return Bound(str(pid), variants, dict(variants), levels)


def _stocked(resource: Mapping[str, Any]) -> int | None:
    if resource.get("manage_stock") is not True:
        return None
    quantity = resource.get("stock_quantity")
    return quantity if isinstance(quantity, int) else None
