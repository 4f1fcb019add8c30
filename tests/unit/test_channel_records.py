"""Channel records: the push settings a channel is declared with, checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet

from hub.db import session_scope
from hub.models import Client
from hub.settings import get_settings
from workers import channels as records


@pytest.fixture
def client_db(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("S2S_SECRET_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _declare(url: str, **spec: Any) -> Any:
    with session_scope(url) as s:
        client = s.get(Client, 1)
        assert client is not None
        row = records.declare(s, client, "shop", "shopify", {"secret": "whsec_x", **spec})
        s.expunge(row)
        return row


def test_a_local_http_store_needs_allow_http_and_says_so(client_db: str) -> None:
    with pytest.raises(
        records.ChannelError, match=r"store_url: must be https://<shop>.*allow_http"
    ):
        _declare(client_db, store_url="http://127.0.0.1:8080")
    row = _declare(client_db, store_url="http://127.0.0.1:8080", allow_http=True)
    assert row.settings["store_url"] == "http://127.0.0.1:8080"
    assert _declare(client_db, store_url="https://acme.myshopify.com").settings["store_url"]


def test_a_bad_schedule_or_concurrency_names_the_setting(client_db: str) -> None:
    url = "https://acme.myshopify.com"
    with pytest.raises(records.ChannelError, match=r"channel 'shop': schedule: .*not a schedule"):
        _declare(client_db, store_url=url, schedule="often")
    with pytest.raises(records.ChannelError, match=r"concurrency"):
        _declare(client_db, store_url=url, concurrency=0)


def test_a_pushing_channel_is_scheduled_and_an_intake_only_one_is_not(client_db: str) -> None:
    before = datetime.now(UTC)
    pushing = _declare(client_db, store_url="https://acme.myshopify.com", schedule="1h")
    assert records.pushes(pushing)
    assert pushing.next_push_at is not None
    assert before + timedelta(minutes=59) < pushing.next_push_at < before + timedelta(minutes=61)
    off = _declare(client_db, store_url="https://acme.myshopify.com", schedule="off")
    assert off.next_push_at is None
    intake = _declare(client_db, store_url=None)
    assert not records.pushes(intake) and intake.next_push_at is None


def test_the_push_defaults_are_filled_in_and_secrets_stay_masked(client_db: str) -> None:
    row = _declare(
        client_db, store_url="https://acme.myshopify.com", access_token="shpat_secret_123"
    )
    settings = records.resolved_settings(row)
    assert settings["schedule"] == records.DEFAULT_PUSH_SCHEDULE
    assert settings["bulk_threshold"] == records.DEFAULT_BULK_THRESHOLD
    assert (settings["concurrency"], settings["allow_http"]) == (1, False)
    view = records.public_view(row)
    assert view["settings"]["access_token"] == records.MASK
    assert "shpat_secret_123" not in str(view)
