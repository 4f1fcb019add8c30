"""What the operator reads of the pushes: the store's words and a push's
error whole at any width, and ``--json`` for scripts.

The troubles are real ones, met against the Shopify emulator over HTTP: the
store refuses one product with a long userError (a refusal switched on in
the emulated store), and a channel declared with a wrong access token fails
its push with the connector's words. ``s2s channel pushes`` and ``s2s
channel problems`` are then read at several terminal widths and as JSON, and
the demo's push and refusal printing at a narrow and a wide console.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from emulators import sql_erp
from emulators.shopify import RunningServer, serve
from hub import pushes
from hub.db import session_scope
from hub.models import ChannelProduct, Product, PushRun
from s2s.cli.common import TEXT_MIN
from s2s.demo_acts import Stage
from s2s.demo_acts.stores import push as demo_push
from s2s.demo_acts.stores import refusals
from tests.conftest import Hub
from tests.integration.test_cli_output import _cli, _columns, _shown_whole
from tests.integration.test_sync_e2e import _sync
from workers.channels import get_channel
from workers.sources import get_client, set_channels, upsert_client, upsert_source

pytestmark = [pytest.mark.services]

TOKEN = "shpat_cli_output_7c2d91"
WRONG = "shpat_wrong_cli_output_0a1b"
# Longer than any column a narrow terminal leaves, with brackets that rich
# would read as markup if the words were not printed literally.
REFUSAL = (
    "Price must be less than 1,000,000 [PRICE_TOO_HIGH] for a variant of this product; "
    "the compare-at price, when set, must be greater than the price"
)
WIDTHS = (60, 100, None, 250)  # None: piped output without COLUMNS, 140


@dataclass(frozen=True)
class Pushed:
    hub: Hub
    client_id: int
    shop_id: int  # pushed, one product refused with REFUSAL
    bad_id: int  # its push failed: the store refused the access token
    refused_key: str


def _declare(shop: RunningServer, code: str, token: str) -> int:
    with session_scope() as s:
        client = get_client(s, "acme")
        spec = {
            "kind": "shopify",
            "secret": f"whsec_{code}",
            "store_url": shop.base_url,
            "allow_http": True,
            "access_token": token,
            "schedule": "off",
        }
        set_channels(s, client, {code: spec})
        row = get_channel(s, client, code)
        assert row is not None
        return row.id


def _a_product_sku() -> tuple[str, str]:
    """An active product's key and its first variant's SKU."""
    with session_scope() as s:
        product = s.scalars(
            select(Product)
            .where(Product.active.is_(True), Product.deleted_at.is_(None))
            .order_by(Product.id)
        ).first()
        assert product is not None
        return f"erp:{product.source_product_code}", product.data["variants"][0]["sku"]


@pytest.fixture
def pushed(embedded_hub: Hub) -> Iterator[Pushed]:
    hub = embedded_hub
    erp = f"sqlite:///{hub.var_dir / 'erp.sqlite'}"
    sql_erp.create_schema(erp)
    sql_erp.seed(erp, products=12, customers=0, seed=4)
    with session_scope() as s:
        client, _ = upsert_client(s, "acme", "Acme")
        source = upsert_source(s, client, "erp", "sql", {"url": erp})
        client_id, source_id = client.id, source.id
    hub.start_worker(concurrency=1)
    _sync(source_id)
    key, sku = _a_product_sku()
    with serve(access_token=TOKEN) as shop:
        shop.faults.refuse_sku(sku, REFUSAL)
        shop_id = _declare(shop, "shop", TOKEN)
        bad_id = _declare(shop, "bad", WRONG)

        # Narrow or not, `s2s push --wait` shows the run; the refusal is a count.
        done = _cli(hub, "push", "acme", "shop", "--wait", columns=60)
        assert done.returncode == 0, done.stdout + done.stderr
        with session_scope() as s:
            run = s.scalars(select(PushRun).where(PushRun.channel_id == shop_id)).one()
            assert (run.status, run.refused) == ("succeeded", 1), run.error
            assert run.created == run.considered - 1 > 0

        # A push that fails: its error is whole under the narrow table, and
        # the one-line error on stderr names the setting, never the token.
        failed = _cli(hub, "push", "acme", "bad", "--wait", columns=60)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        with session_scope() as s:
            bad = s.scalars(select(PushRun).where(PushRun.channel_id == bad_id)).one()
            assert bad.status == "failed" and bad.error and "access_token" in bad.error
            assert len(bad.error) > TEXT_MIN
            error = bad.error
        assert _shown_whole(failed.stdout, error), failed.stdout
        assert f"push {bad.id} error: " in failed.stdout
        assert "access_token" in failed.stderr
        assert WRONG not in failed.stdout + failed.stderr
        yield Pushed(hub, client_id, shop_id, bad_id, key)


def _refused(key: str) -> ChannelProduct:
    with session_scope() as s:
        row = s.scalars(select(ChannelProduct).where(ChannelProduct.key == key)).one()
        s.expunge(row)
    assert row.error is not None and REFUSAL in row.error
    return row


def _run_of(channel_id: int) -> PushRun:
    with session_scope() as s:
        run = s.scalars(select(PushRun).where(PushRun.channel_id == channel_id)).one()
        s.expunge(run)
    return run


def _in_column(output: str, header: str, words: str) -> bool:
    return any(c.startswith(header) and words in "".join(c.split()) for c in _columns(output))


def test_the_stores_words_and_a_push_error_whole_at_any_width(pushed: Pushed) -> None:
    hub = pushed.hub
    refused = _refused(pushed.refused_key)
    bad = _run_of(pushed.bad_id)
    assert refused.error and bad.error
    code = pushed.refused_key.split(":", 1)[1]
    for columns in WIDTHS:
        problems = _cli(hub, "channel", "problems", "acme", "shop", columns=columns)
        assert problems.returncode == 0, problems.stderr
        out = problems.stdout
        assert _shown_whole(out, refused.error), (columns, out)
        assert "…" not in out, (columns, out)
        assert code in out
        # In its column, or on a line of its own named by the product: one or the other.
        column = _in_column(out, "the store's words", "PRICE_TOO_HIGH")
        own_line = f"product {pushed.refused_key} the store's words: " in out
        assert column != own_line, (columns, out)
        assert column == (columns != 60), (columns, out)

        runs = _cli(hub, "channel", "pushes", "acme", "bad", columns=columns)
        assert runs.returncode == 0, runs.stderr
        out = runs.stdout
        assert _shown_whole(out, bad.error), (columns, out)
        assert "…" not in out, (columns, out)
        # A column per count where the error fits beside them; narrower, the
        # counts are words in one column, never headers cut to "c…".
        per_count = bool(re.search(r"┃ considered ┃ created ┃", out))
        assert per_count == (columns == 250), (columns, out)
        assert ("│ 0 considered " in out) == (not per_count), (columns, out)
        column = _in_column(out, "error", "access_token")
        own_line = f"push {bad.id} error: " in out
        assert column != own_line, (columns, out)
        assert column == (columns != 60), (columns, out)

    # The push with the refusal: its counts in words when narrow, in columns when wide.
    good = _run_of(pushed.shop_id)
    words = f"{good.considered} considered: {good.created} created, 1 refused"
    narrow = _cli(hub, "channel", "pushes", "acme", "shop", columns=60).stdout
    assert _shown_whole(narrow, words) and "…" not in narrow, narrow
    wide = _cli(hub, "channel", "pushes", "acme", "shop", columns=250).stdout
    assert re.search(rf"│ succeeded │ cli │ +{good.considered} │ +{good.created} │", wide), wide

    nothing = _cli(hub, "channel", "problems", "acme", "bad", columns=None)
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.strip() == "acme/bad: the store has refused no product"


def _when(value: str) -> datetime:
    at = datetime.fromisoformat(value)
    assert at.utcoffset() is not None, value
    return at


def test_json_for_scripts(pushed: Pushed) -> None:
    hub = pushed.hub

    def parsed(*args: str) -> Any:
        result = _cli(hub, "channel", *args, "--json", columns=40)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # nothing else on stdout

    refused = _refused(pushed.refused_key)
    (problem,) = parsed("problems", "acme", "shop")
    assert problem["error"] == refused.error  # whole, however long
    assert (problem["source"], problem["key"]) == ("erp", pushed.refused_key)
    assert problem["code"] == pushed.refused_key.split(":", 1)[1]
    assert problem["in_store"] is False
    assert _when(problem["refused_at"]) == refused.refused_at
    assert parsed("problems", "acme", "bad") == []

    bad = _run_of(pushed.bad_id)
    (failed,) = parsed("pushes", "acme", "bad")
    assert (failed["id"], failed["status"], failed["error"]) == (bad.id, "failed", bad.error)
    assert failed["requested_by"] == "cli"
    assert _when(failed["started_at"]) == bad.created_at
    assert _when(failed["finished_at"]) == bad.finished_at
    good = _run_of(pushed.shop_id)
    (done,) = parsed("pushes", "acme", "shop")
    assert (done["status"], done["error"]) == ("succeeded", None)
    for name in pushes.COUNTS:
        assert done[name] == getattr(good, name) and isinstance(done[name], int), name
    assert done["refused"] == 1


@pytest.mark.parametrize("width", [60, 250])
def test_the_demo_prints_the_stores_words_and_a_push_error_whole(
    pushed: Pushed, width: int
) -> None:
    """The demo's push (a real one, failing) and its refusals, at a console this wide."""
    console = Console(width=width, record=True, color_system=None)
    stage = Stage(console, pushed.client_id, pushed.hub.var_dir, 12, "1")
    run = demo_push(stage, pushed.bad_id, "a push with a wrong token")
    assert run.status == "failed" and run.error and "access_token" in run.error
    found = refusals(stage, pushed.shop_id, pushed.refused_key)  # as a table
    assert [p["key"] for p in found] == [pushed.refused_key]
    refusals(stage, pushed.shop_id)  # as a line per reason
    out = console.export_text()
    assert _shown_whole(out, run.error), out
    assert _shown_whole(out, REFUSAL), out
    assert "…" not in out, out
    assert re.search(r"^  1 products not in the store \(e\.g\. erp:\S+\): ", out, re.M), out
    in_column = _in_column(out, "the store's words", "PRICE_TOO_HIGH")
    assert in_column == (width == 250), out
    assert (f"product {pushed.refused_key} the store's words: " in out) == (not in_column)
