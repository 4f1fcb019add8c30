"""Setting known variants' stock: ``inventorySetQuantities``, absolute
quantities at the channel's location, up to 250 a call (the reference's
limit on input arrays).

The hub is the source of truth for these quantities, so no compare-and-swap
is asked for: ``ignoreCompareQuantity`` up to 2025-10, ``changeFromQuantity:
null`` on each quantity from 2026-01. From 2026-01 each call also carries an
``@idempotent`` key (required from 2026-04); a call sent again after a lost
answer keeps its key, so Shopify answers it from the first attempt.

Shopify sets all of a call's quantities or none. When it refuses some by
index, those are reported against their SKUs and the rest are sent again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import documents
from .graphql import AdminApi
from .inputs import TRANSIENT_CODES, version_stamp

PER_CALL = 250
# Rounds of "drop the refused quantities, send the rest" per call.
ROUNDS = 3


@dataclass(frozen=True)
class StockJob:
    """One quantity to set: for the batch's item ``owner``, a SKU's inventory item."""

    owner: int
    sku: str
    item_id: str
    quantity: int


@dataclass(frozen=True)
class StockRefusal:
    words: str
    permanent: bool


def _variables(
    api_version: str, jobs: Sequence[StockJob], location_id: str
) -> tuple[str, dict[str, Any]]:
    quantities: list[dict[str, Any]] = [
        {"inventoryItemId": j.item_id, "locationId": location_id, "quantity": j.quantity}
        for j in jobs
    ]
    data: dict[str, Any] = {"name": "available", "reason": "correction", "quantities": quantities}
    if version_stamp(api_version) < (2026, 1):
        data["ignoreCompareQuantity"] = True
        return documents.SET_STOCK, {"input": data}
    for quantity in quantities:
        quantity["changeFromQuantity"] = None
    return documents.SET_STOCK_IDEMPOTENT, {"input": data, "key": str(uuid.uuid4())}


def _index(error: Mapping[str, Any], count: int) -> int | None:
    """The quantity a userError names (``input.quantities.N...``), if it names one."""
    path = error.get("field")
    if not isinstance(path, list) or "quantities" not in path:
        return None
    at = path.index("quantities") + 1
    if at < len(path) and str(path[at]).isdigit() and int(path[at]) < count:
        return int(path[at])
    return None


def _refusal(job: StockJob, errors: Sequence[Mapping[str, Any]]) -> StockRefusal:
    said = "; ".join(str(e.get("message") or e.get("code") or "refused") for e in errors)
    paths = {".".join(str(p) for p in e.get("field") or []) for e in errors} - {""}
    where = f" ({', '.join(sorted(paths))})" if paths else ""
    permanent = any(str(e.get("code") or "") not in TRANSIENT_CODES for e in errors)
    return StockRefusal(f"stock of SKU {job.sku}: {said}{where}", permanent)


def _send(api: AdminApi, jobs: Sequence[StockJob], location_id: str) -> list[Mapping[str, Any]]:
    document, variables = _variables(api.api_version, jobs, location_id)
    data = api.repeatable("inventorySetQuantities", document, variables)
    payload = data.get("inventorySetQuantities") or {}
    errors = payload.get("userErrors") or []
    return [e for e in errors if isinstance(e, Mapping)]


def set_stock(api: AdminApi, jobs: Sequence[StockJob], location_id: str) -> dict[int, StockRefusal]:
    """Set every job's quantity; the refusals, by the job's position in ``jobs``."""
    refused: dict[int, StockRefusal] = {}
    for start in range(0, len(jobs), PER_CALL):
        pending = list(range(start, min(start + PER_CALL, len(jobs))))
        for _ in range(ROUNDS):
            if not pending:
                break
            errors = _send(api, [jobs[i] for i in pending], location_id)
            if not errors:
                pending = []
                break
            named: dict[int, list[Mapping[str, Any]]] = {}
            for error in errors:
                index = _index(error, len(pending))
                if index is not None:
                    named.setdefault(index, []).append(error)
            if not named:  # a refusal of the whole call
                refused.update({i: _refusal(jobs[i], errors) for i in pending})
                pending = []
                break
            refused.update({pending[n]: _refusal(jobs[pending[n]], e) for n, e in named.items()})
            pending = [p for n, p in enumerate(pending) if n not in named]
        for i in pending:
            refused[i] = StockRefusal(
                f"stock of SKU {jobs[i].sku}: not set; Shopify kept refusing the call", False
            )
    return refused
