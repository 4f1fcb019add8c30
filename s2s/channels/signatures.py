"""Webhook signatures: a channel's HMAC over the raw body, checked in constant time.

A webhook is trusted only when its signature is right, so the checks never
raise: a bad or missing header is simply False, and the caller answers 401
without learning anything more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

WEBHOOK_ID_HEADERS: Final[dict[str, str]] = {
    "shopify": "X-Shopify-Webhook-Id",
    "woocommerce": "X-WC-Webhook-Delivery-ID",
}
SIGNATURE_HEADERS: Final[dict[str, str]] = {
    "shopify": "X-Shopify-Hmac-Sha256",
    "woocommerce": "X-WC-Webhook-Signature",
}


def _secret_bytes(secret: str | bytes | None) -> bytes | None:
    if isinstance(secret, str):
        return secret.encode("utf-8") if secret else None
    if isinstance(secret, bytes | bytearray):
        return bytes(secret) if secret else None
    return None


def _sign(body: bytes, secret: str | bytes) -> str:
    key = _secret_bytes(secret)
    if key is None:
        raise ValueError("a webhook secret is required to sign a body")
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("a webhook body is signed as the raw bytes sent")
    digest = hmac.new(key, bytes(body), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _verify(body: bytes, header: str | None, secret: str | bytes | None) -> bool:
    key = _secret_bytes(secret)
    if key is None or not isinstance(header, str) or not header.strip():
        return False
    if not isinstance(body, bytes | bytearray | memoryview):
        return False
    expected = _sign(body, key).encode("ascii")
    # Compared as bytes so that a header with odd characters is just unequal.
    given = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def sign_shopify(body: bytes, secret: str) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify would send for this body."""
    return _sign(body, secret)


def verify_shopify(body: bytes, header: str | None, secret: str) -> bool:
    """Whether Shopify signed exactly these bytes with the app's secret.

    The raw body must be checked before it is parsed: re-serialised JSON
    would not hash the same.
    """
    return _verify(body, header, secret)


def sign_woocommerce(body: bytes, secret: str) -> str:
    """The `X-WC-Webhook-Signature` value WooCommerce would send for this body."""
    return _sign(body, secret)


def verify_woocommerce(body: bytes, header: str | None, secret: str) -> bool:
    """Whether WooCommerce signed exactly these bytes with the webhook's secret.

    WooCommerce's creation ping ("webhook_id=…") carries no order; a caller
    that wants to accept it must do so before asking for a signature.
    """
    return _verify(body, header, secret)
