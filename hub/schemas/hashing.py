"""Change detection: the canonical hash the hub stores with each record.

An unchanged product is not written again because its hash is unchanged, so
the canonical JSON must never change: tests/unit/test_hash_stability.py
pins the digests and holds this implementation to the original one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any, Final

from hub.schemas.lists import NATURAL_KEYS

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


def _stable_generic(
    value: Any,
    walk: Callable[[Any], Any] | None = None,
    order: Callable[[list[Any]], list[Any]] = _sorted,
) -> Any:
    """The general rules, for anything but the exact types handled above.

    Every result is fresh or an unchanged plain value: `canonical_hash`
    never modifies the record it is given. ``walk`` (`_stable` unless
    given) makes each nested value plain, ``order`` puts each list in order:
    `stored_json` walks with the same rules and leaves lists as they are.
    """
    walk = walk or _stable
    kind = value.__class__
    if kind in _PLAIN:
        return value
    if kind is float:
        return _stable_float(value)
    if kind is dict or isinstance(value, Mapping):
        return {
            k if k.__class__ is str else str(k): v if v.__class__ in _PLAIN else walk(v)
            for k, v in value.items()
        }
    if kind is list or isinstance(value, list | tuple):
        return order([v if v.__class__ in _PLAIN else walk(v) for v in value])
    if isinstance(value, Decimal):
        return walk(float(value))
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


def stored_json(record: Mapping[str, Any]) -> str:
    """The record as the store keeps it (``products.data``): the canonical
    JSON's keys, numbers and spacing, every list in the record's own order.

    Why not `canonical_hash`'s text: that sorts lists into natural order,
    and a product's variants are shown on the channels in the ERP's order
    (sizes S, M, L, not L, M, S). Why not ``json.dumps`` at write time: the
    columnar mapping already holds this text for every product it vouches
    for, so the store writes it as it is instead of encoding each record
    again (about a tenth of a worker's time in a full sync).
    """
    return _dumps_once(_kept(record))


def _kept(value: Any) -> Any:
    """`_stable` with lists left in their order: floats rounded, and what
    JSON cannot hold made plain the same way."""
    return _stable_generic(value, _kept, _as_is)


def _as_is(items: list[Any]) -> list[Any]:
    return items
