"""Marshmallow pieces of the documented model: fields, bases, error paths.

The fields call the shared coercers and finishers, so the schemas and the
fast loaders apply the same rules; `flatten_errors` turns marshmallow's
nested messages into the `(path, message)` pairs both ways report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing

from hub.schemas.lists import label
from hub.schemas.scalars import Coerce, CoercionError, Errors, coerce_text


class Coerced(fields.Field[Any]):
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


class ListOf(fields.List[Any]):
    """A list of nested objects with the list-level rules of the model."""

    def __init__(
        self,
        schema: type[Schema],
        *,
        finish: Callable[[list[dict[str, Any]], str], list[dict[str, Any]]] | None = None,
        min_items: int = 0,
        min_message: str = "",
        max_items: int | None = None,
        unknown: Literal["exclude", "include", "raise"] | None = None,
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
        items: list[Any] = super()._deserialize(value, attr, data, **kwargs)
        if self._finish is not None:
            try:
                items = self._finish(items, name)
            except CoercionError as exc:
                raise ValidationError(str(exc)) from None
        return items


class Canonical(Schema):
    class Meta:
        unknown = EXCLUDE


class MetaSchema(Canonical):
    error_messages = {"type": "a meta entry must be an object"}
    key = Coerced(coerce_text, required=True)
    value = Coerced(coerce_text, load_default=None)


def settle_active(data: dict[str, Any], flag: str) -> dict[str, Any]:
    """The ERP's tri-state flag (or a plain `active`) becomes `active: bool`."""
    state = data.pop(flag, None)
    plain = data.pop("active", None)
    data["active"] = (state or plain or "active") != "delete"
    return data


# Orders come from channels and the API, not from ERPs: unknown keys are an
# error there (RAISE), so a misspelt "total_discounts" cannot silently drop
# a discount from an order that is about to be invoiced.


class Strict(Schema):
    class Meta:
        unknown = RAISE


def nested(schema: type[Schema], message: str) -> fields.Nested:
    return fields.Nested(
        schema,
        unknown=RAISE,
        allow_none=True,
        load_default=None,
        error_messages={"type": message},
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


def load_with(schema: Schema, raw: Any) -> tuple[dict[str, Any] | None, Errors]:
    try:
        return schema.load(raw), []
    except ValidationError as exc:
        return None, flatten_errors(exc.messages, raw)
