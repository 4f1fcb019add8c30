"""The toy ERP's maps: importing this module registers them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mappings import Map, Row, const, register
from tests.contract.toy import KIND


def order_payload(order: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    customer = (order.get("customer") or {}).get("source_customer_code")
    return {
        "reference": order["channel_order_code"],
        "customer": customer or settings.get("default_customer_code"),
        "lines": [{"code": line["sku"], "qty": line["qty"]} for line in order["line_items"]],
    }


PRODUCTS: Final = register(
    Map(
        erp=KIND,
        erp_title="Toy ERP",
        stream="products",
        rows=(
            Row("code", "source_product_code", "One product per stock item"),
            Row("code", "source_variant_code", "Its one variant"),
            Row("name", "title", "The title"),
            const("Active", "product_active", "Active", "Every toy item is active"),
            Row("on_hand", "variants.qty", "Stock on hand"),
            Row("price", "variants.retail_price", "Selling price"),
            Row("code", "variants.sku", "The code orders are routed by"),
            const("true", "variants.inventory_management", True, "Stock is tracked"),
        ),
    )
)

ORDERS: Final = register(
    Map(
        erp=KIND,
        erp_title="Toy ERP",
        stream="orders",
        rows=(
            Row("reference", "channel_order_code", "Finds the order again"),
            Row("lines.code", "line_items.sku", "The stock item"),
            Row("lines.qty", "line_items.qty", "How many"),
        ),
        build=order_payload,
    )
)
