"""The catalogue read back: a change feed, listings and single records.

The change feed. Every write of a product or customer (insert, update,
soft-delete, re-activation; ``hub.store``) stamps the row's ``change_seq``
with a number from the client's counter for that stream, and a reader pages
by ``change_seq > cursor``. For that to never skip a row, numbers must
follow commit order: a row committed later must never carry a smaller
number than one a reader has already passed. So the numbers are drawn with
``take_numbers``, an upsert of the counter row that locks it until the
writing transaction commits: a second writer of the same client and stream
waits at that statement until the first has committed, and then draws
larger numbers. A page draws its numbers once, after deciding what it will
write and before writing it, so each row is written once with its number
(no second pass over the rows) and a page costs one extra statement; a
page with nothing to write (the unchanged resync) draws nothing. Writers of
different clients, or of one client's other stream, lock different counter
rows and never wait on each other. On SQLite the single writer serialises
transactions anyway.

A row appears in the feed at its last change only: a row changed twice
since a cursor is returned once, as it is now; a soft-deleted row is a
tombstone (its canonical data null). Cursors are opaque to callers:
base64url of a small JSON holding the stream and the last number returned,
so a products cursor is refused by the customers feed.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from hub.models import Customer, Product, Source, Variant

_MODELS: dict[str, type[Product] | type[Customer]] = {"products": Product, "customers": Customer}
_ONE = {"products": "product", "customers": "customer"}

_TAKE = text(
    "INSERT INTO change_counters (client_id, stream, value) VALUES (:client, :stream, :n) "
    "ON CONFLICT (client_id, stream) DO UPDATE "
    "SET value = change_counters.value + excluded.value RETURNING value"
)


class CursorError(ValueError):
    """A feed cursor that this feed did not give out."""


def take_numbers(
    session: Session, client_id: int, stream: str, sizes: tuple[int, int, int]
) -> tuple[range, range, range]:
    """Consecutive change numbers for three groups of writes, in order.

    One statement, and none when there is nothing to number; from it to the
    commit the client's counter row for ``stream`` stays locked (see the
    module's docstring).
    """
    total = sum(sizes)
    if not total:
        return range(0), range(0), range(0)
    last = session.execute(_TAKE, {"client": client_id, "stream": stream, "n": total}).scalar_one()
    start = int(last) - total + 1
    a, b = start + sizes[0], start + sizes[0] + sizes[1]
    return range(start, a), range(a, b), range(b, b + sizes[2])


def encode_cursor(stream: str, seq: int) -> str:
    raw = json.dumps({"s": stream, "n": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(stream: str, cursor: str | None) -> int:
    """The change number a cursor stands for (0: from the start)."""
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        seq, of = body["n"], body["s"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise CursorError(
            "after: not a cursor this feed gave (pass the 'next' of an earlier answer)"
        ) from None
    if of != stream:
        raise CursorError(f"after: a cursor of the {of} feed, not of {stream}")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise CursorError(
            "after: not a cursor this feed gave (pass the 'next' of an earlier answer)"
        )
    return seq


def _code(row: Product | Customer) -> str:
    return row.source_product_code if isinstance(row, Product) else row.source_customer_code


def item(stream: str, row: Product | Customer, source_code: str) -> dict[str, Any]:
    """A record as the feed and listings show it; a soft-deleted one is a tombstone."""
    deleted = row.deleted_at is not None
    return {
        "source": source_code,
        "code": _code(row),
        "deleted": deleted,
        "changed_at": row.updated_at.isoformat(),
        _ONE[stream]: None if deleted else row.data,
    }


def _rows(stream: str) -> Select[tuple[Any, str]]:
    model = _MODELS[stream]
    return select(model, Source.code).join(Source, Source.id == model.source_id)


def feed(
    session: Session, client_id: int, stream: str, after: str | None, limit: int
) -> dict[str, Any]:
    """Up to ``limit`` records changed after the cursor, in change order,
    with the cursor to read on from (``next``) and whether more are waiting."""
    model = _MODELS[stream]
    seq = decode_cursor(stream, after)
    rows = session.execute(
        _rows(stream)
        .where(model.client_id == client_id, model.change_seq > seq)
        .order_by(model.change_seq)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        seq = int(rows[-1][0].change_seq)
    return {
        "items": [item(stream, row, code) for row, code in rows],
        "next": encode_cursor(stream, seq),
        "more": more,
    }


def listing(
    session: Session,
    client_id: int,
    stream: str,
    *,
    source: str | None = None,
    code: str | None = None,
    active: bool | None = None,
    changed_since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A client's records by source and code, filtered: ``code`` is a
    record's code or, for products, the SKU of one of its variants."""
    model = _MODELS[stream]
    query = _rows(stream).where(model.client_id == client_id)
    if source is not None:
        query = query.where(Source.code == source)
    if code is not None:
        query = query.where(_code_matches(stream, client_id, code))
    if active is not None:
        live = model.active.is_(True) & model.deleted_at.is_(None)
        query = query.where(live if active else ~live)
    if changed_since is not None:
        query = query.where(model.updated_at >= changed_since)
    key = Product.source_product_code if stream == "products" else Customer.source_customer_code
    rows = session.execute(query.order_by(Source.code, key).limit(limit)).all()
    return [item(stream, row, source_code) for row, source_code in rows]


def _code_matches(stream: str, client_id: int, code: str) -> Any:
    if stream == "customers":
        return Customer.source_customer_code == code
    by_sku = select(Variant.product_id).where(Variant.client_id == client_id, Variant.sku == code)
    return (Product.source_product_code == code) | Product.id.in_(by_sku)


def one(session: Session, client_id: int, stream: str, code: str) -> dict[str, Any] | None:
    """One record by its code (for products also by any variant's SKU); a
    code found in several sources gives the first source's record."""
    found = listing(session, client_id, stream, code=code, limit=1)
    return found[0] if found else None
