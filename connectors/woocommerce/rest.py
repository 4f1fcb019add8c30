"""Speaking to one store's WooCommerce REST API v3 (``{store_url}/wp-json/wc/v3``):
one HTTP call per request, the failures read as the hub's typed errors.

WooCommerce answers a refusal as ``{"code", "message", "data": {"status"}}``
and localizes the message, so everything here decides on ``code`` and the
HTTP status, and keeps the message only to show it. Failures of a whole call
are raised: bad keys and a wrong address as ``SettingsError`` (naming
``consumer_key``/``consumer_secret`` or ``store_url``), 429 and 5xx as
``TransientError`` with the Retry-After the store gave. A refusal of one
resource (a product already trashed, an id the store no longer has) is
handed back when the caller said it knows that code.

The keys travel as HTTP Basic on each request, never in a URL (URLs end up
in server logs), and never to another host: a ``Link`` to follow must point
under the store's own API. Every message leaving here passes through the
connector's scrubber.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.base import ConnectorError, PermanentError, SettingsError, TransientError
from connectors.http import (
    client,
    retry_seconds,
    short,
    store_transport_rules,
    transport_failure,
)

log = logging.getLogger(__name__)

API_PATH = "/wp-json/wc/v3"
# WordPress core refuses a larger per_page (rest_invalid_param).
PER_PAGE = 100
# Pages read for one list before the answer is taken as endless.
MAX_PAGES = 200
# A 429 asking for at most this many seconds is waited out, up to WAITS
# times per call; a longer one is handed back to the hub (retry_after).
MAX_WAIT = 5.0
WAITS = 3

KEYS = "consumer_key/consumer_secret"
# Codes that say the keys are wrong or may not do this (B1, B5); an unknown
# key over HTTPS runs anonymously and meets a cannot_* code.
AUTH_CODES = re.compile(
    r"^woocommerce_rest_(authentication_error|authentication_missing_parameter|cannot_\w+)$"
)

# First match wins (see connectors.http.TransportRule); worded for a channel.
RULES = store_transport_rules(
    "WooCommerce", "the store may have saved it; the hub looks the products up before sending again"
)


class AnswerLost(TransientError):
    """A write was sent and no answer came back: the store may have saved it.

    The caller resolves this by looking the products up by SKU and sending
    again as updates, so a lost answer never makes a second product.
    """


@dataclass(frozen=True)
class Answer:
    """An answer worth reading: 2xx, or a refusal whose code the caller handles."""

    status: int
    body: Any
    headers: httpx.Headers
    links: Mapping[str, Mapping[str, str]]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def code(self) -> str:
        return str(self.body.get("code") or "") if isinstance(self.body, Mapping) else ""


def said(error: Any) -> str:
    """WooCommerce's refusal as ``code: message`` (its own words, one line)."""
    if not isinstance(error, Mapping):
        return short(str(error)) if error else ""
    code = str(error.get("code") or "").strip()
    message = short(str(error.get("message") or "").strip())
    return ": ".join(part for part in (code, message) if part)


def error_status(error: Any) -> int | None:
    """The HTTP status an error item carries in ``data.status``."""
    data = error.get("data") if isinstance(error, Mapping) else None
    status = data.get("status") if isinstance(data, Mapping) else None
    try:
        return int(status) if status is not None else None
    except (TypeError, ValueError):
        return None


