"""What the HTTP-speaking connectors (IQ Retail, iSync) share: reading a
failed call's httpx error as settings, transient or unknown-outcome, and the
small helpers their answers need.

The classification is the same for every ERP spoken to over HTTP, and it is
where exactly-once is decided: a failure before anything was sent is safe to
retry blindly, one after a document was sent leaves the outcome unknown, so
the hub asks the ERP before sending again. Keeping one copy keeps those rules
the same for every ERP.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.base import ConnectorError, SettingsError, TransientError

_HOST = re.compile(
    r"name or service not known|nodename nor servname|no address associated|getaddrinfo failed"
    r"|no such host|name resolution",
    re.IGNORECASE,
)
_TLS = re.compile(r"certificate|ssl|tls", re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """A classified transport failure, for the connector to word as its own error.

    ``unknown_outcome`` means a document may have reached the ERP: the
    connector raises its "may or may not have recorded it" error, with
    ``message`` saying what happened.
    """

    kind: type[ConnectorError]
    message: str
    hint: str
    unknown_outcome: bool = False


def transport_failure(
    exc: httpx.HTTPError,
    *,
    where: str,
    what: str,
    submitting: bool,
    url_setting: str,
    erp: str,
) -> Failure:
    """Classify an httpx error raised while ``what`` (a call to ``where``).

    ``url_setting`` names the source setting that holds the address, so that
    an operator is sent to the right field; ``erp`` is the ERP's title.
    """
    detail = short(str(exc)) or type(exc).__name__
    check_url = f"check {url_setting} in the source's settings"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Failure(SettingsError, f"cannot call {where}: {detail}", check_url)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # Nothing was sent: whatever the call was, it had no effect.
        if isinstance(exc, httpx.ConnectError):
            if _HOST.search(detail) and "temporary" not in detail.lower():
                return Failure(
                    SettingsError, f"cannot find the server of {where}: {detail}", check_url
                )
            if _TLS.search(detail):
                return Failure(
                    SettingsError,
                    f"{where} has a TLS certificate the hub does not trust: {detail}",
                    f"check {url_setting} (http or https) and the server's certificate",
                )
        return Failure(
            TransientError,
            f"could not connect to {where} while {what}: {detail}",
            f"check that {erp} is running and reachable from the hub; the hub will try again",
        )
    if isinstance(exc, httpx.TimeoutException):
        if submitting:
            return Failure(TransientError, f"{where} did not answer in time", "", True)
        return Failure(
            TransientError,
            f"{where} did not answer in time while {what}",
            f"{erp} may be busy; the hub will try again (raise timeout if this persists)",
        )
    if isinstance(exc, httpx.TransportError):
        if submitting:
            return Failure(
                TransientError, f"the connection to {where} was lost ({detail})", "", True
            )
        return Failure(
            TransientError,
            f"the connection to {where} was lost while {what}: {detail}",
            "the hub will try again",
        )
    if isinstance(exc, httpx.TooManyRedirects):
        return Failure(SettingsError, f"{where} redirects without end: {detail}", check_url)
    return Failure(TransientError, f"{what} failed: {detail}", "the hub will try again")


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
