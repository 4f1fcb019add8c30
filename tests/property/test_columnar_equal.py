"""The columnar mapping path gives exactly what the per-record path gives.

For every registered map the column compiler supports (and a synthetic map
that uses every scalar path the compiler knows), pages of generated and
hostile records go through ``workers.pipeline.map_records`` twice: in
columns (``S2S_COLUMNAR=all``: however few the rows) and per record
(``S2S_COLUMNAR=0``, the reference).
The two must give the same store items (key, action, canonical record,
canonical hash, raw hash) and the same quarantine entries (key, field,
message, raw) in the same order.

The pages hold what breaks parsers: blank and whitespace-only strings
(Python's and Unicode's spaces), huge numbers, NaN and exponent text,
decimal commas, other scripts' digits, control characters and quotes,
unicode, values that are not text (ints, floats, bools), columns missing
from the whole page or from one record, a column spelt in another case,
query aliases to hub paths, repeated product and variant codes, and the
variants of one product split across the page.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workers.pipeline as pipeline
from mappings import MAPS, Map, Row, const, hub_paths
from mappings.columnar import compile_map
from mappings.core import UNSET

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

SYNTHETIC: Map = Map(
    erp="columnar_test",
    erp_title="Columnar test",
    stream="products",
    rows=(
        Row("code", "source_product_code"),
        Row("variant", "source_variant_code"),
        Row("name", "title"),
        Row("desc", "body_html"),
        Row("kind", "product_type"),
        Row("tags", "tags"),
        Row("state", "product_active"),
        Row("sku", "variants.sku"),
        Row("barcode", "variants.barcode"),
        Row("qty", "variants.qty"),
        Row("grams", "variants.grams"),
        Row("rrp", "variants.retail_price"),
        Row("price", "variants.price"),
        Row("managed", "variants.inventory_management"),
        Row("size", "variants.option1"),
        Row("colour", "variants.option2"),
        const("ACME", "vendor", "ACME", "Always ACME"),
    ),
    passthrough=hub_paths("products"),
)


def _compiled_maps() -> list[tuple[str, Map]]:
    found = [(kind, m) for (kind, stream), m in sorted(MAPS.items()) if stream == "products"]
    return [(kind, m) for kind, m in found if compile_map(m) is not None]


def test_the_sql_template_compiles() -> None:
    """The benchmark's map is among those held equal here."""
    assert "sql" in [kind for kind, _ in _compiled_maps()]


SPACES = st.sampled_from(["", " ", "  ", "\t", "\u3000", "\x1c", "\xa0", "\u200b", "\n"])
# What a column usually holds...
CODE = st.sampled_from(["P1", "P2", "P3", "p1", "P-ü", "P 4", "Q10"])
VARIANT = st.one_of(CODE, st.integers(0, 60).map(lambda n: f"S{n}"))
TEXT = st.one_of(
    st.sampled_from(["Kettle", "Blue Kettle 12", 'say "hi"', "back\\slash", "Ünïcødé 日本 🙂"]),
    st.text(st.characters(min_codepoint=32, exclude_categories=("Cs",)), min_size=1, max_size=8),
)
NUMBER = st.one_of(
    st.sampled_from(["5", "0", "-3", "+7", "12.5", ".5", "5.", "-0.0", "312.00", "1095.99"]),
    st.integers(min_value=-(10**6), max_value=10**9).map(str),
    st.decimals(min_value=-(10**6), max_value=10**6, places=4).map(lambda d: format(d, "f")),
    st.decimals(min_value=0, max_value=10**3, places=9).map(lambda d: format(d, "f")),
)
FLAG = st.sampled_from(
    ["1", "true", "Active", "Y", "yes", "0", "false", "Delete", "n", "", "Ignore", "on", "t"]
)
# ...and what breaks parsers.
HOSTILE = st.one_of(
    st.sampled_from(
        [
            "",
            "   ",
            "\u3000",
            "tab\tin",
            "ctl\x01x",
            "NUL\x00",
            "line\u2028sep",
            "a,b, b ,,c",
            "0.00005",
            "123456789.12345",
            "999999999999999",
            "9999999999999999",
            "2147483648",
            "1e3",
            "NaN",
            "inf",
            "abc",
            "1,5",
            "1_000",
            "١٢٣",
            "maybe",
            "IGNORE",
            "İgnore",
            "X" * 300,
            "off",
        ]
    ),
    st.text(max_size=6),
    st.sampled_from([12, 0, 1, -4, 3.5, float("nan"), True, False, 10**20, None]),
)


def _value(kind: st.SearchStrategy[Any], rate: int) -> st.SearchStrategy[Any]:
    """A column's value: its kind (sometimes padded with spaces of either
    kind, sometimes null), or at ``rate`` percent something hostile."""
    padded = st.tuples(SPACES, kind, SPACES).map(lambda t: f"{t[0]}{t[1]}{t[2]}")
    usual = st.one_of(kind, kind, kind, kind, kind, kind, padded, st.none())
    return st.integers(0, 99).flatmap(lambda roll: HOSTILE if roll < rate else usual)


