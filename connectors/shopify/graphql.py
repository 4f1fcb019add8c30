"""Speaking to one store's Admin GraphQL endpoint: one POST per operation,
the failures read as the hub's typed errors, and the calculated-cost bucket
respected before Shopify has to refuse anything.

Shopify limits an app per store with a leaky bucket of cost points, and
reports its state (``extensions.cost.throttleStatus``) on every answer. A
client that only reacts to ``THROTTLED`` sends a refused request every time
the bucket runs dry; this one keeps an estimate (the last state seen, refilled
at the restore rate since) and, before each call, sleeps until the bucket
should hold what that call cost last time. A ``THROTTLED`` answer can still
come (another worker shares the bucket): it is waited out once, for exactly
as long as the answer says, and then the call is sent again.

The access token travels in a header of each GraphQL request only, never as
a default of the HTTP client (the staged uploads go to another host), and
every message leaving here passes through the connector's scrubber.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
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

# What a call not seen before is assumed to cost: productSet's flat price
# before 2025-10, more than any query here asks for.
DEFAULT_COST = 50.0
# The documented backoff, for a THROTTLED answer that does not say why.
THROTTLE_FALLBACK_WAIT = 1.0
# A wait longer than this is handed back to the hub (TransientError with
# retry_after) instead of holding a worker.
MAX_WAIT = 60.0
# THROTTLED answers in a row for one call before giving it back to the hub.
MAX_THROTTLED = 4
# Times a mutation safe to repeat is sent again after its answer was lost.
RESENDS = 2

_TOKEN_WORDS = re.compile(r"invalid api key or access token", re.IGNORECASE)

# First match wins (see connectors.http.TransportRule); worded for a channel.
RULES = store_transport_rules(
    "Shopify", "the store may have made the change; sending it again is safe"
)


class AnswerLost(TransientError):
    """A mutation was sent and no answer came back: it may have taken effect.

    Every write here is an upsert by the product's key or sets absolute
    quantities, so the caller resolves this by sending the same thing again.
    """


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class CostLimiter:
    """The client's estimate of the store's cost bucket, from the answers seen.

    ``costs`` keeps the last requested cost per kind of call; the bucket's
    level is the last ``currentlyAvailable`` plus what ``restoreRate`` has
    refilled since, up to ``maximumAvailable``.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.maximum: float | None = None
        self.available = 0.0
        self.rate = 0.0
        self.seen_at = 0.0
        self.costs: dict[str, float] = {}

    def observe(self, kind: str, cost: Any) -> None:
        if not isinstance(cost, Mapping):
            return
        requested = _number(cost.get("requestedQueryCost"))
        if requested is not None:
            self.costs[kind] = requested
        status = cost.get("throttleStatus")
        if not isinstance(status, Mapping):
            return
        maximum = _number(status.get("maximumAvailable"))
        available = _number(status.get("currentlyAvailable"))
        rate = _number(status.get("restoreRate"))
        if maximum is None or available is None or rate is None:
            return
        self.maximum, self.available, self.rate = maximum, available, rate
        self.seen_at = self._clock()

    def level(self) -> float | None:
        """The points the bucket should hold now; None before any answer."""
        if self.maximum is None:
            return None
        refilled = self.available + self.rate * max(0.0, self._clock() - self.seen_at)
        return min(self.maximum, refilled)

    def wait_before(self, kind: str) -> float:
        """Seconds to wait so that the bucket holds what ``kind`` cost last time."""
        level = self.level()
        if level is None or self.maximum is None or self.rate <= 0:
            return 0.0
        expected = min(self.costs.get(kind, DEFAULT_COST), self.maximum)
        return max(0.0, (expected - level) / self.rate)

    def throttled_wait(self, cost: Any) -> float:
        """How long a THROTTLED answer asks to wait: (requested − available) / rate."""
        cost = cost if isinstance(cost, Mapping) else {}
        status = cost.get("throttleStatus")
        status = status if isinstance(status, Mapping) else {}
        requested = _number(cost.get("requestedQueryCost"))
        available = _number(status.get("currentlyAvailable"))
        rate = _number(status.get("restoreRate"))
        if requested is None or available is None or not rate:
            return THROTTLE_FALLBACK_WAIT
        wait = (requested - available) / rate
        return wait if wait > 0 else THROTTLE_FALLBACK_WAIT


