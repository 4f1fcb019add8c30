"""The Shopify channel connector: product push over the Admin GraphQL API.

``ShopifyConnector`` (``.connector``) follows ``connectors.channel``; the
transport and the cost-bucket pacing are in ``.graphql``, a listing in
Shopify's words in ``.inputs``, stock in ``.stock`` and the bulk import in
``.bulk``.
"""

from __future__ import annotations

from .connector import ShopifyConnector
from .graphql import AdminApi, AnswerLost, CostLimiter

__all__ = ["AdminApi", "AnswerLost", "CostLimiter", "ShopifyConnector"]
