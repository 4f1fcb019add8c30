"""Orders from channels and the API: `OrderSchema`, and its fast path for valid orders.

Unknown keys are an error here (RAISE), in the order and in every object
inside it, so a misspelt "total_discounts" cannot silently drop a discount
from an order that is about to be invoiced.

Why a fast path: order intake over HTTP is CPU-bound (about 1,000-1,500
orders/s on one core of the API process), and marshmallow's load of one
order was its largest single cost: 133 us for a Shopify order after the
connector's transform (3 line items, customer, both addresses, a shipping
line, four meta entries) and 76 us for the bench's canonical API order
(3 lines). `load_order` first tries `fast_order`, a plain-Python walk that
hub/schemas/order_fast.py derives from `OrderSchema`'s own fields, calling
the same coercers and finishers with the same defaults: 20 us and 12 us
for the same two orders (timeit, best of 7 runs on the loaded development
machine). It answers only for orders it is sure are valid; every other
order goes through marshmallow as before, so refusals, their messages and
their paths are marshmallow's alone. tests/property/test_order_loader.py
holds the two ways equal, tests/unit/test_order_fast.py holds the fast
path taken for those two orders.
"""

from __future__ import annotations

from typing import Any, Final

from marshmallow import RAISE

from hub.schemas.customers import AddressSchema
from hub.schemas.fields import Coerced, ListOf, MetaSchema, Strict, load_with, nested
from hub.schemas.lists import finish_meta
from hub.schemas.order_fast import FastLoad, fast_loader
from hub.schemas.scalars import (
    Errors,
    coerce_code,
    coerce_datetime,
    coerce_instruction,
    coerce_order_qty,
    coerce_price,
    coerce_rate,
    coerce_text,
)


class TaxLineSchema(Strict):
    error_messages = {"type": "a tax line must be an object"}
    code = Coerced(coerce_text, load_default=None)
    title = Coerced(coerce_text, load_default=None)
    price = Coerced(coerce_price, load_default=0.0)
    rate = Coerced(coerce_rate, load_default=None)


class LineItemSchema(Strict):
    error_messages = {"type": "a line item must be an object"}
    sku = Coerced(coerce_code, required=True)
    title = Coerced(coerce_text, load_default=None)
    qty = Coerced(coerce_order_qty, required=True)
    price = Coerced(coerce_price, required=True)
    total_discount = Coerced(coerce_price, load_default=0.0)
    tax_lines = ListOf(TaxLineSchema, item_message=TaxLineSchema.error_messages["type"])


class ShippingLineSchema(Strict):
    error_messages = {"type": "a shipping line must be an object"}
    title = Coerced(coerce_text, load_default=None)
    price = Coerced(coerce_price, load_default=0.0)
    tax_lines = ListOf(TaxLineSchema, item_message=TaxLineSchema.error_messages["type"])


class OrderCustomerSchema(Strict):
    error_messages = {"type": "customer must be an object"}
    source_customer_code = Coerced(coerce_text, load_default=None)
    channel_customer_code = Coerced(coerce_text, load_default=None)
    first_name = Coerced(coerce_text, load_default=None)
    last_name = Coerced(coerce_text, load_default=None)
    email = Coerced(coerce_text, load_default=None)


class OrderSchema(Strict):
    """An order from a channel (canonical-model.md "Order")."""

    error_messages = {"type": "an order must be an object"}
    channel_order_code = Coerced(coerce_code, required=True)
    channel = Coerced(coerce_text, load_default=None)
    instruction = Coerced(coerce_instruction, load_default="add_order")
    ordered_date = Coerced(coerce_datetime, load_default=None)
    notes = Coerced(coerce_text, load_default=None)
    customer = nested(OrderCustomerSchema, "customer must be an object")
    billing_address = nested(AddressSchema, "billing_address must be an object")
    shipping_address = nested(AddressSchema, "shipping_address must be an object")
    line_items = ListOf(
        LineItemSchema,
        required=True,
        min_items=1,
        min_message="an order needs at least one line item",
        unknown=RAISE,
        item_message=LineItemSchema.error_messages["type"],
    )
    shipping_lines = ListOf(
        ShippingLineSchema, unknown=RAISE, item_message=ShippingLineSchema.error_messages["type"]
    )
    total_discount = Coerced(coerce_price, load_default=0.0)
    meta = ListOf(
        MetaSchema,
        finish=finish_meta,
        unknown=RAISE,
        item_message=MetaSchema.error_messages["type"],
    )


_ORDER_SCHEMA: Final = OrderSchema()

# The valid order exactly as `OrderSchema().load` gives it, or None when unsure.
fast_order: Final[FastLoad] = fast_loader(_ORDER_SCHEMA)


def load_order(raw: Any) -> tuple[dict[str, Any] | None, Errors]:
    """Validate an order from a channel or the API: (order, []) or (None, errors).

    The fast path answers for the orders it is sure of; marshmallow for the rest.
    """
    order = fast_order(raw)
    if order is not None:
        return order, []
    return load_with(_ORDER_SCHEMA, raw)
