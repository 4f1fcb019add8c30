"""The vocabulary maps are written in.

A map is a seed page's field table made executable: one `Row` per line of the
table, in the table's order, so the same rows both transform raw ERP records
and print the documentation (`s2s mappings show sql products`). Keeping the
two in one place is what stops the documentation drifting from the code, and
a test holds every map's `render()` against the seed's table.

Inbound maps (products, customers) turn a raw ERP record into a *flat* dict
keyed by hub path ("variants.qty"); `build_products` / `build_customers` then
assemble the nested canonical shapes. Outbound maps (orders) document the
ERP columns and delegate to the ERP module's payload builder.

Nothing here does I/O or imports the rest of the project: maps are pure data
plus pure functions, so they can be previewed, tested and rendered anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Re-exported: the map modules write in the vocabulary through this module.
from mappings.scalars import AMOUNT_LIMIT
from mappings.scalars import MappingError as MappingError
from mappings.scalars import flag as flag
from mappings.scalars import number as number
from mappings.scalars import shown as shown
from mappings.scalars import text as text

STREAMS: Final = ("products", "customers", "orders")
INBOUND: Final = frozenset({"products", "customers"})
UNKNOWN_KEY: Final = "<unknown>"
# The hub path that keys each inbound stream's records (and groups a
# product's variant rows).
KEY_PATHS: Final[Mapping[str, str]] = {
    "products": "source_product_code",
    "customers": "source_customer_code",
}

Compute = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
Transform = Callable[[Any], Any]
KeyOf = Callable[[Mapping[str, Any]], str]


class _Unset:
    """Marks "no constant" so that a constant of None stays expressible."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()
_MISSING: Final = object()


