"""The limits that let another worker carry on when one is cut off by the
network mid-transaction: the server itself ends a session of ours left idle
in a transaction, so the rows it locked are free again (the partition test
shows why; this shows the sessions really carry the limits)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from connectors.engines import build_engine
from hub.db import make_engine
from hub.settings import get_settings

pytestmark = [pytest.mark.services]


def test_hub_sessions_carry_the_idle_transaction_limit(
    postgres_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S2S_DB_IDLE_TRANSACTION_TIMEOUT", "1")
    get_settings.cache_clear()
    try:
        engine = make_engine(postgres_db())
        with engine.connect() as conn:
            assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "1s"
            assert conn.execute(text("SHOW tcp_user_timeout")).scalar() == "25000"
        # A transaction left idle longer than that is ended by the server.
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            time.sleep(1.5)
            with pytest.raises(DBAPIError, match="idle-in-transaction"):
                conn.execute(text("SELECT 1"))
        engine.dispose()
    finally:
        get_settings.cache_clear()


def test_erp_sessions_carry_the_limits_unless_the_url_sets_its_own(postgres_db: Any) -> None:
    url = make_url(postgres_db())
    engine = build_engine(url, 5)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "30s"
        assert conn.execute(text("SHOW tcp_user_timeout")).scalar() == "25000"
    engine.dispose()
    own = url.update_query_dict({"options": "-c idle_in_transaction_session_timeout=5000"})
    engine = build_engine(own, 5)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "5s"
    engine.dispose()
