"""Products validated over columns: `load_product` and `canonical_hash` for a page at once.

The counterpart of the sync's fast loader (`hub.schemas.loading`) for pages
that arrive in columns (`mappings.columnar`). It applies the same rules
(codes required and at most 255 long, no NUL, the tri-state, stock floored
and clamped, prices rounded to 4 places, grams rounded) and gives, for each
product it can vouch for, the record `load_product` gives and the hash
`canonical_hash` gives, without walking each record in Python.

It vouches only for what it can say exactly. A product with any value that
`load_product` would refuse, or that the columns cannot judge exactly (a
non-ASCII tri-state spelling, a repeated variant code, a non-finite
number), is returned as *doubtful* instead: the caller loads it the
per-record way, which is the reference and words the quarantine entries.
Nothing here decides a quarantine message.

The stored hashes do not change: the canonical JSON is written here in
the form `canonical_hash` writes (keys sorted, no spaces, floats rounded to
4 places and integral floats as integers, variants in the order of their
JSON-encoded codes), with the same C string escaper, and a property test
holds the digests equal to `canonical_hash` of the same records.

Layout of the frame (one row per variant; rows sharing a
``source_product_code`` are one product, in first-seen order, its variants
in row order, its product fields read from its first row):

- ``source_product_code`` (String; a null row belongs to no product and is
  left out: the caller maps it the per-record way);
- ``doubtful`` (Boolean, optional): the caller doubts the row (a value it
  could not map exactly), so its product is doubtful whatever the action;
- ``title``, ``body_html``, ``collection``, ``product_type``, ``vendor``,
  ``tags``, ``product_active`` (String), each optional: an absent column is
  an absent key of the nested product;
- ``variants.source_variant_code``, ``variants.sku``, ``variants.barcode``,
  ``variants.option1`` … ``variants.option3`` (String);
  ``variants.qty``, ``variants.price``, ``variants.grams`` (Float64);
  ``variants.inventory_management`` (Boolean), each optional likewise;
- ``variants.price_tiers.tier`` (String) with ``variants.price_tiers.price``
  (Float64): a variant's price tiers when present, at most one: a null
  tier is an empty list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Final

from hub.schemas.scalars import (
    CODE_MAX,
    MAX_QTY,
    Action,
    CoercionError,
    coerce_grams,
    coerce_tags,
)

if TYPE_CHECKING:
    import polars as pl

# Python's str.strip() set (isspace), as in mappings.columnar: the hub keeps
# its own copy (it imports nothing of the maps); a test holds both equal to
# Python's.
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# tri_state's words (hub.schemas.scalars), by the action each spells.
_STATES: Final = (
    ("active", ("active", "true", "t", "1", "yes", "y")),
    ("delete", ("delete", "false", "f", "0", "", "no", "n")),
    ("ignore", ("ignore",)),
)
PRODUCT_TEXT: Final = ("body_html", "collection", "product_type", "vendor")
VARIANT_TEXT: Final = ("barcode", "option1", "option2", "option3")


@dataclass
class LoadedProducts:
    """What `load_products` vouches for, in the frame's product order.

    ``products``: (key, action, record, hash, stored JSON) per product, the
    key as the frame spells the product's code (the record holds it
    coerced); record, hash and JSON are None unless the action is "active"
    (as `load_product` gives a delete or ignore only its key). ``doubtful``: the codes of
    products to load the per-record way. ``keys``: each row's code (None:
    no code), by which the caller finds a doubtful product's rows;
    ``first_rows``: each product's first row, as ``products``.
    """

    products: list[tuple[str, Action, dict[str, Any] | None, str | None, str | None]] = field(
        default_factory=list
    )
    doubtful: list[str] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    first_rows: list[int] = field(default_factory=list)


_PRODUCT_TEXTS: Final = ("title", *PRODUCT_TEXT)
_VARIANT_TEXTS: Final = (
    "variants.source_variant_code",
    "variants.sku",
    *(f"variants.{name}" for name in VARIANT_TEXT),
    "variants.price_tiers.tier",
)
# tri_state's words, each to its action.
_ACTIONS: Final = {word: action for action, words in _STATES for word in words}


def _stripped(present: frozenset[str]) -> dict[str, pl.Expr]:
    """Stage 1: each text column stripped (``<name>~``), and where a NUL
    is, by the code (``!code``), the product fields (``!product``) and the
    variant's (``!variant``)."""
    import polars as pl

    out: dict[str, pl.Expr] = {}
    for name in ("source_product_code", *_PRODUCT_TEXTS, *_VARIANT_TEXTS, "product_active"):
        if name in present:
            out[f"{name}~"] = pl.col(name).str.strip_chars(WHITESPACE)
    for group, names in (
        ("!code", ("source_product_code",)),
        ("!product", _PRODUCT_TEXTS),
        ("!variant", _VARIANT_TEXTS),
    ):
        columns = [pl.col(n) for n in names if n in present]
        if columns:
            joined = columns[0] if len(columns) == 1 else pl.concat_str(columns, ignore_nulls=True)
            out[group] = joined.str.contains("\x00", literal=True).fill_null(False)
        else:
            out[group] = pl.lit(False)
    return out


