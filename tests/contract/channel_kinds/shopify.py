"""Shopify's fixtures for the channel contract suite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emulators.shopify import serve
from tests.contract.channel_fixtures import ChannelFixtures, ServedStore, sku_counts
from tests.unit.test_channels import shopify_inclusive

TOKEN = "shpat_contract_5e1d"


@contextmanager
def _serve() -> Iterator[ServedStore]:
    with serve(access_token=TOKEN) as shop:

        def drop() -> None:
            shop.faults.configure({"drop_after_commit": 1})

        yield ServedStore(
            settings={"store_url": shop.base_url, "allow_http": True, "bulk_threshold": 0},
            secrets={"access_token": TOKEN},
            skus=lambda: sku_counts(shop.products()),
            drop_next_write=drop,
        )


def _order() -> dict[str, Any]:
    return shopify_inclusive()


FIXTURES = ChannelFixtures(
    kind="shopify",
    declared={
        "secret": "shpss_contract_webhook",
        "store_url": "https://acme.myshopify.com",
        "access_token": TOKEN,
        "price_tier": "retail",
    },
    bad_settings=[
        ("store_url", "http://acme.myshopify.com"),
        ("api_version", "2025-13"),
        ("price_tier", ""),
    ],
    sample_order=_order,
    serve=_serve,
    wrong_secrets=({"access_token": "shpat_wrong_contract_77"}, "access_token"),
)
