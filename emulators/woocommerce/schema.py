"""Request parameters checked as WordPress checks them against a route's schema.

``rest_validate_value_from_schema`` is strict about types (a JSON number is
not a ``string``; ``"12"`` is an ``integer``; ``"true"``/``"0"`` are
booleans), checks ``enum``, ``minimum``/``maximum`` and ``pattern``, and
every failure becomes one ``rest_invalid_param`` 400 naming the parameters.
Keys a schema does not name are ignored, as WordPress ignores them.

Money is typed ``string`` by WooCommerce; the decimal ``pattern`` on
``regular_price``/``sale_price`` is this emulator's addition (core would
store ``"abc"`` as an empty price), so a client sending a price that is not
a decimal string finds out here rather than on a live shop.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .errors import invalid_params

Spec = dict[str, Any]

STR: Spec = {"type": "string"}
INT: Spec = {"type": "integer"}
BOOL: Spec = {"type": "boolean"}
MIXED: Spec = {"type": "mixed"}
MONEY: Spec = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?)?$"}
STOCK_STATUSES = ["instock", "outofstock", "onbackorder"]
PRODUCT_TYPES = ["simple", "grouped", "external", "variable"]
POST_STATUSES = ["draft", "pending", "private", "publish"]


def enum(*values: str) -> Spec:
    return {"type": "string", "enum": list(values)}


DIMENSIONS: Spec = {"type": "object", "properties": {"length": STR, "width": STR, "height": STR}}
META: Spec = {
    "type": "array",
    "items": {"type": "object", "properties": {"key": STR, "value": MIXED}},
}

PRODUCT: dict[str, Spec] = {
    "name": STR,
    "slug": STR,
    "type": enum(*PRODUCT_TYPES),
    "status": enum(*POST_STATUSES, "future", "auto-draft", "trash"),
    "featured": BOOL,
    "catalog_visibility": enum("visible", "catalog", "search", "hidden"),
    "description": STR,
    "short_description": STR,
    "sku": STR,
    "regular_price": MONEY,
    "sale_price": MONEY,
    "virtual": BOOL,
    "downloadable": BOOL,
    "external_url": STR,
    "button_text": STR,
    "tax_status": enum("taxable", "shipping", "none"),
    "tax_class": STR,
    "manage_stock": BOOL,
    "stock_quantity": INT,
    "stock_status": enum(*STOCK_STATUSES),
    "backorders": enum("no", "notify", "yes"),
    "weight": STR,
    "dimensions": DIMENSIONS,
    "parent_id": INT,
    "menu_order": INT,
    "attributes": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "id": INT,
                "name": STR,
                "position": INT,
                "visible": BOOL,
                "variation": BOOL,
                "options": {"type": "array", "items": STR},
            },
        },
    },
    "default_attributes": {
        "type": "array",
        "items": {"type": "object", "properties": {"id": INT, "name": STR, "option": STR}},
    },
    "meta_data": META,
}

VARIATION: dict[str, Spec] = {
    "description": STR,
    "sku": STR,
    "regular_price": MONEY,
    "sale_price": MONEY,
    "status": enum(*POST_STATUSES),
    "virtual": BOOL,
    "downloadable": BOOL,
    "tax_status": enum("taxable", "shipping", "none"),
    "tax_class": STR,
    "manage_stock": BOOL,
    "stock_quantity": INT,
    "stock_status": enum(*STOCK_STATUSES),
    "backorders": enum("no", "notify", "yes"),
    "weight": STR,
    "dimensions": DIMENSIONS,
    "menu_order": INT,
    "attributes": {
        "type": "array",
        "items": {"type": "object", "properties": {"id": INT, "name": STR, "option": STR}},
    },
    "meta_data": META,
}

DATE: Spec = {"type": "string", "format": "date-time"}
IDS: Spec = {"type": "array", "items": INT}
COLLECTION: dict[str, Spec] = {
    "page": {"type": "integer", "minimum": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
    "offset": INT,
    "search": STR,
    "order": enum("asc", "desc"),
    "orderby": enum(
        "date", "id", "include", "title", "slug", "modified", "price", "popularity", "rating"
    ),
    "include": IDS,
    "exclude": IDS,
    "status": enum("any", "future", "trash", *POST_STATUSES),
    "type": enum(*PRODUCT_TYPES),
    "sku": STR,
    "slug": STR,
    "stock_status": enum(*STOCK_STATUSES),
    "after": DATE,
    "before": DATE,
    "modified_after": DATE,
    "modified_before": DATE,
}
COLLECTION_DEFAULTS: dict[str, Any] = {
    "page": 1,
    "per_page": 10,
    "order": "desc",
    "orderby": "date",
    "status": "any",
    "include": [],
    "exclude": [],
}
DELETE: dict[str, Spec] = {"force": BOOL}


class Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_date(value: str) -> datetime | None:
    """An ISO 8601 date-time as ``rest_parse_date`` reads it; naive means site time (UTC here)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(\.0*)?\s*", value):
        return int(float(value))
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return None


