"""Fixtures of the console's browser tests: a real hub, `s2s api`, Chromium.

Each test module gets one hub (PostgreSQL for the hub, Redis as the broker, a
real worker process), the SQL ERP emulator seeded for two clients, `s2s api`
started as users start it, users made with `s2s user add`, and one headless
Chromium driven through Debian's chromedriver. Tests in a module share them
and keep to their own records, so the whole set costs one start-up a module.

Without Chromium, its driver or Selenium the tests go through the project's
``unavailable``: skipped with the reason on a bare machine, failed in CI
(S2S_REQUIRE_SERVICES=1). Screenshots go to S2S_BROWSER_ARTIFACTS (default
``var/browser/`` in the checkout, which git ignores) and their paths are
printed, so a person can look at what the browser saw.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import create_engine, text

from emulators import sql_erp
from hub.db import session_scope
from hub.models import SyncRun
from tests.conftest import (
    PG_HOST,
    PG_PORT,
    REDIS_URL,
    ROOT,
    Hub,
    _admin_execute,
    _make_hub,
    need_service,
    pg_url,
    unavailable,
    wait_for,
)
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

ARTIFACTS = Path(os.environ.get("S2S_BROWSER_ARTIFACTS") or ROOT / "var" / "browser")
CHROMIUM = os.environ.get("S2S_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = (
    os.environ.get("S2S_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
)
DESKTOP = (1280, 900)
PHONE = (375, 740)
# Products each client's ERP starts with: enough for a few pages of a run.
PRODUCTS = 300
PAGE_SIZE = 50

# --------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module; cookies are the tests' to clear."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        unavailable(f"Selenium is not installed ({exc}; it is in the dev extras)")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            unavailable(f"{path} is not installed (Debian's {package}; .ci/run installs it)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Root needs --no-sandbox; /dev/shm is small in containers.
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(arg)
    log = tmp_path_factory.mktemp("chromium") / "chromedriver.log"
    service = Service(CHROMEDRIVER, log_output=str(log))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        pytest.fail(
            f"Chromium ({CHROMIUM}) did not start under {CHROMEDRIVER}: {exc.msg} (log: {log})"
        )
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed browser test leaves a screenshot of what the browser showed."""
    report = yield
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    driver = funcargs.get("browser")
    if report.when == "call" and report.failed and driver is not None:
        with contextlib.suppress(Exception):  # never hide the failure itself
            path = screenshot(driver, f"failed-{item.name}.png")
            report.sections.append(("browser", f"screenshot: {path}\nat: {driver.current_url}"))
        served = funcargs.get("console") or funcargs.get("served_hub")
        if isinstance(served, Console):
            log = served.hub.var_dir / "api.log"
            with contextlib.suppress(OSError):
                report.sections.append(("s2s api's log (its end)", log.read_text()[-3000:]))
    return report


def screenshot(driver: Any, name: str, *, full_page: bool = True) -> Path:
    """Save what the browser shows as ``ARTIFACTS/name`` and print the path.

    ``full_page`` captures the whole document, not only the window, through
    Chromium's own DevTools command.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    if full_page:
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
    else:
        assert driver.save_screenshot(str(path)), f"could not save {path}"
    assert path.stat().st_size > 1000, f"{path} is nearly empty"
    print(f"screenshot saved: {path}")
    return path


@contextlib.contextmanager
def phone(driver: Any) -> Iterator[None]:
    """The page as a 375 x 740 phone shows it (touch, its viewport rules)."""
    width, height = PHONE
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True},
    )
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


# --------------------------------------------------------------------------
# The hub and `s2s api`
# --------------------------------------------------------------------------


@dataclass
class User:
    username: str
    password: str = field(repr=False)
    client: str | None  # None: an operator


@dataclass
class Shop:
    """One client with one SQL source, its ERP emulator a SQLite file."""

    code: str
    client_id: int
    source_id: int
    erp_url: str
    seed: int  # the emulator's: its rows are sql_erp.generate_rows(PRODUCTS, seed)


@dataclass
class Console:
    """The running hub and its console, as a test sees them."""

    hub: Hub
    url: str
    shops: dict[str, Shop]
    users: dict[str, User] = field(default_factory=dict)

    def page(self, path: str) -> str:
        return self.url + path

    def add_user(self, username: str, client: str | None) -> User:
        """``s2s user add``, the password on standard input as a user would."""
        password = secrets.token_urlsafe(12)
        role = ["--operator"] if client is None else ["--client", client]
        result = subprocess.run(
            [sys.executable, "-m", "s2s.cli", "user", "add", username, *role, "--password-stdin"],
            input=password + "\n",
            env=self.hub.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert password not in result.stdout + result.stderr
        user = User(username, password, client)
        self.users[username] = user
        return user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(hub: Hub) -> str:
    """`s2s api` on a free port, as users start it; the hub's teardown ends it."""
    port = free_port()
    log_path = hub.var_dir / "api.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env=hub.env,
        cwd=ROOT,
        start_new_session=True,
    )
    hub.workers.append(proc)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"s2s api exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        return False

    wait_for(healthy, timeout=60, interval=0.2, what=f"s2s api on port {port}")
    return url


