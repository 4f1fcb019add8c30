"""Shared fixtures: real services when present, real worker processes.

Service tests need PostgreSQL and Redis. On a machine without them they are
skipped with a printed reason; with S2S_REQUIRE_SERVICES=1 (CI) an
unreachable service fails the test instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("S2S_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("S2S_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("S2S_TEST_PG_USER", "postgres")


def worker_redis_url(url: str, worker: str) -> str:
    """The Redis database of one pytest-xdist worker: ``gwN`` takes the given
    database plus N, so a test's FLUSHDB never empties another worker's broker
    (kombu scopes its fanout channels by database too)."""
    if not worker.startswith("gw"):
        return url
    parsed = urlsplit(url)
    base = int(parsed.path.strip("/") or 0)
    db = base + int(worker[2:])
    if db > 15:
        raise pytest.UsageError(
            f"xdist worker {worker} would need Redis database {db} (from {url}): "
            "give S2S_TEST_REDIS_URL a lower database or run fewer workers"
        )
    return urlunsplit(parsed._replace(path=f"/{db}"))


# The first Redis database a test run may claim for its processes (each takes
# that database plus its number); 14 and 15 are the peers' and benchmarks'.
REDIS_BASES = (11, 8, 5, 2)
_CLAIM = "s2s:test-run:redis-base:{base}"
_CLAIM_SECONDS = 3 * 3600


def _claim_redis_base(processes: int) -> str | None:
    """Claim a range of Redis databases for this test run, so that two runs on
    one machine never share (and FLUSHDB) each other's brokers.

    A claim is a key in database 0 holding the run's pid, taken with SET NX;
    a claim whose process is gone is taken over. None when Redis is not
    reachable (the service tests then skip or fail as usual) or every range
    is taken.
    """
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_timeout=2)
        client.ping()
    except Exception:
        return None
    for base in REDIS_BASES:
        if base + max(processes, 1) - 1 > 13 and base != REDIS_BASES[0]:
            continue
        key = _CLAIM.format(base=base)
        if client.set(key, os.getpid(), nx=True, ex=_CLAIM_SECONDS):
            return f"redis://127.0.0.1:6379/{base}"
        holder = client.get(key)
        if holder is not None and not _alive(int(holder)):
            client.set(key, os.getpid(), ex=_CLAIM_SECONDS)
            return f"redis://127.0.0.1:6379/{base}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pytest_configure(config: pytest.Config) -> None:
    """In the run's controlling process, before the test processes start:
    claim this run's Redis databases unless S2S_TEST_REDIS_URL names them."""
    if hasattr(config, "workerinput") or os.environ.get("S2S_TEST_REDIS_URL"):
        return
    processes = getattr(config.option, "numprocesses", None) or 1
    claimed = _claim_redis_base(int(processes) if str(processes).isdigit() else 3)
    if claimed:
        os.environ["S2S_TEST_REDIS_URL"] = claimed
        os.environ["S2S_TEST_REDIS_CLAIM"] = str(os.getpid())
        global REDIS_URL
        REDIS_URL = claimed


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or os.environ.get("S2S_TEST_REDIS_CLAIM") != str(os.getpid()):
        return
    base = urlsplit(os.environ["S2S_TEST_REDIS_URL"]).path.strip("/")
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_timeout=2)
        key = _CLAIM.format(base=base)
        if client.get(key) == str(os.getpid()).encode():
            client.delete(key)


REDIS_URL = worker_redis_url(
    os.environ.get("S2S_TEST_REDIS_URL", "redis://127.0.0.1:6379/11"),
    os.environ.get("PYTEST_XDIST_WORKER", ""),
)
REQUIRE = os.environ.get("S2S_REQUIRE_SERVICES", "") not in ("", "0", "false")

