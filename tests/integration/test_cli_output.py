"""What the operator reads: the order template, whole error texts at any width, --json.

The troubles are real ones: a source whose products query names a column
the ERP does not have (the run fails with the database's words), and the
printed order template submitted as it is to a hub that holds none of its
SKUs (stored, routed, dead-lettered with the reason). Then every listing is
read at several terminal widths and as JSON.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from emulators import sql_erp
from hub.db import session_scope
from hub.models import DeadLetter, Order, SyncRun
from hub.runs import RECORD_OUTCOMES
from hub.schemas.orders import load_order
from s2s.cli.common import TEXT_MIN, Listing
from s2s.openapi import document
from s2s.order_example import order_example
from tests.conftest import ROOT, Hub, wait_for

# A query naming a column the template's products table does not have.
BAD_QUERY = "SELECT Prod AS source_product_code, SoldToAddr1 AS title FROM products"


def _squash(text: str) -> str:
    return "".join(text.split())


def _columns(output: str) -> list[str]:
    """Each table column's cells read top to bottom and joined, per table:
    a sentence folded over several lines reads whole again."""
    out: list[str] = []
    table: list[list[str]] = []
    for line in [*output.splitlines(), ""]:
        if line.startswith(("┃", "│")):  # the header's rows, then the body's
            table.append(re.split("[┃│]", line.strip("┃│")))
        elif line.startswith(("┡", "├")):  # a rule inside the table
            continue
        elif table:
            out += [" ".join(c.strip() for c in cells) for cells in zip(*table, strict=False)]
            table = []
    return out


def _shown_whole(output: str, sentence: str) -> bool:
    """The sentence is in the output uncut: on its own line(s), or folded in a column."""
    needle = _squash(sentence)
    return any(needle in _squash(text) for text in [output, *_columns(output)])


def _cli(hub: Hub, *args: str, columns: int | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in hub.env.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    result = subprocess.run(
        [sys.executable, "-m", "s2s.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _readme_order() -> Any:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Using it") : text.index("### ERPs")]
    blocks = re.findall(r"```json\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Using it section shows one order"
    return json.loads(blocks[0])


# --------------------------------------------------------------- the order


def test_one_example_in_the_readme_the_api_document_and_the_template() -> None:
    example = order_example()
    assert _readme_order() == example
    body = document()["paths"]["/api/v1/clients/{client}/orders"]["post"]["requestBody"]
    assert body["content"]["application/json"]["examples"]["complete"]["value"] == example
    order, errors = load_order(example)
    assert errors == [] and order is not None
    # Every field the schema takes is in it, nested ones included.
    assert set(example) == set(order)
    for key in ("customer", "billing_address", "shipping_address"):
        assert set(example[key]) == set(order[key]), key
    assert set(example["line_items"][0]) == set(order["line_items"][0])
    assert set(example["shipping_lines"][0]) == set(order["shipping_lines"][0])
    assert set(example["line_items"][0]["tax_lines"][0]) == {"code", "title", "price", "rate"}


def test_the_readme_table_names_every_field_of_the_example() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Using it") : text.index("### ERPs")]
    first_cells = re.findall(r"^\| (`[^|]*) \|", section, re.M)
    names = [n for cell in first_cells for n in re.findall(r"`([^`]+)`", cell)]
    # "customer.email" explains customer too; "meta[]" is meta.
    named = {n.rstrip("[]") for n in names} | {n.split(".")[0].rstrip("[]") for n in names}
    example = order_example()
    missing = {*example, *(f"line_items[].{k}" for k in example["line_items"][0])} - named
    assert missing == {"line_items[].tax_lines"}, "the README's order table does not explain"
    assert "…tax_lines" in named


# ------------------------------------------------------- listings, whole


def _listing(rows: list[tuple[str, str]]) -> Listing:
    table = Listing(("error",), title="runs")
    table.column("run", justify="right")
    table.column("status")
    for label, error in rows:
        table.row(label, [label, "failed"], [error])
    return table


LONG = (
    "reading products failed: no such column: SoldToAddr1 — check products_query in the "
    "source's settings [the ERP's own words]"
)


# The short columns take 18 characters with their borders; a sentence
# column wants TEXT_MIN more, and 3 for its padding and border.
@pytest.mark.parametrize(
    ("width", "in_column"), [(30, False), (50, False), (51, True), (80, True), (250, True)]
)
def test_a_listing_never_cuts_its_sentences(width: int, in_column: bool) -> None:
    console = Console(width=width, record=True, color_system=None)
    console.print(_listing([("run 1", LONG), ("run 2", "short")]))
    output = console.export_text()
    assert _shown_whole(output, LONG), output  # its brackets too: never read as markup
    assert "…" not in output
    assert any(c.startswith("error") for c in _columns(output)) == in_column, output
    # Narrow: each sentence follows the table, named by its row.
    follows = re.search(r"^run 1 error: reading products", output, re.M)
    assert bool(follows) == (not in_column), output


def test_a_short_sentence_stays_in_its_column() -> None:
    """At a width where a long one would follow the table (see above)."""
    console = Console(width=40, record=True, color_system=None)
    console.print(_listing([("run 1", "timed out")]))
    output = console.export_text()
    assert any(c.startswith("error") and "timedout" in _squash(c) for c in _columns(output))
    assert "run 1 error:" not in output


# ------------------------------------------------- the CLI, for real


@pytest.fixture
def troubled(embedded_hub: Hub) -> Hub:
    """A failed run with the database's words, and the template dead-lettered."""
    hub = embedded_hub
    erp = f"sqlite:///{hub.var_dir / 'erp.sqlite'}"
    sql_erp.create_schema(erp)
    sql_erp.seed(erp, products=10, customers=2, seed=3)
    path = hub.var_dir / "hub.yaml"
    path.write_text(
        "clients:\n"
        "  - code: acme\n"
        "    sources:\n"
        "      - code: erp\n"
        "        kind: sql\n"
        "        settings:\n"
        "          url: ${ERP_URL}\n"
        "          default_customer_code: CASH\n"
        f'          products_query: "{BAD_QUERY}"\n'
    )
    hub.env["ERP_URL"] = erp
    applied = _cli(hub, "apply", str(path), columns=None)
    assert applied.returncode == 0, applied.stderr
    hub.start_worker()

    # 1. The template, as printed, is an order the intake takes and stores.
    template = _cli(hub, "orders", "template", columns=None)
    assert template.returncode == 0 and template.stderr == ""
    assert json.loads(template.stdout) == order_example()
    file = hub.var_dir / "order.json"
    file.write_text(template.stdout)
    submitted = _cli(hub, "orders", "submit", str(file), "--client", "acme", columns=None)
    assert submitted.returncode == 0, submitted.stderr
    assert re.search(r"^order \d+ api/1001: received$", submitted.stdout, re.M)
    with session_scope() as s:
        stored = s.scalars(select(Order).where(Order.channel_order_code == "1001")).one()
        assert stored.order == load_order(order_example())[0]
        order_id = stored.id

    # 2. A narrow terminal still gets the run's whole error.
    synced = _cli(hub, "resync", "acme", "erp", "--wait", columns=60)
    assert synced.returncode == 1, synced.stdout + synced.stderr
    with session_scope() as s:
        run = s.scalars(select(SyncRun)).one()
        assert run.status == "failed" and run.error and "SoldToAddr1" in run.error
        assert len(run.error) > TEXT_MIN
        error = run.error
    assert _shown_whole(synced.stdout, error), synced.stdout
    assert f"run {run.id} error: " in synced.stdout

    def dead() -> bool:
        with session_scope() as s:
            return s.get(Order, order_id).status == "dead"  # type: ignore[union-attr]

    wait_for(dead, timeout=120, what="the template's order to be dead-lettered")
    return hub