def _text(name: str) -> pl.Expr:
    """coerce_text over stage 1 (NUL is checked by group): blank is null."""
    import polars as pl

    s = pl.col(f"{name}~")
    return pl.when(s == "").then(None).otherwise(s)


def _product_values(
    present: frozenset[str],
    values: dict[str, pl.Expr],
    key: list[pl.Expr],
    product: list[pl.Expr],
) -> None:
    """The code, tri-state and product fields coerced into ``values``, with
    their doubts added to ``key`` and ``product``."""
    import polars as pl

    if "source_product_code" in present:
        values["source_product_code"] = _text("source_product_code")
        code = pl.col("source_product_code")
        key.append(code.is_null() | (code.str.len_chars() > CODE_MAX))
    else:
        values["source_product_code"] = pl.lit(None, dtype=pl.String)
        key.append(pl.lit(True))
    if "product_active" in present:
        word = pl.col("product_active~").str.to_lowercase()
        known = word.replace_strict(_ACTIONS, default=None, return_dtype=pl.String)
        raw = pl.col("product_active")
        values["_action"] = pl.when(raw.is_null()).then(pl.lit("delete")).otherwise(known)
        key.append(pl.col("_action").is_null())
    else:
        values["_action"] = pl.lit("active")
    values["title"] = _text("title") if "title" in present else pl.lit(None, dtype=pl.String)
    product.append(pl.col("title").is_null())
    for name in PRODUCT_TEXT:
        if name in present:
            values[name] = _text(name)
    if "tags" in present:
        values["tags"] = pl.col("tags")


def _variant_values(
    present: frozenset[str], values: dict[str, pl.Expr], variant: list[pl.Expr]
) -> None:
    """The variant fields coerced into ``values``, their doubts into ``variant``."""
    import polars as pl

    for name in ("source_variant_code", "sku"):
        if f"variants.{name}" in present:
            values[name] = _text(f"variants.{name}")
            code = pl.col(name)
            variant.append(code.is_null() | (code.str.len_chars() > CODE_MAX))
        else:
            variant.append(pl.lit(True))
    for name in VARIANT_TEXT:
        if f"variants.{name}" in present:
            values[name] = _text(f"variants.{name}")
    if "variants.qty" in present:
        raw = pl.col("variants.qty")
        values["qty"] = raw.floor().clip(lower_bound=0).cast(pl.Int64, strict=False)
        variant.append((~raw.is_finite() | (raw.floor() > MAX_QTY)).fill_null(False))
    for name in ("price", "grams", "price_tiers.price"):
        column = f"variants.{name}"
        if column in present:
            values[name] = pl.col(column)
            variant.append(~pl.col(column).is_finite().fill_null(True))
    if "variants.inventory_management" in present:
        values["inventory_management"] = pl.col("variants.inventory_management").fill_null(False)
    if "variants.price_tiers.tier" in present:
        values["tier"] = _text("variants.price_tiers.tier")
        # A tier that strips to nothing is required and missing: doubtful.
        variant.append((pl.col("variants.price_tiers.tier~") == "").fill_null(False))


