"""The operations console in headless Chromium, against a real hub.

A real worker process syncs the SQL ERP emulator and raises orders into it;
`s2s api` serves the console; the browser signs in through the form and
presses the pages' own buttons. What a page shows is held against the hub's
database, the CLI's JSON and the ERP's own tables, never against itself.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import create_engine, select, text

from emulators import sql_erp
from hub.db import session_scope
from hub.models import DeadLetter, Order, Quarantined, SourceStream, SyncRun
from tests.browser.conftest import (
    PHONE,
    PRODUCTS,
    Console,
    Shop,
    add_erp_product,
    pause,
    phone,
    resume,
    screenshot,
    wait_run,
)
from tests.browser.pages import (
    body_text,
    cell,
    fetch,
    form_fields,
    mark_page,
    number,
    one,
    path_of,
    press,
    sign_in,
    still_marked,
    wait_until,
)
from tests.conftest import wait_for
from tests.integration.test_orders_e2e import canonical
from workers.orders import submit
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

# Failed sign-ins are counted per client address, and every test here signs
# in from 127.0.0.1; test_console_sign_in.py tests the limit itself.
HUB_ENV = {"S2S_CONSOLE_LOGIN_LIMIT": "100"}

COUNTS = ("fetched", "created", "updated", "unchanged", "deleted", "quarantined")


def latest_run(shop: Shop) -> SyncRun:
    with session_scope() as s:
        run = s.scalars(
            select(SyncRun)
            .where(SyncRun.source_id == shop.source_id, SyncRun.stream == "products")
            .order_by(SyncRun.id.desc())
        ).first()
    assert run is not None, f"no run of {shop.code}/erp"
    return run


def changed_products(shop: Shop, rows: int, seed: int) -> int:
    """Change ``rows`` rows in the ERP; how many products (records) that touches."""
    skus = sql_erp.change_rows(shop.erp_url, rows, seed)
    return len({sku.split("-")[0] for sku in skus})


def overview_row(driver: WebDriver, client: str) -> Any:
    return one(
        driver,
        f"table#overview tr[data-client='{client}'][data-source='erp'][data-stream='products']",
    )


def shows_counts(text: str, run: SyncRun) -> bool:
    """The counts a cell writes ("361 fetched · 0 created · ...") are the run's."""
    labelled = {word: number(n) for n, word in re.findall(r"(\d[\d,]*)\s+([a-z]+)", text)}
    names = ("fetched", "created", "updated", "unchanged", "deleted", "quarantined")
    assert set(names) <= set(labelled), f"{text!r} does not name each count"
    return all(labelled[name] == getattr(run, name) for name in names)


# --------------------------------------------------------------------------
# Sign in and the overview
# --------------------------------------------------------------------------


def test_sign_in_shows_the_overview_which_updates_in_place(
    browser: WebDriver, console: Console
) -> None:
    browser.delete_all_cookies()
    browser.get(console.page("/console/"))
    # No session: sent to the sign-in form, which knows where to come back to.
    assert path_of(browser).startswith("/console/login?next="), path_of(browser)
    ops = console.users["ops"]
    one(browser, "input[name='username']").send_keys(ops.username)
    one(browser, "input[name='password']").send_keys(ops.password)
    press(browser, "#sign-in")
    wait_until(browser, lambda: path_of(browser) == "/console/", "the overview after sign-in")
    assert "ops" in cell(browser, "#whoami")

    cookie = browser.get_cookie("s2s_console")
    assert cookie is not None, browser.get_cookies()
    assert cookie["httpOnly"] and cookie.get("sameSite") == "Lax", cookie
    assert "s2s_console" not in browser.execute_script("return document.cookie;")

    for code, shop in console.shops.items():
        row = overview_row(browser, code)
        run = latest_run(shop)
        assert cell(row, ".last-run-status") == run.status == "succeeded"
        assert shows_counts(cell(row, ".last-run-counts"), run), cell(row, ".last-run-counts")
        one(row, ".paused")
        one(row, ".schedule")
    for part in ("#dead-letters-open", "#queues"):
        one(browser, part)
    # The module's one worker, named as the fixture started it.
    wait_until(
        browser,
        lambda: "console@" in cell(browser, "#workers"),
        "the worker online",
        timeout=15,
    )
    screenshot(browser, "overview.png")

    # A run that ends while the page is open shows without a reload.
    globex = console.shops["globex"]
    before = cell(overview_row(browser, "globex"), ".last-run-counts")
    mark = mark_page(browser)
    changed = changed_products(globex, 5, seed=21)
    run = wait_run(start_sync(globex.source_id, "products", requested_by="test").run.id)
    assert run.updated == changed
    wait_until(
        browser,
        lambda: shows_counts(cell(overview_row(browser, "globex"), ".last-run-counts"), run),
        f"globex's new run {run.id} on the overview (was {before!r})",
        timeout=20,
    )
    assert still_marked(browser, mark), "the overview reloaded instead of updating in place"


