"""Source secrets encrypted at rest.

Secrets (ERP passwords, API keys, URLs holding passwords) are stored as one
Fernet token per source. The key comes from ``S2S_SECRET_KEY``; with none set
(the embedded default) a random key is created once in ``var/secret.key``
with owner-only permissions. ``S2S_OLD_SECRET_KEYS`` lists keys that may
still decrypt, so that a key can be rotated without losing data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hub.settings import Settings, get_settings


class SecretsError(Exception):
    """The stored secrets cannot be read with the configured keys."""


def _fernet_key(material: str) -> bytes:
    # Any passphrase becomes a valid 32-byte Fernet key; operators need not
    # know Fernet's key format.
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest())


def _primary_material(settings: Settings) -> str:
    if settings.secret_key:
        return settings.secret_key
    path = settings.var_dir / "secret.key"
    if not path.exists():
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _cipher(settings: Settings | None = None) -> MultiFernet:
    settings = settings or get_settings()
    keys = [_primary_material(settings), *settings.old_secret_keys]
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def encrypt(values: dict[str, Any], settings: Settings | None = None) -> str:
    return _cipher(settings).encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt(token: str | None, settings: Settings | None = None) -> dict[str, Any]:
    if not token:
        return {}
    try:
        values: dict[str, Any] = json.loads(_cipher(settings).decrypt(token.encode()))
        return values
    except InvalidToken as exc:
        raise SecretsError(
            "a source's secrets cannot be decrypted: S2S_SECRET_KEY is not the key they "
            "were stored with (list the old key in S2S_OLD_SECRET_KEYS to rotate)"
        ) from exc


def rotate(token: str | None, settings: Settings | None = None) -> str | None:
    """Re-encrypt under the primary key (old keys still decrypt)."""
    if not token:
        return token
    return _cipher(settings).rotate(token.encode()).decode()


def rotate_many(
    tokens: dict[str, str | None], settings: Settings | None = None
) -> dict[str, str | None]:
    """Re-encrypt every token under the primary key, or raise naming the first unreadable.

    All or nothing: the caller writes the result only when every token could
    be read, so a rotation with a missing old key changes nothing. Keys of
    ``tokens`` are labels for the error ("source acme/erp"), never secrets.
    """
    cipher = _cipher(settings)
    out: dict[str, str | None] = {}
    for label, token in tokens.items():
        if not token:
            out[label] = token
            continue
        try:
            out[label] = cipher.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretsError(
                f"the secrets of {label} cannot be decrypted with S2S_SECRET_KEY or any key in "
                "S2S_OLD_SECRET_KEYS: list the key they were stored with in S2S_OLD_SECRET_KEYS; "
                "nothing was changed"
            ) from None
    return out


def derived_key(purpose: str, settings: Settings | None = None) -> bytes:
    """A key for one purpose (signing the console's cookies, ...) derived from
    the hub's primary secret key, so that no second secret has to be kept and
    a signature made for one purpose is worth nothing for another."""
    material = _primary_material(settings or get_settings()).encode()
    return hmac.new(material, f"s2s:{purpose}".encode(), hashlib.sha256).digest()
