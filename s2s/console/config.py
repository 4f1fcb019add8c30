"""The console's own settings, read from the environment once per process.

- ``S2S_CONSOLE_LOGIN_LIMIT`` (5): failed sign-ins per minute allowed per
  username and per client address before 429.
- ``S2S_CONSOLE_SESSION_HOURS`` (12): how long a sign-in lasts.
- ``S2S_CONSOLE_BROKER_EVERY`` (5 s): how long the overview's queue depths
  and workers online are kept before the broker is asked again (every open
  overview polls every 2 s; the broker need not answer each one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


def _number(name: str, default: float, *, whole: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        kind = "whole number" if whole else "number"
        raise ValueError(f"{name} must be a positive {kind}, not {raw!r}")
    return value


@dataclass(frozen=True)
class ConsoleSettings:
    login_limit: int
    session_hours: float
    broker_every: float


@lru_cache(maxsize=1)
def console_settings() -> ConsoleSettings:
    """Tests call ``console_settings.cache_clear()`` after changing the environment."""
    return ConsoleSettings(
        login_limit=int(_number("S2S_CONSOLE_LOGIN_LIMIT", 5, whole=True)),
        session_hours=_number("S2S_CONSOLE_SESSION_HOURS", 12.0),
        broker_every=_number("S2S_CONSOLE_BROKER_EVERY", 5.0),
    )
