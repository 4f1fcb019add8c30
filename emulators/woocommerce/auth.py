"""REST API keys checked as ``WC_REST_Authentication`` checks them.

Over SSL (``is_ssl()``) core reads ``consumer_key``/``consumer_secret`` from
the query string, else HTTP Basic; a wrong secret is an error, an unknown
key is not: the request simply runs anonymously (and then fails the
endpoint's permission check). Without SSL core ignores both and expects
one-legged OAuth 1.0a (HMAC-SHA1/256 over ``METHOD&url&sorted params``, key
``secret&``, ±15 min timestamps, nonces not reused); no OAuth parameters at
all again means anonymous.

The emulator serves plain HTTP, so ``assume_https`` says whether it stands
behind a TLS terminator; ``X-Forwarded-Proto: https`` counts as SSL too.
A key's permissions (``read``, ``write``, ``read_write``) are enforced per
method after authentication. No secret is ever logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .errors import RestError

OAUTH_PARAMS = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
WINDOW = 15 * 60
_HEADER_PARAM = re.compile(r'(oauth_[a-z_-]*)=(?:"([^"]*)"|([^,]*))')


def _auth_error(message: str) -> RestError:
    return RestError("woocommerce_rest_authentication_error", message, 401)


def _rfc3986(text: str) -> str:
    return quote(text, safe="~-._")


@dataclass(frozen=True)
class Request:
    """What authentication looks at: method, the URL as the client reached it, parameters."""

    method: str
    url: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    headers: Mapping[str, str]


class Authenticator:
    """One API key (as a shop manager's key) and how the site decides it is on SSL."""

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        *,
        permissions: str = "read_write",
        assume_https: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer_key = consumer_key
        self._secret = consumer_secret
        self.permissions = permissions
        self.assume_https = assume_https
        self._clock = clock
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def is_ssl(self, headers: Mapping[str, str]) -> bool:
        return self.assume_https or headers.get("x-forwarded-proto", "").lower() == "https"

    def authenticate(self, request: Request) -> bool:
        """True for the key's user, False for anonymous; raises on a refused key."""
        user = self._basic(request) if self.is_ssl(request.headers) else self._oauth(request)
        if user:
            self._check_permissions(request.method)
        return user

    def _basic(self, request: Request) -> bool:
        key, secret = (
            request.query.get("consumer_key", ""),
            request.query.get("consumer_secret", ""),
        )
        if not (key and secret):
            key, secret = _basic_credentials(request.headers.get("authorization", ""))
        if not (key and secret) or key != self.consumer_key:
            return False
        if not hmac.compare_digest(self._secret.encode(), secret.encode()):
            raise _auth_error("Consumer secret is invalid.")
        return True

    def _oauth(self, request: Request) -> bool:
        params = {**request.query, **request.form}
        header = request.headers.get("authorization", "").strip()
        if header.startswith("OAuth "):
            for name, quoted, bare in _HEADER_PARAM.findall(header):
                params[name] = unquote((quoted or bare).replace("+", " "))
        missing = [name for name in OAUTH_PARAMS if not params.get(name)]
        if len(missing) == len(OAUTH_PARAMS):
            return False
        if missing:
            raise RestError(
                "woocommerce_rest_authentication_missing_parameter",
                f"Missing OAuth parameter {', '.join(missing)}",
                401,
            )
        if params["oauth_consumer_key"] != self.consumer_key:
            raise _auth_error("Consumer key is invalid.")
        self._check_signature(request, params)
        self._check_timestamp_and_nonce(params["oauth_timestamp"], params["oauth_nonce"])
        return True

    def _check_signature(self, request: Request, params: dict[str, str]) -> None:
        given = unquote(params.pop("oauth_signature").replace(" ", "+"))
        pairs = sorted(params.items())
        joined = "%26".join(_rfc3986(f"{_rfc3986(k)}={_rfc3986(v)}") for k, v in pairs)
        base_string = f"{request.method.upper()}&{_rfc3986(request.url)}&{joined}"
        method = params.get("oauth_signature_method")
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            raise _auth_error("Invalid signature - signature method is invalid.")
        digest = hashlib.sha1 if method == "HMAC-SHA1" else hashlib.sha256
        key = f"{self._secret}&".encode()
        expected = base64.b64encode(hmac.new(key, base_string.encode(), digest).digest()).decode()
        if not hmac.compare_digest(expected, given):
            raise _auth_error("Invalid signature - provided signature does not match.")

    def _check_timestamp_and_nonce(self, timestamp: str, nonce: str) -> None:
        now = self._clock()
        try:
            stamp = int(timestamp)
        except ValueError:
            stamp = 0
        if not now - WINDOW <= stamp <= now + WINDOW:
            raise _auth_error("Invalid timestamp.")
        with self._lock:
            if nonce in self._nonces:
                raise _auth_error("Invalid nonce - nonce has already been used.")
            self._nonces = {n: t for n, t in self._nonces.items() if t >= now - WINDOW}
            self._nonces[nonce] = stamp

    def _check_permissions(self, method: str) -> None:
        reading = method.upper() in ("GET", "HEAD")
        if self.permissions == "read" and not reading:
            raise _auth_error("The API key provided does not have write permissions.")
        if self.permissions == "write" and reading:
            raise _auth_error("The API key provided does not have read permissions.")


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password
