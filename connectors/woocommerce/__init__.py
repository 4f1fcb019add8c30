"""The WooCommerce channel connector: product push over the REST API v3.

``WooCommerceConnector`` (``.connector``) follows ``connectors.channel``; the
transport is in ``.rest``, a listing in WooCommerce's words in ``.inputs``,
finding and adopting the store's products in ``.lookup`` and a variable
product's variations in ``.variations``. The order webhook's side of the
channel is ``.intake``.
"""

from __future__ import annotations

from .connector import WooCommerceConnector
from .rest import AnswerLost, StoreApi

__all__ = ["AnswerLost", "StoreApi", "WooCommerceConnector"]
