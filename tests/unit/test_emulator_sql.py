"""The SQL ERP emulator: deterministic data, honest counts, and its helpers."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from emulators.sql_erp import (
    ACTIVE_FLAGS,
    DELETE_FLAGS,
    IGNORE_FLAGS,
    change_rows,
    create_schema,
    generate_customers,
    generate_rows,
    main,
    order_counts,
    seed,
    set_flag,
    summarize,
)


def table_rows(url: str, sql: str) -> list[dict[str, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(text(sql))]
    engine.dispose()
    return rows


def is_bad(row: dict[str, str]) -> str | None:
    """The test's own reading of the canonical coercion rules."""
    try:
        int(row["qty"].strip())
    except ValueError:
        return "qty"
    try:
        Decimal(row["price"].strip())
    except InvalidOperation:
        return "price"
    return None if row["WebName"].strip() else "WebName"


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    assert generate_rows(500, 3) == generate_rows(500, 3)
    assert generate_rows(500, 3) != generate_rows(500, 4)
    assert generate_customers(50, 3) == generate_customers(50, 3)
    # More products extend the data; they do not reshuffle the first ones.
    assert generate_rows(600, 3)[: len(generate_rows(500, 3))] == generate_rows(500, 3)


def test_the_mix_of_rows() -> None:
    rows = generate_rows(5000, 11)
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[row["Prod"]].append(row)
    assert len(groups) == 5000
    assert len({row["SKU"] for row in rows}) == len(rows)
    variable = {prod: group for prod, group in groups.items() if len(group) > 1}
    assert 0.07 < len(variable) / 5000 < 0.13
    for prod, group in groups.items():
        assert 1 <= len(group) <= 4
        assert len({row["product_active"] for row in group}) == 1
        if len(group) == 1:
            assert group[0]["SKU"] == prod
        else:
            assert all(row["SKU"].startswith(prod + "-") for row in group)
    flags = Counter(group[0]["product_active"] for group in groups.values())
    assert set(flags) <= set(ACTIVE_FLAGS + DELETE_FLAGS + IGNORE_FLAGS)
    assert set(ACTIVE_FLAGS) <= set(flags)
    deleted = sum(flags[f] for f in DELETE_FLAGS) / 5000
    ignored = sum(flags[f] for f in IGNORE_FLAGS) / 5000
    assert 0.015 < deleted < 0.05
    assert 0.008 < ignored < 0.035
    bad = [row for row in rows if is_bad(row)]
    assert 5 <= len(bad) <= 50
    assert {is_bad(row) for row in bad} == {"qty", "price", "WebName"}
    assert any(row["qty"] != row["qty"].strip() for row in rows), "no padded numbers"
    assert any(row["price"] != row["price"].strip() for row in rows), "no padded prices"


def test_summary_counts_match_the_rows() -> None:
    rows = generate_rows(3000, 5)
    customers = generate_customers(30, 5)
    summary = summarize(rows, customers)
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[row["Prod"]].append(row)
    firsts = [group[0]["product_active"] for group in groups.values()]
    assert summary.rows == len(rows)
    assert summary.products == len(groups) == 3000
    assert summary.variable_products == sum(len(g) > 1 for g in groups.values())
    assert summary.variants == sum(len(g) for g in groups.values() if len(g) > 1)
    assert summary.active == sum(flag in ACTIVE_FLAGS for flag in firsts)
    assert summary.deleted == sum(flag in DELETE_FLAGS for flag in firsts)
    assert summary.ignored == sum(flag in IGNORE_FLAGS for flag in firsts)
    assert summary.active + summary.deleted + summary.ignored == summary.products
    expected_bad = [(row["SKU"], is_bad(row)) for row in rows if is_bad(row)]
    assert summary.bad_skus == expected_bad
    assert summary.bad == len(expected_bad)
    assert summary.customers == 30
    # Bad rows sit in simple, active products only.
    for sku, _ in summary.bad_skus:
        (row,) = groups[sku]
        assert row["product_active"] in ACTIVE_FLAGS


