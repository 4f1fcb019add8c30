"""`s2s keys rotate`: secrets re-encrypted under a new key, all or nothing.

An operator rotates by setting the new S2S_SECRET_KEY with the old one in
S2S_OLD_SECRET_KEYS, running the command, then dropping the old key. What a
user checks: the sources still work with the new key alone, the old key alone
no longer opens anything, the secrets never appear in the output or in the
database file, and a rotation missing a key changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from emulators import sql_erp
from tests.conftest import PG_USER, ROOT, Hub, assert_one_line_error

PASSWORD = "rot-Pw-5521-never-shown"
WEBHOOK_SECRET = "rot-shpss-8812-never-shown"
pytestmark = pytest.mark.services

OLD, NEW, STRANGER = "old-key-aaaa", "new-key-bbbb", "stranger-key-cccc"


def _with_keys(hub: Hub, key: str, old: str = "") -> None:
    hub.env["S2S_SECRET_KEY"] = key
    hub.env["S2S_OLD_SECRET_KEYS"] = old


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    for secret in (PASSWORD, WEBHOOK_SECRET):
        assert secret not in result.stdout + result.stderr
    return result.stdout


def test_rotate_then_drop_the_old_key(embedded_hub: Hub, postgres_db: Any) -> None:
    hub = embedded_hub
    # The URL is a secret setting: it holds the ERP's password, as in production
    # (the test server trusts local logins, so any password connects).
    erp = postgres_db("s2s_erp")
    sql_erp.seed(erp, products=20, customers=2, seed=1)
    url = erp.replace(f"{PG_USER}@", f"{PG_USER}:{PASSWORD}@")
    assert PASSWORD in url
    _with_keys(hub, OLD)
    _ok(hub.run_cli("client", "add", "acme"))
    _ok(hub.run_cli("source", "add", "acme", "erp", "--kind", "sql", "--set", f"url={url}"))
    channel = subprocess.run(
        [*_cli(hub), "client", "channel", "acme", "shopify", "--secret", "-"],
        input=WEBHOOK_SECRET,
        env=hub.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _ok(channel)
    assert "ok:" in _ok(hub.run_cli("check", "acme", "erp"))

    # Step 1: the new key with the old one still listed: everything works, then rotate.
    _with_keys(hub, NEW, OLD)
    assert "ok:" in _ok(hub.run_cli("check", "acme", "erp"))
    rotated = _ok(hub.run_cli("keys", "rotate"))
    assert "re-encrypted 2 stored secret sets" in rotated, rotated

    # Step 2: the old key dropped: the sources still open with the new key alone.
    _with_keys(hub, NEW)
    assert "ok:" in _ok(hub.run_cli("check", "acme", "erp"))
    assert '"url": "(set)"' in _ok(hub.run_cli("source", "show", "acme", "erp"))

    # The old key alone opens nothing any more: the secrets really were re-encrypted.
    _with_keys(hub, OLD)
    refused = hub.run_cli("source", "show", "acme", "erp")
    assert_one_line_error(refused, r"cannot be decrypted.*S2S_OLD_SECRET_KEYS")
    assert PASSWORD not in refused.stderr

    database = (hub.var_dir / "hub.sqlite").read_bytes()
    assert PASSWORD.encode() not in database and WEBHOOK_SECRET.encode() not in database


def test_a_rotation_missing_the_old_key_changes_nothing(embedded_hub: Hub) -> None:
    hub = embedded_hub
    _with_keys(hub, OLD)
    _ok(hub.run_cli("client", "add", "acme"))
    _ok(
        hub.run_cli(
            "source", "add", "acme", "erp", "--kind", "sql", "--set", f"url=sqlite:///{PASSWORD}"
        )
    )
    before = (hub.var_dir / "hub.sqlite").read_bytes()
    _with_keys(hub, STRANGER)  # the operator forgot S2S_OLD_SECRET_KEYS
    failed = hub.run_cli("keys", "rotate")
    assert_one_line_error(failed, r"source acme/erp.*S2S_OLD_SECRET_KEYS.*nothing was changed")
    assert PASSWORD not in failed.stderr + failed.stdout
    # The secrets are still the old key's: it still opens them.
    _with_keys(hub, OLD)
    assert '"url": "(set)"' in _ok(hub.run_cli("source", "show", "acme", "erp"))
    assert len(before) > 0


def _cli(hub: Hub) -> list[str]:
    return [sys.executable, "-m", "s2s.cli"]
