"""What the HTTP-speaking connectors (IQ Retail, iSync, SYSPRO e.net) share:
the ``HttpConnector`` base, reading a failed call's httpx error as settings,
transient or unknown-outcome (a table of rules), and the small helpers their
answers need.

The classification is the same for every ERP spoken to over HTTP, and it is
where exactly-once is decided: a failure before anything was sent is safe to
retry blindly, one after a document was sent leaves the outcome unknown, so
the hub asks the ERP before sending again. Keeping one copy keeps those rules
the same for every ERP.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from connectors.base import Connector, ConnectorError, SettingsError, TransientError

HOST = re.compile(
    r"name or service not known|nodename nor servname|no address associated|getaddrinfo failed"
    r"|no such host|name resolution",
    re.IGNORECASE,
)
_SEVENTH_DIGIT = re.compile(r"(\.\d{6})\d+")
_TLS = re.compile(r"certificate|ssl|tls", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """A classified transport failure, for the connector to word as its own error.

    ``unknown_outcome`` means a document may have reached the ERP: the
    connector raises its "may or may not have recorded it" error, with
    ``message`` saying what happened. ``retry_after``: the wait the ERP
    asked for, when it asked.
    """

    kind: type[ConnectorError]
    message: str
    hint: str
    unknown_outcome: bool = False
    retry_after: float | None = None


Seen = TypeVar("Seen")


@dataclass(frozen=True)
class AnswerRule(Generic[Seen]):
    """One row of an ERP's table for reading its error answers: when it
    applies to what was seen (an error entry, a fault), and the failure it
    is. ``message`` and ``hint`` are templates over the words the connector
    passes to :func:`first_failure`."""

    applies: Callable[[Seen], bool]
    kind: type[ConnectorError]
    message: str
    hint: str = ""
    unknown_outcome: bool = False


def first_failure(
    rules: Sequence[AnswerRule[Seen]], seen: Seen, words: Mapping[str, Any]
) -> Failure | None:
    """The failure of the first rule that applies to ``seen`` (None: no rule does)."""
    for rule in rules:
        if rule.applies(seen):
            return Failure(
                rule.kind,
                rule.message.format(**words),
                rule.hint.format(**words),
                rule.unknown_outcome,
            )
    return None


@dataclass(frozen=True)
class TransportRule:
    """One row of the classification table: which httpx errors it covers, an
    optional test of the error's text, and what the failure is.

    Messages and hints are templates over ``where`` (the ERP's address),
    ``what`` (what the call was doing), ``detail`` (the error's text),
    ``url_setting`` and ``erp``. ``submitting`` limits a row to calls that
    may have changed the ERP (True) or to calls that did not (False).
    """

    errors: tuple[type[Exception], ...]
    kind: type[ConnectorError]
    message: str
    hint: str
    matches: re.Pattern[str] | None = None
    submitting: bool | None = None
    unknown_outcome: bool = False
    # "Temporary failure in name resolution" is the resolver being down, not
    # a wrong name: a row that sets this does not apply to it.
    not_temporary: bool = False


_CHECK_URL = "check {url_setting} in the source's settings"

# First match wins. A failure before anything was sent (no connection) had
# no effect, so it is retried blindly whatever the call was; one after a
# submission was sent leaves the outcome unknown.
# Rows other ERPs' tables reuse (SYSPRO's words differ in the others).
UNKNOWN_HOST = TransportRule(
    (httpx.ConnectError,),
    SettingsError,
    "cannot find the server of {where}: {detail}",
    _CHECK_URL,
    matches=HOST,
    not_temporary=True,
)

# Nothing was sent: whatever the call was, it had no effect.
NOT_CONNECTED = TransportRule(
    (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout),
    TransientError,
    "could not connect to {where} while {what}: {detail}",
    "check that {erp} is running and reachable from the hub; the hub will try again",
)

NO_ANSWER_AFTER_SENDING = TransportRule(
    (httpx.TimeoutException,),
    TransientError,
    "{where} did not answer in time",
    "",
    submitting=True,
    unknown_outcome=True,
)


TRANSPORT_RULES: tuple[TransportRule, ...] = (
    TransportRule(
        (httpx.UnsupportedProtocol, httpx.InvalidURL),
        SettingsError,
        "cannot call {where}: {detail}",
        _CHECK_URL,
    ),
    UNKNOWN_HOST,
    TransportRule(
        (httpx.ConnectError,),
        SettingsError,
        "{where} has a TLS certificate the hub does not trust: {detail}",
        "check {url_setting} (http or https) and the server's certificate",
        matches=_TLS,
    ),
    NOT_CONNECTED,
    NO_ANSWER_AFTER_SENDING,
    TransportRule(
        (httpx.TimeoutException,),
        TransientError,
        "{where} did not answer in time while {what}",
        "{erp} may be busy; the hub will try again (raise timeout if this persists)",
    ),
    TransportRule(
        (httpx.TransportError,),
        TransientError,
        "the connection to {where} was lost ({detail})",
        "",
        submitting=True,
        unknown_outcome=True,
    ),
    TransportRule(
        (httpx.TransportError,),
        TransientError,
        "the connection to {where} was lost while {what}: {detail}",
        "the hub will try again",
    ),
    TransportRule(
        (httpx.TooManyRedirects,),
        SettingsError,
        "{where} redirects without end: {detail}",
        _CHECK_URL,
    ),
)

_FALLBACK = TransportRule(
    (Exception,), TransientError, "{what} failed: {detail}", "the hub will try again"
)


def applies(rule: TransportRule, exc: Exception, detail: str, submitting: bool) -> bool:
    if not isinstance(exc, rule.errors):
        return False
    if rule.submitting is not None and rule.submitting != submitting:
        return False
    if rule.not_temporary and "temporary" in detail.lower():
        return False
    return rule.matches is None or bool(rule.matches.search(detail))


def transport_failure(
    exc: httpx.HTTPError,
    *,
    where: str,
    what: str,
    submitting: bool,
    url_setting: str,
    erp: str,
    rules: tuple[TransportRule, ...] = TRANSPORT_RULES,
) -> Failure:
    """Classify an httpx error raised while ``what`` (a call to ``where``).

    ``url_setting`` names the source setting that holds the address, so that
    an operator is sent to the right field; ``erp`` is the ERP's title.
    ``rules``: the table to read, first match wins (an ERP with its own
    wording passes its own).
    """
    detail = short(str(exc)) or type(exc).__name__
    rule = next((r for r in rules if applies(r, exc, detail, submitting)), _FALLBACK)
    words = {
        "where": where,
        "what": what,
        "detail": detail,
        "url_setting": url_setting,
        "erp": erp,
    }
    return Failure(
        rule.kind,
        rule.message.format(**words),
        rule.hint.format(**words),
        rule.unknown_outcome,
    )


@dataclass(frozen=True)
class Call:
    """What a call is doing, for the sentence an operator reads when it fails.

    ``submitting``: the call may change the ERP (an order sent), so a lost
    answer leaves the outcome unknown. ``login``: the call logs in.
    ``setting``: the settings field naming the operation called, for when the
    ERP does not know it. ``sql``: the call runs SQL text the settings shape
    (a table name), so an SQL error points at them.
    """

    what: str
    submitting: bool = False
    login: bool = False
    setting: str | None = None
    sql: bool = False


class HttpConnector(Connector):
    """What every connector that speaks HTTP to its ERP shares: one client per
    process with the hub's defaults, secrets scrubbed from every error, and
    transport failures classified by the table above, with an unknown
    outcome after a submission.

    A subclass names the setting that holds the ERP's address
    (``url_setting``), who must be running for a hint (``service``), what it
    sends (``sent``: "the order", "the document") and where the hub looks
    an order up before sending it again (``looked_up_in``).
    """

    url_setting: ClassVar[str]
    service: ClassVar[str]
    sent: ClassVar[str] = "the order"
    looked_up_in: ClassVar[str] = ""
    # How this ERP's transport failures are worded and classified.
    transport_rules: ClassVar[tuple[TransportRule, ...]] = TRANSPORT_RULES

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self._http: httpx.Client | None = None
        self._http_pid: int | None = None

    @property
    def base_url(self) -> str:
        return str(self.settings[self.url_setting])

    @property
    def where(self) -> str:
        """The ERP's service by title and address, as messages name it."""
        return f"{self.title} at {self.base_url}"

    def client_options(self) -> dict[str, Any]:
        """Options for the HTTP client (auth, headers) beyond the hub's defaults."""
        return {}

    def forked(self) -> None:
        """Called when a forked child builds its first client: state tied to the
        parent's connection (a session key) is dropped here."""
        return None

    def _client(self) -> httpx.Client:
        """One client per process: a pool inherited over a fork would be shared."""
        pid = os.getpid()
        if self._http is None or self._http_pid != pid:
            if self._http_pid is not None and self._http_pid != pid:
                self.forked()
            self._http = client(self.timeout, **self.client_options())
            self._http_pid = pid
        return self._http

    def close_http(self) -> None:
        """Close this process's HTTP connections; the next call opens new ones."""
        if self._http is not None and self._http_pid == os.getpid():
            self._http.close()
        self._http = None
        self._http_pid = None

    def close(self) -> None:
        self.close_http()

    def _unknown_outcome(
        self, call: Call, happened: str, retry_after: float | None = None
    ) -> ConnectorError:
        return self._error(
            TransientError,
            f"{happened} while {call.what}, after {self.sent} was sent: {self.title} may or "
            "may not have recorded it",
            f"the hub looks the order up in {self.looked_up_in or self.title} before "
            "sending it again",
            retry_after=retry_after,
        )

    def _transport_error(self, exc: httpx.HTTPError, call: Call) -> ConnectorError:
        failure = transport_failure(
            exc,
            where=self.where,
            what=call.what,
            submitting=call.submitting,
            url_setting=self.url_setting,
            erp=self.service,
            rules=self.transport_rules,
        )
        return self._failed(failure, call)

    def _failed(self, failure: Failure, call: Call) -> ConnectorError:
        """A classified failure as this connector's error, scrubbed of secrets."""
        if failure.unknown_outcome:
            return self._unknown_outcome(call, failure.message, failure.retry_after)
        extra = {} if failure.retry_after is None else {"retry_after": failure.retry_after}
        return self._error(failure.kind, failure.message, failure.hint, **extra)

    def _status_failure(self, response: httpx.Response, call: Call) -> Failure | None:
        """What an HTTP status says before the body is read: rate limited or
        unavailable (worth retrying; after a submission, an unknown outcome)
        or redirected (the address setting is out of date). None: read on."""
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = retry_seconds(response.headers.get("retry-after"))
            if call.submitting and status != 429:
                happened = f"{self.where} answered HTTP {status}"
                return Failure(TransientError, happened, "", True, retry_after)
            state = "is rate limiting the hub" if status == 429 else "is unavailable"
            return Failure(
                TransientError,
                f"{self.where} {state} (HTTP {status}) while {call.what}",
                "the hub will try again",
                retry_after=retry_after,
            )
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            return Failure(
                SettingsError,
                f"{self.where} redirects (HTTP {status}) to {location or 'another address'}",
                f"set {self.url_setting} to the address the server redirects to",
            )
        return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process, for every HTTP connector's clients.

    Building one loads the certificate bundle (about 50 ms); connectors drop
    their clients between tasks (``Connector.release``), so each new client
    shares this one instead of paying that on every task.
    """
    return httpx.create_ssl_context()


def client(timeout: float, **options: Any) -> httpx.Client:
    """An HTTP client with the hub's defaults: explicit timeouts, no redirects
    followed (a redirect to a login page must not pass as an answer), and the
    process's shared TLS context."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=False,
        verify=tls_context(),
        **options,
    )


def short(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, for messages built from answers."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ci_get(mapping: Any, name: str) -> Any:
    """A key of a payload the hub built, whatever its case."""
    if not isinstance(mapping, Mapping):
        return None
    if name in mapping:
        return mapping[name]
    low = name.lower()
    for key, value in mapping.items():
        if isinstance(key, str) and key.lower() == low:
            return value
    return None


def retry_seconds(value: Any) -> float | None:
    """A Retry-After value (seconds or an HTTP date) as seconds from now."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    text = str(value).strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def naive_stamp(value: Any) -> datetime | None:
    """A modification time from an ERP's answer as a naive datetime, or None.

    IQ Retail and iSync keep site-local times without a zone (one given is
    dropped, so that stamps compare with the ones stored); they write dates
    with ``/`` or ``-``, and .NET writes seven fractional digits where
    Python reads at most six.
    """
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        text = value.strip().replace("/", "-")
        if not text:
            return None
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        text = _SEVENTH_DIGIT.sub(r"\1", text)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return stamp.replace(tzinfo=None) if stamp.tzinfo is not None else stamp


_STORE_TLS = re.compile(r"certificate|ssl|tls", re.IGNORECASE)
CHECK_STORE = "check store_url in the channel's settings"


def store_transport_rules(store: str, resend_hint: str) -> tuple[TransportRule, ...]:
    """The transport table of a channel connector, worded for ``store`` (the
    store's title). ``resend_hint``: what the hub does after an answer lost
    with a write in flight (the store may have made the change). One table
    for every store kind: they differ only in those words."""
    return (
        TransportRule(
            (httpx.UnsupportedProtocol, httpx.InvalidURL),
            SettingsError,
            "store_url {where} cannot be called: {detail}",
            CHECK_STORE,
        ),
        TransportRule(
            (httpx.ConnectError,),
            SettingsError,
            "store_url {where}: no such host ({detail})",
            CHECK_STORE,
            matches=HOST,
            not_temporary=True,
        ),
        TransportRule(
            (httpx.ConnectError,),
            SettingsError,
            "store_url {where} has a TLS certificate the hub does not trust: {detail}",
            "check store_url (http or https) and the store's certificate",
            matches=_STORE_TLS,
        ),
        TransportRule(
            (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout),
            TransientError,
            f"could not connect to the {store} store {{where}} while {{what}}: {{detail}}",
            "the hub will try again",
        ),
        TransportRule(
            (httpx.TimeoutException,),
            TransientError,
            f"the {store} store {{where}} did not answer in time while {{what}}",
            resend_hint,
            submitting=True,
            unknown_outcome=True,
        ),
        TransportRule(
            (httpx.TimeoutException,),
            TransientError,
            f"the {store} store {{where}} did not answer in time while {{what}}",
            "the hub will try again (raise timeout if this persists)",
        ),
        TransportRule(
            (httpx.TransportError,),
            TransientError,
            f"the connection to the {store} store {{where}} was lost while {{what}} ({{detail}})",
            resend_hint,
            submitting=True,
            unknown_outcome=True,
        ),
        TransportRule(
            (httpx.TransportError,),
            TransientError,
            f"the connection to the {store} store {{where}} was lost while {{what}}: {{detail}}",
            "the hub will try again",
        ),
        TransportRule(
            (httpx.TooManyRedirects,),
            SettingsError,
            "store_url {where} redirects without end: {detail}",
            CHECK_STORE,
        ),
    )