class StoreApi:
    """One store's REST API v3, authenticated with one REST API key."""

    def __init__(
        self,
        store_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        timeout: float,
        scrub: Callable[[str], str],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store_url = store_url.rstrip("/")
        self._sleep = sleep
        self.waited = 0.0
        self.base = f"{self.store_url}{API_PATH}"
        self._auth = httpx.BasicAuth(consumer_key, consumer_secret)
        self._scrub = scrub
        self.http = client(timeout)
        self.requests = 0

    def __repr__(self) -> str:
        return f"StoreApi({self.base!r})"

    def close(self) -> None:
        self.http.close()

    # ---- calls -------------------------------------------------------------

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        what: str,
        handled: Collection[str] = (),
    ) -> Answer:
        return self._send("GET", self.base + path, params, None, what=what, handled=handled)

    def get_all(
        self, path: str, params: Mapping[str, Any] | None = None, *, what: str
    ) -> list[dict[str, Any]]:
        """Every item of a list, page after page by the ``Link`` header (B2)."""
        query = {"per_page": PER_PAGE, **(params or {})}
        answer = self.get(path, query, what=what)
        items = _items(answer.body)
        for _ in range(MAX_PAGES):
            after = answer.links.get("next", {}).get("url")
            if not after:
                return items
            if not str(after).startswith(self.base + "/"):
                raise PermanentError(
                    self._scrub(
                        f"the WooCommerce store {self.store_url} sent a next page"
                        f" outside its API while {what}: {short(str(after), 120)}"
                    )
                )
            answer = self._send("GET", str(after), None, None, what=what)
            items += _items(answer.body)
        raise PermanentError(
            self._scrub(
                f"the WooCommerce store {self.store_url} listed more than"
                f" {MAX_PAGES} pages while {what}"
            )
        )

    def post(self, path: str, body: Mapping[str, Any], *, what: str) -> Answer:
        return self._send("POST", self.base + path, None, body, what=what, submitting=True)

    def delete(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        what: str,
        handled: Collection[str] = (),
    ) -> Answer:
        return self._send(
            "DELETE", self.base + path, params, None, what=what, submitting=True, handled=handled
        )

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        *,
        what: str,
        submitting: bool = False,
        handled: Collection[str] = (),
    ) -> Answer:
        response = self._request(method, url, params, body, what, submitting)
        for _ in range(WAITS):
            wait = retry_seconds(response.headers.get("retry-after"))
            if response.status_code != 429 or wait is None or wait > MAX_WAIT:
                break
            # A 429 comes from the host, a CDN or a plugin (core has no limiter,
            # B5) and means the call was not run: a short wait is waited out.
            log.info("woocommerce: HTTP 429 while %s; waiting %.1f s", what, wait)
            self.waited += wait
            self._sleep(wait)
            response = self._request(method, url, params, body, what, submitting)
        return self._answer(response, what, handled)

    def _request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        what: str,
        submitting: bool,
    ) -> httpx.Response:
        self.requests += 1
        try:
            response = self.http.request(
                method,
                url,
                params=dict(params) if params else None,
                json=dict(body) if body is not None else None,
                auth=self._auth,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            failure = transport_failure(
                exc,
                where=self.store_url,
                what=what,
                submitting=submitting,
                url_setting="store_url",
                erp="WooCommerce",
                rules=RULES,
            )
            kind = AnswerLost if failure.unknown_outcome else failure.kind
            raise kind(self._scrub(failure.message), hint=self._scrub(failure.hint)) from None
        return response

    # ---- reading answers ---------------------------------------------------

    def _answer(self, response: httpx.Response, what: str, handled: Collection[str]) -> Answer:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        links = {str(k): dict(v) for k, v in response.links.items()}
        answer = Answer(status, body, response.headers, links)
        if answer.ok and body is not None:
            return answer
        if answer.code and answer.code in handled:
            return answer
        raise self._failure(response, answer, what)

    def _failure(self, response: httpx.Response, answer: Answer, what: str) -> ConnectorError:
        status, code, where = answer.status, answer.code, self.store_url
        words = said(answer.body) if code else short(response.text, 160)
        words = self._scrub(words or response.reason_phrase or "no answer")
        if answer.ok:
            return TransientError(
                f"the WooCommerce store {where} answered {what} with no JSON (HTTP {status})",
                hint="the hub will try again",
            )
        if status in (401, 403) or AUTH_CODES.match(code):
            return SettingsError(
                f"the WooCommerce store {where} refused {KEYS} while {what}"
                f" (HTTP {status}: {words})",
                hint="check consumer_key and consumer_secret: a REST API key with Read/Write"
                " permissions (WooCommerce > Settings > Advanced > REST API)",
            )
        if 300 <= status < 400:
            target = self._scrub(response.headers.get("location", "elsewhere"))
            return SettingsError(
                f"store_url {where} redirects to {target} (HTTP {status})",
                hint="set store_url to the site's address (https://...) the redirect names",
            )
        if status == 429 or status >= 500:
            return TransientError(
                f"the WooCommerce store {where} answered {what} with HTTP {status}: {words}",
                hint="the hub will try again",
                retry_after=retry_seconds(response.headers.get("retry-after")),
            )
        if status == 404 and code in ("", "rest_no_route"):
            return SettingsError(
                f"store_url {where}: no WooCommerce REST API v3 at {API_PATH} (HTTP 404: {words})",
                hint="check store_url, that WooCommerce is active and that the site uses"
                " pretty permalinks",
            )
        return PermanentError(
            f"the WooCommerce store {where} refused {what} (HTTP {status}: {words})"
        )


def _items(body: Any) -> list[dict[str, Any]]:
    return [x for x in body if isinstance(x, dict)] if isinstance(body, list) else []


def total(answer: Answer) -> int | None:
    """``X-WP-Total`` of a list answer, when the store sent it."""
    value = answer.headers.get("x-wp-total")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def log_requests(api: StoreApi, listings: int, refused: int) -> None:
    log.info(
        "woocommerce: %d listings, %d refused; %d requests so far", listings, refused, api.requests
    )
