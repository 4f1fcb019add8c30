"""Signing in to the console in headless Chromium: the form, its errors, the
way back to the page asked for, signing out, and the limit on attempts.

A module of its own: failed sign-ins are counted per client address, and
once this module's tests have used up the limit every sign-in from
127.0.0.1 waits, which would stall any other test sharing its hub.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from hub import users
from hub.db import session_scope
from hub.models import utcnow
from tests.browser.conftest import Console, screenshot
from tests.browser.pages import (
    body_text,
    cell,
    fetch,
    form_fields,
    one,
    path_of,
    press,
    sign_in,
    submit_sign_in,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

# Room for the failures the first test makes on purpose (two).
LIMIT = 4
HUB_ENV = {"S2S_CONSOLE_LOGIN_LIMIT": str(LIMIT)}
CLIENTS = (("acme", 5),)


def _signed_out(browser: WebDriver, console: Console) -> bool:
    """No session: a console page sends the browser to the sign-in form."""
    browser.get(console.page("/console/"))
    return path_of(browser).startswith("/console/login")


def test_sign_in_goes_back_to_the_page_asked_for_and_sign_out_ends_it(
    browser: WebDriver, console: Console
) -> None:
    ops = console.users["ops"]
    browser.delete_all_cookies()
    browser.get(console.page("/console/clients/acme/orders"))
    assert path_of(browser).startswith("/console/login?next="), path_of(browser)

    # A wrong password: the form again, with the sentence, and no session.
    submit_sign_in(browser, ops.username, ops.password + "x")
    wait_until(browser, lambda: cell(browser, "#error"), "the sign-in error")
    assert cell(browser, "#error") == "Wrong username or password."
    assert path_of(browser).startswith("/console/login")
    # An unknown user gets the very same sentence.
    submit_sign_in(browser, "nobody-here", ops.password)
    wait_until(browser, lambda: cell(browser, "#error"), "the sign-in error")
    assert cell(browser, "#error") == "Wrong username or password."
    assert one(browser, "input[name='password']").get_attribute("value") == ""
    screenshot(browser, "sign-in-error.png")

    browser.get(console.page("/console/clients/acme/orders"))
    submit_sign_in(browser, ops.username, ops.password)
    wait_until(
        browser, lambda: path_of(browser) == "/console/clients/acme/orders", "the page asked for"
    )
    one(browser, "table#orders")
    assert ops.username in cell(browser, "#whoami")

    press(browser, "form#sign-out-form button, form#sign-out-form [type='submit']")
    wait_until(browser, lambda: path_of(browser).startswith("/console/login"), "the sign-in form")
    assert _signed_out(browser, console)


def test_sign_in_never_sends_the_browser_off_the_console(
    browser: WebDriver, console: Console
) -> None:
    ops = console.users["ops"]
    for target in ("https://evil.example/", "//evil.example/console/", "/\\evil.example/"):
        browser.delete_all_cookies()
        browser.get(console.page(f"/console/login?next={target}"))
        submit_sign_in(browser, ops.username, ops.password)
        wait_until(browser, lambda: browser.find_elements("id", "whoami"), "a console page")
        assert browser.current_url.startswith(console.url + "/console"), (
            target,
            browser.current_url,
        )


def test_the_sign_in_form_without_its_csrf_token_is_refused(
    browser: WebDriver, console: Console
) -> None:
    ops = console.users["ops"]
    browser.delete_all_cookies()
    browser.get(console.page("/console/login"))
    action, fields = form_fields(browser, "form#sign-in-form")
    assert fields.get("csrf_token"), fields
    fields.update(username=ops.username, password=ops.password)
    without = {k: v for k, v in fields.items() if k != "csrf_token"}
    status, body = fetch(browser, "POST", action, without)
    assert status == 403 and "CSRF" in body, (status, body[:300])
    browser.execute_script(
        "document.querySelector(\"form#sign-in-form input[name='csrf_token']\").remove();"
    )
    submit_sign_in(browser, ops.username, ops.password)
    wait_until(browser, lambda: "CSRF" in body_text(browser), "the CSRF refusal")
    assert _signed_out(browser, console)
    # With the token, the same credentials open the console.
    sign_in(browser, console, ops)


_POST_FOR_HEADERS = """
const [url, fields, done] = arguments;
fetch(url, {method: 'POST', body: new URLSearchParams(fields), credentials: 'same-origin',
            redirect: 'manual'})
  .then(r => done([r.status, r.headers.get('Retry-After')]))
  .catch(e => done([-1, String(e)]));
"""


def test_sign_in_attempts_are_limited(browser: WebDriver, console: Console) -> None:
    ops = console.users["ops"]
    browser.delete_all_cookies()
    browser.get(console.page("/console/login"))
    # Earlier tests here spent some of this address's attempts on purpose.
    with session_scope() as s:
        spent = users.failures(s, "ip:127.0.0.1", utcnow() - timedelta(minutes=1))
    assert spent < LIMIT, spent
    # Failures under another name each time, all from this browser's address:
    # the form answers each until the limit is reached.
    wrong = "Wrong username or password."
    for attempt in range(LIMIT - spent):
        submit_sign_in(browser, f"guess-{attempt}", "not-the-password")
        wait_until(browser, lambda: cell(browser, "#error"), "the sign-in error")
        assert cell(browser, "#error") == wrong, (attempt, spent)

    # Now even the right password is turned away, saying when to try again.
    submit_sign_in(browser, ops.username, ops.password)
    wait_until(browser, lambda: cell(browser, "#error"), "the limit's message")
    message = cell(browser, "#error")
    assert message != wrong, message
    assert re.search(r"\d+ ?s|second|minute", message, re.I), message
    screenshot(browser, "sign-in-limited.png")
    action, fields = form_fields(browser, "form#sign-in-form")
    fields.update(username=ops.username, password=ops.password)
    status, retry_after = browser.execute_async_script(_POST_FOR_HEADERS, action, fields)
    assert status == 429, status
    assert retry_after is not None and 0 < int(retry_after) <= 60, retry_after
    assert _signed_out(browser, console)