def _troubles() -> tuple[SyncRun, Order, DeadLetter]:
    with session_scope() as s:
        run = s.scalars(select(SyncRun)).one()
        order = s.scalars(select(Order)).one()
        letter = s.scalars(select(DeadLetter)).one()
        s.expunge_all()
    assert order.last_error and len(order.last_error) > TEXT_MIN
    assert "MUG-01" in letter.message and "TSHIRT-RED-M" in letter.message
    return run, order, letter


@pytest.mark.parametrize("columns", [60, 100, None, 250])
def test_listings_show_errors_whole_at_any_width(troubled: Hub, columns: int | None) -> None:
    hub = troubled
    run, order, letter = _troubles()
    wanted: dict[tuple[str, ...], list[str]] = {
        ("runs", "acme", "erp"): [run.error or ""],
        ("status",): [run.error or ""],
        ("orders", "list"): [order.last_error or ""],
        ("orders", "show", str(order.id)): [letter.message],
        ("dlq", "list"): [letter.message],
    }
    shown: dict[tuple[str, ...], str] = {}
    for args, sentences in wanted.items():
        result = _cli(hub, *args, columns=columns)
        assert result.returncode == 0, (args, result.stderr)
        for sentence in sentences:
            assert _shown_whole(result.stdout, sentence), (args, columns, result.stdout)
        shown[args] = result.stdout
    # Wide enough, the runs table keeps its error column; narrow, the error
    # follows the table on its own line.
    runs = shown["runs", "acme", "erp"]
    in_column = any(c.startswith("error") and "SoldToAddr1" in c for c in _columns(runs))
    assert in_column == (columns == 250), runs
    if columns == 250:
        assert re.search(r"┃ skipped ┃", runs), runs
        assert "/skipped" in shown["status",]  # the status table's counts say what "/" is
    assert (f"run {run.id} error: " in runs) == (not in_column)