# ERP field -> what it holds, for the maps' columns and the aliases.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "code": CODE,
    "variant": VARIANT,
    "sku": VARIANT,
    "prod": CODE,
    "name": TEXT,
    "webname": TEXT,
    "desc": TEXT,
    "kind": TEXT,
    "tags": TEXT,
    "state": FLAG,
    "product_active": FLAG,
    "barcode": TEXT,
    "qty": NUMBER,
    "grams": NUMBER,
    "rrp": NUMBER,
    "price": NUMBER,
    "managed": FLAG,
    "size": TEXT,
    "colour": TEXT,
}
ALIASES = {
    "variants.qty": NUMBER,
    "title": TEXT,
    "variants.barcode": TEXT,
    "product_active": FLAG,
    "vendor": TEXT,
    "meta.brand": TEXT,
    "variants.price_tiers": TEXT,
}


def _kind_of(column: str) -> st.SearchStrategy[Any]:
    return {**FIELDS, **ALIASES}.get(column.lower(), TEXT)


def _columns_of(m: Map) -> list[str]:
    return sorted({row.erp for row in m.rows if row.constant is UNSET})


@st.composite
def pages(draw: st.DrawFn, m: Map) -> list[dict[str, Any]]:
    """A page of records of one map: its columns (some missing, some in
    another case, sometimes an alias added), rows drawn from a few product
    codes so that products repeat and split across the page, and values
    hostile at a rate drawn per page (none, a few, many)."""
    columns = [c for c in _columns_of(m) if draw(st.integers(0, 15)) > 0]
    columns = [c.upper() if draw(st.integers(0, 15)) == 0 else c for c in columns]
    if draw(st.integers(0, 3)) == 0:
        columns += draw(st.lists(st.sampled_from(sorted(ALIASES)), max_size=2, unique=True))
    rate = draw(st.sampled_from([0, 0, 2, 10, 40]))
    n = draw(st.integers(1, 25))
    products = draw(st.lists(CODE, min_size=1, max_size=6))
    records: list[dict[str, Any]] = []
    for _ in range(n):
        record = {c: draw(_value(_kind_of(c), rate)) for c in columns}
        for c in columns:
            if c.lower() in {"code", "prod"} and draw(st.integers(0, 5)) > 0:
                record[c] = draw(st.sampled_from(products))
        records.append(record)
    if draw(st.integers(0, 30)) == 0:
        records[-1].pop(next(iter(records[-1]), ""), None)  # one record short of a column
    return records


@pytest.fixture
def synthetic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The synthetic map under the kind "columnar_test", for map_records."""
    real = pipeline.kind_map

    def kind_map(kind: str, stream: str) -> Map:
        return SYNTHETIC if kind == SYNTHETIC.erp else real(kind, stream)

    monkeypatch.setattr(pipeline, "kind_map", kind_map)
    yield


def _both(
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    records: list[dict[str, Any]],
    raw_hashes: Mapping[str, str] | None,
) -> tuple[Any, Any]:
    monkeypatch.setenv("S2S_COLUMNAR", "0")
    reference = pipeline.map_records(kind, "products", records, {}, raw_hashes)
    monkeypatch.setenv("S2S_COLUMNAR", "all")
    columnar = pipeline.map_records(kind, "products", records, {}, raw_hashes)
    return reference, columnar


def _raw_hashes(records: list[dict[str, Any]]) -> dict[str, str]:
    """A raw hash for every code any column could give, as the fetch would."""
    codes = {str(v).strip() for r in records for v in r.values() if isinstance(v, str)}
    return {code: f"raw-{code}" for code in codes if code}


def _assert_equal(reference: Any, columnar: Any) -> None:
    (ref_items, ref_errors), (col_items, col_errors) = reference, columnar
    assert [i.key for i in col_items] == [i.key for i in ref_items]
    assert col_items == ref_items
    assert col_errors == ref_errors


@pytest.mark.parametrize("kind", [kind for kind, _ in _compiled_maps()])
@SETTINGS
@given(data=st.data())
def test_registered_maps_columnar_equals_reference(
    kind: str, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = data.draw(pages(MAPS[(kind, "products")]))
    with_hashes = data.draw(st.booleans())
    hashes = _raw_hashes(records) if with_hashes else None
    _assert_equal(*_both(monkeypatch, kind, records, hashes))


@SETTINGS
@given(data=st.data())
def test_synthetic_map_columnar_equals_reference(
    data: st.DataObject, synthetic: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = data.draw(pages(SYNTHETIC))
    hashes = _raw_hashes(records) if data.draw(st.booleans()) else None
    _assert_equal(*_both(monkeypatch, SYNTHETIC.erp, records, hashes))
