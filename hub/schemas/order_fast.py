"""The order schema's fast path: valid orders without marshmallow, or "not sure".

Order intake over HTTP is CPU-bound, and marshmallow's walk over one order
(some seventy values in a dozen nested objects) was its largest single
cost: see `hub.schemas.orders` for the figures. `fast_loader(schema)` reads a schema's own fields
once, at import, and returns a plain-Python loader that applies the same
coercers (`hub.schemas.scalars`) and list finishers (`hub.schemas.lists`)
with the same defaults (each field's `load_default`) and the same list rules
(`min_items`, `max_items`). Because it is derived from the schema rather
than written beside it, a field added to the schema is loaded by both ways
at once, and a kind of field or hook this module does not know stops the
import with a TypeError rather than being loaded differently.

The loader only answers for orders it is sure of. At the first doubt — a
coercion error, a required field missing or blank, an unknown key where the
schema raises on them, a wrong type, a list rule broken, anything that is
not exactly a dict or a list where one belongs, any exception at all — it
returns None, and the caller runs marshmallow, so every refusal (its
messages, its paths, even an exception a coercer lets out) is marshmallow's
by construction. tests/property/test_order_loader.py holds the two equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from marshmallow import EXCLUDE, RAISE, Schema, fields, missing

from hub.schemas.fields import Coerced, ListOf

# A compiled loader: the loaded record, or it raises (any exception) at a doubt.
_Load = Callable[[Any], dict[str, Any]]
FastLoad = Callable[[Any], dict[str, Any] | None]


class Doubt(Exception):
    """The value is not one the fast path is sure of: marshmallow decides."""


_DOUBT: Final = Doubt()
_MISSING: Final = object()


def _refuse(where: str, why: str) -> TypeError:
    return TypeError(
        f"{where}: {why}; the fast order loader (hub/schemas/order_fast.py) "
        "cannot load it exactly as marshmallow does, so teach it this first"
    )


def _check_schema(schema: Schema, where: str) -> None:
    """Hooks (pre_load, post_load, validates…) would run in marshmallow only."""
    if any(schema._hooks.values()):
        raise _refuse(where, "the schema has hooks")
    if schema.many:
        raise _refuse(where, "the schema loads many")


def _check_field(field: fields.Field[Any], where: str) -> None:
    """The field options a plain walk would silently skip."""
    if field.validators or field.pre_load or field.post_load:
        raise _refuse(where, "the field has validators or processors")
    if field.data_key is not None or field.attribute is not None:
        raise _refuse(where, "the field has a data_key or an attribute")


def _policy(unknown: str, where: str) -> bool:
    """True when unknown keys must make the loader doubt (RAISE)."""
    if unknown == RAISE:
        return True
    if unknown == EXCLUDE:
        return False
    raise _refuse(where, f"unknown={unknown!r} is not supported")


def _nested_schema(field: fields.Nested, where: str) -> tuple[Schema, bool]:
    """The nested schema instance and whether it raises on unknown keys."""
    if field.many:
        raise _refuse(where, "a nested field with many=True")
    schema = field.schema
    unknown = field.unknown if field.unknown is not None else schema.unknown
    return schema, _policy(unknown, where)


def _scalar(field: Coerced, name: str, where: str) -> tuple[str, Any, Any, bool]:
    default = field.load_default
    if field.allow_none:
        raise _refuse(where, "a coerced field that allows None past its coercer")
    if not field.required and (default is missing or callable(default)):
        raise _refuse(where, "a field with no constant load_default")
    return (name, field._coerce, default, field.required)


def _nest(field: fields.Nested, name: str, where: str) -> tuple[str, _Load, Any, bool, bool]:
    default = field.load_default
    if not field.required and (default is missing or callable(default)):
        raise _refuse(where, "a nested field with no constant load_default")
    schema, strict = _nested_schema(field, where)
    return (name, _compile(schema, strict, where), default, field.allow_none, field.required)


def _list(field: ListOf, name: str, where: str) -> tuple[Any, ...]:
    inner = field.inner
    if not isinstance(inner, fields.Nested) or inner.allow_none or field.allow_none:
        raise _refuse(where, "a list whose items are not required objects")
    _check_field(inner, where + "[]")
    schema, strict = _nested_schema(inner, where + "[]")
    default = field.load_default
    if not field.required and not callable(default):
        raise _refuse(where, "a list whose load_default is not a factory")
    return (
        name,
        _compile(schema, strict, where + "[]"),
        field._finish,
        field._min_items,
        field._max_items,
        field.required,
        default,
    )


def _compile(schema: Schema, strict: bool, where: str) -> _Load:
    """One schema's loader, its nested schemas' loaders compiled into it."""
    _check_schema(schema, where)
    names = tuple(schema.load_fields)
    known = frozenset(names)
    scalars: list[tuple[str, Any, Any, bool]] = []
    nests: list[tuple[str, _Load, Any, bool, bool]] = []
    lists: list[tuple[Any, ...]] = []
    for name, field in schema.load_fields.items():
        at = f"{where}.{name}"
        _check_field(field, at)
        if isinstance(field, ListOf):
            lists.append(_list(field, name, at))
        elif isinstance(field, fields.Nested):
            nests.append(_nest(field, name, at))
        elif isinstance(field, Coerced):
            scalars.append(_scalar(field, name, at))
        else:
            raise _refuse(at, f"a {type(field).__name__} field")
    return _walker(names, known if strict else None, tuple(scalars), tuple(nests), tuple(lists))


def _walker(
    names: tuple[str, ...],
    known: frozenset[str] | None,
    scalars: tuple[tuple[str, Any, Any, bool], ...],
    nests: tuple[tuple[str, _Load, Any, bool, bool], ...],
    lists: tuple[tuple[Any, ...], ...],
) -> _Load:
    """The walk itself: marshmallow's `Schema._deserialize`, `Coerced`,
    `Nested` and `ListOf` for the values they accept, and a doubt otherwise."""

    def load(raw: Any) -> dict[str, Any]:
        if raw.__class__ is not dict:
            raise _DOUBT
        if known is not None and not raw.keys() <= known:
            raise _DOUBT
        # Keys in the schema's order, as marshmallow gives them.
        out: dict[str, Any] = dict.fromkeys(names)
        get = raw.get
        for name, coerce, default, required in scalars:
            value = get(name, _MISSING)
            if value is _MISSING:
                if required:
                    raise _DOUBT
                out[name] = default
                continue
            result = coerce(value, name)
            if result is None and required:
                raise _DOUBT
            out[name] = result
        for name, sub, default, allow_none, required in nests:
            value = get(name, _MISSING)
            if value is _MISSING:
                if required:
                    raise _DOUBT
                out[name] = default
            elif value is None:
                if not allow_none:
                    raise _DOUBT
                out[name] = None
            else:
                out[name] = sub(value)
        for name, item, finish, least, most, required, default in lists:
            value = get(name, _MISSING)
            if value is _MISSING:
                if required:
                    raise _DOUBT
                out[name] = default()
                continue
            if value is None:
                value = []
            elif value.__class__ is not list:
                raise _DOUBT
            if len(value) < least or (most is not None and len(value) > most):
                raise _DOUBT
            items = [item(entry) for entry in value]
            out[name] = items if finish is None else finish(items, name)
        return out

    return load


def fast_loader(schema: Schema) -> FastLoad:
    """A schema's fast path: the record marshmallow would load, or None when unsure.

    Raises TypeError at once for a schema it cannot follow exactly.
    """
    load = _compile(schema, _policy(schema.unknown, type(schema).__name__), type(schema).__name__)

    def fast(raw: Any) -> dict[str, Any] | None:
        try:
            return load(raw)
        except Exception:
            # Doubt, a coercion error, or anything else: marshmallow decides,
            # and reports (or raises) exactly as it would have.
            return None

    return fast