_HUB_ENV = (
    "S2S_DATABASE_URL",
    "S2S_BROKER_URL",
    "S2S_VAR_DIR",
    "S2S_SECRET_KEY",
    "S2S_STALE_AFTER",
    "S2S_DISPATCH_EVERY",
    "S2S_SWEEP_EVERY",
    "S2S_ORDER_LEASE",
    "S2S_ORDER_STALE_AFTER",
    "S2S_ORDER_MAX_ATTEMPTS",
    "S2S_RETRY_BASE",
    "S2S_PAGE_SIZE",
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def unavailable(message: str) -> NoReturn:
    """A service a test needs is missing: skipped with the reason on a
    machine without it, a failure where S2S_REQUIRE_SERVICES=1 (CI)."""
    if REQUIRE:
        pytest.fail(f"{message} and S2S_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(f"{message} (service tests are skipped on machines without it)")


def need_service(name: str, host: str, port: int) -> None:
    if not _reachable(host, port):
        unavailable(f"{name} is not reachable at {host}:{port}")


def pg_url(database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _admin_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql)


@pytest.fixture
def postgres_db() -> Iterator[Any]:
    """A fresh, empty PostgreSQL database; returns a factory for more."""
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    created: list[str] = []

    def make(prefix: str = "s2s_t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return pg_url(name)

    yield make
    from hub.db import dispose_all

    dispose_all()
    for name in created:
        with contextlib.suppress(Exception):  # best effort: never mask the test's result
            _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one_source_hub(url: str) -> str:
    """Migrate the hub database at ``url`` and give it one client and one SQL
    source (ids 1): the store and retention tests' starting point."""
    from hub.db import session_scope
    from hub.migrate import upgrade
    from hub.models import Client, Source

    upgrade(url)
    with session_scope(url) as s:
        c = Client(code="c1", name="c1")
        s.add(c)
        s.flush()
        s.add(Source(client_id=c.id, code="erp", kind="sql", name="erp", settings={}))
    return url


@pytest.fixture
def redis_url() -> str:
    """A Redis database emptied for this test."""
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    need_service("Redis", parsed.hostname or "127.0.0.1", parsed.port or 6379)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


RABBIT_HOST = os.environ.get("S2S_TEST_RABBIT_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("S2S_TEST_RABBIT_PORT", "5672"))


def _rabbitmqctl(*args: str) -> None:
    try:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        unavailable(f"cannot run rabbitmqctl {args[0]} to give this test its own vhost: {exc}")


@pytest.fixture
def rabbit_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test's own (guest/guest), removed afterwards:
    two test runs on one machine, or two tests, never share a queue."""
    need_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    vhost = f"s2s_test_{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)


@dataclass
class Hub:
    """A configured hub for one test: env applied in-process and for workers."""

    env: dict[str, str]
    var_dir: Path
    workers: list[subprocess.Popen[bytes]]

    def start_worker(
        self,
        *,
        queues: str | None = None,
        concurrency: int = 2,
        name: str | None = None,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
        events: bool = False,
    ) -> subprocess.Popen[bytes]:
        """A worker process; ``prefix`` runs it elsewhere (another network
        namespace), ``env`` replaces the hub's (other service addresses),
        ``events`` sends task events from the start (``-E``, as ``s2s worker``
        does on a broker that carries them)."""
        name = name or f"w{len(self.workers) + 1}"
        log = (self.var_dir / f"worker-{name}.log").open("ab")
        cmd = [
            *prefix,
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "-n",
            f"{name}@%h",
            "-c",
            str(concurrency),
            "--loglevel",
            "INFO",
            "-O",
            "fair",
            # As `s2s worker` runs it (s2s.cli.processes.WORKER_STEPS_OFF).
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if events:
            cmd.append("-E")
        if queues:
            cmd += ["-Q", queues]
        else:
            from workers.app import QUEUES

            cmd += ["-Q", ",".join(QUEUES)]
        # Own process group: a test can kill the worker with its pool children.
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or self.env,
            cwd=ROOT,
            start_new_session=True,
        )
        self.workers.append(proc)
        self._wait_ready(name, proc)
        return proc

    def _wait_ready(self, name: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
        path = self.var_dir / f"worker-{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited:\n{path.read_text()[-3000:]}")
            if "ready." in path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {name} not ready after {timeout}s:\n{path.read_text()[-3000:]}")

    def start_beat(self) -> subprocess.Popen[bytes]:
        log = (self.var_dir / "beat.log").open("ab")
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "beat",
            "--loglevel",
            "INFO",
            "-s",
            str(self.var_dir / "beat-schedule"),
        ]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker and its pool children at once, as a crash would."""
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def run_cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "s2s.cli", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.var_dir.glob("*.log")))

    def stop(self) -> None:
        """End what the test started, at once, pool children included.

        The test is over and its databases are dropped next, so nothing reads
        what a worker would still write: a warm shutdown cost seconds a worker
        and, on the embedded broker, sometimes the whole wait of 30 s.
        """
        import signal

        for proc in self.workers:
            # Workers lead their own process group; beat and flower do not.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
        for proc in self.workers:
            proc.wait(30)


def _configure(env_updates: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in _HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env_updates.items():
        monkeypatch.setenv(key, value)
    from hub.db import dispose_all
    from workers.app import reconfigure

    dispose_all()
    reconfigure()
    # pytest-xdist sets COLUMNS=80 and LINES=24 in its workers: the test
    # runner's, not a terminal's, and the CLI's tables would take that width.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _make_hub(
    env_updates: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hub]:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = _configure(
        {
            "S2S_VAR_DIR": str(var_dir),
            "S2S_SECRET_KEY": "test-key-" + uuid.uuid4().hex,
            **env_updates,
        },
        monkeypatch,
    )
    from hub.migrate import upgrade

    upgrade()
    hub = Hub(env=env, var_dir=var_dir, workers=[])
    try:
        yield hub
    finally:
        hub.stop()
        from hub.db import dispose_all

        dispose_all()


@pytest.fixture
def pg_hub(
    postgres_db: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hub]:
    """The production shape: PostgreSQL for the hub, Redis as the broker."""
    yield from _make_hub(
        {"S2S_DATABASE_URL": postgres_db(), "S2S_BROKER_URL": redis_url}, tmp_path, monkeypatch
    )


@pytest.fixture
def embedded_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The embedded default: SQLite files and the SQLAlchemy broker, no server."""
    yield from _make_hub({}, tmp_path, monkeypatch)


def wait_for(
    predicate: Any, timeout: float = 120, interval: float = 0.25, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_one_line_error(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    """A failed command says what is wrong in one line on stderr, with no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]
