"""The hub's database and the key that encrypts its secrets: ``s2s db``, ``s2s keys``."""

from __future__ import annotations

import re
from typing import Any

import click

from hub import crypto, queries
from hub.db import session_scope
from hub.migrate import current_revision, upgrade
from hub.settings import get_settings
from s2s.cli.common import console, friendly, say
from workers import channels as channel_records


@click.group()
def db() -> None:
    """The hub's database."""


@db.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Create or migrate the hub's tables."""
    upgrade()
    console.print(
        f"database at revision {current_revision()} ({_safe_url(get_settings().database_url)})"
    )


def _safe_url(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


@click.group()
def keys() -> None:
    """The key that encrypts secrets at rest (S2S_SECRET_KEY)."""


@keys.command("rotate")
@friendly
def keys_rotate() -> None:
    """Re-encrypt every stored secret under the current S2S_SECRET_KEY.

    To rotate: set S2S_SECRET_KEY to the new key and S2S_OLD_SECRET_KEYS to
    the old one (every process reads both, so nothing stops working), run
    this, then remove the old key. All or nothing: when one secret cannot be
    read with the keys given, nothing is changed and the line says which.
    Prints counts only, never a secret.
    """
    with session_scope() as s:
        clients, sources = queries.secret_holders(s)
        codes = {c.id: c.code for c in clients}
        labels: dict[str, Any] = {}
        tokens: dict[str, str | None] = {}
        for src in sources:
            label = f"source {codes.get(src.client_id, src.client_id)}/{src.code}"
            labels[label], tokens[label] = (src, "secrets"), src.secrets
        channels = channel_records.list_channels(s)
        for ch in channels:
            label = f"channel {codes.get(ch.client_id, ch.client_id)}/{ch.code}"
            labels[label], tokens[label] = (ch, "secrets"), ch.secrets
        # The clients' own channel columns still mirror the channels' intake
        # secrets until a later migration drops them: re-encrypted too, but
        # not counted, since the channel rows above are the same secrets.
        mirrors = {f"client {c.code}'s channel secrets (mirror)": c for c in clients}
        for label, c in mirrors.items():
            labels[label], tokens[label] = (c, "channel_secrets"), c.channel_secrets
        rotated = crypto.rotate_many(tokens)
        changed = 0
        for label, token in rotated.items():
            row, attribute = labels[label]
            if token:
                setattr(row, attribute, token)
                changed += label not in mirrors
    say(
        f"re-encrypted {changed} stored secret sets ({len(sources)} sources, "
        f"{len(channels)} channels) under the current S2S_SECRET_KEY; "
        "S2S_OLD_SECRET_KEYS can now be emptied"
    )
