"""The hub's canonical model: marshmallow schemas, coercion rules, change hash.

Two ways in, one set of rules:

- The marshmallow schemas (`ProductSchema`, `CustomerSchema`, `OrderSchema`
  …) are the documented model. They validate API input and order intake,
  where a few records a second is plenty.
- `load_product` / `load_customer` are hand-written equivalents for the sync
  hot path (100,000 products per sync on a small machine), where marshmallow
  costs several times the whole rest of the pipeline.

Both call the same scalar coercers (`coerce_*`, `tri_state`) and the same
list finishers (`finish_*`), so the rules live once; what is written twice is
only the walk over the structure, and a test holds the two walks equal on
varied inputs (`load_product(x) == load_product_via_schema(x)`).

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

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any, Final, Literal, NamedTuple

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing, post_load

Action = Literal["active", "delete", "ignore"]
Errors = list[tuple[str, str]]
Coerce = Callable[[Any, str], Any]

CODE_MAX: Final = 255
NATURAL_KEYS: Final = ("source_variant_code", "tier", "description", "key", "name")


class CoercionError(ValueError):
    """A value that breaks a rule; the message is the sentence a user reads."""


# --------------------------------------------------------------------------
# Scalar coercers: shared by the fast path and the marshmallow fields
# --------------------------------------------------------------------------

_TRUE: Final = frozenset({"true", "t", "1", "yes", "y", "on"})
_FALSE: Final = frozenset({"false", "f", "0", "", "no", "n", "off"})
_ACTIVE: Final = frozenset({"active", "true", "t", "1", "yes", "y"})
_DELETE: Final = frozenset({"delete", "false", "f", "0", "", "no", "n"})
_IGNORE: Final = frozenset({"ignore"})


def _shown(value: Any) -> str:
    s = value if isinstance(value, str) else repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def coerce_text(value: Any, name: str) -> str | None:
    """Stripped text; blank is null; numbers become their plain spelling."""
    if value is None:
        return None
    if value.__class__ is str or isinstance(value, str):
        if "\x00" in value:
            # PostgreSQL stores no NUL in text or JSONB: refused here, by
            # name, rather than failing the whole page's write later.
            raise CoercionError(f"{name} contains a NUL character, which cannot be stored")
        return str(value).strip() or None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise CoercionError(f'{name} "{_shown(value)}" is not text')
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            raise CoercionError(f'{name} "{_shown(value)}" is not text')
        if value == int(value):
            return str(int(value))
    return str(value)


def coerce_code(value: Any, name: str) -> str:
    """A required key (product, variant, customer code, SKU): text, at most 255 long."""
    out = coerce_text(value, name)
    if out is None:
        raise CoercionError(f"{name} is required")
    if len(out) > CODE_MAX:
        raise CoercionError(f"{name} is longer than {CODE_MAX} characters")
    return out


def coerce_required_text(value: Any, name: str) -> str:
    out = coerce_text(value, name)
    if out is None:
        raise CoercionError(f"{name} is required")
    return out


def _number(value: Any, name: str) -> int | float | None:
    kind = value.__class__
    if kind is int:
        return value
    if value is None:
        return None
    if kind is float:
        if math.isfinite(value):
            return value
    elif kind is str:
        s = value.strip()
        if not s:
            return None
        if "_" not in s:
            try:
                return int(s)
            except ValueError:
                pass
            try:
                f = float(s)
            except ValueError:
                pass
            else:
                if math.isfinite(f):
                    return f
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        return int(value)
    elif isinstance(value, float | Decimal):
        f = float(value)
        if math.isfinite(f):
            return f
    raise CoercionError(f'{name} "{_shown(value)}" is not a number')


MAX_QTY = 2_147_483_647


def coerce_qty(value: Any, name: str) -> int | None:
    """Stock in whole units: fractions round down, negative stock is 0."""
    n = _number(value, name)
    if n is None:
        return None
    if n.__class__ is not int:
        n = math.floor(n)
    if n > MAX_QTY:
        # The stored quantity is a 32-bit column: refused here, by name,
        # rather than failing the whole page's write.
        raise CoercionError(f'{name} "{_shown(value)}" is more stock than the hub can hold')
    return n if n > 0 else 0


def coerce_order_qty(value: Any, name: str) -> int | None:
    """An ordered quantity: whole and at least 1, never adjusted."""
    n = _number(value, name)
    if n is None:
        return None
    if n != int(n):
        raise CoercionError(f'{name} "{_shown(value)}" is not a whole number')
    if n < 1:
        raise CoercionError(f'{name} "{_shown(value)}" must be at least 1')
    return int(n)


def coerce_price(value: Any, name: str) -> float | None:
    """A float rounded to 4 places, so sums do not leave 8.000000000000001 behind."""
    n = _number(value, name)
    if n is None:
        return None
    try:
        out = round(float(n), 4)
    except OverflowError:
        raise CoercionError(f'{name} "{_shown(value)}" is too large to be a price') from None
    if not math.isfinite(out):
        raise CoercionError(f'{name} "{_shown(value)}" is too large to be a price')
    return out if out != 0 else 0.0


def coerce_grams(value: Any, name: str) -> int | None:
    n = _number(value, name)
    if n is None:
        return None
    if n < 0:
        raise CoercionError(f'{name} "{_shown(value)}" is negative')
    return round(n)


def coerce_bool(value: Any, name: str) -> bool:
    if value is None:
        return False
    if value is True or value is False:
        return value
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    elif isinstance(value, int | float | Decimal) and value in (0, 1):
        return bool(value)
    raise CoercionError(f'{name} "{_shown(value)}" is not true or false')


def tri_state(value: Any, field: str = "product_active") -> Action:
    """An ERP's active flag as Active, Delete or Ignore.

    Unticked, false, 0, blank and null all mean Delete: an ERP that leaves
    the flag empty is saying "not on the web". Anything unrecognised is an
    error rather than a guess, because guessing Delete would take products
    off the channels.
    """
    if value is None or value is False:
        return "delete"
    if value is True:
        return "active"
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _ACTIVE:
            return "active"
        if s in _DELETE:
            return "delete"
        if s in _IGNORE:
            return "ignore"
    elif isinstance(value, int | float | Decimal):
        if value == 1:
            return "active"
        if value == 0:
            return "delete"
    raise CoercionError(f'{field} "{_shown(value)}" is not Active, Delete or Ignore')


def coerce_tags(value: Any, name: str) -> str | None:
    """Comma-separated tags (or a list of them), sorted and de-duplicated."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        parts = [coerce_text(v, name) for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        raise CoercionError(f'{name} "{_shown(value)}" is not text')
    tags = sorted({p for p in parts if p})
    return ",".join(tags) if tags else None


