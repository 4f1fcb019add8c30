"""Finding the store's product for a listing the hub has no id for, so that a
push adopts what the store holds instead of creating a duplicate.

WooCommerce v3 cannot filter products by meta, so the hub's key cannot be
searched for; SKUs can. ``GET /products?sku=a,b,c`` is an exact match on a
comma list, and when ``sku`` is given core searches variations as well as
products (the v2/v3 controllers' ``prepare_objects_query`` sets
``post_type`` to ``product`` and ``product_variation``), answering a
variation in the product shape with ``type: "variation"`` and its
``parent_id``. So one lookup per 50 SKUs covers both: a listing is found by
the SKU its product carries (``inputs.parent_sku``: a simple product's
variant SKU, a variable product's product code) or, for a variable listing,
through the parent of the variations holding its variant SKUs (a variable
product the merchant made without a parent SKU, or one whose parent carries
none). After a write whose answer was lost, products still not found are
looked for among the newest ones by the key in their meta.

A product found is adopted when it carries the listing's key, or carries
no key and is of the listing's type (simple or variable): a merchant's own
product with the ERP's SKU becomes the hub's. One carrying another key, of
the other type, or a variation holding a simple listing's SKU is never taken
over: the listing is refused, naming the SKU and what holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .inputs import key_of, parent_sku, variable
from .jobs import Job
from .rest import StoreApi

log = logging.getLogger(__name__)

# SKUs or ids per lookup: a comma list in the query string, well under URL limits.
PER_CALL = 50
# Products the "newest products" scan reads after a lost answer.
NEWEST = 100


def _chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def products_by_sku(api: StoreApi, skus: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What holds each of ``skus`` in the store: a product, or a variation in
    the product shape (``type: "variation"`` with its ``parent_id``)."""
    wanted = sorted({s for s in skus if s})
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(wanted, PER_CALL):
        what = f"looking up {len(chunk)} SKUs"
        for product in api.get_all("/products", {"sku": ",".join(chunk)}, what=what):
            sku = str(product.get("sku") or "")
            if sku in chunk and product.get("id"):
                found.setdefault(sku, product)
    return found


def products_by_id(api: StoreApi, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    wanted = sorted(set(ids))
    found: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(wanted, PER_CALL):
        params = {"include": ",".join(str(i) for i in chunk), "status": "any"}
        for product in api.get_all("/products", params, what=f"reading {len(chunk)} products"):
            if isinstance(product.get("id"), int):
                found[product["id"]] = product
    return found


def variations_of(api: StoreApi, product_id: int) -> list[dict[str, Any]]:
    return api.get_all(
        f"/products/{product_id}/variations", what=f"reading the variations of product {product_id}"
    )


def consider(job: Job, product: Mapping[str, Any], sku: str | None) -> None:
    """Adopt ``product`` for ``job``, or refuse the listing when it is not ours to take."""
    theirs = key_of(product)
    kind = "variable" if variable(job.listing) else "simple"
    what = f"SKU {sku}" if sku else "its variations' SKUs"
    found = product.get("type")
    if found == "variation":
        job.fail(
            f"{what} is held by variation {product.get('id')} of product"
            f" {product.get('parent_id')} in the store, not by a {kind} product"
        )
        return
    if theirs == job.key or (theirs is None and found == kind):
        job.adopt(int(product["id"]))
        return
    held_by = f"product {product.get('id')} ({str(product.get('name') or '')!r})"
    if theirs is not None:
        job.fail(f"{what} is held by {held_by} in the store, which the hub pushed as {theirs}")
    else:
        job.fail(f"{what} is held by {held_by} in the store, a {found} product, not {kind}")


def _lookup_skus(job: Job) -> list[str]:
    own = parent_sku(job.listing)
    skus = [own] if own else []
    if variable(job.listing):
        skus += [v.sku for v in job.listing.variants]
    return skus


def resolve(api: StoreApi, jobs: Sequence[Job], *, lost: bool = False) -> None:
    """Find the store's product of each job without one; adopt or refuse it.

    ``lost``: the jobs were in a write whose answer was lost, so products the
    store made of them may carry no findable SKU yet: the newest products
    are read too, matched by the key in their meta.
    """
    claims = [j for j in jobs if j.claim is not None and not j.failed]
    if claims:
        _settle_claims(api, claims)
    todo = [j for j in jobs if j.product_id is None and not j.failed]
    if not todo:
        return
    rows = products_by_sku(api, {sku for j in todo for sku in _lookup_skus(j)})
    through: list[tuple[Job, int]] = []
    for job in todo:
        own = parent_sku(job.listing)
        if own and own in rows:
            consider(job, rows[own], own)
        elif variable(job.listing):
            parents = {
                int(row["parent_id"])
                for v in job.listing.variants
                if (row := rows.get(v.sku)) is not None
                and row.get("type") == "variation"
                and isinstance(row.get("parent_id"), int)
            }
            if len(parents) > 1:
                listed = ", ".join(str(p) for p in sorted(parents))
                job.fail(
                    f"its variations' SKUs are held by several products in the store ({listed})"
                )
            elif parents:
                through.append((job, parents.pop()))
    if through:
        holders = products_by_id(api, {parent for _, parent in through})
        for job, parent in through:
            if parent in holders:
                consider(job, holders[parent], None)
    if lost:
        missing = [j for j in todo if j.product_id is None and not j.failed]
        if missing:
            _newest(api, missing)
    for job in todo:
        job.looked_up = True


def _settle_claims(api: StoreApi, jobs: Sequence[Job]) -> None:
    """A create refused as a duplicate SKU names the product holding it
    (``data.resource_id``): adopt it when it is ours to take."""
    claimed = {j.claim[0] for j in jobs if j.claim is not None}
    found = products_by_id(api, claimed)
    for job in jobs:
        assert job.claim is not None
        resource_id, words = job.claim
        job.claim = None
        product = found.get(resource_id)
        if product is None:
            # Not a product: a variation (or something trashed) holds the SKU.
            job.fail(f"{words} (sku {parent_sku(job.listing)}, held by item {resource_id})")
            continue
        consider(job, product, parent_sku(job.listing))


def _newest(api: StoreApi, jobs: Sequence[Job]) -> None:
    answer = api.get(
        "/products",
        {"orderby": "id", "order": "desc", "per_page": NEWEST, "status": "any"},
        what="reading the newest products",
    )
    by_key = {j.key: j for j in jobs}
    for product in answer.body if isinstance(answer.body, list) else []:
        job = by_key.get(key_of(product) or "") if isinstance(product, Mapping) else None
        if job is not None and job.product_id is None and product.get("id"):
            log.info("woocommerce: %s found by its key after a lost answer", job.key)
            job.adopt(int(product["id"]))
