"""Operator commands for orders, dead letters and channels, on the embedded default.

The order path runs for real: the CLI submits through the same intake as the
API, a worker process routes and raises into the SQL ERP emulator, and the
staging tables are counted to prove each order landed exactly once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from emulators import sql_erp
from hub.db import session_scope
from hub.models import DeadLetter, Order, Product, Source, SyncRun, Variant
from tests.conftest import ROOT, Hub, assert_one_line_error, wait_for
from workers.sources import channel_secret, channel_settings, get_client, upsert_source
from workers.tasks import start_sync

CUSTOMER = "C00001"


def _erp(hub: Hub, products: int = 40) -> str:
    url = f"sqlite:///{hub.var_dir / 'erp.sqlite'}"
    sql_erp.create_schema(url)
    sql_erp.seed(url, products=products, customers=5, seed=7)
    return url


def _apply(hub: Hub, erp_url: str) -> None:
    path = hub.var_dir / "hub.yaml"
    path.write_text(
        "clients:\n"
        "  - code: acme\n"
        "    name: Acme Trading\n"
        "    sources:\n"
        "      - code: erp\n"
        "        kind: sql\n"
        "        settings:\n"
        "          url: ${ERP_URL}\n"
        "          default_customer_code: CASH\n"
    )
    hub.env["ERP_URL"] = erp_url
    result = hub.run_cli("apply", str(path))
    assert result.returncode == 0, result.stderr


def _sync_products(source_id: int) -> None:
    run_id = start_sync(source_id, "products", requested_by="test").run.id

    def finished() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run is not None and run.status != "running" else None

    run = wait_for(finished, timeout=180, what=f"run {run_id} to finish")
    assert run.status == "succeeded", run.error


def _skus(count: int) -> list[str]:
    """SKUs of simple products the hub holds, so routing can find their source."""
    with session_scope() as s:
        skus = s.scalars(
            select(Variant.sku)
            .join(Product, Product.id == Variant.product_id)
            .where(Product.deleted_at.is_(None), Variant.sku == Product.source_product_code)
            .order_by(Variant.sku)
        ).all()
    assert len(skus) >= count
    return list(skus[:count])


def _order(code: str, sku: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel_order_code": code,
        "channel": "shopify",
        "customer": {"source_customer_code": CUSTOMER, "email": "t@example.com"},
        "line_items": [{"sku": sku, "title": "Thing", "qty": 2, "price": 10.5}],
        **extra,
    }


def _write(hub: Hub, name: str, orders: Any) -> str:
    path = hub.var_dir / name
    path.write_text(json.dumps(orders, indent=2))
    return str(path)


def _order_id(code: str) -> int:
    with session_scope() as s:
        order_id = s.scalars(select(Order.id).where(Order.channel_order_code == code)).first()
    assert order_id is not None, f"order {code} was not stored"
    return order_id


def _wait_status(order_id: int, status: str, timeout: float = 120) -> Order:
    def reached() -> Order | None:
        with session_scope() as s:
            order = s.get(Order, order_id)
            return order if order is not None and order.status == status else None

    try:
        return wait_for(reached, timeout=timeout, what=f"order {order_id} to be {status}")
    except AssertionError:
        with session_scope() as s:
            order = s.get(Order, order_id)
            now = (order.status, order.last_error) if order else None
        raise AssertionError(f"order {order_id} is {now}, not {status}") from None


def _letter_for(order_id: int) -> DeadLetter:
    with session_scope() as s:
        letter = s.scalars(
            select(DeadLetter).where(DeadLetter.order_id == order_id).order_by(DeadLetter.id)
        ).first()
    assert letter is not None
    return letter


def _history(show_output: str) -> list[str]:
    """The status column of `orders show`'s history table, top to bottom."""
    return re.findall(r"^│\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s*│\s*(\w+)\s*│", show_output, re.M)


def _in_order(seq: list[str], wanted: list[str]) -> bool:
    it = iter(seq)
    return all(any(x == w for x in it) for w in wanted)


