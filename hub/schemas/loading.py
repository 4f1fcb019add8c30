"""The sync's fast path: the walk over a record, without marshmallow.

Marshmallow costs several times the rest of the sync pipeline at 100,000
products, so products and customers are loaded by this hand-written walk,
which applies the same coercers and finishers in the same order with the
same messages; tests hold it equal to the schemas (`*_via_schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

from hub.schemas.lists import label
from hub.schemas.scalars import (
    Action,
    Coerce,
    CoercionError,
    Errors,
    coerce_code,
    coerce_text,
    tri_state,
)


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


MISSING: Final = object()


def action_of(raw: Mapping[str, Any], flag: str, errors: Errors) -> Action | None:
    """The tri-state: the ERP's flag wins over a plain `active`; neither means active."""
    state: Action | None = None
    plain: Action | None = None
    value = raw.get(flag, MISSING)
    if value is not MISSING:
        try:
            state = tri_state(value, flag)
        except CoercionError as exc:
            errors.append((flag, str(exc)))
    value = raw.get("active", MISSING)
    if value is not MISSING:
        try:
            plain = tri_state(value, "active")
        except CoercionError as exc:
            errors.append(("active", str(exc)))
    if errors:
        return None
    return state or plain or "active"


def key_only(raw: Mapping[str, Any], code_field: str, action: Action) -> Loaded:
    """A record being deleted or ignored: only its key is checked (see `Loaded`)."""
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

META_SPEC: Final[Spec] = (("key", coerce_text, None, True), ("value", coerce_text, None, False))


def load_scalars(raw: Mapping[str, Any], spec: Spec, prefix: str, errors: Errors) -> dict[str, Any]:
    out: dict[str, Any] = {}
    get = raw.get
    for key, coerce, default, required in spec:
        value = get(key, MISSING)
        if value is MISSING:
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


def flat_item(spec: Spec) -> ItemLoader:
    def load(raw: Mapping[str, Any], prefix: str, errors: Errors) -> dict[str, Any]:
        return load_scalars(raw, spec, prefix, errors)

    return load


def load_list(
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
    value = raw.get(key, MISSING)
    if not min_items and (value is MISSING or (value.__class__ is list and not value)):
        return []
    path = prefix + key
    if value is MISSING:
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


load_meta: Final = flat_item(META_SPEC)