def test_seed_writes_the_generated_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    summary = seed(url, products=400, customers=25, seed=9)
    assert summary == summarize(generate_rows(400, 9), generate_customers(25, 9))
    stored = table_rows(url, 'SELECT * FROM products ORDER BY "SKU"')
    assert stored == sorted(generate_rows(400, 9), key=lambda row: row["SKU"])
    customers = table_rows(url, 'SELECT * FROM customers ORDER BY "Customer"')
    assert customers == generate_customers(25, 9)
    # Seeding again replaces the data rather than adding to it.
    assert seed(url, products=400, customers=25, seed=9) == summary
    assert len(table_rows(url, "SELECT * FROM products")) == summary.rows


def test_seed_into_other_table_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    seed(
        url,
        products=10,
        customers=2,
        seed=1,
        products_table="stock",
        customers_table="debtors",
        order_table="web_orders",
        order_line_table="web_order_lines",
    )
    assert len(table_rows(url, "SELECT * FROM debtors")) == 2
    counts = order_counts(url, order_table="web_orders", order_line_table="web_order_lines")
    assert (counts.headers, counts.lines, counts.orders) == (0, 0, 0)


def test_change_rows_is_deterministic_and_touches_only_valid_active_rows(
    tmp_path: Path,
) -> None:
    urls = [f"sqlite:///{tmp_path / name}" for name in ("a.sqlite", "b.sqlite")]
    for url in urls:
        seed(url, products=300, customers=0, seed=2)
    changed = [change_rows(url, 12, seed=5) for url in urls]
    assert changed[0] == changed[1]
    assert len(set(changed[0])) == 12
    before = {row["SKU"]: row for row in generate_rows(300, 2)}
    after = {row["SKU"]: row for row in table_rows(urls[0], "SELECT * FROM products")}
    for sku, row in after.items():
        if sku in changed[0]:
            old = before[sku]
            assert old["product_active"] in ACTIVE_FLAGS and is_bad(old) is None
            assert int(row["qty"]) != int(old["qty"].strip())
            assert Decimal(row["price"]) != Decimal(old["price"].strip())
        else:
            assert row == before[sku]
    assert table_rows(urls[0], "SELECT * FROM products") == table_rows(
        urls[1], "SELECT * FROM products"
    )
    with pytest.raises(ValueError, match="can change"):
        change_rows(urls[0], 10_000, seed=1)


def test_set_flag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    seed(url, products=5, customers=0, seed=1)
    set_flag(url, "P000003", "Delete")
    rows = table_rows(url, 'SELECT "SKU", product_active FROM products WHERE "Prod" = \'P000003\'')
    assert [row["product_active"] for row in rows] == ["Delete"] * len(rows)
    with pytest.raises(LookupError):
        set_flag(url, "NOPE", "1")


def test_order_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    create_schema(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO s2s_order (channel_order_code) VALUES ('A'), ('B')"))
        conn.execute(
            text(
                "INSERT INTO s2s_order_line (channel_order_code, line_no, sku) "
                "VALUES ('A', 1, 'X'), ('A', 2, 'Y'), ('B', 1, 'X')"
            )
        )
        created = conn.execute(text("SELECT created_at FROM s2s_order")).scalars().all()
    engine.dispose()
    assert all(created)
    counts = order_counts(url)
    assert (counts.headers, counts.lines, counts.orders) == (2, 3, 2)
    seed(url, products=1, customers=0, seed=1)
    assert order_counts(url).headers == 2  # seeding keeps staged orders
    seed(url, products=1, customers=0, seed=1, clear_orders=True)
    assert order_counts(url).headers == 0


def test_main_creates_seeds_and_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "var" / "erp.sqlite"
    argv = ["--url", f"sqlite:///{path}", "--products", "200", "--customers", "20", "--seed", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = summarize(generate_rows(200, 1), generate_customers(20, 1))
    assert path.exists()
    assert f"rows               {summary.rows:,}" in out
    assert "customers          20" in out
