"""What the channel acts of ``s2s demo`` share (Shopify, WooCommerce): a push
shown as the CLI shows it, the hub's own view of what a store should hold,
the store's refusals, and the ERP's staging table for the loop's order."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from sqlalchemy import create_engine, delete, func, select, text, update

from hub import pushes
from hub.db import session_scope
from hub.models import Channel, ChannelProduct, Product, PushRun, Source, Variant
from s2s.cli.common import flat
from s2s.cli.push import problems_table, push_table, wait_for_push
from s2s.demo_acts import Stage
from workers.pushing import start_push


def forget_earlier_store(s: Any, channel: Channel) -> None:
    """A demo run again in the same directory meets a new, empty emulated
    store: what the hub recorded of the last run's store (its ids, its
    cursor, a push cut short) no longer describes it, so it is dropped."""
    s.execute(delete(ChannelProduct).where(ChannelProduct.channel_id == channel.id))
    s.execute(
        update(PushRun)
        .where(PushRun.channel_id == channel.id, PushRun.status == pushes.ACTIVE)
        .values(status=pushes.FAILED, lock_key=None, error="the demo started again")
    )
    channel.push_cursor = 0
    channel.push_wanted_at = None


def push(stage: Stage, channel_id: int, title: str) -> PushRun:
    """One push through the worker, as ``s2s push --wait`` runs it (its
    error, if any, whole in the table or under it)."""
    result = start_push(channel_id, requested_by="demo")
    stage.console.print(f"  push {result.run.id}")
    run = wait_for_push(result.run.id, timeout=900)
    stage.console.print(push_table([run], title=title))
    return run


def active_products(client_id: int) -> int:
    """The client's products a store carrying every active product should show."""
    with session_scope() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Product)
                .where(
                    Product.client_id == client_id,
                    Product.deleted_at.is_(None),
                    Product.active.is_(True),
                )
            )
            or 0
        )


def keys_of(source_id: int, skus: list[str]) -> set[str]:
    """The store keys (``<source>:<product code>``) of the products holding ``skus``."""
    with session_scope() as s:
        rows = s.execute(
            select(Source.code, Product.source_product_code)
            .join(Product, Product.source_id == Source.id)
            .join(Variant, Variant.product_id == Product.id)
            .where(Variant.source_id == source_id, Variant.sku.in_(skus))
        ).all()
    return {f"{source}:{code}" for source, code in rows}


def refusals(stage: Stage, channel_id: int, key: str | None = None) -> list[dict[str, Any]]:
    """Print the channel's problems: ``key``'s in full, as ``s2s channel
    problems`` shows them, the others by reason (the variant named in a reason
    left out, so that alike reasons count together), every reason whole."""
    with session_scope() as s:
        channel = s.get(Channel, channel_id)
        assert channel is not None
        found = pushes.problems(s, channel, limit=100_000)
    shown = [p for p in found if p["key"] == key]
    if shown:
        stage.console.print(problems_table(shown, title="problems"))
    reasons: dict[str, list[str]] = {}
    for p in found:
        if p["key"] != key:
            reason = re.sub(r"variant [^:]+: ", "a variant: ", flat(p["error"]))
            reasons.setdefault(reason, []).append(f"{p['source']}:{p['code']}")
    for reason, products in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        # The store's words and codes come from outside: literal, never markup.
        stage.console.print(
            Text.assemble(
                (f"  {len(products)} products not in the store", "yellow"),
                f" (e.g. {products[0]}): {reason}",
            )
        )
    return found


def staged(erp_url: str, code: str) -> int:
    """How many times the ERP's staging table holds the order (the loop closes at 1)."""
    engine = create_engine(erp_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM s2s_order WHERE channel_order_code = :code"),
                    {"code": code},
                ).scalar_one()
            )
    finally:
        engine.dispose()