def coerce_position(value: Any, name: str) -> int | None:
    n = _number(value, name)
    if n is None:
        return None
    if n not in (1, 2, 3):
        raise CoercionError(f'{name} "{_shown(value)}" is not 1, 2 or 3')
    return int(n)


def coerce_rate(value: Any, name: str) -> float | None:
    n = _number(value, name)
    return None if n is None else round(float(n), 6)


def coerce_datetime(value: Any, name: str) -> str | None:
    """An ISO-8601 date and time, stored as ISO text; naive times are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise CoercionError(
                f'{name} "{_shown(value)}" is not an ISO-8601 date and time'
            ) from None
    else:
        raise CoercionError(f'{name} "{_shown(value)}" is not an ISO-8601 date and time')
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


INSTRUCTIONS: Final = ("add_order", "sync_order")


def coerce_instruction(value: Any, name: str) -> str:
    s = coerce_text(value, name)
    if s is None:
        return "add_order"
    if s not in INSTRUCTIONS:
        raise CoercionError(f'{name} "{_shown(value)}" is not add_order or sync_order')
    return s


# --------------------------------------------------------------------------
# List finishers: checks and ordering that need the whole list
# --------------------------------------------------------------------------


def _unique(items: list[dict[str, Any]], key: str, name: str, fold: bool = False) -> None:
    seen: set[Any] = set()
    for item in items:
        value = item.get(key)
        marker = value.lower() if fold and isinstance(value, str) else value
        if marker in seen:
            raise CoercionError(f'{name} {key} "{value}" appears twice')
        seen.add(marker)


def finish_meta(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Sorted by key; keys unique ignoring case, since lookups ignore case."""
    if len(items) > 1:
        _unique(items, "key", name, fold=True)
        items.sort(key=lambda m: (m["key"].lower(), m["key"]))
    return items