def seed_shop(hub: Hub, code: str, seed: int) -> Shop:
    """A client with a SQL source whose ERP holds PRODUCTS products, synced once."""
    erp_url = f"sqlite:///{hub.var_dir / f'erp-{code}.sqlite'}"
    sql_erp.seed(erp_url, products=PRODUCTS, customers=5, seed=seed)
    settings = {"url": erp_url, "default_customer_code": "CASH", "page_size": PAGE_SIZE}
    with session_scope() as s:
        client, _ = upsert_client(s, code, code.title())
        source = upsert_source(s, client, "erp", "sql", settings)
        shop = Shop(code, client.id, source.id, erp_url, seed)
    run_id = start_sync(shop.source_id, "products", requested_by="test").run.id
    wait_run(run_id)
    return shop


def wait_run(run_id: int, timeout: float = 120) -> SyncRun:
    """The run once it has ended; it must have succeeded."""

    def ended() -> SyncRun | None:
        with session_scope() as s:
            run = s.get(SyncRun, run_id)
            return run if run is not None and run.status != "running" else None

    run: SyncRun = wait_for(ended, timeout=timeout, what=f"run {run_id} to end")
    assert run.status == "succeeded", run.error
    return run


def add_erp_product(erp_url: str, sku: str, title: str, qty: int, price: str) -> None:
    """A product row entered in the ERP, as its users would add a stock item."""
    engine = create_engine(erp_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO products ("Prod", "SKU", "WebName", product_active, qty, price) '
                    "VALUES (:sku, :sku, :title, '1', :qty, :price)"
                ),
                {"sku": sku, "title": title, "qty": str(qty), "price": price},
            )
    finally:
        engine.dispose()


def _module_database() -> str:
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"s2s_console_{uuid.uuid4().hex[:10]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    return name


def _module_redis() -> str:
    parsed = urlparse(REDIS_URL)
    need_service("Redis", parsed.hostname or "127.0.0.1", parsed.port or 6379)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture(scope="module")
def served_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """The module's hub, its worker, `s2s api`, and clients acme and globex.

    A module sets ``HUB_ENV`` (a dict) for settings of its own, such as the
    sign-in limit, and ``CLIENTS`` ((code, ERP seed) pairs) for other clients.
    """
    redis_url = _module_redis()
    database = _module_database()
    env = {
        "S2S_DATABASE_URL": pg_url(database),
        "S2S_BROKER_URL": redis_url,
        **getattr(request.module, "HUB_ENV", {}),
    }
    monkeypatch = pytest.MonkeyPatch()
    hubs = _make_hub(env, tmp_path_factory.mktemp("console"), monkeypatch)
    try:
        hub = next(hubs)
        hub.start_worker(concurrency=2, name="console")
        clients = getattr(request.module, "CLIENTS", (("acme", 3), ("globex", 4)))
        shops = {code: seed_shop(hub, code, seed) for code, seed in clients}
        yield Console(hub, start_api(hub), shops)
        print(f"hub logs: {hub.var_dir}")
    finally:
        with contextlib.suppress(StopIteration):
            next(hubs)  # the hub's own teardown: workers and API ended
        monkeypatch.undo()
        with contextlib.suppress(Exception):  # best effort: never mask the result
            _admin_execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def pause(proc: subprocess.Popen[bytes]) -> None:
    """Freeze a worker and its pool (SIGSTOP to its process group)."""
    os.killpg(proc.pid, signal.SIGSTOP)


def resume(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def console(served_hub: Console) -> Console:
    """The served hub with its users, made by `s2s user add`: ``ops`` (an
    operator) and ``<client>-user`` for each client (that client only)."""
    served_hub.add_user("ops", None)
    for code in served_hub.shops:
        served_hub.add_user(f"{code}-user", code)
    return served_hub