def test_json_for_scripts(troubled: Hub) -> None:
    hub = troubled
    run, order, letter = _troubles()

    def parsed(*args: str) -> Any:
        result = _cli(hub, *args, "--json", columns=40)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # nothing else on stdout

    def when(value: str) -> datetime:
        at = datetime.fromisoformat(value)
        assert at.utcoffset() is not None, value
        return at

    (shown,) = parsed("runs", "acme", "erp")
    assert shown["id"] == run.id and shown["status"] == "failed"
    assert shown["skipped"] == run.skipped  # records the hub never held, not "unchanged"
    assert shown["error"] == run.error
    for outcome in RECORD_OUTCOMES:
        assert shown[outcome] == getattr(run, outcome) and isinstance(shown[outcome], int)
    assert when(shown["created_at"]) == run.created_at
    assert when(shown["finished_at"]) == run.finished_at
    assert (shown["pages_done"], shown["pages_total"]) == (run.pages_done, run.pages_total)
    (with_held,) = parsed("runs", "acme", "erp", "--quarantine")
    assert with_held["quarantined_records"] == []

    status = parsed("status")
    (stream,) = [s for s in status["streams"] if s["stream"] == "products"]
    assert (stream["client"], stream["source"], stream["kind"]) == ("acme", "erp", "sql")
    assert stream["last_run"] == shown
    assert status["dead_letters"]["open"] == 1
    assert when(status["dead_letters"]["oldest_at"]) == letter.created_at
    assert set(status["queues"]) >= {"maintenance"}
    assert status["workers"] is None or isinstance(status["workers"], dict)
    assert status["channels"] == []

    (listed,) = parsed("orders", "list")
    assert listed["id"] == order.id and listed["status"] == "dead"
    assert (listed["client"], listed["channel"], listed["channel_order_code"]) == (
        "acme",
        "api",
        "1001",
    )
    assert listed["last_error"] == order.last_error
    assert when(listed["updated_at"]) == order.updated_at
    assert listed["attempts"] == order.attempts
    assert parsed("orders", "list", "--status", "raised") == []

    (dead,) = parsed("dlq", "list")
    assert dead["id"] == letter.id and dead["order"] == order.id
    assert (dead["message"], dead["fix"]) == (letter.message, letter.fix)
    assert (dead["error_class"], dead["status"]) == ("unknown_sku", "open")
    assert when(dead["created_at"]) == letter.created_at
    assert parsed("dlq", "list", "--client", "acme") == [dead]


def test_json_with_nothing_to_list_is_still_json(embedded_hub: Hub) -> None:
    hub = embedded_hub
    assert _cli(hub, "client", "add", "acme", columns=None).returncode == 0
    for args in (("dlq", "list"), ("dlq", "list", "--all"), ("orders", "list")):
        result = _cli(hub, *args, "--json", columns=None)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [], args
