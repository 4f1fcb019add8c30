"""The hub's canonical model: marshmallow schemas, coercion rules, change hash.

Two ways in, one set of rules:

- The marshmallow schemas (`ProductSchema`, `CustomerSchema`, `OrderSchema`
  …) are the documented model. They validate API input, and give every
  error message and path.
- `load_product` / `load_customer` are hand-written equivalents for the sync
  hot path (100,000 products per sync on a small machine), where marshmallow
  costs several times the whole rest of the pipeline. Order intake (a
  thousand and more orders a second over HTTP) takes a walk built from
  `OrderSchema`'s own fields (`order_fast`) that gives up at the first doubt,
  so marshmallow still answers every order it would refuse.

Both call the same scalar coercers (`coerce_*`, `tri_state`) and the same
list finishers (`finish_*`), so the rules live once; what is written twice is
only the walk over the structure, and a test holds the two walks equal on
varied inputs (`load_product(x) == load_product_via_schema(x)`).

The package is laid out by what it holds: `scalars` (the coercers),
`lists` (the finishers), `fields` (the marshmallow pieces), `loading` (the
fast walk), `products`, `customers`, `orders`, and `hashing` (the change
hash). Everything is imported from `hub.schemas` itself.

Rules worth knowing (canonical-model.md "Coercion"):

- Strings are stripped; blank is null; `"false"`, `"0"`, `""`, `"no"`, `"n"`
  are false.
- A number that does not parse makes the record invalid, with a message that
  names the field and the value. Thousands separators and decimal commas are
  refused rather than guessed at.
- Stock quantities are whole units: a fractional quantity ("12.5") is
  rounded *down* (12), because a channel sells whole units and rounding up
  would oversell; "12.0" is simply 12. Negative stock is stored as 0.
  Order quantities are stricter: they must be whole and at least 1, since
  silently changing what a customer ordered is worse than rejecting it.
- Prices are floats rounded to 4 places (no 8.000000000000001).
- Grams are rounded to the nearest whole gram; negative grams are an error.
- `tags` are comma-separated, stored sorted and de-duplicated; `meta` is
  sorted by key (keys unique regardless of case); `price_tiers` and
  `qty_availability` are sorted by tier / warehouse; `options` are at most
  three, sorted by position.
"""

from hub.schemas.customers import (
    ADDRESS_FIELDS,
    AddressSchema,
    CustomerSchema,
    load_customer,
    load_customer_via_schema,
)
from hub.schemas.fields import Coerced, ListOf, MetaSchema, flatten_errors
from hub.schemas.hashing import canonical_hash, stored_json
from hub.schemas.lists import (
    NATURAL_KEYS,
    finish_availability,
    finish_meta,
    finish_options,
    finish_tiers,
    finish_variants,
    label,
)
from hub.schemas.loading import Loaded, Spec
from hub.schemas.orders import (
    LineItemSchema,
    OrderCustomerSchema,
    OrderSchema,
    ShippingLineSchema,
    TaxLineSchema,
    load_order,
)
from hub.schemas.products import (
    OptionSchema,
    PriceTierSchema,
    ProductSchema,
    QtyAvailabilitySchema,
    VariantSchema,
    load_product,
    load_product_via_schema,
)
from hub.schemas.scalars import (
    CODE_MAX,
    INSTRUCTIONS,
    MAX_QTY,
    Action,
    Coerce,
    CoercionError,
    Errors,
    coerce_bool,
    coerce_code,
    coerce_datetime,
    coerce_grams,
    coerce_instruction,
    coerce_order_qty,
    coerce_position,
    coerce_price,
    coerce_qty,
    coerce_rate,
    coerce_required_text,
    coerce_tags,
    coerce_text,
    tri_state,
)

__all__ = [
    "ADDRESS_FIELDS",
    "CODE_MAX",
    "INSTRUCTIONS",
    "MAX_QTY",
    "NATURAL_KEYS",
    "Action",
    "AddressSchema",
    "Coerce",
    "Coerced",
    "CoercionError",
    "CustomerSchema",
    "Errors",
    "LineItemSchema",
    "ListOf",
    "Loaded",
    "MetaSchema",
    "OptionSchema",
    "OrderCustomerSchema",
    "OrderSchema",
    "PriceTierSchema",
    "ProductSchema",
    "QtyAvailabilitySchema",
    "ShippingLineSchema",
    "Spec",
    "TaxLineSchema",
    "VariantSchema",
    "canonical_hash",
    "coerce_bool",
    "coerce_code",
    "coerce_datetime",
    "coerce_grams",
    "coerce_instruction",
    "coerce_order_qty",
    "coerce_position",
    "coerce_price",
    "coerce_qty",
    "coerce_rate",
    "coerce_required_text",
    "coerce_tags",
    "coerce_text",
    "finish_availability",
    "finish_meta",
    "finish_options",
    "finish_tiers",
    "finish_variants",
    "flatten_errors",
    "label",
    "load_customer",
    "load_customer_via_schema",
    "load_order",
    "load_product",
    "load_product_via_schema",
    "stored_json",
    "tri_state",
]
