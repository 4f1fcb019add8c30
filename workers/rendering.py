"""A hub product as one channel should show it, and what of it must be sent.

Rendering is where a channel's settings meet the canonical product: the
price tier that is the price and the one that is the compare-at price, the
warehouses whose quantities make the stock, which products the store
carries. It is pure (no I/O), so the push task, the preview of a push and
the tests render alike.

A rendered listing hashes in two parts: everything but stock
(``product_hash``) and the stock alone (``stock_hash``). The binder keeps
both as the store confirmed them, so a product whose listing is unchanged is
not sent, and a product whose stock alone changed is sent as stock (one
cheap inventory call for a whole batch) rather than as a whole product.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.channel import ACTIVE, ARCHIVED, Bound, Listing, ListingVariant, PushItem
from hub.models import ChannelProduct, Product
from workers.channels import ALL_ACTIVE

SKU_OPTION = "Variant"


class RenderError(ValueError):
    """A product the hub cannot show on this channel; the message names the
    variant and the field (a missing price in the chosen tier)."""


def key_of(source_code: str, product_code: str) -> str:
    """The product's identity in the store: unique within a client, stable
    across pushes (a source and its ERP's product code)."""
    return f"{source_code}:{product_code}"


def _field(data: Mapping[str, Any], name: str) -> Any:
    """A product's field, else its meta value by key (case-insensitive)."""
    if name in data:
        return data[name]
    for entry in data.get("meta") or []:
        if str(entry.get("key", "")).lower() == name.lower():
            return entry.get("value")
    return None


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(value, bool) or isinstance(wanted, bool):
        truthy = {"true", "1", "yes", "y"}
        return (str(value).lower() in truthy) == (str(wanted).lower() in truthy)
    return value is not None and str(value).strip().lower() == str(wanted).strip().lower()


def carried(data: Mapping[str, Any], carries: Any) -> bool:
    """Whether the channel sells this (active) product, by its ``carries`` setting."""
    if carries in (None, ALL_ACTIVE):
        return True
    (name, wanted), *_ = dict(carries).items()
    return _same(_field(data, name), wanted)


def _money(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return str(amount.quantize(Decimal("0.01")))


def _tier(variant: Mapping[str, Any], tier: str) -> str | None:
    for entry in variant.get("price_tiers") or []:
        if str(entry.get("tier", "")).lower() == tier.lower():
            return _money(entry.get("price"))
    if tier.lower() == "retail":
        return _money(variant.get("price"))
    return None


def _stock(variant: Mapping[str, Any], warehouses: list[str]) -> int | None:
    if not warehouses:
        qty = variant.get("qty")
        return None if qty is None else max(int(qty), 0)
    wanted = {w.lower() for w in warehouses}
    total = 0
    for entry in variant.get("qty_availability") or []:
        if str(entry.get("description", "")).lower() in wanted and entry.get("qty") is not None:
            total += max(int(entry["qty"]), 0)
    return total


def _options(data: Mapping[str, Any]) -> tuple[str, ...]:
    named = sorted(data.get("options") or [], key=lambda o: o.get("position") or 0)
    return tuple(str(o.get("name")) for o in named if o.get("name"))[:3]


def _variant(
    variant: Mapping[str, Any], settings: Mapping[str, Any], options: int
) -> ListingVariant:
    sku = str(variant.get("sku") or "")
    tier = str(settings.get("price_tier") or "retail")
    price = _tier(variant, tier)
    if price is None:
        raise RenderError(f"variant {sku}: price: no price in the channel's tier {tier!r}")
    compare_tier = settings.get("compare_at_tier")
    compare = _tier(variant, str(compare_tier)) if compare_tier else None
    values = tuple(str(variant.get(f"option{i}") or "") for i in range(1, options + 1))
    grams = variant.get("grams")
    return ListingVariant(
        sku=sku,
        price=price,
        compare_at_price=compare,
        qty=_stock(variant, list(settings.get("warehouses") or [])),
        options=values,
        barcode=variant.get("barcode") or None,
        grams=int(grams) if grams is not None else None,
    )


def render(
    data: Mapping[str, Any], key: str, settings: Mapping[str, Any], *, status: str = ACTIVE
) -> Listing:
    """The listing of a product's canonical ``data`` for a channel's settings."""
    options = _options(data)
    variants = tuple(
        _variant(v, settings, len(options))
        for v in sorted(data.get("variants") or [], key=lambda v: str(v.get("sku") or ""))
    )
    if not variants:
        raise RenderError("variants: a product needs at least one variant")
    if not options and len(variants) > 1:
        # Several variants and no option names (the SQL template maps none):
        # a store tells variants apart by option values, so each is offered
        # by its SKU under one option, rather than the product being refused.
        options = (SKU_OPTION,)
        variants = tuple(replace(v, options=(v.sku,)) for v in variants)
    tags = tuple(sorted({t.strip() for t in str(data.get("tags") or "").split(",") if t.strip()}))
    return Listing(
        key=key,
        title=str(data.get("title") or ""),
        status=status,
        body_html=data.get("body_html") or None,
        vendor=data.get("vendor") or None,
        product_type=data.get("product_type") or None,
        tags=tags,
        options=options,
        variants=variants,
    )


def _digest(value: Any) -> str:
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def hashes(listing: Listing) -> tuple[str, str]:
    """(product hash without stock, stock hash) of a listing."""
    body = asdict(listing)
    for variant in body["variants"]:
        variant.pop("qty")
    stock = {v.sku: v.qty for v in listing.variants}
    return _digest(body), _digest(stock)


def whole(product_hash: str, stock_hash: str) -> str:
    """The hash a refusal is kept under: the whole listing, stock included."""
    return _digest([product_hash, stock_hash])


def bound_of(row: ChannelProduct | None) -> Bound | None:
    if row is None or not row.store_id:
        return None
    ids = row.ids or {}
    return Bound(
        product_id=row.store_id,
        variants=dict(ids.get("variants") or {}),
        items=dict(ids.get("items") or {}),
        stock={k: int(v) for k, v in (ids.get("stock") or {}).items() if v is not None},
    )


def ids_of(bound: Bound) -> dict[str, Any]:
    return {
        "variants": dict(bound.variants),
        "items": dict(bound.items),
        "stock": dict(bound.stock),
    }


@dataclass(frozen=True)
class Decision:
    """What a push does with one product of the feed.

    ``item`` is what to send (None: nothing); ``outcome`` names what is
    counted when nothing is sent (``unchanged``, ``skipped``) or what the
    send will be (``created``, ``updated``, ``stock``, ``archived``);
    ``error`` is the hub's own refusal (the product cannot be rendered).
    """

    product_id: int
    key: str
    outcome: str
    item: PushItem | None = None
    product_hash: str | None = None
    stock_hash: str | None = None
    error: str | None = None


def decide(
    product: Product,
    source_code: str,
    row: ChannelProduct | None,
    settings: Mapping[str, Any],
    *,
    force: bool = False,
    retry_refused: bool = False,
) -> Decision:
    """Render one product for the channel and compare it with what the store
    confirmed: send it whole, send its stock, archive it, or leave it."""
    key = key_of(source_code, product.source_product_code)
    bound = bound_of(row)
    live = product.deleted_at is None and product.active
    if live and not carried(product.data, settings.get("carries")):
        live = False
    if not live and bound is None:
        return Decision(product.id, key, "skipped")
    status = ACTIVE if live else ARCHIVED
    try:
        listing = render(product.data, key, settings, status=status)
    except RenderError as exc:
        if not live and bound is not None:
            listing = Listing(key=key, title=str(product.data.get("title") or key), status=status)
        else:
            return Decision(product.id, key, "refused", error=f"hub: {exc}")
    product_hash, stock_hash = hashes(listing)
    if (
        row is not None
        and row.refused_at is not None
        and row.refused_hash == whole(product_hash, stock_hash)
        and not (retry_refused or force)
    ):
        return Decision(product.id, key, "unchanged")
    if not live and row is not None and row.status == ARCHIVED and not force:
        return Decision(product.id, key, "unchanged")
    send_product = force or bound is None or row is None or row.product_hash != product_hash
    send_stock = not send_product and row is not None and row.stock_hash != stock_hash
    if not send_product and not send_stock:
        return Decision(product.id, key, "unchanged")
    if bound is None:
        outcome = "created"
    elif not live:
        outcome = "archived"
    elif send_product:
        outcome = "updated"
    else:
        outcome = "stock"
    item = PushItem(listing, bound, send_product=send_product, send_stock=send_stock)
    return Decision(product.id, key, outcome, item, product_hash, stock_hash)
