"""The order's fast path is taken for the orders intake really sees, and gives up otherwise.

The two orders intake is measured with (bench/http_load.py) — a Shopify
``orders/create`` body after the connector's transform, and the canonical
API order — must be answered by ``fast_order`` and equal marshmallow's
load: a change that made the fast path give up on them would pass every
other test while losing its whole point. The rest holds what the
property test (tests/property/test_order_loader.py) finds only by chance:
particular refusals, and the schemas the fast loader must refuse to follow.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import pytest
from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, post_load

import connectors.shopify.intake as shopify
from bench.http_load import shopify_body, twin_order
from bench.run import _order_payload
from hub.schemas import OrderSchema, flatten_errors, load_order
from hub.schemas.fields import Canonical, Coerced, ListOf, MetaSchema, Strict
from hub.schemas.lists import finish_meta
from hub.schemas.order_fast import fast_loader
from hub.schemas.orders import fast_order
from hub.schemas.scalars import coerce_price, coerce_text


def _shopify_order() -> dict[str, Any]:
    body = shopify_body(1, ["SKU-1", "SKU-2", "SKU-3"])
    order: dict[str, Any] = shopify.order(body, add_order_status=shopify.DEFAULT_ADD_ORDER_STATUS)
    return order


def _api_order() -> dict[str, Any]:
    return _order_payload("A0000001", ["SKU-1", "SKU-2", "SKU-3"])


def _twin_order() -> dict[str, Any]:
    return twin_order(1, ["SKU-1", "SKU-2", "SKU-3"])


@pytest.mark.parametrize(
    "make", [_shopify_order, _api_order, _twin_order], ids=["shopify", "api", "api-same"]
)
def test_the_benchs_orders_take_the_fast_path(make: Any) -> None:
    raw = make()
    before = copy.deepcopy(raw)
    fast = fast_order(raw)
    assert fast is not None, "the fast path gave up on an order intake sees all day"
    reference = OrderSchema().load(raw)
    assert fast == reference
    assert list(fast) == list(reference), "keys in the schema's order, as marshmallow's"
    assert load_order(raw) == (reference, [])
    assert raw == before


@pytest.mark.parametrize("skus", [["SKU-1"], ["SKU-1", "SKU-2", "SKU-3"]])
def test_the_api_twin_is_the_webhooks_order(skus: list[str]) -> None:
    """The bench's api-same points compare the doors on one order only while
    the twin is what the Shopify transform makes of the same sale."""
    made = shopify.order(shopify_body(12, skus))
    twin = twin_order(12, skus)
    assert twin.pop("channel") == "api"
    assert twin.pop("channel_order_code") == "S0000012"
    assert {k: v for k, v in made.items() if k not in ("channel", "channel_order_code")} == twin


def test_the_shopify_order_is_loaded_in_full() -> None:
    """Not just equal to marshmallow: the values the ERP maps will read."""
    order = fast_order(_shopify_order())
    assert order is not None
    assert order["channel_order_code"] == "#1"
    assert order["ordered_date"] == "2026-11-22T10:00:00+02:00"
    assert [line["qty"] for line in order["line_items"]] == [1, 2, 3]
    assert order["shipping_lines"] == [{"title": "Courier", "price": 95.0, "tax_lines": []}]
    assert order["billing_address"]["address2"] is None  # "" is blank, blank is null
    assert [m["key"] for m in order["meta"]] == sorted(m["key"] for m in order["meta"])


def _damaged(change: Any) -> dict[str, Any]:
    raw = _api_order()
    change(raw)
    return raw


DAMAGED = {
    "unknown top-level key": lambda o: o.update(total_discounts="5"),
    "unknown address key": lambda o: o["shipping_address"].update(street="1 Main"),
    "unknown line key": lambda o: o["line_items"][0].update(discount=1),
    "unknown tax line key": lambda o: o["line_items"][0].update(tax_lines=[{"ratee": 0.15}]),
    "unknown meta key": lambda o: o.update(meta=[{"key": "a", "val": "b"}]),
    "sku missing": lambda o: o["line_items"][1].pop("sku"),
    "qty blank": lambda o: o["line_items"][0].update(qty=" "),
    "qty fractional": lambda o: o["line_items"][0].update(qty="1.5"),
    "price NaN text": lambda o: o["line_items"][0].update(price="NaN"),
    "bad date": lambda o: o.update(ordered_date="22/11/2026"),
    "bad instruction": lambda o: o.update(instruction="add"),
    "no line items": lambda o: o.update(line_items=[]),
    "line items null": lambda o: o.update(line_items=None),
    "line item not an object": lambda o: o["line_items"].append("SKU-9"),
    "customer a list": lambda o: o.update(customer=[]),
    "meta key twice": lambda o: o.update(meta=[{"key": "A"}, {"key": "a"}]),
    "NUL in notes": lambda o: o.update(notes="a\x00b"),
}


@pytest.mark.parametrize("change", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_refused_order_gives_up_and_keeps_marshmallows_errors(change: Any) -> None:
    raw = _damaged(change)
    assert fast_order(raw) is None
    with pytest.raises(ValidationError) as caught:
        OrderSchema().load(raw)
    messages = caught.value.messages
    assert load_order(raw) == (None, flatten_errors(messages, raw))


def test_containers_marshmallow_takes_but_the_fast_path_does_not_still_load() -> None:
    """Tuples and other mappings: the fast path is unsure, marshmallow loads them."""
    raw = _api_order()
    raw["line_items"] = tuple(raw["line_items"])
    odd = OrderedDict(raw)
    assert fast_order(raw) is None and fast_order(odd) is None
    assert load_order(raw) == (OrderSchema().load(raw), [])
    assert load_order(odd)[0] == fast_order(_api_order())


def test_a_null_total_discount_stays_null_as_marshmallow_has_it() -> None:
    """The default is for an absent key only; a present null goes through the coercer."""
    raw = _damaged(lambda o: o.update(total_discount=None))
    assert fast_order(raw) == OrderSchema().load(raw)
    assert fast_order(raw)["total_discount"] is None
    assert fast_order(_api_order())["total_discount"] == 0.0


def test_exclude_schemas_ignore_unknown_keys_as_marshmallow_does() -> None:
    """The order schemas all raise on unknown keys; the loader follows EXCLUDE too."""

    class Loose(Canonical):
        name = Coerced(coerce_text, load_default=None)
        price = Coerced(coerce_price, load_default=0.0)
        meta = ListOf(MetaSchema, finish=finish_meta)  # MetaSchema: EXCLUDE
        strict_meta = ListOf(MetaSchema, finish=finish_meta, unknown="raise")

    load = fast_loader(Loose())
    raw = {"name": " x ", "other": 1, "meta": [{"key": "b", "v": 1}, {"key": "A"}]}
    assert load(raw) == Loose().load(raw)
    assert [m["key"] for m in load(raw)["meta"]] == ["A", "b"]
    assert load({**raw, "strict_meta": [{"key": "a", "v": 1}]}) is None


class _Hooked(Strict):
    a = Coerced(coerce_text, load_default=None)

    @post_load
    def _mark(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {**data, "marked": True}


class _Plain(Strict):
    a = fields.String()


class _Validated(Strict):
    a = Coerced(coerce_text, load_default=None, validate=lambda v: v != "x")


class _Keyed(Strict):
    a = Coerced(coerce_text, load_default=None, data_key="A")


class _NoDefault(Strict):
    a = Coerced(coerce_text)


class _Included(Schema):
    class Meta:
        unknown = INCLUDE

    a = Coerced(coerce_text, load_default=None)


class _NestedIncluded(Strict):
    # No unknown= on the field: the nested schema's own INCLUDE applies.
    inner = fields.Nested(_Included, allow_none=True, load_default=None)


class _ListOfStrings(Strict):
    tags = fields.List(fields.String())


@pytest.mark.parametrize(
    "schema",
    [_Hooked, _Plain, _Validated, _Keyed, _NoDefault, _Included, _NestedIncluded, _ListOfStrings],
)
def test_a_schema_the_loader_cannot_follow_exactly_is_refused_at_once(
    schema: type[Schema],
) -> None:
    with pytest.raises(TypeError, match="fast order loader"):
        fast_loader(schema())


def test_the_exclude_policy_of_a_nested_field_wins_over_its_schema() -> None:
    class Outer(Strict):
        inner = ListOf(MetaSchema, unknown=EXCLUDE)

    raw = {"inner": [{"key": "k", "extra": 1}]}
    assert (
        fast_loader(Outer())(raw) == Outer().load(raw) == {"inner": [{"key": "k", "value": None}]}
    )


def test_a_coercers_own_exception_is_left_to_marshmallow() -> None:
    """A rate too large for a float escapes coerce_rate as OverflowError today:
    the fast path gives up, and load_order does what marshmallow does with it
    (raises the same, or, once the coercer refuses it by name, the same errors)."""
    raw = _damaged(lambda o: o["line_items"][0].update(tax_lines=[{"rate": "9" * 400}]))
    assert fast_order(raw) is None
    try:
        OrderSchema().load(raw)
    except ValidationError as exc:
        assert load_order(raw) == (None, flatten_errors(exc.messages, raw))
    except Exception as exc:
        with pytest.raises(type(exc)):
            load_order(raw)
    else:
        raise AssertionError("marshmallow loaded a rate of 400 digits")
