"""Faults a test switches on, and counts of what reached the shop; thread-safe.

Tests set them directly (``faults.fail_next = 2``) or through ``POST
/_faults`` with the keys of :meth:`Faults.snapshot`. The 5xx and 429 faults
answer before WordPress sees the request, as a host, proxy or CDN would
(core ``wc/v3`` has no rate limiter of its own).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

DEFAULT_REFUSAL_CODE = "woocommerce_rest_product_refused"
DEFAULT_REFUSAL_MESSAGE = "The store refused this product."


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    status: int = 400


class Faults:
    """Switches (``fail_next``, ``rate_limit_next``, ``drop_after_commit``, refusals), counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fail_next = 0
        self.fail_status = 503
        self.rate_limit_next = 0
        self.retry_after = 1
        self.drop_after_commit = 0
        self.refused: dict[str, Refusal] = {}
        self.requests = 0
        self.writes: Counter[str] = Counter()
        self.batches = 0
        self.failed = 0
        self.rate_limited = 0
        self.dropped = 0

    def refuse_sku(
        self,
        sku: str,
        code: str = DEFAULT_REFUSAL_CODE,
        message: str = DEFAULT_REFUSAL_MESSAGE,
        status: int = 400,
    ) -> None:
        """Writing a product or variation with this SKU fails with this error (nothing changes)."""
        with self._lock:
            self.refused[sku] = Refusal(code, message, status)

    def refusal(self, sku: str) -> Refusal | None:
        with self._lock:
            return self.refused.get(sku) if sku else None

    def take(self, name: str) -> bool:
        """Use up one of a ``*_next``/``drop_after_commit`` fault; True if one was left."""
        with self._lock:
            left = int(getattr(self, name))
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, int(getattr(self, name)) + n)

    def wrote(self, kind: str) -> None:
        """Count a write that took effect, e.g. ``product.created`` or ``variation.deleted``."""
        with self._lock:
            self.writes[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "fail_next": self.fail_next,
                "fail_status": self.fail_status,
                "rate_limit_next": self.rate_limit_next,
                "retry_after": self.retry_after,
                "drop_after_commit": self.drop_after_commit,
                "refused_skus": {
                    sku: {"code": r.code, "message": r.message, "status": r.status}
                    for sku, r in self.refused.items()
                },
                "requests": self.requests,
                "writes": dict(self.writes),
                "batches": self.batches,
                "failed": self.failed,
                "rate_limited": self.rate_limited,
                "dropped": self.dropped,
            }

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a ``POST /_faults`` body (switch keys as in :meth:`snapshot`)."""
        for sku, refusal in (spec.get("refused_skus") or {}).items():
            given = refusal if isinstance(refusal, dict) else {"message": str(refusal)}
            self.refuse_sku(
                sku,
                given.get("code", DEFAULT_REFUSAL_CODE),
                given.get("message", DEFAULT_REFUSAL_MESSAGE),
                int(given.get("status", 400)),
            )
        with self._lock:
            for key in (
                "fail_next",
                "fail_status",
                "rate_limit_next",
                "retry_after",
                "drop_after_commit",
            ):
                if key in spec:
                    setattr(self, key, int(spec[key]))
