"""The console's door: sessions, CSRF tokens, sign-in and its rate limit.

- **Sessions** live in one cookie, ``s2s_console``: the user's id, a
  fingerprint of their password hash (``hub.users.stamp``) and a random
  nonce, signed with a key derived from the hub's secret key
  (``hub.crypto.derived_key``) and dated; it is refused after
  ``S2S_CONSOLE_SESSION_HOURS``. HttpOnly, SameSite=Lax, Path=/console,
  Secure when the request came over https. Every request reads the user
  again (in the threadpool): a user removed, or whose password was set
  anew, is signed out at their next click.
- **CSRF**: every form that changes something carries a token, an HMAC of
  the session's nonce; the sign-in form's is bound to a pre-session cookie
  (``s2s_console_pre``) in the same way. A POST without the right one is
  refused with 403 before anything is read or changed.
- **Sign-in rate limit**: failed sign-ins are counted per username and per
  client address in the hub's database (``hub.users.login_wait``), so the
  limit holds across every API process and machine; a key over
  ``S2S_CONSOLE_LOGIN_LIMIT`` failures a minute gets 429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from hub import users
from hub.crypto import derived_key
from hub.db import session_scope
from hub.models import Client, ConsoleUser
from hub.settings import Settings, get_settings

SESSION_COOKIE = "s2s_console"
PRE_COOKIE = "s2s_console_pre"
FLASH_COOKIE = "s2s_console_flash"
COOKIE_PATH = "/console"
PRE_SECONDS = 3600
FLASH_SECONDS = 60
# A console form is a few fields; anything larger is not one of ours.
MAX_FORM_BYTES = 64 * 1024


@lru_cache(maxsize=8)
def _key(settings: Settings, purpose: str) -> bytes:
    return derived_key(f"console-{purpose}", settings)


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_key(get_settings(), purpose), salt=f"s2s-console-{purpose}")


def csrf_token(nonce: str) -> str:
    """The token a form carries: an HMAC of the session's (or pre-session's) nonce."""
    return hmac.new(_key(get_settings(), "csrf"), nonce.encode(), hashlib.sha256).hexdigest()


def csrf_ok(nonce: str | None, token: str | None) -> bool:
    return bool(nonce and token) and hmac.compare_digest(csrf_token(str(nonce)), str(token))


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as a request sees them."""

    user_id: int
    username: str
    client_id: int | None
    client_code: str | None
    nonce: str

    @property
    def operator(self) -> bool:
        return self.client_id is None

    @property
    def csrf(self) -> str:
        return csrf_token(self.nonce)

    def may_see(self, client: Client | None) -> bool:
        return client is not None and (self.client_id is None or client.id == self.client_id)


def _read_signed(request: Request, cookie: str, purpose: str, max_age: float) -> Any:
    raw = request.cookies.get(cookie)
    if not raw:
        return None
    try:
        return _serializer(purpose).loads(raw, max_age=int(max_age))
    except BadSignature:  # forged, from another key, or expired
        return None


def _set(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear(response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="lax")


# ------------------------------------------------------------- sessions
def _load_viewer(user_id: int, stamp: str, nonce: str) -> Viewer | None:
    """The session's user if they still exist with the same password (blocking)."""
    with session_scope() as s:
        user = s.get(ConsoleUser, user_id)
        if user is None or not hmac.compare_digest(users.stamp(user), stamp):
            return None
        client = s.get(Client, user.client_id) if user.client_id is not None else None
        return Viewer(
            user.id, user.username, user.client_id, client.code if client else None, nonce
        )


def session_of(request: Request) -> tuple[int, str, str] | None:
    """The session cookie's (user id, stamp, nonce), if signed by us and not expired."""
    data = _read_signed(
        request, SESSION_COOKIE, "session", get_settings().console_session_hours * 3600
    )
    if not isinstance(data, list) or len(data) != 3:
        return None
    user_id, stamp, nonce = data
    if not (isinstance(user_id, int) and isinstance(stamp, str) and isinstance(nonce, str)):
        return None
    return user_id, stamp, nonce


def viewer_of(request: Request) -> Viewer | None:
    """The signed-in user, or None (blocking: call it in the threadpool)."""
    found = session_of(request)
    return _load_viewer(*found) if found else None


def start_session(response: Response, request: Request, user_id: int, stamp: str) -> None:
    value = _serializer("session").dumps([user_id, stamp, secrets.token_urlsafe(18)])
    _set(response, request, SESSION_COOKIE, value, int(get_settings().console_session_hours * 3600))


# ------------------------------------------------- the sign-in form's CSRF
def pre_nonce(request: Request) -> str | None:
    found = _read_signed(request, PRE_COOKIE, "pre", PRE_SECONDS)
    return found if isinstance(found, str) else None


def keep_pre(response: Response, request: Request, nonce: str) -> None:
    _set(response, request, PRE_COOKIE, _serializer("pre").dumps(nonce), PRE_SECONDS)


# ---------------------------------------------------------------- flash
def flash(response: Response, request: Request, message: str, kind: str = "ok") -> None:
    """A sentence for the next page shown (after a POST's redirect)."""
    _set(
        response, request, FLASH_COOKIE, _serializer("flash").dumps([kind, message]), FLASH_SECONDS
    )


def flash_of(request: Request) -> tuple[str, str] | None:
    found = _read_signed(request, FLASH_COOKIE, "flash", FLASH_SECONDS)
    if isinstance(found, list) and len(found) == 2 and all(isinstance(x, str) for x in found):
        return found[0], found[1]
    return None


# ---------------------------------------------------------------- forms
class FormTooLarge(Exception):
    """A form body past ``MAX_FORM_BYTES``."""


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); a console form
    is small, so this needs no multipart parser."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields


# -------------------------------------------------------------- sign-in
@dataclass(frozen=True)
class SignIn:
    """A sign-in's outcome: the user (None: refused), or how long to wait."""

    user_id: int | None = None
    stamp: str = ""
    wait: float = 0.0


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def sign_in(username: str, password: str, address: str) -> SignIn:
    """Check the password unless the name or the address is over the limit;
    count a failure against both (blocking: argon2 and the database)."""
    limit = users.Limit(get_settings().console_login_limit)
    keys = [f"user:{username.strip().lower()}", f"ip:{address}"]
    with session_scope() as s:
        wait = users.login_wait(s, keys, limit)
        if wait > 0:
            return SignIn(wait=wait)
    with session_scope() as s:
        user = users.verify(s, username.strip(), password)
        if user is None:
            users.note_failure(s, keys, limit)
            return SignIn()
        return SignIn(user.id, users.stamp(user))
