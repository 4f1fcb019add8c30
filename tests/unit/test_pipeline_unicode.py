"""A product holding text no database can store (a lone surrogate, as a JSON
ERP may send) is held back with the field named; its page goes on, on both
mapping paths."""

from __future__ import annotations

import pytest

import workers.pipeline as pipeline
from emulators.sql_erp import generate_rows


@pytest.mark.parametrize("columnar", ["all", "0"])
def test_a_lone_surrogate_is_quarantined_and_the_page_goes_on(
    columnar: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2S_COLUMNAR", columnar)
    rows = generate_rows(40, 7)
    clean_items, clean_errors = pipeline.map_records("sql", "products", rows, {})
    active = next(i for i in clean_items if i.action == "active")
    bad_rows = [dict(r) for r in rows]
    for row in bad_rows:
        if str(row["Prod"]).strip() == active.key:
            row["WebName"] = "Widget \ud800 blue"
    items, errors = pipeline.map_records("sql", "products", bad_rows, {})
    mine = [e for e in errors if e["key"] == active.key]
    assert len(mine) == 1, mine
    assert "not valid Unicode" in mine[0]["message"]
    assert mine[0]["field"] != "record"  # the field is named
    # Everything else on the page is as it was.
    assert [i for i in items if i.key != active.key] == [
        i for i in clean_items if i.key != active.key
    ]
    assert [e for e in errors if e["key"] != active.key] == clean_errors
