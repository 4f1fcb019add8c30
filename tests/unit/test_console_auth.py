"""The console's door on a SQLite hub: CSRF tokens, signed sessions and
their expiry, the sign-in limit's arithmetic, where sign-in may send a
browser next, the users' passwords, and the console's settings."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from hub import users
from hub.db import dispose_all, session_scope
from hub.models import ConsoleLoginFailure, utcnow
from hub.settings import get_settings
from s2s.api import create_app
from s2s.console import auth
from s2s.console.forms import _safe_next

PASSWORD = "a-long-enough-password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def hub(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The unit hub (SQLite, one client ``c1``) as the process's settings,
    with an operator ``ops`` and a user ``cee`` of c1."""
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    monkeypatch.setenv("S2S_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("S2S_SECRET_KEY", "unit-key-1")
    monkeypatch.delenv("S2S_BROKER_URL", raising=False)
    get_settings.cache_clear()
    dispose_all()
    with session_scope() as s:
        users.add(s, "ops", PASSWORD, None)
        users.add(s, "cee", PASSWORD, 1)
    yield db
    get_settings.cache_clear()


def _client() -> TestClient:
    return TestClient(create_app(), follow_redirects=False)


def _sign_in(client: TestClient, username: str = "ops", password: str = PASSWORD) -> int:
    token = CSRF.search(client.get("/console/login").text)
    assert token
    data = {"username": username, "password": password, "csrf_token": token.group(1)}
    return client.post("/console/login", data=data).status_code


def test_csrf_tokens_are_bound_to_their_nonce_and_the_key(
    hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = auth.csrf_token("nonce-a")
    assert auth.csrf_ok("nonce-a", token)
    assert not auth.csrf_ok("nonce-b", token)
    assert not auth.csrf_ok("nonce-a", None) and not auth.csrf_ok(None, token)
    assert not auth.csrf_ok("nonce-a", token[:-1] + ("0" if token[-1] != "0" else "1"))
    monkeypatch.setenv("S2S_SECRET_KEY", "unit-key-2")
    get_settings.cache_clear()
    assert not auth.csrf_ok("nonce-a", token)


def test_a_session_is_refused_when_tampered_signed_by_another_key_or_expired(
    hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client()
    assert _sign_in(client) == 303
    assert client.get("/console/").status_code == 200
    good = client.cookies["s2s_console"]
    payload, stamp, signature = good.split(".")
    client.cookies.set("s2s_console", f"{payload}x.{stamp}.{signature}")
    assert client.get("/console/").status_code == 303
    client.cookies.set("s2s_console", good)
    assert client.get("/console/").status_code == 200
    monkeypatch.setenv("S2S_SECRET_KEY", "unit-key-2")
    get_settings.cache_clear()
    assert client.get("/console/").status_code == 303  # the key changed: signed out
    monkeypatch.setenv("S2S_SECRET_KEY", "unit-key-1")
    monkeypatch.setenv("S2S_CONSOLE_SESSION_HOURS", "0.0003")  # about a second
    get_settings.cache_clear()
    fresh = _client()
    assert _sign_in(fresh) == 303
    assert fresh.get("/console/").status_code == 200
    time.sleep(2.2)
    assert fresh.get("/console/").status_code == 303


def test_without_a_session_pages_redirect_json_is_401_and_posts_change_nothing(
    hub: str,
) -> None:
    client = _client()
    page = client.get("/console/clients/c1/orders?status=dead")
    assert page.status_code == 303
    assert page.headers["location"] == (
        "/console/login?next=%2Fconsole%2Fclients%2Fc1%2Forders%3Fstatus%3Ddead"
    )
    assert client.get("/console/overview.json").status_code == 401
    assert client.get("/console/clients/c1/sources/erp/runs.json").status_code == 401
    posted = client.post("/console/clients/c1/sources/erp/pause", data={"stream": "products"})
    assert posted.status_code == 303 and posted.headers["location"] == "/console/login"
    # The sign-in form keeps where to go, and goes there.
    form = client.get(page.headers["location"]).text
    assert 'name="next" value="/console/clients/c1/orders?status=dead"' in form
    token = CSRF.search(form)
    assert token
    signed = client.post(
        "/console/login",
        data={
            "username": "ops",
            "password": PASSWORD,
            "csrf_token": token.group(1),
            "next": "/console/clients/c1/orders?status=dead",
        },
    )
    assert signed.headers["location"] == "/console/clients/c1/orders?status=dead"


def _request(root: str = "/console") -> Request:
    return Request({"type": "http", "root_path": root, "path": "/", "headers": []})


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/console/clients/c1/orders", True),
        ("/console/", True),
        ("//evil.example/console/", False),
        ("https://evil.example/console/", False),
        ("/console\\..\\x", False),
        ("/metrics", False),
        ("/console/login", False),
        ("/console/logout", False),
        ("", False),
    ],
)
def test_sign_in_sends_a_browser_only_to_a_console_page(target: str, kept: bool) -> None:
    assert (_safe_next(_request(), target) == target) is kept


def test_the_limit_counts_failures_in_the_last_window_only(hub: str) -> None:
    limit = users.Limit(3)
    keys = ["user:ops", "ip:10.0.0.1"]
    with session_scope() as s:
        # Old failures do not count.
        s.add_all(
            ConsoleLoginFailure(key="user:ops", at=utcnow() - timedelta(minutes=5))
            for _ in range(5)
        )
    with session_scope() as s:
        assert users.login_wait(s, keys, limit) == 0
        for _ in range(2):
            users.note_failure(s, keys, limit)
    with session_scope() as s:
        assert users.login_wait(s, keys, limit) == 0
        users.note_failure(s, ["user:ops"], limit)
    with session_scope() as s:
        wait = users.login_wait(s, keys, limit)
        assert 55 < wait <= 60
        assert users.login_wait(s, ["ip:10.0.0.1"], limit) == 0  # two failures only
        assert users.login_wait(s, ["user:cee"], limit) == 0
        # Writing a failure forgot the ones past the window.
        assert users.failures(s, "user:ops", utcnow() - timedelta(hours=1)) == 3


def test_passwords_are_hashed_verified_and_a_new_one_changes_the_stamp(hub: str) -> None:
    with session_scope() as s:
        user = users.get(s, "ops")
        assert user is not None
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
        before = users.stamp(user)
        assert users.verify(s, "ops", PASSWORD) is not None
        assert users.verify(s, "ops", "not-the-password") is None
        assert users.verify(s, "nobody", PASSWORD) is None
        users.set_password(s, "ops", "another-long-password")
        assert users.stamp(user) != before
        assert users.verify(s, "ops", PASSWORD) is None
    with session_scope() as s, pytest.raises(users.UserError, match="exists already"):
        users.add(s, "ops", PASSWORD, None)
    for name, password, words in (
        ("ok-name", "short", "at least 10"),
        ("bad name", PASSWORD, "must be 1 to 64"),
        ("", PASSWORD, "must be 1 to 64"),
    ):
        with session_scope() as s, pytest.raises(users.UserError, match=words):
            users.add(s, name, password, None)


def test_console_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("S2S_CONSOLE_LOGIN_LIMIT", "0"),
        ("S2S_CONSOLE_LOGIN_LIMIT", "1.5"),
        ("S2S_CONSOLE_SESSION_HOURS", "-1"),
        ("S2S_CONSOLE_BROKER_EVERY", "soon"),
    ):
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        with pytest.raises(ValueError, match=name):
            get_settings()
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    assert get_settings().console_login_limit == 5