def test_orders_submit_route_raise_dead_letter_and_replay(embedded_hub: Hub) -> None:
    hub = embedded_hub
    erp = _erp(hub)
    _apply(hub, erp)
    with session_scope() as s:
        client = get_client(s, "acme")
        source_id = upsert_source(
            s, client, "erp", "sql", {"url": erp, "default_customer_code": "CASH"}
        ).id
    hub.start_worker()
    _sync_products(source_id)
    good_sku, other_sku = _skus(2)

    # 1. A good order and an invalid one: exit 1, the invalid one named by
    # order and field, the good one stored and raised.
    bad = _order("1002", good_sku)
    bad["line_items"][0]["qty"] = "two"
    batch = _write(hub, "batch.json", [_order("1001", good_sku), bad])
    first = hub.run_cli("orders", "submit", batch, "--client", "acme")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "Traceback" not in first.stderr
    assert re.search(r"^order \d+ shopify/1001: received$", first.stdout, re.M), first.stdout
    assert re.search(r"^order #1002: line_items\[0\]\.qty: ", first.stderr, re.M), first.stderr
    assert "1 of 2 orders invalid" in first.stderr
    good_id = _order_id("1001")
    raised = _wait_status(good_id, "raised")
    assert raised.document_number
    with session_scope() as s:
        assert s.scalars(select(Order).where(Order.channel_order_code == "1002")).first() is None
    counts = sql_erp.order_counts(erp)
    assert (counts.headers, counts.orders, counts.lines) == (1, 1, 1)
    shown = hub.run_cli("orders", "show", str(good_id))
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"^document number\s+{raised.document_number}$", shown.stdout, re.M)
    assert _history(shown.stdout) == ["received", "queued", "raising", "raised"], shown.stdout

    # 2. The same file again: a duplicate, still raised once.
    again = hub.run_cli("orders", "submit", batch, "--client", "acme")
    assert again.returncode == 1
    assert f"order {good_id} shopify/1001: duplicate of order {good_id}" in again.stdout
    one = _write(hub, "one.json", _order("1001", good_sku))
    single = hub.run_cli("orders", "submit", one, "--client", "acme")
    assert single.returncode == 0, single.stderr
    assert "duplicate of order" in single.stdout
    with session_scope() as s:
        assert s.get(Order, good_id).status == "raised"  # type: ignore[union-attr]
    assert sql_erp.order_counts(erp).headers == 1

    # 3. An unknown SKU is dead-lettered with what to fix.
    unknown = _write(hub, "unknown.json", _order("1003", "NO-SUCH-SKU"))
    assert hub.run_cli("orders", "submit", unknown, "--client", "acme").returncode == 0
    unknown_id = _order_id("1003")
    _wait_status(unknown_id, "dead")
    letter = _letter_for(unknown_id)
    listed = hub.run_cli("dlq", "list", "--client", "acme")
    assert listed.returncode == 0, listed.stderr
    assert "unknown_sku" in listed.stdout and "1003" in listed.stdout
    detail = hub.run_cli("dlq", "show", str(letter.id))
    assert detail.returncode == 0, detail.stderr
    assert re.search(rf"^fix\s+{re.escape(letter.fix)}$", detail.stdout, re.M), detail.stdout
    assert "NO-SUCH-SKU" in detail.stdout  # the canonical payload is shown

    # Discard needs a reason; with one the letter stays as the audit record.
    assert_one_line_error(hub.run_cli("dlq", "discard", str(letter.id)), r"--reason")
    discarded = hub.run_cli("dlq", "discard", str(letter.id), "--reason", "customer cancelled")
    assert discarded.returncode == 0, discarded.stderr
    assert "discarded" in discarded.stdout
    assert "1003" not in hub.run_cli("dlq", "list").stdout
    everything = hub.run_cli("dlq", "list", "--all")
    assert "1003" in everything.stdout and "discarded" in everything.stdout
    with session_scope() as s:
        row = s.get(DeadLetter, letter.id)
        assert row is not None and row.status == "discarded"
        assert row.resolution == "customer cancelled"
        assert s.get(Order, unknown_id).status == "discarded"  # type: ignore[union-attr]
    assert_one_line_error(hub.run_cli("dlq", "replay", str(letter.id)), r"already discarded")

    # 4. Shipping without the source's shipping_code: dead; fix the setting, replay.
    shipped = _order(
        "1004", other_sku, shipping_lines=[{"title": "Courier", "price": 95.0, "tax_lines": []}]
    )
    path = _write(hub, "shipped.json", shipped)
    assert hub.run_cli("orders", "submit", path, "--client", "acme").returncode == 0
    shipped_id = _order_id("1004")
    _wait_status(shipped_id, "dead")
    ship_letter = _letter_for(shipped_id)
    assert ship_letter.error_class == "missing_setting"
    assert "shipping_code" in ship_letter.fix
    hub.env["ERP_URL"] = erp
    fixed = hub.run_cli(
        "source",
        "add",
        "acme",
        "erp",
        "--kind",
        "sql",
        "--set",
        f"url={erp}",
        "--set",
        "default_customer_code=CASH",
        "--set",
        "shipping_code=SHIP",
    )
    assert fixed.returncode == 0, fixed.stderr
    replayed = hub.run_cli("dlq", "replay", str(ship_letter.id))
    assert replayed.returncode == 0, replayed.stderr
    assert f"dead letter {ship_letter.id} replayed" in replayed.stdout
    raised_again = _wait_status(shipped_id, "raised")
    counts = sql_erp.order_counts(erp)
    assert (counts.orders, counts.headers) == (2, 2)
    assert counts.lines == 3  # the shipped order's item and its SHIP service line
    shown = hub.run_cli("orders", "show", str(shipped_id))
    assert shown.returncode == 0, shown.stderr
    history = _history(shown.stdout)
    assert history[0] == "received" and history[-1] == "raised", shown.stdout
    assert _in_order(history, ["received", "dead", "received", "raised"]), history
    assert raised_again.document_number in shown.stdout
    assert "replayed" in shown.stdout  # the dead letters table, with its outcome
    assert_one_line_error(hub.run_cli("dlq", "replay", str(ship_letter.id)), r"already replayed")

    # 5. Listings.
    listing = hub.run_cli("orders", "list", "--client", "acme", "--status", "raised")
    assert listing.returncode == 0, listing.stderr
    assert "1001" in listing.stdout and "1004" in listing.stdout and "1003" not in listing.stdout
    assert "no open dead letters" in hub.run_cli("dlq", "list", "--client", "acme").stdout
    nothing = hub.run_cli("dlq", "replay", "--all-open", "--client", "acme")
    assert nothing.returncode == 0 and "no open dead letters" in nothing.stdout
    assert "Traceback" not in hub.logs()