def _throttled(errors: Any) -> bool:
    return isinstance(errors, list) and any(
        isinstance(e, Mapping)
        and isinstance(e.get("extensions"), Mapping)
        and e["extensions"].get("code") == "THROTTLED"
        for e in errors
    )


def _error_words(errors: Any) -> str:
    """Shopify's top-level errors as one line (they are a list, or a bare string)."""
    if isinstance(errors, str):
        return short(errors)
    if isinstance(errors, Mapping):
        return short("; ".join(f"{k}: {v}" for k, v in errors.items()))
    if isinstance(errors, list):
        words = [str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors]
        return short("; ".join(words))
    return short(str(errors))


def _codes(errors: Any) -> set[str]:
    if not isinstance(errors, list):
        return set()
    return {
        str(e["extensions"].get("code"))
        for e in errors
        if isinstance(e, Mapping) and isinstance(e.get("extensions"), Mapping)
    }


class AdminApi:
    """One store's Admin GraphQL endpoint at one API version."""

    def __init__(
        self,
        store_url: str,
        api_version: str,
        token: str,
        *,
        timeout: float,
        scrub: Callable[[str], str],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store_url = store_url.rstrip("/")
        self.api_version = api_version
        self.url = f"{self.store_url}/admin/api/{api_version}/graphql.json"
        self._token = token
        self._scrub = scrub
        self._sleep = sleep
        self.limiter = CostLimiter(clock)
        self.http = client(timeout)
        self.requests = 0
        self.waited = 0.0

    def __repr__(self) -> str:
        return f"AdminApi({self.url!r})"

    def close(self) -> None:
        self.http.close()

    def wait(self, seconds: float, why: str) -> None:
        if seconds > MAX_WAIT:
            raise TransientError(
                f"the Shopify store {self.store_url} asks to wait {seconds:.0f} s ({why})",
                hint="the hub will try again later",
                retry_after=seconds,
            )
        if seconds > 0:
            log.info("shopify: waiting %.2f s (%s)", seconds, why)
            self.waited += seconds
            self._sleep(seconds)

    def run(
        self,
        name: str,
        document: str,
        variables: Mapping[str, Any] | None = None,
        *,
        mutation: bool = False,
        cost_kind: str | None = None,
    ) -> dict[str, Any]:
        """The ``data`` of one operation; ``name`` words errors, ``cost_kind``
        (default ``name``) groups calls of like cost for the bucket estimate."""
        kind = cost_kind or name
        throttled = 0
        while True:
            self.wait(self.limiter.wait_before(kind), f"cost bucket before {name}")
            body = self._post(name, document, variables, mutation)
            extensions = body.get("extensions")
            cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
            self.limiter.observe(kind, cost)
            errors = body.get("errors")
            if errors and _throttled(errors):
                throttled += 1
                wait = self.limiter.throttled_wait(cost)
                if throttled > MAX_THROTTLED:
                    raise TransientError(
                        f"the Shopify store {self.store_url} kept throttling {name}",
                        hint="the hub will try again later",
                        retry_after=wait,
                    )
                self.wait(wait, f"{name} was throttled")
                continue
            if errors:
                raise self._graphql_failure(name, errors)
            data = body.get("data")
            if not isinstance(data, dict):
                raise TransientError(
                    f"the Shopify store {self.store_url} answered {name} without data",
                    hint="the hub will try again",
                )
            return data

    def repeatable(
        self,
        name: str,
        document: str,
        variables: Mapping[str, Any],
        *,
        cost_kind: str | None = None,
    ) -> dict[str, Any]:
        """A mutation that may be sent again (an upsert, absolute quantities under
        one idempotency key): sent again when its answer is lost, so a dropped
        connection never leaves the outcome unknown, nor makes a second product."""
        for attempt in range(RESENDS + 1):
            try:
                return self.run(name, document, variables, mutation=True, cost_kind=cost_kind)
            except AnswerLost as exc:
                if attempt == RESENDS:
                    raise
                log.warning("shopify: %s; sending %s again", exc, name)
        raise AssertionError("unreachable")

    def _post(
        self, name: str, document: str, variables: Mapping[str, Any] | None, mutation: bool
    ) -> dict[str, Any]:
        headers = {"X-Shopify-Access-Token": self._token, "Accept": "application/json"}
        payload = {"query": document, "variables": dict(variables or {})}
        self.requests += 1
        try:
            response = self.http.post(self.url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            failure = transport_failure(
                exc,
                where=self.store_url,
                what=f"sending {name}",
                submitting=mutation,
                url_setting="store_url",
                erp="Shopify",
                rules=RULES,
            )
            kind = AnswerLost if failure.unknown_outcome else failure.kind
            raise kind(self._scrub(failure.message), hint=self._scrub(failure.hint)) from None
        return self._answer(name, response)

    def _answer(self, name: str, response: httpx.Response) -> dict[str, Any]:
        """The JSON body of an answer worth reading, or the failure its status says."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and (status < 300 or (status in (400, 429) and "errors" in body)):
            if status == 429 and not _throttled(body.get("errors")):
                raise self._status_failure(name, response, body)
            if _TOKEN_WORDS.search(_error_words(body.get("errors", ""))):
                raise self._status_failure(name, response, body)
            return body
        raise self._status_failure(name, response, body)

    def _status_failure(self, name: str, response: httpx.Response, body: Any) -> ConnectorError:
        status = response.status_code
        said = _error_words(body.get("errors", "")) if isinstance(body, dict) else ""
        said = said or short(response.text, 160) or response.reason_phrase
        where = self.store_url
        if status in (401, 403) or _TOKEN_WORDS.search(said):
            return SettingsError(
                self._scrub(
                    f"the Shopify store {where} refused access_token for {name}"
                    f" (HTTP {status}: {said})"
                ),
                hint="check access_token and its scopes (write_products, write_inventory,"
                " read_locations) in the channel's settings",
            )
        if 300 <= status < 400:
            target = response.headers.get("location", "elsewhere")
            return SettingsError(
                self._scrub(f"store_url {where} redirects to {target} (HTTP {status})"),
                hint="set store_url to the shop's https://<shop>.myshopify.com address",
            )
        if status in (404, 402, 423):
            return SettingsError(
                self._scrub(
                    f"store_url {where}: no Admin API for this shop (HTTP {status}: {said})"
                ),
                hint=f"check store_url and api_version {self.api_version}",
            )
        if status == 429 or status >= 500:
            return TransientError(
                self._scrub(
                    f"the Shopify store {where} answered {name} with HTTP {status}: {said}"
                ),
                hint="the hub will try again",
                retry_after=retry_seconds(response.headers.get("retry-after")),
            )
        return PermanentError(
            self._scrub(f"the Shopify store {where} refused {name} (HTTP {status}: {said})"),
        )

    def _graphql_failure(self, name: str, errors: Any) -> ConnectorError:
        codes = _codes(errors)
        said = self._scrub(_error_words(errors))
        if "ACCESS_DENIED" in codes:
            return SettingsError(
                f"access_token may not {name} in the Shopify store {self.store_url}: {said}",
                hint="give the app the scopes write_products, write_inventory and read_locations",
            )
        if codes & {"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"}:
            return TransientError(
                f"the Shopify store {self.store_url} failed {name}: {said}",
                hint="the hub will try again",
            )
        if "MAX_COST_EXCEEDED" in codes:
            return PermanentError(f"{name} asks too much of Shopify at once: {said}")
        return SettingsError(
            f"Shopify API {self.api_version} did not accept {name}: {said}",
            hint="check api_version (the connector needs 2025-04 or later)",
        )