@lru_cache(maxsize=1)
def _no_optimisations() -> pl.QueryOptFlags:
    import polars as pl

    return pl.QueryOptFlags.none()


@lru_cache(maxsize=64)
def _stages(present: frozenset[str]) -> tuple[dict[str, pl.Expr], ...]:
    """The checks and coercions for a frame with these columns, in three
    stages: text stripped (and NUL found); every field coerced; then the
    doubts, from the coerced fields: for the code and tri-state
    (``_key_doubt``), the product fields (``_product_doubt``, read at the
    product's first row), the caller's (``_mapped_doubt``), and the
    variant's or the caller's (``_row_doubt``)."""
    import polars as pl

    values: dict[str, pl.Expr] = {"_key": pl.col("source_product_code")}
    key = [pl.col("!code")]
    product: list[pl.Expr] = [pl.col("!product")]
    variant: list[pl.Expr] = [pl.col("!variant")]
    _product_values(present, values, key, product)
    _variant_values(present, values, variant)
    mapped = pl.col("doubtful").fill_null(True) if "doubtful" in present else pl.lit(False)
    doubts = {
        **{name: pl.col(name) for name in values},
        "_key_doubt": pl.any_horizontal(key).fill_null(True),
        "_product_doubt": pl.any_horizontal(product).fill_null(True),
        "_mapped_doubt": mapped,
        "_row_doubt": (mapped | pl.any_horizontal(variant)).fill_null(True),
    }
    return _stripped(present), values, doubts


def load_products(
    frame: pl.LazyFrame | pl.DataFrame, columns: tuple[str, ...] | None = None
) -> LoadedProducts:
    """Load a page of products laid out in columns (see the module's doc);
    ``columns`` are the frame's column names when the caller knows them."""
    names = columns if columns is not None else tuple(frame.collect_schema().names())
    stripped, coerced, doubts = _stages(frozenset(names))
    lazy = frame.lazy().with_columns(**stripped).with_columns(**coerced)
    # The plan is a page's few dozen column expressions, written without
    # repeats: optimising it costs more than it saves (measured).
    out = lazy.select(**doubts).collect(optimizations=_no_optimisations())
    cols = {name: out.get_column(name).to_list() for name in out.columns}
    keys: list[str | None] = cols["_key"]
    loaded = LoadedProducts(keys=keys)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            group = groups.get(key)
            if group is None:
                groups[key] = [i]
            else:
                group.append(i)
    _Page(cols, len(keys)).load(groups, loaded)
    return loaded


def _texts(values: list[Any]) -> list[str]:
    """A text column as canonical JSON."""
    enc = encode_basestring
    return ["null" if v is None else enc(v) for v in values]


def _floats(values: list[Any]) -> list[str]:
    """A column of stable floats (rounded to 4 places) as canonical JSON."""
    return ["null" if v is None else str(int(v)) if v.is_integer() else repr(v) for v in values]


def _prices(values: list[Any]) -> list[Any]:
    """coerce_price over a column: rounded to 4 places, no negative zero.
    (Non-finite values are the rows' doubt; they are left as they are.)"""
    return [None if v is None else (r if (r := round(v, 4)) != 0 else 0.0) for v in values]


