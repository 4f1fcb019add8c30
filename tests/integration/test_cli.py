"""The s2s command as an operator uses it, on the embedded default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emulators import sql_erp
from tests.conftest import Hub, assert_one_line_error

SECRET = "pw-Zq81-never-shown"


def _erp(hub: Hub, products: int = 300) -> str:
    url = f"sqlite:///{hub.var_dir / 'erp.sqlite'}"
    sql_erp.create_schema(url)
    sql_erp.seed(url, products=products, customers=20, seed=5)
    return url


def _apply(hub: Hub, erp_url: str) -> Path:
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
        "          page_size: 100\n"
        "        schedule: {products: 3600}\n"
    )
    hub.env["ERP_URL"] = erp_url
    result = hub.run_cli("apply", str(path))
    assert result.returncode == 0, result.stderr
    assert "source acme/erp (sql) saved" in result.stdout
    return path


def test_apply_check_preview_and_masked_secrets(embedded_hub: Hub) -> None:
    hub = embedded_hub
    erp = _erp(hub)
    _apply(hub, erp)

    # The URL is a secret setting (it may hold a password): never printed.
    shown = hub.run_cli("source", "show", "acme", "erp")
    assert shown.returncode == 0 and '"url": "(set)"' in shown.stdout
    assert "erp.sqlite" not in shown.stdout

    check = hub.run_cli("check", "acme", "erp")
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("ok:") and "352 product rows" in check.stdout

    preview = hub.run_cli("preview", "acme", "erp", "--limit", "3")
    assert preview.returncode == 0, preview.stderr
    assert '"source_product_code": "P000001"' in preview.stdout
    assert re.search(r"\d+ raw records → \d+ products", preview.stdout)
    # Preview writes nothing.
    runs = hub.run_cli("runs", "acme", "erp")
    assert runs.returncode == 0 and "succeeded" not in runs.stdout


def test_resync_wait_runs_and_status(embedded_hub: Hub) -> None:
    hub = embedded_hub
    _apply(hub, _erp(hub))
    hub.start_worker()
    result = hub.run_cli("resync", "acme", "erp", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run 1 started" in result.stdout and "succeeded" in result.stdout
    runs = hub.run_cli("runs", "acme", "erp", "--quarantine")
    assert runs.returncode == 0 and "succeeded" in runs.stdout
    status = hub.run_cli("status")
    assert status.returncode == 0, status.stderr
    assert "acme" in status.stdout and "every 1h" in status.stdout
    assert "queues: maintenance=" in status.stdout


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("check", "nobody", "erp"), r"no client 'nobody'"),
        (("resync", "acme", "nosuch"), r"client 'acme' has no source 'nosuch'"),
        (("resync", "acme", "erp", "--stream", "orders"), r"does not support syncing orders"),
        (("mappings", "show", "sql", "invoices"), r"sql"),
        (
            (
                "source",
                "add",
                "acme",
                "bad",
                "--kind",
                "sql",
                "--set",
                "url=sqlite://",
                "--set",
                "page_size=lots",
            ),
            r"page_size",
        ),
        (("source", "add", "acme", "bad", "--kind", "nosuch"), r"unknown source kind 'nosuch'"),
    ],
)
def test_operator_mistakes_get_one_clear_line(
    embedded_hub: Hub, args: tuple[str, ...], pattern: str
) -> None:
    _apply(embedded_hub, _erp(embedded_hub, products=10))
    assert_one_line_error(embedded_hub.run_cli(*args), pattern)


def test_unreachable_erp_is_one_line_without_the_password(embedded_hub: Hub) -> None:
    hub = embedded_hub
    hub.run_cli("client", "add", "acme")
    added = hub.run_cli(
        "source",
        "add",
        "acme",
        "pg",
        "--kind",
        "sql",
        "--set",
        f"url=postgresql+psycopg://reader:{SECRET}@127.0.0.1:1/erp",
    )
    assert added.returncode == 0, added.stderr
    result = hub.run_cli("check", "acme", "pg")
    assert_one_line_error(result, r"(?i)reach|connect|refused")
    assert SECRET not in result.stderr + result.stdout


def test_database_not_upgraded_says_what_to_run(embedded_hub: Hub, tmp_path: Path) -> None:
    env = dict(embedded_hub.env)
    env["S2S_DATABASE_URL"] = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    embedded_hub.env = env
    assert_one_line_error(embedded_hub.run_cli("client", "add", "acme"), r"s2s db upgrade")


def test_mappings_show_prints_the_seed_layout(embedded_hub: Hub) -> None:
    result = embedded_hub.run_cli("mappings", "show", "sql", "products")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].replace(" ", "").startswith("|{{connector_name}}|Stock2Shop|Description|")
    assert any(re.match(r"\|\s*qty\s*\|\s*variants\.qty\s*\|", ln) for ln in lines)
    assert any(re.match(r"\|\s*price\s*\|\s*variants\.retail_price\s*\|", ln) for ln in lines)


def test_demo_exits_zero_with_no_settings(tmp_path: Path, embedded_hub: Hub) -> None:
    env = {k: v for k, v in embedded_hub.env.items() if not k.startswith("S2S_")}
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "s2s.cli", "demo", "--products", "600"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo finished" in result.stdout
    var = tmp_path / "var"
    assert (var / "hub.sqlite").exists()
    # The demo's ERP passwords never reach the screen, a log, the hub's
    # database (encrypted at rest) or the broker (task arguments).
    from s2s.demo import DEMO_SECRETS

    hub_files = [var / "hub.sqlite", var / "broker.sqlite", *var.glob("*.log")]
    assert len(hub_files) >= 3 and all(p.exists() for p in hub_files[:2])
    for secret in DEMO_SECRETS:
        assert secret not in result.stdout and secret not in result.stderr
        for path in hub_files:
            assert secret.encode() not in path.read_bytes(), f"{secret!r} found in {path.name}"


def test_customers_resync_on_iq_retail_is_a_plain_no(embedded_hub: Hub) -> None:
    hub = embedded_hub
    hub.run_cli("client", "add", "acme")
    added = hub.run_cli(
        "source",
        "add",
        "acme",
        "iq",
        "--kind",
        "iq_retail",
        "--set",
        "request_url=http://127.0.0.1:9",
        "--set",
        "company_number=002",
        "--set",
        "user_number=99",
        "--set",
        "user_password=pw-never-shown",
    )
    assert added.returncode == 0, added.stderr
    result = hub.run_cli("resync", "acme", "iq", "--stream", "customers")
    assert_one_line_error(
        result, r"IQ Retail does not support syncing customers.*imported manually"
    )
    runs = hub.run_cli("runs", "acme", "iq")
    assert runs.returncode == 0 and "customers" not in runs.stdout  # nothing was started
