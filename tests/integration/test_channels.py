"""Channels as records: declared by `s2s channel add` and `hub.yaml`, shown
with secrets masked, and moved over from the client columns by migration 0009.

What a user checks: a hub upgraded with channels declared the old way still
verifies its webhooks; a channel's settings are validated with errors that
name the client, channel and setting and never a secret; secrets never show.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from connectors.shopify.intake import sign as sign_shopify
from hub import crypto
from hub.db import dispose_all, get_engine, session_scope
from hub.migrate import upgrade
from hub.models import Channel
from s2s.api import create_app
from tests.conftest import Hub, _configure, assert_one_line_error
from workers.sources import channel_secret, channel_settings, get_client

pytestmark = pytest.mark.services

SHOP_SECRET = "shpss-chan-7731-never-shown"
TOKEN = "shpat-chan-9921-never-shown"
WOO_SECRET = "woo-chan-4410-never-shown"


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    for secret in (SHOP_SECRET, TOKEN, WOO_SECRET):
        assert secret not in result.stdout + result.stderr
    return str(result.stdout)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_moves_old_channels_and_webhooks_still_verify(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_db: Any
) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = {"S2S_VAR_DIR": str(var_dir), "S2S_SECRET_KEY": "k-" + uuid.uuid4().hex}
    if backend == "postgresql":
        env["S2S_DATABASE_URL"] = postgres_db()
    _configure(env, monkeypatch)
    try:
        upgrade(revision="0008")
        token = crypto.encrypt({"shopify": SHOP_SECRET, "woocommerce": WOO_SECRET})
        settings = json.dumps({"shopify": {"add_order_status": "paid"}, "woocommerce": {}})
        with get_engine().begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO clients (code, name, channel_settings, channel_secrets,"
                    " created_at) VALUES ('acme', 'Acme', :s, :t, CURRENT_TIMESTAMP)"
                ),
                {"s": settings, "t": token},
            )
        upgrade()
        with session_scope() as s:
            client = get_client(s, "acme")
            rows = s.query(Channel).order_by(Channel.code).all()
            assert [(r.code, r.kind) for r in rows] == [
                ("shopify", "shopify"),
                ("woocommerce", "woocommerce"),
            ]
            assert all(SHOP_SECRET not in (r.secrets or "") for r in rows)
            assert channel_secret(client, "shopify") == SHOP_SECRET
            assert channel_secret(client, "woocommerce") == WOO_SECRET
            assert channel_settings(client, "shopify") == {"add_order_status": "paid"}
            # The client columns are left in place (dropped by a later migration).
            assert s.execute(text("SELECT channel_secrets FROM clients")).scalar() == token

        api = TestClient(create_app())
        body = b"{}"
        for secret, refused in ((SHOP_SECRET, False), ("another-secret", True)):
            answer = api.post(
                "/webhooks/shopify/acme",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Shopify-Hmac-Sha256": sign_shopify(body, secret),
                    "X-Shopify-Webhook-Id": "d-1",
                },
            )
            assert (answer.status_code == 401) is refused, answer.text
            assert ("signature does not match" in answer.text) is refused, answer.text
    finally:
        dispose_all()


def test_channel_add_list_show(embedded_hub: Hub) -> None:
    hub = embedded_hub
    _ok(hub.run_cli("client", "add", "acme"))
    hub.env["SHOP_SECRET"] = SHOP_SECRET
    hub.env["SHOP_TOKEN"] = TOKEN
    added = _ok(
        hub.run_cli(
            "channel", "add", "acme", "shopify",
            "--set", "secret=${SHOP_SECRET}",
            "--secret-from-env", "access_token=SHOP_TOKEN",
            "--set", "store_url=https://acme-shop.myshopify.com",
            "--set", "add_order_status=paid",
            "--set", "warehouses=main,north",
            "--set", "carries=brand=Acme",
        )
    )  # fmt: skip
    assert "channel acme/shopify saved: secret set, add_order_status paid" in added
    shown = json.loads(_ok(hub.run_cli("channel", "show", "acme", "shopify")))
    assert shown["kind"] == "shopify"
    assert shown["settings"]["secret"] == "***"
    assert shown["settings"]["access_token"] == "***"
    assert shown["settings"]["store_url"] == "https://acme-shop.myshopify.com"
    assert shown["settings"]["api_version"] == "2025-10"
    assert shown["settings"]["price_tier"] == "retail"
    assert shown["settings"]["warehouses"] == ["main", "north"]
    assert shown["settings"]["carries"] == {"brand": "Acme"}

    # A second channel of another kind under its own code; the list shows both.
    hub.env["WOO_SECRET"] = WOO_SECRET
    _ok(
        hub.run_cli(
            "channel", "add", "acme", "woocommerce", "--code", "woo-eu",
            "--secret-from-env", "secret=WOO_SECRET",
            "--secret-from-env", "consumer_key=WOO_SECRET",
            "--set", "store_url=https://shop.example.eu",
        )
    )  # fmt: skip
    woo = json.loads(_ok(hub.run_cli("channel", "show", "acme", "woo-eu")))
    assert woo["settings"]["consumer_key"] == "***"
    assert woo["settings"]["consumer_secret"] == "(not set)"
    listed = _ok(hub.run_cli("channel", "list", "--client", "acme"))
    assert "shopify" in listed and "woo-eu" in listed and "woocommerce" in listed
    database = (hub.var_dir / "hub.sqlite").read_bytes()
    for secret in (SHOP_SECRET, TOKEN, WOO_SECRET):
        assert secret.encode() not in database

    # Settings are replaced but the stored secrets stay when not given again.
    _ok(hub.run_cli("channel", "add", "acme", "shopify", "--set", "price_tier=wholesale"))
    again = json.loads(_ok(hub.run_cli("channel", "show", "acme", "shopify")))
    assert again["settings"]["access_token"] == "***"
    assert again["settings"]["price_tier"] == "wholesale"
    assert "store_url" not in again["settings"]


def test_channel_errors_name_the_setting_never_the_secret(embedded_hub: Hub) -> None:
    hub = embedded_hub
    _ok(hub.run_cli("client", "add", "acme"))
    bad_url = hub.run_cli(
        "channel", "add", "acme", "shopify",
        "--set", f"secret={SHOP_SECRET}", "--set", "store_url=https://acme.example.com",
    )  # fmt: skip
    assert_one_line_error(
        bad_url, r"client 'acme' channel 'shopify': store_url: must be https://<shop>\.myshopify"
    )
    assert SHOP_SECRET not in bad_url.stderr
    no_secret = hub.run_cli("channel", "add", "acme", "shopify")
    assert_one_line_error(no_secret, r"channel 'shopify': needs 'secret'")
    unknown = hub.run_cli("channel", "add", "acme", "shopify", "--set", f"secrt={SHOP_SECRET}")
    assert_one_line_error(unknown, r"unknown setting secrt")
    assert SHOP_SECRET not in unknown.stderr
    carries = hub.run_cli(
        "channel", "add", "acme", "shopify", "--set", "secret=x", "--set", "carries=some"
    )
    assert_one_line_error(carries, r"carries: must be 'all_active' or one product field")
    missing = hub.run_cli("channel", "show", "acme", "nope")
    assert_one_line_error(missing, r"client 'acme' has no channel 'nope'")
    _ok(hub.run_cli("channel", "list"))


def test_hub_yaml_accepts_the_new_keys(embedded_hub: Hub, tmp_path: Path) -> None:
    hub = embedded_hub
    path = tmp_path / "hub.yaml"
    path.write_text(
        "clients:\n"
        "  - code: acme\n"
        "    name: Acme\n"
        "    channels:\n"
        "      shopify:\n"
        "        secret: ${SHOP_SECRET}\n"
        "        add_order_status: paid\n"
        "        store_url: https://acme.myshopify.com\n"
        "        access_token: ${SHOP_TOKEN}\n"
        "        price_tier: retail\n"
        "        compare_at_tier: rrp\n"
        "        warehouses: [main]\n"
        "        carries: {web: true}\n"
    )
    hub.env["SHOP_SECRET"] = SHOP_SECRET
    hub.env["SHOP_TOKEN"] = TOKEN
    applied = _ok(hub.run_cli("apply", str(path)))
    assert "channel acme/shopify saved: secret set, add_order_status paid" in applied
    shown = json.loads(_ok(hub.run_cli("channel", "show", "acme", "shopify")))
    assert shown["settings"]["compare_at_tier"] == "rrp"
    assert shown["settings"]["carries"] == {"web": True}
    assert shown["settings"]["access_token"] == "***"


def test_key_rotation_re_encrypts_channel_records(embedded_hub: Hub) -> None:
    """A channel's secrets follow a key rotation: after it, the new key alone
    opens them and the old key alone opens nothing."""
    hub = embedded_hub
    secret, token = "rot-chan-Secret-7731", "shpat-rot-Token-4410"
    hub.env["S2S_SECRET_KEY"], hub.env["S2S_OLD_SECRET_KEYS"] = "old-key-chan", ""
    _ok(hub.run_cli("client", "add", "acme"))
    hub.env["ROT_SECRET"], hub.env["ROT_TOKEN"] = secret, token
    _ok(
        hub.run_cli(
            "channel", "add", "acme", "shopify",
            "--secret-from-env", "secret=ROT_SECRET",
            "--secret-from-env", "access_token=ROT_TOKEN",
        )
    )  # fmt: skip
    hub.env["S2S_SECRET_KEY"], hub.env["S2S_OLD_SECRET_KEYS"] = "new-key-chan", "old-key-chan"
    rotated = _ok(hub.run_cli("keys", "rotate"))
    assert "re-encrypted 1 stored secret sets (0 sources, 1 channels)" in rotated, rotated
    hub.env["S2S_OLD_SECRET_KEYS"] = ""
    shown = json.loads(_ok(hub.run_cli("channel", "show", "acme", "shopify")))
    assert shown["settings"]["secret"] == "***" and shown["settings"]["access_token"] == "***"
    hub.env["S2S_SECRET_KEY"] = "old-key-chan"
    refused = hub.run_cli("channel", "show", "acme", "shopify")
    assert_one_line_error(refused, r"cannot be decrypted")
    assert secret not in refused.stdout + refused.stderr and token not in refused.stderr