class _Page:
    """A page's products from its coerced columns: every row's canonical
    variant dict and JSON made column by column, then each product's record
    and hash (the sync's hot loop: it stays flat on purpose)."""

    def __init__(self, cols: dict[str, list[Any]], n: int) -> None:
        self.cols, self.n = cols, n
        self.nones: list[Any] = [None] * n
        self.doubt = cols["_row_doubt"]
        prices = _prices(cols["price"]) if "price" in cols else self.nones
        self.prices, self.shown_prices = prices, _floats(prices) if "price" in cols else None
        grams = self._grams(cols["grams"]) if "grams" in cols else self.nones
        tier_names, tier_prices, tiers_json = self._tiers()
        self.codes = _texts(self.get("source_variant_code"))
        self.dicts = self._variant_dicts(grams, tier_names, tier_prices)
        self.json = self._variant_json(grams, tiers_json)

    def get(self, name: str) -> list[Any]:
        """A coerced column, all None when the frame has no such field."""
        return self.cols.get(name) or self.nones

    def _variant_dicts(
        self, grams: list[Any], tier_names: list[Any], tier_prices: list[Any]
    ) -> list[dict[str, Any]]:
        """Each row's canonical variant, as `load_product` makes it."""
        get = self.get
        return [
            {
                "source_variant_code": code,
                "sku": sku,
                "barcode": barcode,
                "qty": qty,
                "price": price,
                "inventory_management": managing,
                "grams": gram,
                "option1": o1,
                "option2": o2,
                "option3": o3,
                "qty_availability": [],
                "price_tiers": [] if tier is None else [{"tier": tier, "price": tier_price}],
                "meta": [],
            }
            for code, sku, barcode, qty, price, managing, gram, o1, o2, o3, tier, tier_price in zip(
                get("source_variant_code"),
                get("sku"),
                get("barcode"),
                get("qty"),
                self.prices,
                self.cols.get("inventory_management") or [True] * self.n,
                grams,
                get("option1"),
                get("option2"),
                get("option3"),
                tier_names,
                tier_prices,
                strict=True,
            )
        ]

    def _variant_json(self, grams: list[Any], tiers_json: list[str] | None) -> list[str]:
        """Each row's variant as canonical JSON (keys sorted), what the page
        has no column for written into the template once."""
        cols = self.cols
        pieces: list[str] = []
        slots: list[list[str]] = []

        def field(key: str, values: list[str] | None, missing: str = "null") -> None:
            if values is None:
                pieces.append(f'"{key}":{missing}')
            else:
                pieces.append(f'"{key}":%s')
                slots.append(values)

        def texts(name: str) -> list[str] | None:
            return _texts(cols[name]) if name in cols else None

        def numbers(name: str, values: list[Any]) -> list[str] | None:
            return ["null" if v is None else str(v) for v in values] if name in cols else None

        managing = cols.get("inventory_management")
        field("barcode", texts("barcode"))
        field("grams", numbers("grams", grams))
        field(
            "inventory_management",
            None if managing is None else ["true" if m else "false" for m in managing],
            "true",
        )
        field("meta", None, "[]")
        for name in ("option1", "option2", "option3"):
            field(name, texts(name))
        field("price", self.shown_prices)
        field("price_tiers", tiers_json, "[]")
        field("qty", numbers("qty", self.get("qty")))
        field("qty_availability", None, "[]")
        field("sku", texts("sku"))
        field("source_variant_code", self.codes)
        template = "{" + ",".join(pieces) + "}"
        return [template % parts for parts in zip(*slots, strict=True)]

    def _grams(self, values: list[Any]) -> list[Any]:
        out: list[Any] = []
        for i, value in enumerate(values):
            try:
                out.append(None if value is None else coerce_grams(value, "grams"))
            except CoercionError:
                self.doubt[i] = True
                out.append(None)
        return out

    def _tiers(self) -> tuple[list[Any], list[Any], list[str] | None]:
        """Each row's price tier name and price (coerced; a null name: no
        tier), and their JSON (None: the page has no tiers)."""
        cols = self.cols
        if "tier" not in cols:
            return self.nones, self.nones, None
        names = cols["tier"]
        if cols["price_tiers.price"] == cols.get("price") and self.shown_prices is not None:
            prices, shown = self.prices, self.shown_prices  # the same column (a retail price)
        else:
            prices = _prices(cols["price_tiers.price"])
            shown = _floats(prices)
        texts = [
            "[]" if t is None else f'[{{"price":{p},"tier":{j}}}]'
            for t, p, j in zip(names, shown, _texts(names), strict=True)
        ]
        return names, prices, texts

    def load(self, groups: dict[str, list[int]], loaded: LoadedProducts) -> None:
        """Each product vouched for (in first-seen order) or doubtful."""
        cols, get = self.cols, self.get
        # The product fields, and those as canonical JSON, read at each
        # product's first row.
        self.fields = [get(name) for name in PRODUCT_TEXT]
        self.shown = [
            _texts(cols[name]) if name in cols else ["null"] * self.n for name in PRODUCT_TEXT
        ]
        products, firsts = loaded.products, loaded.first_rows
        sha256 = hashlib.sha256
        record = self._record
        for key, rows in groups.items():
            vouched = self._vouched(key, rows, loaded)
            if vouched is not None:
                built, canonical, stored = record(rows[0], *vouched)
                digest = sha256(canonical.encode()).hexdigest()
                products.append((key, "active", built, digest, stored))
                firsts.append(rows[0])

    def _vouched(
        self, key: str, rows: list[int], loaded: LoadedProducts
    ) -> tuple[list[dict[str, Any]], str, str] | None:
        """An active product's variants, their JSON in canonical order and
        in the rows' order (`stored_json`'s); None when the product is
        doubtful or not active (then it is listed as such in ``loaded``). A
        product whose rows repeat a variant code is doubtful whatever its
        tri-state: the maps' builder refuses it."""
        cols, first = self.cols, rows[0]
        mapped, doubt = cols["_mapped_doubt"], self.doubt
        one = len(rows) == 1
        if cols["_key_doubt"][first] or (
            mapped[first]
            if one
            else any(mapped[i] for i in rows) or len({self.codes[i] for i in rows}) != len(rows)
        ):
            loaded.doubtful.append(key)
            return None
        action = cols["_action"][first]
        if action != "active":
            loaded.products.append((key, action, None, None, None))
            loaded.first_rows.append(first)
            return None
        if cols["_product_doubt"][first] or (doubt[first] if one else any(doubt[i] for i in rows)):
            loaded.doubtful.append(key)
            return None
        if one:
            text = self.json[first]
            return [self.dicts[first]], text, text
        json = self.json
        ordered = sorted(rows, key=self.codes.__getitem__)
        canonical = ",".join([json[i] for i in ordered])
        kept = canonical if ordered == rows else ",".join([json[i] for i in rows])
        return [self.dicts[i] for i in rows], canonical, kept

    def _record(
        self, first: int, variants: list[dict[str, Any]], text: str, kept: str
    ) -> tuple[dict[str, Any], str, str]:
        """The product's canonical record, its canonical JSON and the JSON
        the store keeps (`stored_json`: the variants in the rows' order)."""
        cols, enc = self.cols, encode_basestring
        tag = cols["tags"][first] if "tags" in cols else None
        if tag is not None:
            tag = coerce_tags(tag, "tags")
        code, title = cols["source_product_code"][first], cols["title"][first]
        bodies, collections, kinds, vendors = self.fields
        body_j, collection_j, kind_j, vendor_j = self.shown
        record = {
            "source_product_code": code,
            "title": title,
            "body_html": bodies[first],
            "collection": collections[first],
            "product_type": kinds[first],
            "vendor": vendors[first],
            "tags": tag,
            "options": [],
            "meta": [],
            "variants": variants,
            "active": True,
        }
        head = (
            body_j[first],
            collection_j[first],
            kind_j[first],
            enc(code),
            "null" if tag is None else enc(tag),
            enc(title),
        )
        canonical = _PRODUCT_JSON % (*head, text, vendor_j[first])
        stored = canonical if kept is text else _PRODUCT_JSON % (*head, kept, vendor_j[first])
        return record, canonical, stored


_PRODUCT_JSON: Final = (
    '{"active":true,"body_html":%s,"collection":%s,"meta":[],"options":[],'
    '"product_type":%s,"source_product_code":%s,"tags":%s,"title":%s,"variants":[%s],'
    '"vendor":%s}'
)