def test_the_pages_fit_a_phone(browser: WebDriver, console: Console) -> None:
    sign_in(browser, console, console.users["ops"])
    with phone(browser):
        for path, part, name in (
            ("/console/", "table#overview", "overview-phone.png"),
            ("/console/clients/acme/sources/erp", "table#runs", "source-phone.png"),
            ("/console/clients/acme/orders", "table#orders", None),
        ):
            browser.get(console.page(path))
            one(browser, part)
            width, scroll = browser.execute_script(
                "return [window.innerWidth, document.documentElement.scrollWidth];"
            )
            if name:
                screenshot(browser, name)
            # The page sets its viewport to the device's width, and nothing
            # makes the whole page scroll sideways (a wide table may scroll
            # in its own box).
            assert width == PHONE[0], f"{path} is laid out {width}px wide on a {PHONE[0]}px phone"
            assert scroll <= PHONE[0], f"{path} is {scroll}px wide on a {PHONE[0]}px phone"


# --------------------------------------------------------------------------
# A resync from the source page
# --------------------------------------------------------------------------


def test_a_resync_from_the_source_page_finishes_on_the_page_without_a_reload(
    browser: WebDriver, console: Console
) -> None:
    acme = console.shops["acme"]
    changed = changed_products(acme, 9, seed=31)
    sign_in(browser, console, console.users["ops"])
    source_page = "/console/clients/acme/sources/erp"
    browser.get(console.page(source_page))
    before = {
        r.get_attribute("data-run-id")
        for r in browser.find_elements(By.CSS_SELECTOR, "table#runs tr[data-run-id]")
    }
    assert str(latest_run(acme).id) in before

    # The worker is frozen while the button is pressed, so the page surely
    # first shows the run unfinished and must bring the end in by itself.
    worker = console.hub.workers[0]
    pause(worker)
    try:
        press(browser, "#resync-full-button")
        wait_until(browser, lambda: path_of(browser).startswith(source_page), "the source page")
        run_id = wait_until(browser, lambda: _new_run(browser, before), "the new run's row")
        assert cell(_run_row(browser, run_id), ".run-status") != "succeeded"
        mark = mark_page(browser)
    finally:
        resume(worker)
    run = wait_run(int(run_id))
    assert run.full, "the full resync's run reads incrementally"
    wait_until(
        browser,
        lambda: (
            cell(_run_row(browser, run_id), ".run-status") == "succeeded"
            and number(cell(_run_row(browser, run_id), ".count-fetched")) == run.fetched
        ),
        f"run {run_id} to show as finished",
        timeout=20,
    )
    assert still_marked(browser, mark), "the source page reloaded instead of polling"
    row = _run_row(browser, run_id)
    shown = {name: number(cell(row, f".count-{name}")) for name in COUNTS}
    assert shown == {name: getattr(run, name) for name in COUNTS}
    assert shown["updated"] == changed and shown["created"] == 0
    # The CLI says the same of this run.
    listed = console.hub.run_cli("runs", "acme", "erp", "--json")
    assert listed.returncode == 0, listed.stderr
    by_id = {r["id"]: r for r in json.loads(listed.stdout)}
    assert {name: by_id[run.id][name] for name in COUNTS} == shown
    screenshot(browser, "source-runs.png")


def _run_row(driver: WebDriver, run_id: str) -> Any:
    return one(driver, f"table#runs tr[data-run-id='{run_id}']")


def _new_run(driver: WebDriver, before: set[str | None]) -> str | None:
    rows = driver.find_elements(By.CSS_SELECTOR, "table#runs tr[data-run-id]")
    fresh = [r.get_attribute("data-run-id") for r in rows]
    return next((r for r in fresh if r not in before), None)