def _scalar(value: Any, spec: Spec, name: str) -> Any:
    kind = spec["type"]
    if kind == "integer":
        number = _integer(value)
        if number is None:
            raise Invalid("rest_invalid_type", f"{name} is not of type integer.")
        _bounds(number, spec, name)
        return number
    if kind == "boolean":
        flag = _boolean(value)
        if flag is None:
            raise Invalid("rest_invalid_type", f"{name} is not of type boolean.")
        return flag
    if not isinstance(value, str):
        raise Invalid("rest_invalid_type", f"{name} is not of type string.")
    if "enum" in spec and value not in spec["enum"]:
        raise Invalid("rest_not_in_enum", f"{name} is not one of {', '.join(spec['enum'])}.")
    if "pattern" in spec and not re.search(spec["pattern"], value):
        raise Invalid("rest_invalid_pattern", f"{name} does not match pattern {spec['pattern']}.")
    if spec.get("format") == "date-time" and parse_date(value) is None:
        raise Invalid("rest_invalid_date", "Invalid date.")
    return value


def _bounds(number: int, spec: Spec, name: str) -> None:
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None and not low <= number <= high:
        message = f"{name} must be between {low} (inclusive) and {high} (inclusive)"
        raise Invalid("rest_out_of_bounds", message)
    if low is not None and high is None and number < low:
        raise Invalid("rest_out_of_bounds", f"{name} must be greater than or equal to {low}")


def check(value: Any, spec: Spec, name: str) -> Any:
    """The value sanitized as WordPress would, or :class:`Invalid` with its code and message."""
    kind = spec["type"]
    if kind == "mixed":
        return value
    if kind == "array":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise Invalid("rest_invalid_type", f"{name} is not of type array.")
        items = spec.get("items")
        return [check(v, items, f"{name}[{i}]") if items else v for i, v in enumerate(value)]
    if kind == "object":
        if value == []:
            return {}
        if not isinstance(value, dict):
            raise Invalid("rest_invalid_type", f"{name} is not of type object.")
        props: dict[str, Spec] = spec.get("properties", {})
        return {
            key: check(v, props[key], f"{name}[{key}]") if key in props else v
            for key, v in value.items()
        }
    return _scalar(value, spec, name)


def validate(params: dict[str, Any], schema: dict[str, Spec]) -> dict[str, Any]:
    """The parameters a schema names, sanitized; every invalid one reported at once."""
    clean: dict[str, Any] = {}
    problems: dict[str, tuple[str, str]] = {}
    for name, spec in schema.items():
        if name not in params:
            continue
        try:
            clean[name] = check(params[name], spec, name)
        except Invalid as exc:
            problems[name] = (exc.code, exc.message)
    if problems:
        raise invalid_params(problems)
    return clean


def collection(query: dict[str, Any]) -> dict[str, Any]:
    """List parameters with WordPress's defaults filled in."""
    return {**COLLECTION_DEFAULTS, **validate(query, COLLECTION)}
