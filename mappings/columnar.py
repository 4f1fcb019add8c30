"""A products map compiled into column operations over a whole page.

`Map.apply` runs once per raw row and `build_products` once per product:
about a third of the sync's per-product cost is that Python walk. A map
whose rows only copy ERP fields through the scalar vocabulary (`text`,
`number`, `flag`, the tri-state's `raw_state`) and constants, like the SQL
template's, says nothing that needs a row at a time; `compile_map` turns it
into Polars expressions that strip, parse and check a page's columns at
once, group the variant rows into products and lay them out as the hub's
columnar loader reads them (`hub.schemas.columnar`).

Exactness comes first: the columns only vouch for what they can say
exactly. Every value the expressions cannot parse exactly as the scalar
vocabulary would (a number in exponent form, "NaN", a qty with a decimal
comma, a flag spelt no known way, any value that is not a str or None)
marks its whole product as *doubtful* (the hub's loader adds its own
doubts: a blank title, a repeated variant code ...), and a doubtful
product's rows are handed back to the caller to map the per-record way
(`map_records`), which is the reference: its quarantine messages are then
the reference's by construction. A page the columns cannot take at all
(records that are not plain dicts or do not share one column list, a
query alias to `meta.*`, price tiers or warehouses, text Polars cannot hold)
is refused whole (`None`), and goes the per-record way too.

Why Polars: its expressions give null-on-failure casts (`strict=False`) and
regex tests, so failing values are found in columns without exceptions;
one `select` runs a page's whole plan in compiled code; it is one
self-contained wheel (no numpy) of about 180 MB installed, like pyarrow's
(about 170 MB), whose compute functions raise on the first bad cast
instead. It is imported on first use, so processes that never map a page
do not pay for it.

Maps with `computed` rows or transforms (IQ Retail, iSync, SYSPRO) and the
customers stream are not compiled yet: `compile_map` returns None for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from mappings.building import RETAIL_TIER
from mappings.maps import Map
from mappings.paths import parser_for, raw_state
from mappings.rows import UNSET
from mappings.scalars import FALSE_WORDS, TRUE_WORDS, flag, number, text

if TYPE_CHECKING:
    import polars as pl

# Every character Python's str.strip() removes (those whose isspace() is
# true), so that Polars strips exactly what the vocabulary strips; a test
# holds it equal to Python's own list.
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Numbers the columns parse exactly as `number` does: an integer of at most
# 15 digits (Python's int(); 16 or more are refused by `number`), and a
# plain decimal short enough to be finite (Python's float(), correctly
# rounded as Polars' parser is). Anything else (exponents, "nan", "1,5",
# underscores, other scripts' digits) is doubtful and mapped per record.
_NUMBER: Final = r"^[+-]?([0-9]{1,15}|[0-9]{1,15}\.[0-9]{0,15}|\.[0-9]{1,15})$"

# Hub paths the compiled map may write, by where build_products files them.
PRODUCT_FIELDS: Final = ("title", "body_html", "collection", "product_type", "vendor", "tags")
# hub path -> the variant field it fills (build_products' _VARIANT_SIMPLE,
# without the lists, which the columns do not carry).
VARIANT_FIELDS: Final = {
    "source_variant_code": "source_variant_code",
    "variants.sku": "sku",
    "variants.barcode": "barcode",
    "variants.qty": "qty",
    "variants.grams": "grams",
    "variants.option1": "option1",
    "variants.option2": "option2",
    "variants.option3": "option3",
}
_OTHER_PATHS: Final = frozenset(
    {
        "source_product_code",
        "product_active",
        "variants.price",
        "variants.retail_price",
        "variants.inventory_management",
        "inventory_management",
    }
)
SUPPORTED_PATHS: Final = frozenset(PRODUCT_FIELDS) | set(VARIANT_FIELDS) | _OTHER_PATHS

# The parsers the compiler knows, by the column operation that matches each.
_KINDS: Final[dict[Callable[[Any, str], Any], str]] = {
    text: "text",
    number: "number",
    flag: "flag",
    raw_state: "state",
}


@dataclass(frozen=True)
class _Source:
    """One row of the map: a hub path read from an ERP field (``column``)
    through a parser ``kind``, or a constant already parsed (``column`` None)."""

    path: str
    column: str | None
    kind: str
    value: Any = None


@dataclass(frozen=True)
class BuiltPage:
    """A page laid out in columns, one row per raw row, for the hub's
    columnar loader (`hub.schemas.columnar.load_products`).

    ``frame`` (lazy: the hub's checks run in the same query) holds
    ``source_product_code`` (null: the row has no clean code and is mapped
    per record), the mapped fields filed where `build_products` files them,
    and ``doubtful``: the row holds something only the per-record way can
    judge, so its whole product goes that way. ``columns`` are the frame's
    column names.
    """

    frame: pl.LazyFrame
    columns: tuple[str, ...]


class ColumnarMap:
    """A products map compiled to column operations (see the module's doc)."""

    def __init__(self, m: Map, sources: tuple[_Source, ...]) -> None:
        self.map = m
        self.sources = sources
        exact = [p for p in m.passthrough if not p.endswith("*")]
        self._exact = frozenset(exact)
        self._prefixes = tuple(p[:-1] for p in m.passthrough if p.endswith("*"))
        # Compiled plans by the page's column names (a source's query
        # answers with the same columns page after page).
        self._shapes: dict[tuple[str, ...], _Shape | None] = {}

    def build(
        self, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
    ) -> BuiltPage | None:
        """The page in columns, or None when the columns cannot take it."""
        if not records:
            return None
        keys = _shared_keys(records)
        if keys is None:
            return None
        if keys not in self._shapes:
            if len(self._shapes) >= _SHAPES_KEPT:
                self._shapes.clear()
            plan = self._resolve(keys)
            self._shapes[keys] = _Shape.of(plan) if plan is not None else None
        shape = self._shapes[keys]
        if shape is None:
            return None
        return shape.run(self.map, records, settings)

    def _resolve(self, keys: tuple[str, ...]) -> dict[str, list[_Source]] | None:
        """Each hub path's sources on a page with these columns, in the map's
        order (the last present one wins, as in `Map.apply`); a query alias
        replaces the path's rows. None if an alias is not one the columns hold."""
        aliases: dict[str, str] = {}
        if self._exact or self._prefixes:
            for key in keys:
                low = key.lower()
                if low in self._exact:
                    aliases[low] = key
                elif self._prefixes and "." in low and low.startswith(self._prefixes):
                    return None  # meta.* aliases: not in columns yet
        folded = {k.lower(): k for k in keys}
        present = set(keys)
        plan: dict[str, list[_Source]] = {}
        for source in self.sources:
            if source.path in aliases:
                continue
            if source.column is None:
                plan.setdefault(source.path, []).append(source)
                continue
            column = (
                source.column if source.column in present else folded.get(source.column.lower())
            )
            if column is not None:
                plan.setdefault(source.path, []).append(_Source(source.path, column, source.kind))
        for path, key in aliases.items():
            kind = _KINDS.get(parser_for("products", path) or text)
            if path not in SUPPORTED_PATHS or kind is None:
                return None
            plan[path] = [_Source(path, key, kind)]
        return plan


def compile_map(m: Map) -> ColumnarMap | None:
    """The map compiled to columns, or None when it says something the
    columns cannot (computed rows, transforms, list paths, another stream,
    a subclass with its own `apply`)."""
    if m.stream != "products" or m.build is not None:
        return None
    if type(m).apply is not Map.apply or type(m).key_of is not Map.key_of:
        return None
    sources: list[_Source] = []
    for row in m.rows:
        parse = parser_for(m.stream, row.hub)
        kind = _KINDS.get(parse) if parse is not None else None
        if row.transform is not None or row.compute is not None or kind is None:
            return None
        if row.hub not in SUPPORTED_PATHS:
            return None
        if row.constant is not UNSET:
            try:
                value = parse(row.constant, row.erp)  # type: ignore[misc]
            except Exception:
                return None  # every record would fail the same way: per record
            sources.append(_Source(row.hub, None, kind, value))
        else:
            sources.append(_Source(row.hub, row.erp, kind))
    return ColumnarMap(m, tuple(sources))


def _shared_keys(records: Sequence[Mapping[str, Any]]) -> tuple[str, ...] | None:
    """The page's column names when every record is a plain dict with the
    same str keys in the same order (a query's rows), else None."""
    first = records[0]
    if first.__class__ is not dict:
        return None
    keys = tuple(first)
    if not all(k.__class__ is str for k in keys):
        return None
    for record in records:
        if record.__class__ is not dict or tuple(record) != keys:
            return None
    return keys


_PLAIN_TYPES: Final = frozenset({str, type(None)})
_DTYPES: Final = {"text": "String", "state": "String", "number": "Float64", "flag": "Boolean"}
_SHAPES_KEPT: Final = 64


def _source_stages(
    source: _Source, index: Mapping[str, int]
) -> tuple[dict[str, pl.Expr], pl.Expr, pl.Expr | None]:
    """One map row over the page, as `Map.apply` parses it: the helper
    columns it needs (over the stripped ``s<i>`` columns), then its value
    and its doubt (a value only the per-record way can judge; None when
    the row never doubts a str or None)."""
    import polars as pl

    dtype = getattr(pl, _DTYPES[source.kind])
    if source.column is None:
        value = source.value
        if source.kind == "number" and value is not None:
            value = float(value)
        return {}, pl.lit(value, dtype=dtype), None
    i = index[source.column]
    raw, s = pl.col(f"c{i}"), pl.col(f"s{i}")
    if source.kind == "text":
        return {}, pl.when(s == "").then(None).otherwise(s), None
    if source.kind == "state":
        return {}, s, None
    if source.kind == "number":
        ok = pl.col(f"n{i}")
        helper = {f"n{i}": s.str.contains(_NUMBER)}
        value = pl.when(ok).then(s.cast(pl.Float64, strict=False)).otherwise(None)
        return helper, value, s.is_not_null() & (s != "") & ~ok
    # A flag's words are ASCII without a k: Polars' lower case and Python's
    # agree on every string that lower-cases to one of them (the only
    # non-ASCII letters with an ASCII lower case are KELVIN SIGN, k, and
    # DOTTED CAPITAL I, i with a combining dot).
    words = {w: True for w in TRUE_WORDS} | {w: False for w in FALSE_WORDS}
    helper = {
        f"b{i}": s.str.to_lowercase().replace_strict(words, default=None, return_dtype=pl.Boolean)
    }
    known = pl.col(f"b{i}")
    value = pl.when(raw.is_null()).then(False).otherwise(known)
    return helper, value, raw.is_not_null() & known.is_null()


def _layout(values: Mapping[str, pl.Expr]) -> dict[str, pl.Expr]:
    """The mapped paths filed as `build_products` files them, in the layout
    of `hub.schemas.columnar` (product fields by name, variant fields under
    ``variants.``; the hub reads product fields from each product's first row)."""
    import polars as pl

    out: dict[str, pl.Expr] = {}
    for path in (*PRODUCT_FIELDS, "product_active"):
        if path in values:
            out[path] = values[path]
    for path, field in VARIANT_FIELDS.items():
        if path in values:
            out[f"variants.{field}"] = values[path]
    if "variants.retail_price" in values:
        retail = values["variants.retail_price"]
        out["variants.price"] = retail
        out["variants.price_tiers.tier"] = (
            pl.when(retail.is_not_null()).then(pl.lit(RETAIL_TIER)).otherwise(None)
        )
        out["variants.price_tiers.price"] = retail
    if "variants.price" in values:
        out["variants.price"] = values["variants.price"]
    for path in ("variants.inventory_management", "inventory_management"):
        if path in values:
            out["variants.inventory_management"] = values[path]
    return out


@dataclass(frozen=True)
class _Shape:
    """A plan resolved for one list of page columns, its expressions built once."""

    names: tuple[str, ...]  # the raw columns read, in frame order
    key_column: str | None  # the raw column the product code is read from
    stages: tuple[dict[str, pl.Expr], ...]  # with_columns stages, then the layout
    columns: tuple[str, ...]  # the layout's

    @classmethod
    def of(cls, plan: Mapping[str, list[_Source]]) -> _Shape | None:
        import polars as pl

        key_sources = plan.get("source_product_code")
        if not key_sources:
            return None  # no product code at all: every row is an error, per record
        names = tuple(sorted({s.column for sources in plan.values() for s in sources if s.column}))
        index = {name: i for i, name in enumerate(names)}
        stripped = {f"s{i}": pl.col(f"c{i}").str.strip_chars(WHITESPACE) for i in index.values()}
        helpers: dict[str, pl.Expr] = {}
        values: dict[str, pl.Expr] = {}
        doubts: list[pl.Expr] = [pl.col("_odd")]
        for path, sources in plan.items():
            for source in sources:
                helper, value, doubt = _source_stages(source, index)
                helpers.update(helper)
                values[path] = value
                if doubt is not None:
                    doubts.append(doubt)
        # Each distinct value computed once, in its own column (two paths
        # may read the same field alike: the SQL template's SKU), since the
        # query runs without Polars' optimiser (see hub.schemas.columnar).
        computed: dict[str, pl.Expr] = {}
        seen: dict[str, str] = {}
        refs: dict[str, pl.Expr] = {}
        for path, value in values.items():
            name = seen.setdefault(str(value), f"v{len(seen)}")
            computed[name] = value
            refs[path] = pl.col(name)
        key = pl.coalesce(pl.col("_key"), refs["source_product_code"])
        layout = {
            "source_product_code": key,
            "doubtful": pl.any_horizontal(doubts),
            **_layout(refs),
        }
        stages = (*(stage for stage in (stripped, helpers, computed) if stage), layout)
        return cls(names, key_sources[-1].column, stages, tuple(layout))

    def run(
        self, m: Map, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
    ) -> BuiltPage | None:
        """The page's raw columns into the compiled expressions (lazily)."""
        import polars as pl

        raw, odd = _columns(records, self.names)
        keys: list[str | None] = [None] * len(records)
        if odd and self.key_column is not None:
            # A code that is not text (an int from a numeric column) is
            # found by the map itself, so the row joins its real product.
            for i in odd:
                found = m.key_of(records[i], settings)
                keys[i] = str(found) if found is not None else None
        flags = [i in odd for i in range(len(records))] if odd else [False] * len(records)
        try:
            frame = pl.DataFrame(
                [
                    *(
                        pl.Series(f"c{i}", raw[name], dtype=pl.String)
                        for i, name in enumerate(self.names)
                    ),
                    pl.Series("_key", keys, dtype=pl.String),
                    pl.Series("_odd", flags, dtype=pl.Boolean),
                ]
            )
        except (UnicodeError, ValueError, TypeError, OverflowError):
            return None  # text Polars cannot hold (lone surrogates): per record
        lazy = frame.lazy()
        for stage in self.stages[:-1]:
            lazy = lazy.with_columns(**stage)
        return BuiltPage(lazy.select(**self.stages[-1]), self.columns)


def _columns(
    records: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> tuple[dict[str, list[Any]], set[int]]:
    """The page's raw columns as lists of str or None, and the rows holding
    any other value (nulled here: such a row is mapped per record)."""
    data: dict[str, list[Any]] = {}
    odd: set[int] = set()
    for name in names:
        values = [r[name] for r in records]
        if not set(map(type, values)) <= _PLAIN_TYPES:
            bad = {i for i, v in enumerate(values) if v is not None and v.__class__ is not str}
            odd |= bad
            values = [None if i in bad else v for i, v in enumerate(values)]
        data[name] = values
    return data, odd