def test_a_runs_quarantined_records_show_with_their_reasons(
    browser: WebDriver, console: Console
) -> None:
    acme = console.shops["acme"]
    with session_scope() as s:
        first = s.scalars(
            select(SyncRun).where(SyncRun.source_id == acme.source_id).order_by(SyncRun.id)
        ).first()
        assert first is not None
        held = {
            q.record_key: (q.field, q.message)
            for q in s.scalars(select(Quarantined).where(Quarantined.run_id == first.id))
        }
    # The seed's bad rows, worked out from the emulator's own generator.
    bad = sql_erp.summarize(sql_erp.generate_rows(PRODUCTS, acme.seed)).bad_skus
    assert bad and set(held) == {sku for sku, _ in bad}, (held, bad)

    sign_in(browser, console, console.users["ops"])
    browser.get(console.page("/console/clients/acme/sources/erp"))
    _run_row(browser, str(first.id)).find_element(By.CSS_SELECTOR, "a").click()
    wait_until(
        browser,
        lambda: path_of(browser) == f"/console/clients/acme/runs/{first.id}",
        "the run's page",
    )
    assert cell(browser, "#run .run-status") == "succeeded"
    assert {name: number(cell(browser, f"#run .count-{name}")) for name in COUNTS} == {
        name: getattr(first, name) for name in COUNTS
    }
    rows = browser.find_elements(By.CSS_SELECTOR, "table#quarantine tr[data-key]")
    shown = {r.get_attribute("data-key"): (cell(r, ".field"), cell(r, ".reason")) for r in rows}
    assert shown == held
    screenshot(browser, "run-quarantine.png")


# --------------------------------------------------------------------------
# Dead letters: replay and discard
# --------------------------------------------------------------------------


def dead_order(shop: Shop, sku: str) -> tuple[int, DeadLetter, str]:
    """An order for a SKU no source of the client has: a dead letter at once."""
    code = f"B{uuid.uuid4().hex[:8]}"
    result, errors = submit(shop.client_id, canonical(code, [sku], shipping=0))
    assert not errors and result is not None, errors
    order_id = result.order.id

    def letter() -> DeadLetter | None:
        with session_scope() as s:
            return s.scalars(select(DeadLetter).where(DeadLetter.order_id == order_id)).first()

    found = wait_for(letter, timeout=60, what=f"order {order_id} ({sku}) to be dead-lettered")
    assert found.error_class == "unknown_sku", found.message
    return order_id, found, code


def erp_orders(erp_url: str, code: str) -> list[int]:
    """The ERP's document ids staged under a channel order code."""
    engine = create_engine(erp_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id FROM s2s_order WHERE channel_order_code = :c"), {"c": code}
            ).all()
    finally:
        engine.dispose()
    return [int(r[0]) for r in rows]


def open_letter(driver: WebDriver, console: Console, client: str, letter_id: int) -> None:
    """From the client's dead letters list, follow the letter's link."""
    driver.get(console.page(f"/console/clients/{client}/dead-letters"))
    row = one(driver, f"table#dead-letters tr[data-letter-id='{letter_id}']")
    assert cell(row, ".status") == "open"
    row.find_element(By.CSS_SELECTOR, "a").click()
    wait_until(
        driver,
        lambda: path_of(driver) == f"/console/clients/{client}/dead-letters/{letter_id}",
        f"dead letter {letter_id}'s page",
    )


def test_replay_a_dead_letter_and_see_the_order_raised(
    browser: WebDriver, console: Console
) -> None:
    acme = console.shops["acme"]
    sku = f"NEW-{uuid.uuid4().hex[:6].upper()}"
    order_id, letter, code = dead_order(acme, sku)
    sign_in(browser, console, console.users["ops"])
    open_letter(browser, console, "acme", letter.id)
    assert cell(browser, "#letter .status") == "open"
    assert sku in cell(browser, "#letter .reason")
    screenshot(browser, "dead-letter.png")

    # The cause: the ERP did not know the stock item. It is entered there and
    # synced; the letter's replay then raises the order.
    add_erp_product(acme.erp_url, sku, "Kettle from the dead letter", qty=12, price="149.00")
    wait_run(start_sync(acme.source_id, "products", requested_by="test").run.id)
    press(browser, "#replay-button")
    wait_until(browser, lambda: cell(browser, "#flash"), "the replay's message")
    assert path_of(browser) == f"/console/clients/acme/dead-letters/{letter.id}"
    assert cell(browser, "#letter .status") == "replayed"

    def raised() -> Order | None:
        with session_scope() as s:
            order = s.get(Order, order_id)
            return order if order is not None and order.status == "raised" else None

    order = wait_for(raised, timeout=60, what=f"order {order_id} to be raised")
    browser.get(console.page(f"/console/clients/acme/orders/{order_id}"))
    assert cell(browser, "#order .state") == "raised"
    assert cell(browser, "#order .erp-document") == order.document_number
    assert erp_orders(acme.erp_url, code) == [int(order.document_number or 0)]
    history = [c.text.strip() for c in browser.find_elements(By.CSS_SELECTOR, "table#history td")]
    assert "dead" in history and "raised" in history, history

    browser.get(console.page("/console/clients/acme/orders"))
    row = one(browser, f"table#orders tr[data-order-id='{order_id}']")
    assert cell(row, ".reference") == code or code in cell(row, ".reference")
    assert (cell(row, ".state"), cell(row, ".erp-document")) == ("raised", order.document_number)
    # The replayed letter is resolved: the overview counts none open for acme.
    browser.get(console.page("/console/"))
    items = browser.find_elements(By.CSS_SELECTOR, "ul#open-letters li[data-client='acme']")
    assert not items or number(re.findall(r"\d+", items[0].text)[-1]) == _open_letters(acme)