class MissingSettingError(MappingError):
    """An order needs a source setting that is not set (a cash account, a shipping code).

    Kept apart from bad data because the fix differs: the operator sets
    ``setting`` on the source and replays, instead of correcting the order.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.setting, str(self)))


# --------------------------------------------------------------------------
# Reading raw records
# --------------------------------------------------------------------------


class RawRecord(Mapping[str, Any]):
    """A read-only, case-insensitive view of one raw record.

    ERPs disagree on key case (SQL Server keeps the alias as written,
    PostgreSQL folds unquoted aliases to lower case), so maps name a field
    once and find it either way. The lower-cased index is built only when an
    exact lookup misses, which keeps the common path a single dict lookup.
    """

    __slots__ = ("_data", "_lower")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data
        self._lower: dict[str, Any] | None = None

    def _folded(self) -> dict[str, Any]:
        if self._lower is None:
            self._lower = {k.lower(): v for k, v in self._data.items() if isinstance(k, str)}
        return self._lower

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            return self._folded()[key.lower()]

    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            return self._folded().get(key.lower(), default)
        return value

    def __contains__(self, key: object) -> bool:
        if key in self._data:
            return True
        return isinstance(key, str) and key.lower() in self._folded()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def data(self) -> Mapping[str, Any]:
        return self._data


# --------------------------------------------------------------------------
# Parsing values into hub fields: the scalar vocabulary (mappings.scalars)
# plus what only an inbound map needs
# --------------------------------------------------------------------------


def raw_state(value: Any, name: str) -> Any:
    """Tri-state flags pass through (stripped): the hub decides Active/Delete/Ignore."""
    return value.strip() if isinstance(value, str) else value


def _pairs(value: Any, name: str, label: str, amount: str) -> list[dict[str, Any]]:
    """A list of {label, amount} from a list, a dict or "a:1,b:2" text.

    The text form exists because a SQL alias can only produce a scalar, so a
    query that wants several price tiers or warehouses concatenates them.
    """
    if value is None:
        return []
    items: list[tuple[Any, Any]]
    if isinstance(value, str):
        items = []
        for part in value.split(","):
            if not part.strip():
                continue
            key, sep, val = part.rpartition(":")
            if not sep or not key.strip():
                raise MappingError(f'{name} "{shown(value)}" is not a list of name:value pairs')
            items.append((key, val))
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = []
        for item in value:
            if not isinstance(item, Mapping) or label not in item:
                raise MappingError(f"{name} entries need a {label} and a {amount}")
            items.append((item.get(label), item.get(amount)))
    else:
        raise MappingError(f'{name} "{shown(value)}" is not a list of name:value pairs')
    out = []
    for key, val in items:
        code = text(key, name)
        if code is None:
            raise MappingError(f"{name} has an entry without a {label}")
        out.append({label: code, amount: number(val, f"{name} {code}")})
    return out


def tiers(value: Any, name: str) -> list[dict[str, Any]]:
    """Price tiers as [{tier, price}]."""
    return _pairs(value, name, "tier", "price")


def availability(value: Any, name: str) -> list[dict[str, Any]]:
    """Per-warehouse stock as [{description, qty}]."""
    return _pairs(value, name, "description", "qty")


Parser = Callable[[Any, str], Any]

# Every hub path an inbound map may produce, with the parser that makes a
# raw value fit it. The seeds spell two of them without the "variants."
# prefix (iSync's `inventory_management`, and `csv_price_tiers`); both
# spellings are accepted and `build_products` files them under the variant.
PRODUCT_PATHS: Final[Mapping[str, Parser]] = {
    "source_product_code": text,
    "title": text,
    "body_html": text,
    "collection": text,
    "product_type": text,
    "vendor": text,
    "tags": text,
    "product_active": raw_state,
    "options.option1": text,
    "options.option2": text,
    "options.option3": text,
    "source_variant_code": text,
    "variants.sku": text,
    "variants.barcode": text,
    "variants.qty": number,
    "variants.price": number,
    "variants.retail_price": number,
    "variants.grams": number,
    "variants.inventory_management": flag,
    "inventory_management": flag,
    "variants.option1": text,
    "variants.option2": text,
    "variants.option3": text,
    "csv_price_tiers": tiers,
    "variants.price_tiers": tiers,
    "variants.qty_availability": availability,
}
ADDRESS_FIELDS: Final = (
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "city",
    "province",
    "province_code",
    "country",
    "country_code",
    "zip",
    "phone",
)
CUSTOMER_PATHS: Final[Mapping[str, Parser]] = {
    "source_customer_code": text,
    "first_name": text,
    "last_name": text,
    "email": text,
    "customer_active": raw_state,
    "price_tier": text,
    "qty_availability": text,
    **{f"addresses.{name}": text for name in ADDRESS_FIELDS},
}
# Free-form keys: "meta.brand" becomes meta {key: "brand"}.
PATH_PREFIXES: Final[Mapping[str, tuple[str, ...]]] = {
    "products": ("meta.", "variants.meta."),
    "customers": ("meta.",),
}
_PATHS: Final[Mapping[str, Mapping[str, Parser]]] = {
    "products": PRODUCT_PATHS,
    "customers": CUSTOMER_PATHS,
}


def parser_for(stream: str, path: str) -> Parser | None:
    """The parser of a hub path, or None when the stream has no such path."""
    paths = _PATHS.get(stream)
    if paths is None:
        return None
    found = paths.get(path)
    if found is not None:
        return found
    for prefix in PATH_PREFIXES[stream]:
        if path.startswith(prefix) and len(path) > len(prefix):
            return text
    return None


def hub_paths(stream: str) -> frozenset[str]:
    """Every hub path of an inbound stream; prefixes appear as "meta.*"."""
    return frozenset(_PATHS[stream]) | {p + "*" for p in PATH_PREFIXES[stream]}


# --------------------------------------------------------------------------
# Rows and maps
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a seed's field table.

    `erp` is the left column exactly as the seed shows it ("sellprice1",
    "WebItem", "true"). A row reads that field from the record, unless it is
    a constant (the seeds' `true` rows) or computed from the whole record
    and the source's settings (several ERP fields into one hub field, or a
    field chosen by a setting, like Syspro's active user field).
    """

    erp: str
    hub: str
    description: str = ""
    transform: Transform | None = None
    constant: Any = UNSET
    compute: Compute | None = None

    def __post_init__(self) -> None:
        if self.constant is not UNSET and self.compute is not None:
            raise ValueError(f"row {self.erp} -> {self.hub} is both a constant and computed")
        if "|" in self.erp + self.hub + self.description:
            raise ValueError(f"row {self.erp} -> {self.hub} contains '|', which breaks the table")