def finish_options(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Positions default to list order; sorted by position."""
    for index, option in enumerate(items, start=1):
        if option.get("position") is None:
            option["position"] = index
    if len(items) > 1:
        _unique(items, "position", name)
        _unique(items, "name", name, fold=True)
        items.sort(key=lambda o: o["position"])
    return items


def finish_tiers(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    if len(items) > 1:
        _unique(items, "tier", name)
        items.sort(key=lambda t: t["tier"])
    return items


def finish_availability(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    if len(items) > 1:
        _unique(items, "description", name)
        items.sort(key=lambda q: q["description"])
    return items


def finish_variants(items: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Codes unique within the product; ERP order is kept for display."""
    if len(items) > 1:
        _unique(items, "source_variant_code", name)
    return items


def label(item: Any, index: int) -> str:
    """How an error path names a list item: its natural key, else its index."""
    if item.__class__ is dict or isinstance(item, Mapping):
        for key in NATURAL_KEYS:
            value = item.get(key)
            if isinstance(value, str):
                value = value.strip()
                if value:
                    return value
            elif isinstance(value, int) and not isinstance(value, bool):
                return str(value)
    return str(index)


# --------------------------------------------------------------------------
# Marshmallow: the documented model
# --------------------------------------------------------------------------


class Coerced(fields.Field):
    """A field whose rule is one of the shared coercers.

    None is handed to the coercer rather than rejected by marshmallow, since
    null is a legitimate ERP value (a blank price, an unticked flag).
    """

    def __init__(self, coerce: Coerce, *, required: bool = False, **kwargs: Any) -> None:
        super().__init__(required=required, allow_none=False, **kwargs)
        self._coerce = coerce

    def _validate_missing(self, value: Any) -> None:
        if value is missing and self.required:
            raise ValidationError(f"{self.name} is required")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        name = attr or self.name or "value"
        try:
            out = self._coerce(value, name)
        except CoercionError as exc:
            raise ValidationError(str(exc)) from None
        if out is None and self.required:
            raise ValidationError(f"{name} is required")
        return out


class ListOf(fields.List):
    """A list of nested objects with the list-level rules of the model."""

    def __init__(
        self,
        schema: type[Schema],
        *,
        finish: Callable[[list[dict[str, Any]], str], list[dict[str, Any]]] | None = None,
        min_items: int = 0,
        min_message: str = "",
        max_items: int | None = None,
        unknown: str | None = None,
        item_message: str = "an entry must be an object",
        required: bool = False,
    ) -> None:
        inner = fields.Nested(
            schema, unknown=unknown, error_messages={"null": item_message, "type": item_message}
        )
        kwargs: dict[str, Any] = {} if required else {"load_default": list}
        super().__init__(inner, required=required, allow_none=False, **kwargs)
        self._finish = finish
        self._min_items = min_items
        self._min_message = min_message
        self._max_items = max_items

    def _validate_missing(self, value: Any) -> None:
        if value is missing and self.required:
            raise ValidationError(self._min_message or f"{self.name} is required")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        name = attr or self.name or "list"
        if value is None:
            value = []
        if not isinstance(value, list | tuple):
            raise ValidationError(f"{name} must be a list")
        if len(value) < self._min_items:
            raise ValidationError(self._min_message)
        if self._max_items is not None and len(value) > self._max_items:
            raise ValidationError(
                f"{name} has {len(value)} entries; at most {self._max_items} are allowed"
            )
        items = super()._deserialize(value, attr, data, **kwargs)
        if self._finish is not None:
            try:
                items = self._finish(items, name)
            except CoercionError as exc:
                raise ValidationError(str(exc)) from None
        return items


class _Canonical(Schema):
    class Meta:
        unknown = EXCLUDE


class MetaSchema(_Canonical):
    error_messages = {"type": "a meta entry must be an object"}
    key = Coerced(coerce_text, required=True)
    value = Coerced(coerce_text, load_default=None)


class OptionSchema(_Canonical):
    error_messages = {"type": "an option must be an object"}
    name = Coerced(coerce_text, required=True)
    position = Coerced(coerce_position, load_default=None)


class PriceTierSchema(_Canonical):
    error_messages = {"type": "a price tier must be an object"}
    tier = Coerced(coerce_text, required=True)
    price = Coerced(coerce_price, load_default=None)


class QtyAvailabilitySchema(_Canonical):
    error_messages = {"type": "a warehouse entry must be an object"}
    description = Coerced(coerce_text, required=True)
    qty = Coerced(coerce_qty, load_default=None)


class VariantSchema(_Canonical):
    error_messages = {"type": "a variant must be an object"}
    source_variant_code = Coerced(coerce_code, required=True)
    sku = Coerced(coerce_code, required=True)
    barcode = Coerced(coerce_text, load_default=None)
    qty = Coerced(coerce_qty, load_default=None)
    qty_availability = ListOf(
        QtyAvailabilitySchema,
        finish=finish_availability,
        item_message=QtyAvailabilitySchema.error_messages["type"],
    )
    price = Coerced(coerce_price, load_default=None)
    price_tiers = ListOf(
        PriceTierSchema, finish=finish_tiers, item_message=PriceTierSchema.error_messages["type"]
    )
    inventory_management = Coerced(coerce_bool, load_default=True)
    grams = Coerced(coerce_grams, load_default=None)
    option1 = Coerced(coerce_text, load_default=None)
    option2 = Coerced(coerce_text, load_default=None)
    option3 = Coerced(coerce_text, load_default=None)
    meta = ListOf(MetaSchema, finish=finish_meta, item_message=MetaSchema.error_messages["type"])


def _settle_active(data: dict[str, Any], flag: str) -> dict[str, Any]:
    """The ERP's tri-state flag (or a plain `active`) becomes `active: bool`."""
    state = data.pop(flag, None)
    plain = data.pop("active", None)
    data["active"] = (state or plain or "active") != "delete"
    return data


class ProductSchema(_Canonical):
    """A product with its variants (canonical-model.md "Product")."""

    error_messages = {"type": "a product must be an object"}
    source_product_code = Coerced(coerce_code, required=True)
    title = Coerced(coerce_required_text, required=True)
    body_html = Coerced(coerce_text, load_default=None)
    collection = Coerced(coerce_text, load_default=None)
    product_type = Coerced(coerce_text, load_default=None)
    vendor = Coerced(coerce_text, load_default=None)
    tags = Coerced(coerce_tags, load_default=None)
    product_active = Coerced(tri_state, load_only=True)
    active = Coerced(tri_state)
    options = ListOf(
        OptionSchema,
        finish=finish_options,
        max_items=3,
        item_message=OptionSchema.error_messages["type"],
    )
    meta = ListOf(MetaSchema, finish=finish_meta, item_message=MetaSchema.error_messages["type"])
    variants = ListOf(
        VariantSchema,
        finish=finish_variants,
        required=True,
        min_items=1,
        min_message="a product needs at least one variant",
        item_message=VariantSchema.error_messages["type"],
    )

    @post_load
    def _active(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _settle_active(data, "product_active")


class AddressSchema(_Canonical):
    error_messages = {"type": "an address must be an object"}
    first_name = Coerced(coerce_text, load_default=None)
    last_name = Coerced(coerce_text, load_default=None)
    company = Coerced(coerce_text, load_default=None)
    address1 = Coerced(coerce_text, load_default=None)
    address2 = Coerced(coerce_text, load_default=None)
    city = Coerced(coerce_text, load_default=None)
    province = Coerced(coerce_text, load_default=None)
    province_code = Coerced(coerce_text, load_default=None)
    country = Coerced(coerce_text, load_default=None)
    country_code = Coerced(coerce_text, load_default=None)
    zip = Coerced(coerce_text, load_default=None)
    phone = Coerced(coerce_text, load_default=None)


ADDRESS_FIELDS: Final = tuple(AddressSchema().fields)


class CustomerSchema(_Canonical):
    """A B2B customer (canonical-model.md "Customer")."""

    error_messages = {"type": "a customer must be an object"}
    source_customer_code = Coerced(coerce_code, required=True)
    first_name = Coerced(coerce_text, load_default=None)
    last_name = Coerced(coerce_text, load_default=None)
    email = Coerced(coerce_text, load_default=None)
    customer_active = Coerced(tri_state, load_only=True)
    active = Coerced(tri_state)
    addresses = ListOf(AddressSchema, item_message=AddressSchema.error_messages["type"])
    price_tier = Coerced(coerce_text, load_default=None)
    qty_availability = Coerced(coerce_text, load_default=None)
    meta = ListOf(MetaSchema, finish=finish_meta, item_message=MetaSchema.error_messages["type"])

    @post_load
    def _active(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _settle_active(data, "customer_active")


# Orders come from channels and the API, not from ERPs: unknown keys are an
# error there (RAISE), so a misspelt "total_discounts" cannot silently drop
# a discount from an order that is about to be invoiced.


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class TaxLineSchema(_Strict):
    error_messages = {"type": "a tax line must be an object"}
    code = Coerced(coerce_text, load_default=None)
    title = Coerced(coerce_text, load_default=None)
    price = Coerced(coerce_price, load_default=0.0)
    rate = Coerced(coerce_rate, load_default=None)


class LineItemSchema(_Strict):
    error_messages = {"type": "a line item must be an object"}
    sku = Coerced(coerce_code, required=True)
    title = Coerced(coerce_text, load_default=None)
    qty = Coerced(coerce_order_qty, required=True)
    price = Coerced(coerce_price, required=True)
    total_discount = Coerced(coerce_price, load_default=0.0)
    tax_lines = ListOf(TaxLineSchema, item_message=TaxLineSchema.error_messages["type"])


class ShippingLineSchema(_Strict):
    error_messages = {"type": "a shipping line must be an object"}
    title = Coerced(coerce_text, load_default=None)
    price = Coerced(coerce_price, load_default=0.0)
    tax_lines = ListOf(TaxLineSchema, item_message=TaxLineSchema.error_messages["type"])


class OrderCustomerSchema(_Strict):
    error_messages = {"type": "customer must be an object"}
    source_customer_code = Coerced(coerce_text, load_default=None)
    channel_customer_code = Coerced(coerce_text, load_default=None)
    first_name = Coerced(coerce_text, load_default=None)
    last_name = Coerced(coerce_text, load_default=None)
    email = Coerced(coerce_text, load_default=None)


def _nested(schema: type[Schema], message: str) -> fields.Nested:
    return fields.Nested(
        schema,
        unknown=RAISE,
        allow_none=True,
        load_default=None,
        error_messages={"type": message},
    )


class OrderSchema(_Strict):
    """An order from a channel (canonical-model.md "Order")."""

    error_messages = {"type": "an order must be an object"}
    channel_order_code = Coerced(coerce_code, required=True)
    channel = Coerced(coerce_text, load_default=None)
    instruction = Coerced(coerce_instruction, load_default="add_order")
    ordered_date = Coerced(coerce_datetime, load_default=None)
    notes = Coerced(coerce_text, load_default=None)
    customer = _nested(OrderCustomerSchema, "customer must be an object")
    billing_address = _nested(AddressSchema, "billing_address must be an object")
    shipping_address = _nested(AddressSchema, "shipping_address must be an object")
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


def flatten_errors(messages: Any, raw: Any, prefix: str = "") -> Errors:
    """Marshmallow's nested error dict as (path, message) pairs.

    Paths name list items by their natural key where they have one
    (`variants[SKU-RED].qty`), which is what an operator can search for.
    """
    out: Errors = []
    if isinstance(messages, str):
        out.append((prefix or "record", messages))
    elif isinstance(messages, list):
        for message in messages:
            out.extend(flatten_errors(message, raw, prefix))
    elif isinstance(messages, dict):
        for key, sub in messages.items():
            if key == "_schema":
                out.extend(flatten_errors(sub, raw, prefix))
            elif isinstance(key, int):
                item = raw[key] if isinstance(raw, list | tuple) and key < len(raw) else None
                out.extend(flatten_errors(sub, item, f"{prefix}[{label(item, key)}]"))
            else:
                child = raw.get(key) if isinstance(raw, Mapping) else None
                out.extend(flatten_errors(sub, child, f"{prefix}.{key}" if prefix else key))
    return out


def _load_with(schema: Schema, raw: Any) -> tuple[dict[str, Any] | None, Errors]:
    try:
        return schema.load(raw), []
    except ValidationError as exc:
        return None, flatten_errors(exc.messages, raw)


_ORDER_SCHEMA: Final = OrderSchema()
_PRODUCT_SCHEMA: Final = ProductSchema()
_CUSTOMER_SCHEMA: Final = CustomerSchema()


def load_order(raw: Any) -> tuple[dict[str, Any] | None, Errors]:
    """Validate an order from a channel or the API: (order, []) or (None, errors)."""
    return _load_with(_ORDER_SCHEMA, raw)


# --------------------------------------------------------------------------
# The sync path: products and customers
# --------------------------------------------------------------------------


class Loaded(NamedTuple):
    """The outcome of loading one product or customer.

    - action "active": `record` is the full canonical record (`active: True`).
    - action "delete": `record` is `{code_field: code, "active": False}`. Only
      the key is validated: a broken price on a product being removed must
      not keep it on the channels.
    - action "ignore": `record` is `{code_field: code}`; the hub leaves the
      stored record as it is.
    - errors: `record` is None; `action` is None unless the flag was valid.
    """

    record: dict[str, Any] | None
    action: Action | None
    errors: Errors


_MISSING: Final = object()


def _action(raw: Mapping[str, Any], flag: str, errors: Errors) -> Action | None:
    """The tri-state: the ERP's flag wins over a plain `active`; neither means active."""
    state: Action | None = None
    plain: Action | None = None
    value = raw.get(flag, _MISSING)
    if value is not _MISSING:
        try:
            state = tri_state(value, flag)
        except CoercionError as exc:
            errors.append((flag, str(exc)))
    value = raw.get("active", _MISSING)
    if value is not _MISSING:
        try:
            plain = tri_state(value, "active")
        except CoercionError as exc:
            errors.append(("active", str(exc)))
    if errors:
        return None
    return state or plain or "active"


def _key_only(raw: Mapping[str, Any], code_field: str, action: Action) -> Loaded:
    try:
        code = coerce_code(raw.get(code_field), code_field)
    except CoercionError as exc:
        return Loaded(None, action, [(code_field, str(exc))])
    record: dict[str, Any] = {code_field: code}
    if action == "delete":
        record["active"] = False
    return Loaded(record, action, [])


# (key, coercer, default, required) for the scalar fields of each shape.
Spec = tuple[tuple[str, Coerce, Any, bool], ...]

_META_SPEC: Final[Spec] = (("key", coerce_text, None, True), ("value", coerce_text, None, False))
_OPTION_SPEC: Final[Spec] = (
    ("name", coerce_text, None, True),
    ("position", coerce_position, None, False),
)
_TIER_SPEC: Final[Spec] = (("tier", coerce_text, None, True), ("price", coerce_price, None, False))
_AVAIL_SPEC: Final[Spec] = (
    ("description", coerce_text, None, True),
    ("qty", coerce_qty, None, False),
)
_VARIANT_SPEC: Final[Spec] = (
    ("source_variant_code", coerce_code, None, True),
    ("sku", coerce_code, None, True),
    ("barcode", coerce_text, None, False),
    ("qty", coerce_qty, None, False),
    ("price", coerce_price, None, False),
    ("inventory_management", coerce_bool, True, False),
    ("grams", coerce_grams, None, False),
    ("option1", coerce_text, None, False),
    ("option2", coerce_text, None, False),
    ("option3", coerce_text, None, False),
)
_PRODUCT_SPEC: Final[Spec] = (
    ("source_product_code", coerce_code, None, True),
    ("title", coerce_required_text, None, True),
    ("body_html", coerce_text, None, False),
    ("collection", coerce_text, None, False),
    ("product_type", coerce_text, None, False),
    ("vendor", coerce_text, None, False),
    ("tags", coerce_tags, None, False),
)
_ADDRESS_SPEC: Final[Spec] = tuple((name, coerce_text, None, False) for name in ADDRESS_FIELDS)
_CUSTOMER_SPEC: Final[Spec] = (
    ("source_customer_code", coerce_code, None, True),
    ("first_name", coerce_text, None, False),
    ("last_name", coerce_text, None, False),
    ("email", coerce_text, None, False),
    ("price_tier", coerce_text, None, False),
    ("qty_availability", coerce_text, None, False),
)


def _scalars(raw: Mapping[str, Any], spec: Spec, prefix: str, errors: Errors) -> dict[str, Any]:
    out: dict[str, Any] = {}
    get = raw.get
    for key, coerce, default, required in spec:
        value = get(key, _MISSING)
        if value is _MISSING:
            if required:
                errors.append((prefix + key, f"{key} is required"))
            else:
                out[key] = default
            continue
        try:
            result = coerce(value, key)
        except CoercionError as exc:
            errors.append((prefix + key, str(exc)))
            continue
        if result is None and required:
            errors.append((prefix + key, f"{key} is required"))
            continue
        out[key] = result
    return out


ItemLoader = Callable[[Mapping[str, Any], str, Errors], dict[str, Any]]


def _flat_item(spec: Spec) -> ItemLoader:
    def load(raw: Mapping[str, Any], prefix: str, errors: Errors) -> dict[str, Any]:
        return _scalars(raw, spec, prefix, errors)

    return load


def _list(
    raw: Mapping[str, Any],
    key: str,
    prefix: str,
    errors: Errors,
    item: ItemLoader,
    item_message: str,
    finish: Callable[[list[dict[str, Any]], str], list[dict[str, Any]]] | None = None,
    min_items: int = 0,
    min_message: str = "",
    max_items: int | None = None,
) -> list[dict[str, Any]]:
    """The fast twin of `ListOf`: same checks, same order, same messages."""
    value = raw.get(key, _MISSING)
    if not min_items and (value is _MISSING or (value.__class__ is list and not value)):
        return []
    path = prefix + key
    if value is _MISSING:
        if min_items:
            errors.append((path, min_message))
        return []
    if value is None:
        value = []
    if not isinstance(value, list | tuple):
        errors.append((path, f"{key} must be a list"))
        return []
    if len(value) < min_items:
        errors.append((path, min_message))
        return []
    if max_items is not None and len(value) > max_items:
        errors.append((path, f"{key} has {len(value)} entries; at most {max_items} are allowed"))
        return []
    if not value:
        return []
    before = len(errors)
    items: list[dict[str, Any]] = []
    for index, entry in enumerate(value):
        where = f"{path}[{label(entry, index)}]"
        if entry.__class__ is not dict and not isinstance(entry, Mapping):
            errors.append((where, item_message))
            continue
        items.append(item(entry, where + ".", errors))
    if len(errors) != before:
        return []
    if finish is not None:
        try:
            items = finish(items, key)
        except CoercionError as exc:
            errors.append((path, str(exc)))
            return []
    return items


_load_meta: Final = _flat_item(_META_SPEC)
_load_option: Final = _flat_item(_OPTION_SPEC)
_load_tier: Final = _flat_item(_TIER_SPEC)
_load_avail: Final = _flat_item(_AVAIL_SPEC)
_load_address: Final = _flat_item(_ADDRESS_SPEC)


def _load_variant(raw: Mapping[str, Any], prefix: str, errors: Errors) -> dict[str, Any]:
    out = _scalars(raw, _VARIANT_SPEC, prefix, errors)
    out["qty_availability"] = _list(
        raw,
        "qty_availability",
        prefix,
        errors,
        _load_avail,
        "a warehouse entry must be an object",
        finish_availability,
    )
    out["price_tiers"] = _list(
        raw,
        "price_tiers",
        prefix,
        errors,
        _load_tier,
        "a price tier must be an object",
        finish_tiers,
    )
    out["meta"] = _list(
        raw, "meta", prefix, errors, _load_meta, "a meta entry must be an object", finish_meta
    )
    return out


def load_product(raw: Any) -> Loaded:
    """Validate one nested product (as `mappings.build_products` makes it).

    The sync hot path: the same rules as `ProductSchema`, several times
    faster. Error paths look like `variants[SKU-RED].qty`.
    """
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("product", "a product must be an object")])
    errors: Errors = []
    action = _action(raw, "product_active", errors)
    if action is not None and action != "active":
        return _key_only(raw, "source_product_code", action)
    out = _scalars(raw, _PRODUCT_SPEC, "", errors)
    out["options"] = _list(
        raw,
        "options",
        "",
        errors,
        _load_option,
        "an option must be an object",
        finish_options,
        max_items=3,
    )
    out["meta"] = _list(
        raw, "meta", "", errors, _load_meta, "a meta entry must be an object", finish_meta
    )
    out["variants"] = _list(
        raw,
        "variants",
        "",
        errors,
        _load_variant,
        "a variant must be an object",
        finish_variants,
        min_items=1,
        min_message="a product needs at least one variant",
    )
    if errors:
        return Loaded(None, action, errors)
    out["active"] = True
    return Loaded(out, action, [])


def load_product_via_schema(raw: Any) -> Loaded:
    """`load_product` through marshmallow: the reference the fast path is held to."""
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("product", "a product must be an object")])
    pre: Errors = []
    action = _action(raw, "product_active", pre)
    if action is not None and action != "active":
        return _key_only(raw, "source_product_code", action)
    record, errors = _load_with(_PRODUCT_SCHEMA, raw)
    return Loaded(record, action, errors)


