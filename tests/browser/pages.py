"""What the browser tests do with a console page: sign in, read cells, wait
for a cell to change, and send requests with the browser's own cookies.

Waits poll the page as it is (never reload), so a value that appears was put
there by the page's own script.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.browser.conftest import Console, User

WAIT = 60.0


def path_of(driver: WebDriver) -> str:
    """The current page's path and query, without scheme and host."""
    parts = urlsplit(driver.current_url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def one(driver: WebDriver | WebElement, css: str) -> WebElement:
    """The element ``css`` names; its absence is an assertion naming the page."""
    try:
        return driver.find_element(By.CSS_SELECTOR, css)
    except NoSuchElementException:
        page = driver if isinstance(driver, WebDriver) else driver.parent
        raise AssertionError(
            f"no {css!r} on {page.current_url}:\n{body_text(page)[:2000]}"
        ) from None


def body_text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def cell(driver: WebDriver | WebElement, css: str) -> str:
    return str(one(driver, css).text).strip()


def number(text: str) -> int:
    """A count as the page writes it ("1,500" or "1 500" included)."""
    digits = re.sub(r"[,\s\u00a0\u202f]", "", text)
    assert digits.isdigit(), f"{text!r} is not a count"
    return int(digits)


def wait_until(
    driver: WebDriver, check: Callable[[], Any], what: str, timeout: float = WAIT
) -> Any:
    """Poll ``check`` against the page as it stands until it gives a true value."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (WebDriverException, AssertionError) as exc:  # not there yet, or replaced
            last = exc
        time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what} on {driver.current_url}"
        f" (last: {last!r}):\n{body_text(driver)[:2000]}"
    )


def press(driver: WebDriver, css: str) -> None:
    """Click a form's button and wait for the page its answer brings.

    The old page is gone (the mark left in its window with it) and the new
    one loaded before this returns, so what a test reads next is the
    answer's, not what the old page showed.
    """
    mark = mark_page(driver)
    one(driver, css).click()

    def replaced() -> bool:
        try:
            return not still_marked(driver, mark) and bool(
                driver.execute_script("return document.readyState === 'complete';")
            )
        except WebDriverException:  # asked in the middle of the navigation
            return False

    wait_until(driver, replaced, f"the page after pressing {css}")


def submit_sign_in(driver: WebDriver, username: str, password: str) -> None:
    """Type into the sign-in form and press its button, as a person would."""
    form = one(driver, "form#sign-in-form")
    for name, value in (("username", username), ("password", password)):
        field = one(form, f"input[name='{name}']")
        field.clear()
        field.send_keys(value)
    press(driver, "form#sign-in-form #sign-in")


def sign_in(driver: WebDriver, console: Console, user: User) -> None:
    """A fresh session for ``user``, signed in through the form."""
    driver.delete_all_cookies()
    driver.get(console.page("/console/login"))
    submit_sign_in(driver, user.username, user.password)
    wait_until(driver, lambda: driver.find_elements(By.ID, "whoami"), "the signed-in page")
    assert user.username in cell(driver, "#whoami"), body_text(driver)[:500]


_FETCH = """
const [method, url, fields, done] = arguments;
const init = {method, credentials: 'same-origin', redirect: 'manual'};
if (fields !== null) init.body = new URLSearchParams(fields);
fetch(url, init)
  .then(async r => done([r.status, r.type, await r.text()]))
  .catch(e => done([-1, 'error', String(e)]));
"""


def fetch(
    driver: WebDriver, method: str, path: str, fields: dict[str, str] | None = None
) -> tuple[int, str]:
    """A request from the page with the browser's cookies: (status, body).

    Redirects are not followed: a 303 shows as status 0 ("opaqueredirect"),
    as the fetch standard has it; that is returned as 303.
    """
    status, kind, body = driver.execute_async_script(_FETCH, method, path, fields)
    if kind == "opaqueredirect":
        return 303, ""
    assert status >= 0, f"{method} {path} failed in the browser: {body}"
    return int(status), str(body)


def form_fields(driver: WebDriver, form_css: str) -> tuple[str, dict[str, str]]:
    """A form's action (a path) and its named fields' values, hidden ones included."""
    form = one(driver, form_css)
    action = form.get_attribute("action") or driver.current_url
    fields: dict[str, str] = {}
    for element in form.find_elements(By.CSS_SELECTOR, "input[name], textarea[name]"):
        fields[str(element.get_attribute("name"))] = str(element.get_attribute("value") or "")
    return urlsplit(action).path, fields


def mark_page(driver: WebDriver) -> str:
    """Leave a mark in the page's window: gone if the page reloads."""
    token = f"mark-{time.monotonic_ns()}"
    driver.execute_script("window.__s2sMark = arguments[0];", token)
    return token


def still_marked(driver: WebDriver, token: str) -> bool:
    return bool(driver.execute_script("return window.__s2sMark === arguments[0];", token))
