"""Customers: the documented schema and the sync's fast loader, side by side.

`AddressSchema` is the orders' address too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from marshmallow import post_load

from hub.schemas.fields import Canonical, Coerced, ListOf, MetaSchema, load_with, settle_active
from hub.schemas.lists import finish_meta
from hub.schemas.loading import (
    MISSING,
    Loaded,
    Spec,
    action_of,
    flat_item,
    key_only,
    load_list,
    load_meta,
    load_scalars,
)
from hub.schemas.scalars import (
    CoercionError,
    Errors,
    coerce_code,
    coerce_text,
    shown,
    tri_state,
)


class AddressSchema(Canonical):
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
ADDRESS_TYPES: Final = ("billing", "shipping")


def coerce_address_type(value: Any, name: str) -> str | None:
    """``billing`` or ``shipping`` (any case); blank is null."""
    text = coerce_text(value, name)
    if text is None:
        return None
    kind = text.lower()
    if kind not in ADDRESS_TYPES:
        raise CoercionError(f'{name} "{shown(text)}" is not billing or shipping')
    return kind


class CustomerAddressSchema(AddressSchema):
    """A customer's address, which says whether it is the billing or the
    shipping one: an ERP account has both (SYSPRO's sold-to and ship-to),
    and a list of two untyped addresses could not tell them apart. Absent
    ``type`` stays absent (an order's address has none)."""

    type = Coerced(coerce_address_type)


class CustomerSchema(Canonical):
    """A B2B customer (canonical-model.md "Customer")."""

    error_messages = {"type": "a customer must be an object"}
    source_customer_code = Coerced(coerce_code, required=True)
    first_name = Coerced(coerce_text, load_default=None)
    last_name = Coerced(coerce_text, load_default=None)
    email = Coerced(coerce_text, load_default=None)
    customer_active = Coerced(tri_state, load_only=True)
    active = Coerced(tri_state)
    addresses = ListOf(CustomerAddressSchema, item_message=AddressSchema.error_messages["type"])
    price_tier = Coerced(coerce_text, load_default=None)
    qty_availability = Coerced(coerce_text, load_default=None)
    meta = ListOf(MetaSchema, finish=finish_meta, item_message=MetaSchema.error_messages["type"])

    @post_load
    def _active(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return settle_active(data, "customer_active")


_CUSTOMER_SCHEMA: Final = CustomerSchema()

_ADDRESS_SPEC: Final[Spec] = tuple((name, coerce_text, None, False) for name in ADDRESS_FIELDS)
_CUSTOMER_SPEC: Final[Spec] = (
    ("source_customer_code", coerce_code, None, True),
    ("first_name", coerce_text, None, False),
    ("last_name", coerce_text, None, False),
    ("email", coerce_text, None, False),
    ("price_tier", coerce_text, None, False),
    ("qty_availability", coerce_text, None, False),
)


_load_plain_address: Final = flat_item(_ADDRESS_SPEC)


def _load_address(raw: Mapping[str, Any], prefix: str, errors: Errors) -> dict[str, Any]:
    """`CustomerAddressSchema`'s fast twin: ``type`` first, and only when given."""
    out = _load_plain_address(raw, prefix, errors)
    kind = raw.get("type", MISSING)
    if kind is MISSING:
        return out
    try:
        return {"type": coerce_address_type(kind, "type"), **out}
    except CoercionError as exc:
        errors.append((prefix + "type", str(exc)))
        return out


def load_customer(raw: Any) -> Loaded:
    """Validate one customer (as `mappings.build_customers` makes it)."""
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("customer", "a customer must be an object")])
    errors: Errors = []
    action = action_of(raw, "customer_active", errors)
    if action is not None and action != "active":
        return key_only(raw, "source_customer_code", action)
    out = load_scalars(raw, _CUSTOMER_SPEC, "", errors)
    out["addresses"] = load_list(
        raw, "addresses", "", errors, _load_address, "an address must be an object"
    )
    out["meta"] = load_list(
        raw, "meta", "", errors, load_meta, "a meta entry must be an object", finish_meta
    )
    if errors:
        return Loaded(None, action, errors)
    out["active"] = True
    return Loaded(out, action, [])


def load_customer_via_schema(raw: Any) -> Loaded:
    if not isinstance(raw, Mapping):
        return Loaded(None, None, [("customer", "a customer must be an object")])
    pre: Errors = []
    action = action_of(raw, "customer_active", pre)
    if action is not None and action != "active":
        return key_only(raw, "source_customer_code", action)
    record, errors = load_with(_CUSTOMER_SCHEMA, raw)
    return Loaded(record, action, errors)