def const(erp: str, hub: str, value: Any, description: str = "") -> Row:
    """A row whose value is the same for every record (the seeds' `true`)."""
    return Row(erp, hub, description, constant=value)


def computed(erp: str, hub: str, fn: Compute, description: str = "") -> Row:
    """A row computed from the whole (case-insensitive) record and the settings."""
    return Row(erp, hub, description, compute=fn)


@dataclass(frozen=True, slots=True)
class RecordError:
    """Why one record could not be mapped; becomes a quarantine row.

    `key` is the record's natural key (SKU, product or customer code) so the
    operator can find it in the ERP; `field` is the hub path or ERP field at
    fault; `raw` is the record as the ERP sent it.
    """

    key: str
    field: str
    message: str
    raw: dict[str, Any]


class Flat(dict[str, Any]):
    """The flat result of `Map.apply`: hub path -> value.

    It is a plain dict of hub paths, so it prints and compares like one; the
    raw record and any per-field errors ride along as attributes, so that
    `build_products` can quarantine a record (and its product) with the raw
    data instead of dropping a field and writing a wrong product.
    """

    __slots__ = ("errors", "raw")

    def __init__(self, raw: Mapping[str, Any] | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw: Mapping[str, Any] = raw if raw is not None else {}
        self.errors: list[tuple[str, str]] = []


_EMPTY: Final[Mapping[str, Any]] = {}


@dataclass(frozen=True)
class Map:
    """One ERP's map of one stream: the rows of its seed table.

    `passthrough` names hub paths a raw record may carry directly as keys
    (a custom SQL query aliasing a column `AS "variants.qty"`); such a key
    wins over the row that reads the template's column. Entries ending in
    "*" are prefixes ("meta.*").

    Outbound maps (orders) go from the hub to the ERP: their rows document
    the ERP columns, and `build(order, settings)` makes the ERP payload.
    """

    erp: str
    erp_title: str
    stream: str
    rows: tuple[Row, ...]
    passthrough: frozenset[str] = frozenset()
    build: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None
    _plan: tuple[tuple[Row, Parser, int], ...] = field(init=False, repr=False, compare=False)
    _key_plan: tuple[tuple[Row, Parser, int], ...] = field(init=False, repr=False, compare=False)
    # `_plan` unpacked for `apply`'s loop: (hub, erp, parse, kind, transform, constant, compute).
    _steps: tuple[tuple[str, str, Parser, int, Transform | None, Any, Compute | None], ...] = field(
        init=False, repr=False, compare=False
    )
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.stream not in STREAMS:
            raise ValueError(f"stream {self.stream!r} is not one of {', '.join(STREAMS)}")
        if not self.rows:
            raise ValueError(f"the {self.erp} {self.stream} map has no rows")
        plan: list[tuple[Row, Parser, int]] = []
        if self.stream in INBOUND:
            if self.build is not None:
                raise ValueError("only outbound (orders) maps take a build function")
            for row in self.rows:
                parse = parser_for(self.stream, row.hub)
                if parse is None:
                    raise ValueError(f"{row.hub!r} is not a hub path of {self.stream}")
                kind = 2 if row.compute is not None else 1 if row.constant is not UNSET else 0
                plan.append((row, parse, kind))
            known = hub_paths(self.stream)
            for path in self.passthrough:
                if path not in known:
                    raise ValueError(f"passthrough {path!r} is not a hub path of {self.stream}")
        elif self.build is None:
            raise ValueError(f"the {self.erp} orders map needs a build function")
        object.__setattr__(self, "_plan", tuple(plan))
        object.__setattr__(
            self,
            "_steps",
            tuple(
                (row.hub, row.erp, parse, kind, row.transform, row.constant, row.compute)
                for row, parse, kind in plan
            ),
        )
        key_path = KEY_PATHS.get(self.stream)
        object.__setattr__(self, "_key_plan", tuple(p for p in plan if p[0].hub == key_path))
        object.__setattr__(
            self, "_exact", frozenset(p for p in self.passthrough if not p.endswith("*"))
        )
        object.__setattr__(
            self, "_prefixes", tuple(p[:-1] for p in self.passthrough if p.endswith("*"))
        )

    def _aliases(self, record: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
        found: dict[str, tuple[str, Any]] = {}
        exact, prefixes = self._exact, self._prefixes
        for key, value in record.items():
            if not isinstance(key, str):
                continue
            low = key.lower()
            if low in exact:
                found[low] = (key, value)
            elif prefixes and "." in low and low.startswith(prefixes):
                # Keep the meta key's own spelling: "Meta.Brand" -> meta key "Brand".
                cut = max(len(p) for p in prefixes if low.startswith(p))
                found[low[:cut] + key[cut:]] = (key, value)
        return found

    def apply(
        self, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Map one record; never raises for bad data.

        Inbound: returns a `Flat` (hub path -> value); fields that failed are
        left out and listed in its `.errors`, for `build_products` to
        quarantine. A field the record does not carry at all is left out
        without error: the hub's schema decides whether it was required.
        Outbound: returns the ERP payload from `build` (which may raise
        ValueError for a missing setting: that is the source's fault, not
        the order's, and the raise task turns it into a permanent error).
        """
        settings = settings if settings is not None else _EMPTY
        if self.build is not None:
            try:
                return self.build(record, settings)
            except ArithmeticError:
                # Decimal arithmetic past its 28 digits (an amount of 1e30 or
                # a total that large): the order's fault, said as such.
                raise MappingError(_too_large(record, self.erp_title)) from None
        out = Flat(record)
        errors = out.errors
        aliases = self._aliases(record) if self._exact or self._prefixes else _EMPTY
        view = RawRecord(record)
        # A plain dict is read directly (what `view.get` tries first); the
        # view's case-insensitive lookup only runs when that misses.
        exact_get = record.get if record.__class__ is dict else view.get
        view_get = view.get
        for hub, erp, parse, kind, transform, constant, compute in self._steps:
            if hub in aliases:
                continue
            try:
                if kind == 0:
                    value = exact_get(erp, _MISSING)
                    if value is _MISSING:
                        value = view_get(erp, _MISSING)
                        if value is _MISSING:
                            continue
                elif kind == 1:
                    value = constant
                else:
                    value = compute(view, settings)  # type: ignore[misc]  # kind 2 has one
                if transform is not None:
                    value = transform(value)
                out[hub] = parse(value, erp)
            except MappingError as exc:
                errors.append((hub, str(exc)))
            except Exception as exc:  # a map's own function failed on this record
                errors.append((hub, f"{erp} could not be mapped: {exc}"))
        for hub, (key, value) in aliases.items():
            parse = parser_for(self.stream, hub) or text
            try:
                out[hub] = parse(value, key)
            except MappingError as exc:
                out.errors.append((hub, str(exc)))
        return out

    def key_of(self, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> Any:
        """The record's key (its `KEY_PATHS` value) exactly as `apply` maps it,
        or None when that would not come out as a clean, non-blank value.

        The sync groups a page's raw rows by record with this before mapping
        anything, to skip records whose rows have not changed; so it reads
        only the key's rows (or a passthrough alias, which wins, as in
        `apply`), and anything doubtful is None: such rows are simply mapped.
        """
        path = KEY_PATHS.get(self.stream)
        if path is None or self.build is not None:
            return None
        settings = settings if settings is not None else _EMPTY
        if path in self._exact:
            alias: tuple[str, Any] | None = None
            for key, value in record.items():
                if isinstance(key, str) and key.lower() == path:
                    alias = (key, value)
            if alias is not None:
                parse = parser_for(self.stream, path) or text
                try:
                    return parse(alias[1], alias[0]) or None
                except Exception:
                    return None
        view = RawRecord(record)
        out: Any = None
        for row, parse, kind in self._key_plan:
            try:
                if kind == 0:
                    value = view.get(row.erp, _MISSING)
                    if value is _MISSING:
                        continue
                elif kind == 1:
                    value = row.constant
                else:
                    value = row.compute(view, settings)  # type: ignore[misc]
                if row.transform is not None:
                    value = row.transform(value)
                out = parse(value, row.erp)
            except Exception:
                return None
        return out or None

    def render(self) -> str:
        """The seed's markdown table for these rows."""
        header = (self.erp_title, "Stock2Shop", "Description")
        body = [(r.erp, r.hub, r.description) for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(3)]
        widths = [max(w, 3) for w in widths]

        def line(cells: tuple[str, str, str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        sep = "| " + " | ".join("-" * w for w in widths) + " |"
        return "\n".join([line(header), sep, *(line(b) for b in body)]) + "\n"


# --------------------------------------------------------------------------
# Assembling canonical shapes from flat records
# --------------------------------------------------------------------------

_PRODUCT_LEVEL: Final = ("title", "body_html", "collection", "product_type", "vendor", "tags")
_VARIANT_SIMPLE: Final = (
    ("source_variant_code", "source_variant_code"),
    ("variants.sku", "sku"),
    ("variants.barcode", "barcode"),
    ("variants.qty", "qty"),
    ("variants.grams", "grams"),
    ("variants.option1", "option1"),
    ("variants.option2", "option2"),
    ("variants.option3", "option3"),
    ("variants.qty_availability", "qty_availability"),
)
RETAIL_TIER: Final = "retail"


def _too_large(order: Mapping[str, Any], erp_title: str) -> str:
    """Which amount of an order is too large to compute with, for the dead letter."""
    label = f"order {order.get('channel_order_code')}"
    erp_title = "the ERP" if "{" in erp_title else erp_title
    places: list[tuple[str, Any]] = []
    for name in ("line_items", "shipping_lines"):
        for index, line in enumerate(order.get(name) or ()):
            if isinstance(line, Mapping):
                for part in ("qty", "price", "total_discount"):
                    places.append((f"{name}[{index}].{part}", line.get(part)))
    for path, value in places:
        if isinstance(value, int | float) and not abs(value) < AMOUNT_LIMIT:
            return (
                f"{label}: {path} {value!r} is too large to raise into {erp_title} "
                "(at most 15 digits before the point)"
            )
    return f"{label}: its amounts add up to more than {erp_title} can be sent"


def product_key(flat: Mapping[str, Any]) -> str:
    """A product row's natural key for errors: its SKU, else its codes."""
    for path in ("variants.sku", "source_variant_code", "source_product_code"):
        value = flat.get(path)
        if value:
            return str(value)
    return UNKNOWN_KEY


def customer_key(flat: Mapping[str, Any]) -> str:
    value = flat.get("source_customer_code")
    return str(value) if value else UNKNOWN_KEY


def _raw_of(flat: Mapping[str, Any]) -> dict[str, Any]:
    raw = getattr(flat, "raw", None)
    return dict(raw) if raw is not None else dict(flat)


def _meta(flat: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    try:
        # Most records have no meta: one C-speed search over the joined
        # paths (a path starting with the prefix contains it) says so.
        if prefix not in "\n".join(flat):
            return []
    except TypeError:
        pass  # a path that is not a str: the loop below says what is wrong
    n = len(prefix)
    return [
        {"key": path[n:], "value": value}
        for path, value in flat.items()
        if path.startswith(prefix) and len(path) > n
    ]


def _variant(flat: Mapping[str, Any]) -> dict[str, Any]:
    variant: dict[str, Any] = {}
    for path, key in _VARIANT_SIMPLE:
        if path in flat:
            variant[key] = flat[path]
    tier_list: list[dict[str, Any]] | None = None
    for path in ("csv_price_tiers", "variants.price_tiers"):
        if path in flat:
            tier_list = [*(tier_list or []), *flat[path]]
    if "variants.retail_price" in flat:
        retail = flat["variants.retail_price"]
        variant["price"] = retail
        tier_list = [t for t in (tier_list or []) if str(t.get("tier", "")).lower() != RETAIL_TIER]
        if retail is not None:
            tier_list.append({"tier": RETAIL_TIER, "price": retail})
    if "variants.price" in flat:
        variant["price"] = flat["variants.price"]
    if tier_list is not None:
        variant["price_tiers"] = tier_list
    for path in ("variants.inventory_management", "inventory_management"):
        if path in flat:
            variant["inventory_management"] = flat[path]
    meta = _meta(flat, "variants.meta.")
    if meta:
        variant["meta"] = meta
    return variant


_OPTION_PATHS: Final = (("options.option1", 1), ("options.option2", 2), ("options.option3", 3))


def build_products(
    flat_records: Iterable[Mapping[str, Any]], key_of: KeyOf = product_key
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """Group flat rows by `source_product_code` into nested products.

    Rows sharing a product code are one variable product; product-level
    fields come from the first row. A product is all or nothing: if any of
    its rows failed to map, none of it is returned (writing the others would
    make the hub delete the failed variant), and each failure becomes a
    `RecordError` naming that row's key. Products keep first-seen order.
    """
    errors: list[RecordError] = []
    products: list[dict[str, Any]] = []
    for code, rows in _by_product(flat_records, key_of, errors).items():
        failed = False
        for flat in rows:
            if getattr(flat, "errors", None):
                failed = True
                break
        if failed:
            _hold_back(code, rows, key_of, errors)
            continue
        product = _product(code, rows, key_of, errors)
        if product is not None:
            products.append(product)
    return products, errors


def _by_product(
    flat_records: Iterable[Mapping[str, Any]], key_of: KeyOf, errors: list[RecordError]
) -> dict[str, list[Mapping[str, Any]]]:
    """A page's rows grouped by product code, in first-seen order.

    A row without a code belongs to no product, so it is an error on its
    own: its mapping errors if it has any (the code itself may be what
    failed), else the missing code.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for flat in flat_records:
        code = flat.get("source_product_code")
        if code:
            groups.setdefault(code, []).append(flat)
            continue
        bad = getattr(flat, "errors", None)
        if bad:
            for path, message in bad:
                errors.append(RecordError(key_of(flat), path, message, _raw_of(flat)))
        else:
            errors.append(
                RecordError(
                    key_of(flat),
                    "source_product_code",
                    "source_product_code is missing",
                    _raw_of(flat),
                )
            )
    return groups


def _hold_back(
    code: str, rows: list[Mapping[str, Any]], key_of: KeyOf, errors: list[RecordError]
) -> None:
    """Every mapping error of a product none of which is written.

    Each message says the product's other variants are held back too, so
    the operator does not look for a second fault in rows that mapped.
    """
    others = len(rows) - 1
    held = (
        f" (product {code} is held back with its other "
        f"{'variant' if others == 1 else f'{others} variants'})"
        if others
        else ""
    )
    for flat in rows:
        for path, message in getattr(flat, "errors", None) or ():
            errors.append(RecordError(key_of(flat), path, message + held, _raw_of(flat)))


def _product(
    code: str, rows: list[Mapping[str, Any]], key_of: KeyOf, errors: list[RecordError]
) -> dict[str, Any] | None:
    """One product from its rows, or None when two rows share a variant code.

    Two variants under one code would overwrite each other in the hub, so
    the product is refused and each repeated row named.
    """
    first = rows[0]
    product: dict[str, Any] = {"source_product_code": code}
    for path in _PRODUCT_LEVEL:
        if path in first:
            product[path] = first[path]
    if "product_active" in first:
        product["product_active"] = first["product_active"]
    options = [
        {"name": first[path], "position": position}
        for path, position in _OPTION_PATHS
        if first.get(path)
    ]
    if options:
        product["options"] = options
    meta = _meta(first, "meta.")
    if meta:
        product["meta"] = meta

    variants: list[dict[str, Any]] = []
    seen: set[Any] = set()
    duplicate = False
    for flat in rows:
        variant = _variant(flat)
        vcode = variant.get("source_variant_code")
        if vcode is not None and vcode in seen:
            duplicate = True
            errors.append(
                RecordError(
                    key_of(flat),
                    "source_variant_code",
                    f'source_variant_code "{vcode}" appears twice in product {code}',
                    _raw_of(flat),
                )
            )
        seen.add(vcode)
        variants.append(variant)
    if duplicate:
        return None
    product["variants"] = variants
    return product


def build_customers(
    flat_records: Iterable[Mapping[str, Any]], key_of: KeyOf = customer_key
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """Nest flat customer rows: `addresses.*` into one address, `meta.*` into meta.

    A customer code seen twice in one page is an error on the second row:
    two different records under one key would overwrite each other in an
    order that depends on paging.
    """
    customers: list[dict[str, Any]] = []
    errors: list[RecordError] = []
    seen: set[str] = set()
    for flat in flat_records:
        bad = getattr(flat, "errors", None)
        if bad:
            for path, message in bad:
                errors.append(RecordError(key_of(flat), path, message, _raw_of(flat)))
            continue
        code = flat.get("source_customer_code")
        if not code:
            errors.append(
                RecordError(
                    key_of(flat),
                    "source_customer_code",
                    "source_customer_code is missing",
                    _raw_of(flat),
                )
            )
            continue
        if code in seen:
            errors.append(
                RecordError(
                    code,
                    "source_customer_code",
                    f'source_customer_code "{code}" appears twice in this page',
                    _raw_of(flat),
                )
            )
            continue
        seen.add(code)
        customer: dict[str, Any] = {}
        address: dict[str, Any] = {}
        for path, value in flat.items():
            if path.startswith("addresses."):
                address[path[len("addresses.") :]] = value
            elif not path.startswith("meta."):
                customer[path] = value
        if address:
            customer["addresses"] = [address]
        meta = _meta(flat, "meta.")
        if meta:
            customer["meta"] = meta
        customers.append(customer)
    return customers, errors


def map_records(
    m: Map, records: Iterable[Mapping[str, Any]], settings: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, Any]], list[RecordError]]:
    """A page of raw records to nested canonical records plus their errors."""
    if m.stream not in INBOUND:
        raise ValueError(f"the {m.erp} {m.stream} map goes to the ERP; use Map.apply(order, ...)")
    flats = [m.apply(record, settings) for record in records]
    if m.stream == "products":
        return build_products(flats)
    return build_customers(flats)


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

MAPS: dict[tuple[str, str], Map] = {}


def register(m: Map) -> Map:
    """Add a map to the registry; twice under one key is a programming error."""
    key = (m.erp, m.stream)
    if key in MAPS:
        raise ValueError(f"a map for {m.erp} {m.stream} is already registered")
    MAPS[key] = m
    return m


def supported(erp: str) -> list[str]:
    """The streams an ERP has maps for, in sync order; [] for an unknown ERP."""
    return [s for s in STREAMS if (erp, s) in MAPS]


def get_map(erp: str, stream: str) -> Map:
    try:
        return MAPS[(erp, stream)]
    except KeyError:
        erps = sorted({e for e, _ in MAPS})
        known = "; ".join(f"{e}: {', '.join(supported(e))}" for e in erps) or "none"
        if erp in erps:
            reason = f"{erp} does not support {stream} (it supports {', '.join(supported(erp))})"
        else:
            reason = f"there is no map for ERP {erp!r}"
        raise KeyError(f"{reason}; maps exist for {known}") from None
