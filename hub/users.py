"""The operations console's users: add, list, remove, set a password, verify.

A user is an operator (every client) or a client user (one client only).
Passwords are kept as argon2id hashes (argon2-cffi's defaults, RFC 9106's
low-memory profile); a hash made with older parameters is replaced at the
next good sign-in. The sign-in rate limit's failures are rows here too, so
every API process sharing the database counts them together.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.models import Client, ConsoleLoginFailure, ConsoleUser, utcnow

USERNAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD: Final = 10
MAX_PASSWORD: Final = 1024

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that a wrong name costs
# the same time as a wrong password and names cannot be told apart by timing.
_NOBODY: Final = _hasher.hash("s2s: no such user")


class UserError(Exception):
    """A user command that cannot be done; the message says why."""


def check_password(password: str) -> None:
    """Raises UserError naming what is wrong with a new password."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password must be at most {MAX_PASSWORD} characters")


def _check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise UserError(
            f"username {username!r} must be 1 to 64 letters, digits or . _ @ -, "
            "starting with a letter or digit"
        )


def get(session: Session, username: str) -> ConsoleUser | None:
    return session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).first()


def _existing(session: Session, username: str) -> ConsoleUser:
    user = get(session, username)
    if user is None:
        raise UserError(f"no console user {username!r}")
    return user


def add(session: Session, username: str, password: str, client_id: int | None) -> ConsoleUser:
    """A new user: an operator when ``client_id`` is None, else that client's."""
    _check_username(username)
    check_password(password)
    if get(session, username) is not None:
        raise UserError(f"console user {username!r} exists already")
    user = ConsoleUser(username=username, password_hash=_hasher.hash(password), client_id=client_id)
    session.add(user)
    session.flush()
    return user


def listing(session: Session) -> list[tuple[ConsoleUser, str | None]]:
    """Every user by name, with the code of the client it belongs to (None: operator)."""
    rows = session.execute(
        select(ConsoleUser, Client.code)
        .outerjoin(Client, Client.id == ConsoleUser.client_id)
        .order_by(ConsoleUser.username)
    )
    return [(user, code) for user, code in rows]


def remove(session: Session, username: str) -> None:
    session.delete(_existing(session, username))


def set_password(session: Session, username: str, password: str) -> None:
    """A new password; every session signed in with the old one ends (``stamp``)."""
    check_password(password)
    user = _existing(session, username)
    user.password_hash = _hasher.hash(password)
    user.password_changed_at = utcnow()


def verify(session: Session, username: str, password: str) -> ConsoleUser | None:
    """The user if the password is theirs, else None (unknown name or wrong password)."""
    user = get(session, username) if len(password) <= MAX_PASSWORD else None
    try:
        _hasher.verify(user.password_hash if user else _NOBODY, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def stamp(user: ConsoleUser) -> str:
    """A short fingerprint of the user's password hash and last sign-out,
    carried in the session: a password set anew or a sign-out changes it, and
    so ends the sessions signed in before (a copied cookie included)."""
    out = user.signed_out_at.isoformat() if user.signed_out_at else ""
    return hashlib.sha256(f"{user.password_hash}|{out}".encode()).hexdigest()[:16]


def sign_out(session: Session, user_id: int) -> None:
    """End every session of the user's: the console's cookies are signed, not
    stored, so signing out moves the stamp they must carry."""
    user = session.get(ConsoleUser, user_id)
    if user is not None:
        user.signed_out_at = utcnow()


# ------------------------------------------------------ sign-in rate limit
@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` failed sign-ins per key within ``window``."""

    attempts: int
    window: timedelta = timedelta(minutes=1)


def login_wait(session: Session, keys: list[str], limit: Limit) -> float:
    """Seconds until a sign-in may be tried for every key; 0 when it may now.

    A key is over the limit when it failed ``limit.attempts`` times within
    the window; it may try again when the oldest of those leaves the window.
    """
    now = utcnow()
    since = now - limit.window
    wait = 0.0
    for key in keys:
        times = list(
            session.scalars(
                select(ConsoleLoginFailure.at)
                .where(ConsoleLoginFailure.key == key, ConsoleLoginFailure.at > since)
                .order_by(ConsoleLoginFailure.at.desc())
                .limit(limit.attempts)
            )
        )
        if len(times) >= limit.attempts:
            wait = max(wait, (times[-1] + limit.window - now).total_seconds())
    return wait


def note_failure(session: Session, keys: list[str], limit: Limit) -> None:
    """Count a failed sign-in against each key; forget failures past the window."""
    now = utcnow()
    session.execute(delete(ConsoleLoginFailure).where(ConsoleLoginFailure.at <= now - limit.window))
    session.add_all(ConsoleLoginFailure(key=key[:200], at=now) for key in keys)


def failures(session: Session, key: str, since: datetime) -> int:
    """How many failed sign-ins ``key`` has had since then (for tests and checks)."""
    return int(
        session.scalar(
            select(func.count()).where(
                ConsoleLoginFailure.key == key, ConsoleLoginFailure.at > since
            )
        )
        or 0
    )