def test_replay_all_open_for_a_client(embedded_hub: Hub) -> None:
    """Two unknown SKUs dead-lettered; once the products exist, one command replays both."""
    hub = embedded_hub
    erp = _erp(hub, products=30)
    _apply(hub, erp)
    with session_scope() as s:
        source_id = s.scalars(select(Source.id).where(Source.code == "erp")).one()
    hub.start_worker()
    batch = _write(
        hub, "early.json", [_order("2001", "P000003"), _order("2002", "P000004")]
    )  # submitted before the first sync: no SKU is known yet
    assert hub.run_cli("orders", "submit", batch, "--client", "acme").returncode == 0
    ids = [_order_id("2001"), _order_id("2002")]
    for order_id in ids:
        _wait_status(order_id, "dead")
    _sync_products(source_id)
    with session_scope() as s:
        known = set(s.scalars(select(Variant.sku).where(Variant.sku.in_(["P000003", "P000004"]))))
    assert known == {"P000003", "P000004"}
    assert_one_line_error(hub.run_cli("dlq", "replay", "--all-open"), r"--client")
    result = hub.run_cli("dlq", "replay", "--all-open", "--client", "acme")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("replayed") == 2
    for order_id in ids:
        _wait_status(order_id, "raised")
    assert sql_erp.order_counts(erp).orders == 2


SHOP_SECRET = "shpss_Secret-Value-81x"
WOO_SECRET = "woo_Other-Secret-42q"
NEW_SECRET = "rotated-Secret-77z"