def _open_letters(shop: Shop) -> int:
    with session_scope() as s:
        return len(
            s.scalars(
                select(DeadLetter.id).where(
                    DeadLetter.client_id == shop.client_id, DeadLetter.status == "open"
                )
            ).all()
        )


def test_discard_a_dead_letter_with_a_reason(browser: WebDriver, console: Console) -> None:
    acme = console.shops["acme"]
    order_id, letter, code = dead_order(acme, "NO-SUCH-THING")
    sign_in(browser, console, console.users["ops"])
    open_letter(browser, console, "acme", letter.id)
    reason = one(browser, "form#discard textarea[name='reason']")
    assert reason.get_attribute("required") is not None
    words = f"customer cancelled by phone ({code})"
    reason.send_keys(words)
    press(browser, "#discard-button")
    wait_until(browser, lambda: cell(browser, "#flash"), "the discard's message")
    assert cell(browser, "#letter .status") == "discarded"
    assert words in body_text(browser)
    with session_scope() as s:
        row = s.get(DeadLetter, letter.id)
        order = s.get(Order, order_id)
        assert row is not None and row.status == "discarded"
        # The reason as typed (the console may add who discarded it).
        assert row.resolution is not None and row.resolution.startswith(words), row.resolution
        assert order is not None and order.status == "discarded"
    assert erp_orders(acme.erp_url, code) == []
    browser.get(console.page("/console/clients/acme/dead-letters"))
    listed = browser.find_elements(By.CSS_SELECTOR, f"tr[data-letter-id='{letter.id}']")
    # Listed with its status and reason, or (listing open ones only) gone.
    assert not listed or cell(listed[0], ".status") == "discarded"


# --------------------------------------------------------------------------
# One client's user and another client's data
# --------------------------------------------------------------------------