def load_customer(raw: Any) -> Loaded:
    """Validate one customer (as `mappings.build_customers` makes it)."""
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("customer", "a customer must be an object")])
    errors: Errors = []
    action = _action(raw, "customer_active", errors)
    if action is not None and action != "active":
        return _key_only(raw, "source_customer_code", action)
    out = _scalars(raw, _CUSTOMER_SPEC, "", errors)
    out["addresses"] = _list(
        raw, "addresses", "", errors, _load_address, "an address must be an object"
    )
    out["meta"] = _list(
        raw, "meta", "", errors, _load_meta, "a meta entry must be an object", finish_meta
    )
    if errors:
        return Loaded(None, action, errors)
    out["active"] = True
    return Loaded(out, action, [])


def load_customer_via_schema(raw: Any) -> Loaded:
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("customer", "a customer must be an object")])
    pre: Errors = []
    action = _action(raw, "customer_active", pre)
    if action is not None and action != "active":
        return _key_only(raw, "source_customer_code", action)
    record, errors = _load_with(_CUSTOMER_SCHEMA, raw)
    return Loaded(record, action, errors)


# --------------------------------------------------------------------------
# Change detection
# --------------------------------------------------------------------------


_PLAIN: Final = frozenset({str, int, bool, type(None)})


_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_dumps: Final = _ENCODER.encode
# What `_dumps` makes of a str, without the encoder's dispatch: the C
# escaper the encoder itself uses (ensure_ascii=False), quotes included.
_dumps_str: Final = json.encoder.encode_basestring


