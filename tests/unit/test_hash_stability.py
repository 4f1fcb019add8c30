"""`canonical_hash` must never change its output: stored hashes decide what is written.

The hub keeps each record's canonical hash and skips writing a record whose
hash is unchanged, so a faster `canonical_hash` has to give exactly the
same digests as every earlier one. The digests pinned here were computed
with the original (generic, recursive) implementation, which is kept below
as `reference_hash` so that the current one can also be compared with it on
generated inputs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulators.sql_erp import generate_rows
from hub.schemas import canonical_hash, load_product
from mappings import get_map, map_records

# --------------------------------------------------------------------------
# The original implementation, verbatim: the reference every change is held to
# --------------------------------------------------------------------------

_NATURAL_KEYS = ("source_variant_code", "tier", "description", "key", "name")
_PLAIN = frozenset({str, int, bool, type(None)})
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_dumps = _ENCODER.encode


def _stable(value: Any) -> Any:
    kind = value.__class__
    if kind in _PLAIN:
        return value
    if kind is float:
        if not math.isfinite(value):
            return repr(value)
        r = round(value, 4)
        return int(r) if r.is_integer() else r
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


def _sorted(items: list[Any]) -> list[Any]:
    if len(items) < 2:
        return items
    if all(isinstance(i, dict) for i in items):
        for key in _NATURAL_KEYS:
            if all(key in i for i in items):
                keys = [_dumps(i[key]) for i in items]
                if len(set(keys)) == len(keys):
                    order = sorted(range(len(items)), key=keys.__getitem__)
                    return [items[i] for i in order]
                break
    return sorted(items, key=_dumps)


def reference_hash(record: Mapping[str, Any]) -> str:
    payload = _dumps(_stable(record)).encode()
    return hashlib.sha256(payload).hexdigest()


# --------------------------------------------------------------------------
# Representative records
# --------------------------------------------------------------------------


def _rich_product() -> dict[str, Any]:
    return {
        "source_product_code": "TSHIRT",
        "title": " T-shirt ",
        "product_active": "Active",
        "tags": "summer, cotton,summer",
        "options": [{"name": "Size", "position": "2"}, {"name": "Colour", "position": 1}],
        "meta": [
            {"key": "material", "value": "cotton"},
            {"key": "Brand", "value": "Acme"},
            {"key": "Brand name", "value": 'say "hi"'},
        ],
        "variants": [
            {
                "source_variant_code": "SKU-RED",
                "sku": "SKU-RED",
                "qty": "-4",
                "price": "199.990",
                "price_tiers": [
                    {"tier": "wholesale", "price": "150"},
                    {"tier": "retail", "price": 199.99},
                    {"tier": "retail 2", "price": "8.000000000000001"},
                ],
                "qty_availability": [
                    {"description": "JHB", "qty": "3"},
                    {"description": "CPT", "qty": "12.5"},
                ],
                "meta": [{"key": "bin", "value": "A7"}, {"key": "aisle", "value": "ünï"}],
                "option1": "Red",
                "grams": "250",
            },
            {"source_variant_code": "SKU-BLUE", "sku": "SKU-BLUE", "qty": "12.0"},
            {"source_variant_code": "SKU", "sku": "SKU", "price": 0.30000000000000004},
        ],
    }


def rich_record() -> dict[str, Any]:
    record = load_product(_rich_product()).record
    assert record is not None
    return record


def emulator_records(n: int = 300) -> list[dict[str, Any]]:
    rows = generate_rows(n, 1234)
    products, _ = map_records(get_map("sql", "products"), rows, {})
    out = []
    for raw in products:
        loaded = load_product(raw)
        if loaded.record is not None and loaded.action == "active":
            out.append(loaded.record)
    return out


class Level(IntEnum):
    LOW = 1


class Price(float):
    pass


ODD_RECORDS: list[dict[str, Any]] = [
    {},
    {"price": 8.000000000000001},
    {"price": 0.1 + 0.2, "other": -0.0, "big": 1e300, "tiny": 1e-9, "neg": -2.50005},
    {"nan": float("nan"), "inf": float("inf"), "minf": float("-inf")},
    {
        "d": Decimal("1.10"),
        "dt": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "day": date(2024, 5, 6),
    },
    {1: "one", "2": 2, None: "none", 3.5: "float key"},
    {1: "a", "1": "b"},
    {"t": (3, 1, 2), "l": ["b", "a", "A B", "A"], "mixed": [1, "1", None, True, 2.0]},
    {"enum": Level.LOW, "sub": Price(1.23456), "set": {1, 2}, "bytes": b"x"},
    {"m": MappingProxyType({"b": 1, "a": [2, 1]}), "o": OrderedDict([("z", 1), ("y", 2)])},
    {
        "variants": [
            {"source_variant_code": "A B", "qty": 1},
            {"source_variant_code": "A", "qty": 2},
            {"source_variant_code": 'A"', "qty": 3},
            {"source_variant_code": "A\\", "qty": 4},
            {"source_variant_code": "A\n", "qty": 5},
        ]
    },
    {"dupes": [{"key": "x", "value": 2}, {"key": "x", "value": 1}]},
    {"partial": [{"tier": "b", "name": "z"}, {"name": "a"}, {"name": "m", "tier": "a"}]},
    {"nokeys": [{"b": 2}, {"a": 1}], "numkeys": [{"tier": 2}, {"tier": 10}, {"tier": 1.0}]},
    {"nested": [[3, 2], [1], [], [{"name": "b"}, {"name": "a"}]]},
    {"uni": "ünïcödé ✓ \u2028 \x01", "emoji": "🙂"},
]

PINNED_RICH = "6aa2d3a480c0abaf3be38c8fe578c41346e946e5c19fc499981eea5fc9642f6d"
PINNED_ODD: list[str] = [
    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "cd0b7bb60b8ff526a4f6cccc16c654295ed3a79ee779bc2272f445cfb72f9419",
    "bee19ad55ad1f6c40265770498b9a8d1db7d43a6ec30b70e13dd71b003864425",
    "f82f7566a087ea97a13d28ec1ee8196210ed57fdd13c21f9b4c263475116d846",
    "992b9e5c437c848ab5b0ca3968aa28c3ebc901dc92c252be30b654b39d7f400f",
    "448284b5f5d744a193e61074a5728af98ca84484e6be3f72dab9b8ed076c96f5",
    "8949f0edfee037f97ff4a96818160b14338b7e28030ad9fb67e33d78a1eedc3b",
    "70709b54a12ac5864505d3ba066a7d8237c91d72bba9774b2d38f38ff91603d2",
    "c22981bc60cfa3cca6232f698bd5fd1538118d14b7ad8fb01fdb8b955224de18",
    "61a96e17ffba29ea9bff3ed003f78504b426aa231c5020c98064cd02ea28649a",
    "38063516146c7bbcb93a7984048a3c666e18725f290025233dd4bcd26dd3c656",
    "c18d9988f275b131edd43757642d6d60d21f95aa0a60b7d5c5d5b06e14bd746d",
    "5c5bb44df15603910ed2a33d9508fe9d50c2d113b6549f0f1fcb0891728160d1",
    "8f2d9c81b36450dc5c87578f47a8ecd8105979f6899ec20c2e9997faeffd8c81",
    "c244593126a083bb0c14002441c4cdf03afc6938add455dfafee59ca376070a0",
    "1f18325bf8ed5875eecac63056810557621eecb1309c34afebc9443e8a213f54",
]
PINNED_EMULATOR = "44d68e7e1087e92166f454941cdebe4f03b62a6bd9b49cc41236befdf68eb365"


def _digest_of(hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


# --------------------------------------------------------------------------
# Pins
# --------------------------------------------------------------------------


def test_pinned_rich_product() -> None:
    record = rich_record()
    assert canonical_hash(record) == PINNED_RICH
    assert reference_hash(record) == PINNED_RICH


def test_pinned_odd_values() -> None:
    assert [canonical_hash(r) for r in ODD_RECORDS] == PINNED_ODD
    assert [reference_hash(r) for r in ODD_RECORDS] == PINNED_ODD


def test_pinned_emulator_products() -> None:
    records = emulator_records()
    assert len(records) > 200
    assert _digest_of([canonical_hash(r) for r in records]) == PINNED_EMULATOR


def test_hash_does_not_touch_the_record() -> None:
    record = rich_record()
    before = copy.deepcopy(record)
    canonical_hash(record)
    assert record == before


def test_unencodable_values_fail_alike() -> None:
    for bad in ({"s": "\ud800"}, {"k": [{"name": "\ud800"}, {"name": "a"}]}):
        errors = []
        for fn in (reference_hash, canonical_hash):
            try:
                fn(bad)
            except Exception as exc:  # the same exception type, whatever it is
                errors.append(type(exc))
            else:
                errors.append(None)
        assert errors[0] is not None and errors[0] == errors[1]


# --------------------------------------------------------------------------
# Old against new on generated and shuffled inputs
# --------------------------------------------------------------------------


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        items = [_shuffled(v, rng) for v in value]
        rng.shuffle(items)
        return items
    return value


def test_shuffled_records_match_reference() -> None:
    rng = random.Random(11)
    for record in [rich_record(), *emulator_records(60), *ODD_RECORDS]:
        shuffled = _shuffled(record, rng)
        assert canonical_hash(shuffled) == reference_hash(shuffled)


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_text = st.text(
    alphabet=st.sampled_from(list('aAbB zZ"\\\n\x01-é✓')),
    max_size=5,
)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False, places=5),
    _text,
)
_key = st.one_of(st.sampled_from((*_NATURAL_KEYS, "value", "qty", "price")), _text)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_key, inner, max_size=5),
        st.lists(
            st.fixed_dictionaries(
                {"name": _scalar},
                optional={"tier": _scalar, "key": _scalar, "value": inner},
            ),
            max_size=4,
        ),
    ),
    max_leaves=25,
)


@SETTINGS
@given(st.dictionaries(_key, _value, max_size=6))
def test_generated_values_match_reference(record: dict[str, Any]) -> None:
    try:
        expected: Any = reference_hash(record)
    except Exception as exc:
        expected = type(exc)
    try:
        got: Any = canonical_hash(record)
    except Exception as exc:
        got = type(exc)
    assert got == expected


_field = st.one_of(st.none(), _text, st.integers(-5, 300))
_product = st.fixed_dictionaries(
    {
        "source_product_code": st.text(min_size=1, max_size=4).filter(str.strip),
        "title": st.text(min_size=1, max_size=4).filter(str.strip),
        "tags": st.one_of(st.none(), _text),
        "options": st.lists(st.fixed_dictionaries({"name": _text}), max_size=3),
        "meta": st.lists(st.fixed_dictionaries({"key": _text, "value": _field}), max_size=3),
        "variants": st.lists(
            st.fixed_dictionaries(
                {
                    "source_variant_code": _text,
                    "sku": _text,
                    "qty": _field,
                    "price": st.one_of(st.none(), st.floats(-1e6, 1e6), _text),
                    "price_tiers": st.lists(
                        st.fixed_dictionaries(
                            {"tier": _text, "price": st.one_of(st.none(), st.floats(0, 1e5))}
                        ),
                        max_size=3,
                    ),
                    "qty_availability": st.lists(
                        st.fixed_dictionaries({"description": _text, "qty": _field}),
                        max_size=3,
                    ),
                    "meta": st.lists(
                        st.fixed_dictionaries({"key": _text, "value": _field}), max_size=2
                    ),
                }
            ),
            min_size=1,
            max_size=4,
        ),
    }
)


@SETTINGS
@given(_product)
def test_loaded_products_match_reference(raw: dict[str, Any]) -> None:
    loaded = load_product(raw)
    for record in (raw, loaded.record):
        if record is not None:
            assert canonical_hash(record) == reference_hash(record)
