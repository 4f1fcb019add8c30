"""A variable product's variations: created, updated by id and deleted in
``POST /products/{id}/variations/batch`` calls (B3, B4: at most 100 items).

Which variations exist is known from the hub's ``Bound`` when it knows every
SKU; otherwise (an adopted product, a new SKU on a known one) the product's
variations are read once, so an existing variation is updated, never
created twice. Variations whose SKU the listing no longer has are deleted
(a batch delete is permanent, as the reference says; the variant left the
ERP's product). A batch whose answer was lost is resolved the same way: the
variations are read again and what the store made is updated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.channel import ListingVariant

from .inputs import stock, variation_body
from .jobs import Job
from .lookup import variations_of
from .rest import AnswerLost, StoreApi, error_status, said

log = logging.getLogger(__name__)

BATCH_LIMIT = 100
# Rounds of "read the store's variations, send what is left" per product.
ROUNDS = 3
# Times a batch is sent again after its answer was lost.
RESENDS = 2
# Codes of an update whose variation the store no longer has.
GONE = frozenset(
    {
        "woocommerce_rest_product_variation_invalid_id",
        "woocommerce_rest_invalid_id",
        "woocommerce_rest_product_invalid_id",
    }
)


@dataclass
class _Plan:
    creates: list[ListingVariant] = field(default_factory=list)
    updates: list[tuple[ListingVariant, int]] = field(default_factory=list)
    deletes: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.creates) + len(self.updates) + len(self.deletes)

    def chunks(self) -> list[_Plan]:
        """The plan in parts of at most BATCH_LIMIT items (creates, updates, deletes)."""
        out: list[_Plan] = []
        creates, updates, deletes = list(self.creates), list(self.updates), list(self.deletes)
        while creates or updates or deletes:
            room = BATCH_LIMIT
            part = _Plan(creates[:room])
            creates = creates[room:]
            room -= len(part.creates)
            part.updates, updates = updates[:room], updates[room:]
            room -= len(part.updates)
            part.deletes, deletes = deletes[:room], deletes[room:]
            out.append(part)
        return out


@dataclass
class _State:
    job: Job
    stock_only: bool
    done: set[str] = field(default_factory=set)
    extras: set[int] = field(default_factory=set)
    again: bool = False


def push_variations(api: StoreApi, job: Job, *, stock_only: bool) -> None:
    """Bring ``job``'s product's variations to the listing (or only their stock)."""
    assert job.product_id is not None
    state = _State(job, stock_only)
    if not stock_only and _must_list(job):
        _list(api, state)
    for _ in range(ROUNDS):
        plan = _plan(state)
        if not len(plan) or job.failed:
            return
        state.again = False
        for part in plan.chunks():
            _send(api, state, part)
        if not state.again:
            return
        _list(api, state)
    job.fail(
        f"the variations of product {job.product_id} were not all saved after {ROUNDS} rounds",
        permanent=False,
    )


def _must_list(job: Job) -> bool:
    if job.fresh or job.listed:
        return False
    return job.bound is None or any(v.sku not in job.variations for v in job.listing.variants)


def _list(api: StoreApi, state: _State) -> None:
    job = state.job
    assert job.product_id is not None
    wanted = {v.sku for v in job.listing.variants}
    job.variations = {}
    state.extras = set()
    for variation in variations_of(api, job.product_id):
        vid, sku = variation.get("id"), str(variation.get("sku") or "")
        if not isinstance(vid, int):
            continue
        if sku in wanted:
            job.variations.setdefault(sku, vid)
        else:
            state.extras.add(vid)
    job.listed = True


def _plan(state: _State) -> _Plan:
    job, plan = state.job, _Plan()
    for variant in job.listing.variants:
        if variant.sku in state.done:
            continue
        known = job.variations.get(variant.sku)
        if state.stock_only:
            if known is not None and job.stock.get(variant.sku) != variant.qty:
                plan.updates.append((variant, known))
        elif known is None:
            plan.creates.append(variant)
        else:
            plan.updates.append((variant, known))
    if not state.stock_only:
        wanted = {v.sku for v in job.listing.variants}
        plan.deletes = sorted(
            {vid for sku, vid in job.variations.items() if sku not in wanted} | state.extras
        )
    return plan


def _body(state: _State, part: _Plan) -> dict[str, Any]:
    listing = state.job.listing
    if state.stock_only:
        updates = [{"id": vid, **stock(v)} for v, vid in part.updates]
    else:
        updates = [{"id": vid, **variation_body(listing, v)} for v, vid in part.updates]
    body: dict[str, Any] = {}
    if part.creates:
        body["create"] = [variation_body(listing, v) for v in part.creates]
    if updates:
        body["update"] = updates
    if part.deletes:
        body["delete"] = part.deletes
    return body


def _send(api: StoreApi, state: _State, part: _Plan) -> None:
    job = state.job
    path = f"/products/{job.product_id}/variations/batch"
    what = f"sending {len(part)} variations of product {job.product_id}"
    for attempt in range(RESENDS + 1):
        try:
            answer = api.post(path, _body(state, part), what=what)
            break
        except AnswerLost as exc:
            if attempt == RESENDS:
                raise
            log.warning("woocommerce: %s; reading the variations and sending again", exc)
            _list(api, state)
            part = _replan(state, part)
            if not len(part):
                return
    body = answer.body if isinstance(answer.body, Mapping) else {}
    _read_creates(state, part.creates, body.get("create"))
    _read_updates(state, part.updates, body.get("update"))
    _read_deletes(state, part.deletes, body.get("delete"))


def _replan(state: _State, part: _Plan) -> _Plan:
    """The same chunk after the variations were read again: what the lost
    batch created is now updated by its id."""
    job, out = state.job, _Plan()
    for variant in part.creates:
        known = job.variations.get(variant.sku)
        if known is None:
            out.creates.append(variant)
        else:
            out.updates.append((variant, known))
    out.updates += [(v, job.variations.get(v.sku, vid)) for v, vid in part.updates]
    out.deletes = [d for d in part.deletes if d in state.extras or d in job.variations.values()]
    return out


def _results(raw: Any, count: int, state: _State, what: str) -> list[Mapping[str, Any]] | None:
    results = [r for r in raw if isinstance(r, Mapping)] if isinstance(raw, list) else []
    if len(results) != count:
        state.job.fail(
            f"the store's answer to {what} of product {state.job.product_id} lists"
            f" {len(results)} results for {count} items",
            permanent=False,
        )
        return None
    return results


def _refused(state: _State, variant: ListingVariant, error: Mapping[str, Any]) -> None:
    status = error_status(error)
    state.job.fail(f"variation SKU {variant.sku}: {said(error)}", status is None or status < 500)


def _read_creates(state: _State, sent: Sequence[ListingVariant], raw: Any) -> None:
    results = _results(raw, len(sent), state, "the variations created") if sent else []
    for variant, result in zip(sent, results or [], strict=True):
        error = result.get("error")
        if isinstance(error, Mapping):
            if str(error.get("code")) == "product_invalid_sku" and not state.job.listed:
                state.again = True  # maybe ours already: read the variations, then decide
            else:
                _refused(state, variant, error)
            continue
        if isinstance(result.get("id"), int):
            state.job.variations[variant.sku] = result["id"]
            state.job.confirm_stock(variant)
            state.done.add(variant.sku)


def _read_updates(state: _State, sent: Sequence[tuple[ListingVariant, int]], raw: Any) -> None:
    results = _results(raw, len(sent), state, "the variations updated") if sent else []
    for (variant, _vid), result in zip(sent, results or [], strict=True):
        error = result.get("error")
        if isinstance(error, Mapping):
            if str(error.get("code")) in GONE and not state.stock_only:
                state.job.variations.pop(variant.sku, None)
                state.again = True  # the variation is gone: created again next round
            else:
                _refused(state, variant, error)
            continue
        state.job.confirm_stock(variant)
        state.done.add(variant.sku)


def _read_deletes(state: _State, sent: Sequence[int], raw: Any) -> None:
    results = _results(raw, len(sent), state, "the variations deleted") if sent else []
    job = state.job
    for vid, result in zip(sent, results or [], strict=True):
        error = result.get("error")
        if isinstance(error, Mapping) and str(error.get("code")) not in GONE:
            status = error_status(error)
            job.fail(
                f"variation {vid} (no longer listed): {said(error)}", status is None or status < 500
            )
            continue
        state.extras.discard(vid)
        for sku in [s for s, v in job.variations.items() if v == vid]:
            job.variations.pop(sku)
            job.stock.pop(sku, None)
