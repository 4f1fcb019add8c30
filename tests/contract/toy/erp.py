"""The toy ERP: stock and orders in memory, reached by name, guarded by a password."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToyErp:
    """One running toy ERP: what it stocks and the orders it holds by reference."""

    password: str
    stock: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, str] = field(default_factory=dict)

    def document_for(self, reference: str) -> str:
        """The order's document number, made once per reference."""
        return self.orders.setdefault(reference, f"TOY-{len(self.orders) + 1:06d}")


# The running toy ERPs by name: what a connector's ``erp`` setting reaches.
RUNNING: dict[str, ToyErp] = {}


@contextmanager
def serve(name: str, *, password: str, products: int = 5) -> Iterator[ToyErp]:
    """Run a toy ERP with ``products`` stock items until the block ends."""
    erp = ToyErp(
        password=password,
        stock=[
            {"code": f"TOY{n:03d}", "name": f"Toy {n}", "on_hand": n, "price": 10.0 * n}
            for n in range(1, products + 1)
        ],
    )
    RUNNING[name] = erp
    try:
        yield erp
    finally:
        RUNNING.pop(name, None)