def test_apply_channels_keeps_secrets_encrypted_and_unprinted(
    embedded_hub: Hub, tmp_path: Path
) -> None:
    hub = embedded_hub
    outputs: list[str] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = hub.run_cli(*args)
        outputs.append(result.stdout + result.stderr)
        return result

    # Outside var_dir: the file holds one secret literally, and var_dir is
    # scanned below for any secret at rest in plain text.
    path = tmp_path / "hub.yaml"
    path.write_text(
        "clients:\n"
        "  - code: acme\n"
        "    channels:\n"
        "      shopify:\n"
        "        secret: ${SHOP_SECRET}\n"
        "        add_order_status: paid\n"
        "      woocommerce:\n"
        f"        secret: {WOO_SECRET}\n"
    )
    hub.env["SHOP_SECRET"] = SHOP_SECRET
    applied = run("apply", str(path))
    assert applied.returncode == 0, applied.stderr
    assert "channel acme/shopify saved: secret set, add_order_status paid" in applied.stdout
    assert "channel acme/woocommerce saved: secret set" in applied.stdout

    with session_scope() as s:
        client = get_client(s, "acme")
        assert channel_secret(client, "shopify") == SHOP_SECRET
        assert channel_secret(client, "woocommerce") == WOO_SECRET
        assert channel_secret(client, "magento2") is None
        assert channel_settings(client, "shopify") == {"add_order_status": "paid"}
        assert channel_settings(client, "woocommerce") == {}
        plain = s.execute(text("SELECT channel_settings, channel_secrets FROM clients")).one()
    assert SHOP_SECRET not in str(plain[0]) and WOO_SECRET not in str(plain[0])
    assert SHOP_SECRET not in plain[1] and WOO_SECRET not in plain[1]

    # Change the status without handling the secret again: the secret stays.
    status = run("client", "channel", "acme", "shopify", "--add-order-status", "authorized")
    assert status.returncode == 0, status.stderr
    assert "add_order_status authorized" in status.stdout
    # A secret read from standard input stays out of argv and shell history.
    rotated = subprocess.run(
        [
            sys.executable,
            "-m",
            "s2s.cli",
            "client",
            "channel",
            "acme",
            "woocommerce",
            "--secret",
            "-",
        ],
        input=NEW_SECRET + "\n",
        env=hub.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs.append(rotated.stdout + rotated.stderr)
    assert rotated.returncode == 0, rotated.stderr
    with session_scope() as s:
        client = get_client(s, "acme")
        assert channel_secret(client, "shopify") == SHOP_SECRET
        assert channel_settings(client, "shopify") == {"add_order_status": "authorized"}
        assert channel_secret(client, "woocommerce") == NEW_SECRET

    # Mistakes are one line and change nothing.
    assert_one_line_error(
        run("client", "channel", "acme", "magento2", "--secret", "x"), "unknown channel"
    )
    assert_one_line_error(
        run("client", "channel", "acme", "shopify", "--secret", " "), "secret is empty"
    )
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "clients:\n  - code: acme\n    channels:\n      shopify: {secrets: '${SHOP_SECRET}'}\n"
    )
    assert_one_line_error(run("apply", str(typo)), r"unknown setting secrets")
    missing = tmp_path / "missing.yaml"
    missing.write_text(
        "clients:\n  - code: acme\n    channels:\n      shopify: {secret: '${NOT_SET_ANYWHERE}'}\n"
    )
    assert_one_line_error(run("apply", str(missing)), r"NOT_SET_ANYWHERE is not set")
    # A broken file is reported by position, never by quoting a line that may hold a secret.
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        f"clients:\n  - code: acme\n    channels: {{shopify: {{secret: {WOO_SECRET}{{\n"
    )
    assert_one_line_error(run("apply", str(broken)), r"not valid YAML at line \d+, column \d+")
    with session_scope() as s:
        client = get_client(s, "acme")
        assert channel_secret(client, "shopify") == SHOP_SECRET

    listed = run("client", "list")
    assert listed.returncode == 0 and "shopify, woocommerce" in listed.stdout
    for out in outputs:
        for secret in (SHOP_SECRET, WOO_SECRET, NEW_SECRET):
            assert secret not in out
    for file in hub.var_dir.rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            for secret in (SHOP_SECRET, WOO_SECRET, NEW_SECRET):
                assert secret.encode() not in data, f"{secret} in plain text in {file}"


@pytest.mark.parametrize(
    ("setup", "args", "pattern"),
    [
        ('{\n  "channel_order_code": "1",\n  oops }', ("orders", "submit", "{file}"), r"line 3"),
        ("[]", ("orders", "submit", "{file}"), r"no orders"),
        ("{}", ("orders", "submit", "{file}", "--client", "nobody"), r"no client 'nobody'"),
        (None, ("orders", "submit", "/no/such.json"), r"no such file"),
        (None, ("orders", "show", "999"), r"no order 999"),
        (None, ("orders", "list", "--status", "lost"), r"unknown order status 'lost'"),
        (None, ("orders", "list", "--client", "nobody"), r"no client 'nobody'"),
        (None, ("dlq", "show", "999"), r"no dead letter 999"),
        (None, ("dlq", "replay"), r"dead letter ids"),
        (None, ("dlq", "replay", "999"), r"no dead letter 999"),
        (None, ("dlq", "replay", "1", "--all-open", "--client", "acme"), r"not both"),
        (None, ("dlq", "discard", "999"), r"--reason"),
        (None, ("dlq", "discard", "999", "--reason", "gone"), r"no dead letter 999"),
        (None, ("client", "channel", "nobody", "shopify", "--secret", "x"), r"no client"),
        (None, ("client", "channel", "acme", "shopify"), r"needs 'secret'"),
    ],
)
def test_order_command_mistakes_get_one_clear_line(
    embedded_hub: Hub, setup: str | None, args: tuple[str, ...], pattern: str
) -> None:
    hub = embedded_hub
    assert hub.run_cli("client", "add", "acme").returncode == 0
    file = hub.var_dir / "orders.json"
    if setup is not None:
        file.write_text(setup)
    argv = [a.replace("{file}", str(file)) for a in args]
    if argv[:2] == ["orders", "submit"] and "--client" not in argv:
        argv += ["--client", "acme"]
    assert_one_line_error(hub.run_cli(*argv), pattern)