def _sorted(items: list[Any]) -> list[Any]:
    """Natural order: by the JSON of the first natural key every item has
    (when it is unique), else by each item's whole JSON."""
    if len(items) < 2:
        return items
    if all(isinstance(i, dict) for i in items):
        for key in NATURAL_KEYS:
            if all(key in i for i in items):
                keys = [
                    _dumps_str(v) if (v := i[key]).__class__ is str else _dumps(v) for i in items
                ]
                if len(set(keys)) == len(keys):
                    # Already in order (the usual case): nothing to move.
                    if all(a < b for a, b in pairwise(keys)):
                        return items
                    order = sorted(range(len(items)), key=keys.__getitem__)
                    return [items[i] for i in order]
                break
    return sorted(items, key=_dumps)


def _stable_float(value: float) -> Any:
    if not math.isfinite(value):
        return repr(value)
    r = round(value, 4)
    return int(r) if r.is_integer() else r


def _stable_dict(value: dict[Any, Any]) -> Any:
    """`_stable` of an exact dict, copying only what changes.

    A shallow copy (C speed) keeps the plain values; only floats, lists and
    nested dicts are replaced. A key that is not a str goes the generic way,
    which renames keys (and lets a later key win a clash) as it always has.
    """
    out = None
    for k, v in value.items():
        if k.__class__ is not str:
            return _stable_generic(value)
        kind = v.__class__
        if kind in _PLAIN or (kind is list and not v):
            continue  # unchanged (an empty list too): shared, never modified
        if out is None:
            out = value.copy()
        if kind is float:
            out[k] = _stable_float(v)
        elif kind is list:
            out[k] = _stable_list(v)
        elif kind is dict:
            out[k] = _stable_dict(v)
        else:
            out[k] = _stable(v)
    return value if out is None else out


