"""WooCommerce's fixtures for the channel contract suite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emulators.woocommerce import serve
from tests.contract.channel_fixtures import ChannelFixtures, ServedStore
from tests.unit.test_channels import woocommerce_guest

KEY, SECRET = "ck_contract_1f2e3d", "cs_contract_4c5b6a"


@contextmanager
def _serve() -> Iterator[ServedStore]:
    with serve(consumer_key=KEY, consumer_secret=SECRET) as store:

        def drop() -> None:
            store.faults.configure({"drop_after_commit": 1})

        def sellable() -> dict[str, int]:
            """SKUs of what is sold: simple products and variations (a
            variable product's own SKU names the product, not something sold)."""
            counts: dict[str, int] = {}
            for product in store.products():
                if product["status"] == "trash":
                    continue
                items = product["variations"] if product["type"] == "variable" else [product]
                for item in items:
                    if item.get("sku"):
                        counts[item["sku"]] = counts.get(item["sku"], 0) + 1
            return counts

        yield ServedStore(
            settings={"store_url": store.base_url, "allow_http": True, "deleted": "draft"},
            secrets={"consumer_key": KEY, "consumer_secret": SECRET},
            skus=sellable,
            drop_next_write=drop,
        )


def _order() -> dict[str, Any]:
    return woocommerce_guest()


FIXTURES = ChannelFixtures(
    kind="woocommerce",
    declared={
        "secret": "wc_contract_webhook",
        "store_url": "https://shop.example.com",
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "deleted": "trash",
    },
    bad_settings=[
        ("store_url", "ftp://shop.example.com"),
        ("deleted", "burn"),
        ("warehouses", 5),
    ],
    sample_order=_order,
    serve=_serve,
    wrong_secrets=({"consumer_key": KEY, "consumer_secret": "cs_wrong_contract_99"}, "consumer"),
)
