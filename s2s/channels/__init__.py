"""Sales channels' order webhooks: signature checks and the canonical order.

A webhook is trusted only when its signature is right, so the checks are
constant-time and never raise: a bad or missing header is simply False, and
the caller answers 401 without learning anything more.

The transforms turn a channel's own order JSON (Shopify's `orders/create`
webhook body; WooCommerce's `order.created` body, the WC REST v3 order) into
the canonical order of canonical-model.md, which `hub.schemas.load_order`
validates. They are pure: no I/O, nothing looked up.

Money rules, because an ERP invoice is built from these figures and
recomputes its totals (canonical-model.md "Prices"):

- Every amount is read as a Decimal from the channel's string, never through
  a float, and never rounded before the arithmetic is done.
- A line's `price` is per unit, ex tax and ex discount; its `total_discount`
  is the discount on the whole line, ex tax. The ERP's line net is
  `qty * price - total_discount`, so that is what must equal the ex-tax
  amount the channel charged for the line.
- Figures worked out here (a per-unit price from a line total, anything with
  tax taken out) keep 4 decimal places, the hub's own precision: rounding
  100.00 / 3 to 33.33 would put 99.99 on the invoice. Figures copied from
  the channel (tax amounts, shipping, the order's discount summary) are
  rounded to cents.
- Tax is taken out of a tax-inclusive Shopify line in proportion: the line's
  tax lines give the tax the channel charged on what the customer actually
  paid (after discounts), so the ex-tax share of that amount is applied to
  both the unit price and the discount. Subtracting the tax per unit from
  the unit price is the same thing on an undiscounted line, and wrong on a
  discounted one, because the tax was charged on the discounted amount.
- Shipping has no discount field in the canonical model, so a shipping
  discount is taken off the shipping price.
- The order's `total_discount` is only the channel's summary (the ERP
  mappings never subtract it again); it is reported ex tax like the lines.

Anything malformed raises `ChannelPayloadError` whose message names the
payload field (`line_items[2].price "abc" is not a number`), so an operator
can find it in the channel's JSON. A line without a SKU is kept, not
dropped: `load_order` refuses it by name, which is better than raising an
order short of one line.

Laid out as `signatures`, `payload` (reading the JSON: the maps' scalar
vocabulary, `mappings.scalars`, plus exact money), `shopify` and
`woocommerce`; everything is imported from `s2s.channels` itself.
"""

from s2s.channels.payload import ChannelPayloadError
from s2s.channels.shopify import shopify_order
from s2s.channels.signatures import (
    SIGNATURE_HEADERS,
    WEBHOOK_ID_HEADERS,
    sign_shopify,
    sign_woocommerce,
    verify_shopify,
    verify_woocommerce,
)
from s2s.channels.woocommerce import woocommerce_order

__all__ = [
    "SIGNATURE_HEADERS",
    "WEBHOOK_ID_HEADERS",
    "ChannelPayloadError",
    "shopify_order",
    "sign_shopify",
    "sign_woocommerce",
    "verify_shopify",
    "verify_woocommerce",
    "woocommerce_order",
]