def _stable_list(value: list[Any]) -> list[Any]:
    return _sorted(
        [
            v
            if (kind := v.__class__) in _PLAIN
            else _stable_dict(v)
            if kind is dict
            else _stable_float(v)
            if kind is float
            else _stable(v)
            for v in value
        ]
    )


def _stable(value: Any) -> Any:
    """Normalise for hashing: floats rounded (8.0 == 8), lists in natural order."""
    kind = value.__class__
    if kind in _PLAIN:
        return value
    if kind is dict:
        return _stable_dict(value)
    if kind is list:
        return _stable_list(value)
    if kind is float:
        return _stable_float(value)
    return _stable_generic(value)


def _stable_generic(value: Any) -> Any:
    """The general rules, for anything but the exact types handled above.

    Every result is fresh or an unchanged plain value: `canonical_hash`
    never modifies the record it is given.
    """
    kind = value.__class__
    if kind in _PLAIN:
        return value
    if kind is float:
        return _stable_float(value)
    if kind is dict or isinstance(value, Mapping):
        return {
            k if k.__class__ is str else str(k): v if v.__class__ in _PLAIN else _stable(v)
            for k, v in value.items()
        }
    if kind is list or isinstance(value, list | tuple):
        return _sorted([v if v.__class__ in _PLAIN else _stable(v) for v in value])
    if isinstance(value, Decimal):
        return _stable(float(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int):
        return int(value)
    return str(value)


def _one_shot_encoder() -> Callable[[Any], str]:
    """`_dumps` without building a C encoder on every call.

    `JSONEncoder.encode` makes a fresh C encoder per call, which is a good
    part of the cost for a record this small; this one is made once, with
    the same settings. No circular-reference markers: `_stable` walks every
    container first, so a cycle fails there, before any encoding. Where the
    C encoder is missing or differs, `_dumps` itself is used.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _dumps
    try:
        encode = make(
            None,
            _ENCODER.default,
            json.encoder.encode_basestring,
            None,
            _ENCODER.key_separator,
            _ENCODER.item_separator,
            True,
            False,
            False,
        )
    except Exception:
        return _dumps

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    probe = {"b": [1, 2.5, None, True, 'x"\u00e9\n'], "a": {"z": -0.0, "y": "\u2028"}}
    try:
        same = dumps(probe) == _dumps(probe)
    except Exception:
        same = False
    return dumps if same else _dumps


_dumps_once: Final = _one_shot_encoder()
_sha256: Final = hashlib.sha256


def canonical_hash(record: Mapping[str, Any]) -> str:
    """sha256 of the record's canonical JSON: the same content in any order
    hashes the same, so an unchanged product is not written again.

    The digests are stored, so the canonical JSON must never change:
    tests/unit/test_hash_stability.py pins it and holds this implementation
    to the original one.
    """
    return _sha256(_dumps_once(_stable(record)).encode()).hexdigest()


__all__ = [
    "ADDRESS_FIELDS",
    "Action",
    "AddressSchema",
    "CoercionError",
    "CustomerSchema",
    "LineItemSchema",
    "Loaded",
    "MetaSchema",
    "OptionSchema",
    "OrderCustomerSchema",
    "OrderSchema",
    "PriceTierSchema",
    "ProductSchema",
    "QtyAvailabilitySchema",
    "ShippingLineSchema",
    "TaxLineSchema",
    "VariantSchema",
    "canonical_hash",
    "coerce_bool",
    "coerce_code",
    "coerce_grams",
    "coerce_order_qty",
    "coerce_price",
    "coerce_qty",
    "coerce_tags",
    "coerce_text",
    "flatten_errors",
    "load_customer",
    "load_customer_via_schema",
    "load_order",
    "load_product",
    "load_product_via_schema",
    "tri_state",
]
