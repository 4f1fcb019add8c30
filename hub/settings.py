"""Settings from the environment, with embedded defaults that need no server.

With nothing set, the hub keeps its data in a SQLite file under ``./var`` and
uses kombu's SQLAlchemy transport on another SQLite file as its broker, so
``s2s demo`` runs on a fresh machine. Production sets ``S2S_DATABASE_URL``
(PostgreSQL) and ``S2S_BROKER_URL`` (Redis or RabbitMQ).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from exc


def _optional_int(name: str) -> int | None:
    """A positive whole number, or None when the variable is unset or blank."""
    if not os.environ.get(name, "").strip():
        return None
    return _positive_int(name, 1)


def _positive_int(name: str, default: int) -> int:
    value = _int(name, default)
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number, not {value}")
    return value


def _positive(name: str, default: float, unit: str) -> float:
    """A number above zero (fractions allowed: tests use short retention and
    fast retries); ``unit`` names what it counts in the error."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive number of {unit}, not {raw!r}")
    return value


def _rate(name: str) -> float | None:
    """A rate per second above zero, or None when unset, ``0`` or ``off``."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "off"):
        return None
    return _positive(name, 0.0, "orders per second (or 0 / off)")


def _retry_curve(visibility: int) -> tuple[float, float]:
    """``S2S_RETRY_BASE`` and ``S2S_RETRY_CAP``, checked against each other and
    the visibility timeout: a retry sent with a countdown is held unacknowledged
    by a worker until it is due, so a delay near the visibility timeout would
    have the broker deliver the retry twice."""
    base = _positive("S2S_RETRY_BASE", 2.0, "seconds")
    cap = _positive("S2S_RETRY_CAP", 300.0, "seconds")
    if base > cap:
        raise ValueError(f"S2S_RETRY_BASE must be at most S2S_RETRY_CAP ({base:g} > {cap:g})")
    if cap * 2 > visibility:
        raise ValueError(
            "S2S_RETRY_CAP must be well below S2S_VISIBILITY_TIMEOUT "
            f"(at most half of it: {cap:g} > {visibility // 2}); "
            "otherwise the broker re-delivers retries before they are due"
        )
    return base, cap


@dataclass(frozen=True)
class Settings:
    """Everything the processes read from the environment, resolved once."""

    var_dir: Path
    database_url: str
    broker_url: str
    secret_key: str | None
    old_secret_keys: tuple[str, ...]
    log_format: str
    log_level: str
    # None: each connector's own default (``Connector.default_page_size``).
    page_size: int | None
    visibility_timeout: int
    task_time_limit: int
    # How long one Redis command (the broker's, or the slots') may wait for
    # an answer. Across a network a broker can vanish without closing the
    # connection; without a limit a worker's main loop waits on it forever,
    # its time limits stop firing, and a task's result is lost in the pipe.
    broker_timeout: float
    # PostgreSQL ends a hub session left idle inside a transaction this long:
    # a worker cut off by the network mid-transaction would otherwise keep
    # its row locks (orders it was claiming, skipped by every other worker)
    # until the server noticed, which can take hours.
    db_idle_transaction_timeout: float
    stale_after: int
    dispatch_every: int
    sweep_every: int
    order_lease: int
    # How long a worker's slot (a source's or an ERP account's) outlives its
    # last renewal: holders renew every third of it while they work, so a
    # killed worker blocks the ERP for at most this long.
    slot_lease: float
    order_stale_after: int
    order_max_attempts: int
    # The retry curve (workers.backoff): the first delay, doubling per
    # attempt up to the cap.
    retry_base: float
    retry_cap: float
    # Connectors (with their ERP engines and HTTP clients) kept per worker
    # process; the least recently used beyond this are closed.
    connector_cache: int
    # How many of one run's pages may wait for, or be in, map_page at once:
    # a large full sync then never fills the map queue ahead of small runs.
    run_pages_in_flight: int
    # History: finished runs (with pages and quarantine) older than this are
    # pruned, keeping the last ``retention_keep_runs`` of each source and stream.
    retention_days: float
    retention_keep_runs: int
    prune_every: int
    # The push (workers.pushing): attempts at a step that met a passing
    # failure before its run fails, and how long after a sync changed a
    # client's products its channels' push waits (more syncs may follow).
    push_max_attempts: int
    push_debounce: float
    # The API's guard (s2s.guard): the largest request body taken (413
    # beyond it, refused before it is read whole); how long a request may
    # wait for a free database connection before it is answered 503 with
    # Retry-After (well inside the 5 s a channel waits for a webhook's
    # answer); each client's intake rate (orders and webhooks per second,
    # None: no limit) and the burst taken at once before 429s.
    max_body_bytes: int
    api_queue_timeout: float
    client_rate_limit: float | None
    client_rate_burst: int
    # The API's door (s2s.api_parts, s2s.api_process): how long a client's
    # token, once checked against the database, opens its URLs without
    # another look (a token changed or removed stops working within this),
    # and one API process's database connections, which are also its
    # threads for blocking work: a thread never waits for a connection.
    token_cache_seconds: float
    api_db_pool: int
    # The operations console (s2s.console): failed sign-ins a minute allowed
    # per username and per client address, how long a sign-in lasts, and how
    # long the overview's queue depths and workers online are kept before
    # the broker is asked again (every open overview polls every 2 s).
    console_login_limit: int
    console_session_hours: float
    console_broker_every: float

    @property
    def embedded(self) -> bool:
        """True when running on the server-less defaults (SQLite + SQLAlchemy broker)."""
        return self.database_url.startswith("sqlite") and self.broker_url.startswith("sqla+")


def load_settings() -> Settings:
    var_dir = Path(os.environ.get("S2S_VAR_DIR", "var")).resolve()
    database_url = os.environ.get("S2S_DATABASE_URL", "").strip() or (
        f"sqlite:///{var_dir / 'hub.sqlite'}"
    )
    broker_url = os.environ.get("S2S_BROKER_URL", "").strip() or (
        f"sqla+sqlite:///{var_dir / 'broker.sqlite'}"
    )
    visibility = _int("S2S_VISIBILITY_TIMEOUT", 3600)
    time_limit = _int("S2S_TASK_TIME_LIMIT", 600)
    if time_limit * 2 > visibility:
        raise ValueError(
            "S2S_TASK_TIME_LIMIT must be well below S2S_VISIBILITY_TIMEOUT "
            f"(at most half of it: {time_limit} > {visibility // 2}); "
            "otherwise the broker re-delivers tasks that are still running"
        )
    retry_base, retry_cap = _retry_curve(visibility)
    old = tuple(
        k.strip() for k in os.environ.get("S2S_OLD_SECRET_KEYS", "").split(",") if k.strip()
    )
    return Settings(
        var_dir=var_dir,
        database_url=database_url,
        broker_url=broker_url,
        secret_key=os.environ.get("S2S_SECRET_KEY", "").strip() or None,
        old_secret_keys=old,
        log_format=os.environ.get("S2S_LOG_FORMAT", "text").strip().lower(),
        log_level=os.environ.get("S2S_LOG_LEVEL", "INFO").strip().upper(),
        page_size=_optional_int("S2S_PAGE_SIZE"),
        visibility_timeout=visibility,
        task_time_limit=time_limit,
        broker_timeout=_positive("S2S_BROKER_TIMEOUT", 10.0, "seconds"),
        db_idle_transaction_timeout=_positive("S2S_DB_IDLE_TRANSACTION_TIMEOUT", 120.0, "seconds"),
        stale_after=_int("S2S_STALE_AFTER", 120),
        dispatch_every=_int("S2S_DISPATCH_EVERY", 10),
        sweep_every=_int("S2S_SWEEP_EVERY", 60),
        order_lease=_int("S2S_ORDER_LEASE", 300),
        slot_lease=_positive("S2S_SLOT_LEASE", 30.0, "seconds"),
        order_stale_after=_int("S2S_ORDER_STALE_AFTER", 300),
        order_max_attempts=_int("S2S_ORDER_MAX_ATTEMPTS", 8),
        retry_base=retry_base,
        retry_cap=retry_cap,
        connector_cache=_positive_int("S2S_CONNECTOR_CACHE", 32),
        run_pages_in_flight=_positive_int("S2S_RUN_PAGES_IN_FLIGHT", 8),
        retention_days=_positive("S2S_RETENTION_DAYS", 30.0, "days"),
        retention_keep_runs=_positive_int("S2S_RETENTION_KEEP_RUNS", 20),
        prune_every=_positive_int("S2S_PRUNE_EVERY", 3600),
        push_max_attempts=_positive_int("S2S_PUSH_MAX_ATTEMPTS", 6),
        push_debounce=_positive("S2S_PUSH_DEBOUNCE", 30.0, "seconds"),
        max_body_bytes=_positive_int("S2S_MAX_BODY_BYTES", 1024 * 1024),
        api_queue_timeout=_positive("S2S_API_QUEUE_TIMEOUT", 2.0, "seconds"),
        client_rate_limit=(rate := _rate("S2S_CLIENT_RATE_LIMIT")),
        # Two seconds' worth of orders by default.
        client_rate_burst=_positive_int("S2S_CLIENT_RATE_BURST", math.ceil(2 * (rate or 0.5))),
        token_cache_seconds=_positive("S2S_TOKEN_CACHE_SECONDS", 30.0, "seconds"),
        api_db_pool=_positive_int("S2S_API_DB_POOL", 16),
        console_login_limit=_positive_int("S2S_CONSOLE_LOGIN_LIMIT", 5),
        console_session_hours=_positive("S2S_CONSOLE_SESSION_HOURS", 12.0, "hours"),
        console_broker_every=_positive("S2S_CONSOLE_BROKER_EVERY", 5.0, "seconds"),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return load_settings()