def test_a_client_user_cannot_open_or_change_another_clients_pages(
    browser: WebDriver, console: Console
) -> None:
    acme, globex = console.shops["acme"], console.shops["globex"]
    g_order, g_letter, g_code = dead_order(globex, "GLOBEX-SECRET-SKU")
    a_order, a_letter, _ = dead_order(acme, "ACME-OWN-SKU")
    g_run = latest_run(globex).id
    sign_in(browser, console, console.users["acme-user"])

    # The overview holds acme only.
    browser.get(console.page("/console/"))
    one(browser, "table#overview tr[data-client='acme']")
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-client='globex']")
    assert "globex" not in body_text(browser).lower()

    missing = _not_found_page(browser, console, "/console/clients/no-such-client/orders")
    for path in (
        "/console/clients/globex/sources/erp",
        f"/console/clients/globex/runs/{g_run}",
        "/console/clients/globex/orders",
        f"/console/clients/globex/orders/{g_order}",
        "/console/clients/globex/dead-letters",
        f"/console/clients/globex/dead-letters/{g_letter.id}",
        # Their ids under one's own client's name are not one's own either.
        f"/console/clients/acme/orders/{g_order}",
        f"/console/clients/acme/dead-letters/{g_letter.id}",
        f"/console/clients/acme/runs/{g_run}",
    ):
        shown = _not_found_page(browser, console, path)
        assert shown == missing, (path, shown, missing)
        for secret in (g_code, "GLOBEX-SECRET-SKU", g_letter.message):
            assert secret not in browser.page_source, (path, secret)

    # Posting to globex's forms, with acme-user's own valid CSRF token:
    # refused, and nothing changes.
    browser.get(console.page(f"/console/clients/acme/dead-letters/{a_letter.id}"))
    replay_action, replay_fields = form_fields(browser, "form#replay")
    discard_action, discard_fields = form_fields(browser, "form#discard")
    discard_fields["reason"] = "not yours to discard"
    browser.get(console.page("/console/clients/acme/sources/erp"))
    resync_action, resync_fields = form_fields(browser, "form#resync-full")
    pause_action, pause_fields = form_fields(browser, "form#pause")
    runs_before = _run_ids(globex)
    for action, fields in (
        (replay_action, replay_fields),
        (discard_action, discard_fields),
        (resync_action, resync_fields),
        (pause_action, pause_fields),
    ):
        mixed = re.sub(
            rf"/dead-letters/{a_letter.id}(?=/|$)", f"/dead-letters/{g_letter.id}", action
        )
        theirs = mixed.replace("/clients/acme/", "/clients/globex/")
        for target in {theirs, mixed} - {action}:
            status, _ = fetch(browser, "POST", target, fields)
            assert status == 404, (target, status)
    with session_scope() as s:
        letter = s.get(DeadLetter, g_letter.id)
        assert letter is not None and (letter.status, letter.resolution) == ("open", None)
        assert s.get(Order, g_order).status == "dead"  # type: ignore[union-attr]
        assert not any(
            s.scalars(select(SourceStream.paused).where(SourceStream.source_id == globex.source_id))
        )
    assert _run_ids(globex) == runs_before
    # The same token and forms do work on acme's own letter: the refusals
    # above were about whose data it is.
    assert fetch(browser, "POST", discard_action, discard_fields)[0] == 303
    with session_scope() as s:
        assert s.get(DeadLetter, a_letter.id).status == "discarded"  # type: ignore[union-attr]
        assert s.get(Order, a_order).status == "discarded"  # type: ignore[union-attr]


def _not_found_page(browser: WebDriver, console: Console, path: str) -> str:
    """Open ``path``; it must answer 404 with a not-found page. Returns its heading."""
    status, _ = fetch(browser, "GET", path)
    assert status == 404, (path, status)
    browser.get(console.page(path))
    text_now = body_text(browser)
    assert re.search(r"not found", text_now, re.I), (path, text_now[:500])
    headings = browser.find_elements(By.CSS_SELECTOR, "h1")
    return headings[0].text.strip() if headings else ""


def _run_ids(shop: Shop) -> list[int]:
    with session_scope() as s:
        return list(s.scalars(select(SyncRun.id).where(SyncRun.source_id == shop.source_id)))


# --------------------------------------------------------------------------
# CSRF
# --------------------------------------------------------------------------


def test_a_form_posted_without_its_csrf_token_is_refused(
    browser: WebDriver, console: Console
) -> None:
    acme = console.shops["acme"]
    sign_in(browser, console, console.users["ops"])
    source_page = console.page("/console/clients/acme/sources/erp")
    browser.get(source_page)
    action, fields = form_fields(browser, "form#pause")
    assert fields.get("csrf_token"), fields

    # The page's own form, its hidden token removed, submitted by its button.
    browser.execute_script(
        "document.querySelector(\"form#pause input[name='csrf_token']\").remove();"
    )
    press(browser, "#pause-button")
    wait_until(browser, lambda: "CSRF" in body_text(browser), "the CSRF refusal")
    # The same by fetch, to see the status; and a token not of this session.
    without = {k: v for k, v in fields.items() if k != "csrf_token"}
    assert fetch(browser, "POST", action, without)[0] == 403
    forged = {**fields, "csrf_token": fields["csrf_token"][::-1]}
    status, body = fetch(browser, "POST", action, forged)
    assert status == 403 and "CSRF" in body, (status, body[:300])
    assert not _paused(acme)

    # With its token the same form works: the refusals were the token's.
    browser.get(source_page)
    press(browser, "#pause-button")
    wait_until(browser, lambda: _paused(acme), "acme/erp to be paused")
    browser.get(source_page)
    press(browser, "#resume-button")
    wait_until(browser, lambda: not _paused(acme), "acme/erp to be resumed")


def _paused(shop: Shop) -> bool:
    with session_scope() as s:
        flags = s.scalars(
            select(SourceStream.paused).where(
                SourceStream.source_id == shop.source_id, SourceStream.stream == "products"
            )
        ).all()
    return any(flags)
