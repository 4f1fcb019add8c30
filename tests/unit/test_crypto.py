"""Source secrets are encrypted at rest and survive key rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import crypto
from hub.settings import load_settings


def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str | None, old: str = ""):
    monkeypatch.setenv("S2S_VAR_DIR", str(tmp_path))
    if key is None:
        monkeypatch.delenv("S2S_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("S2S_SECRET_KEY", key)
    monkeypatch.setenv("S2S_OLD_SECRET_KEYS", old)
    return load_settings()


def test_round_trip_and_ciphertext_hides_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = settings(monkeypatch, tmp_path, "k1")
    token = crypto.encrypt({"password": "hunter2-secret"}, s)
    assert "hunter2" not in token
    assert crypto.decrypt(token, s) == {"password": "hunter2-secret"}


def test_wrong_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = crypto.encrypt({"password": "x"}, settings(monkeypatch, tmp_path, "k1"))
    with pytest.raises(crypto.SecretsError, match="S2S_OLD_SECRET_KEYS"):
        crypto.decrypt(token, settings(monkeypatch, tmp_path, "k2"))


def test_rotation_keeps_old_tokens_readable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = crypto.encrypt({"password": "x"}, settings(monkeypatch, tmp_path, "k1"))
    rotated_settings = settings(monkeypatch, tmp_path, "k2", old="k1")
    assert crypto.decrypt(token, rotated_settings) == {"password": "x"}
    new_token = crypto.rotate(token, rotated_settings)
    assert crypto.decrypt(new_token, settings(monkeypatch, tmp_path, "k2")) == {"password": "x"}


def test_embedded_default_creates_a_private_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = settings(monkeypatch, tmp_path, None)
    token = crypto.encrypt({"a": 1}, s)
    key_file = tmp_path / "secret.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    assert crypto.decrypt(token, s) == {"a": 1}
