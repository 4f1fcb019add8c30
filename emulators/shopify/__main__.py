"""Serve the emulated store by hand: ``python -m emulators.shopify --token shpat_x``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from .app import Faults, Shop, create_app
from .cost import DEFAULT_MAXIMUM, DEFAULT_RESTORE_RATE, CostBucket
from .store import Store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.shopify",
        description="Serve an emulated Shopify store's Admin GraphQL API.",
    )
    parser.add_argument("--token", required=True, help="the X-Shopify-Access-Token to accept")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--maximum", type=float, default=DEFAULT_MAXIMUM, help="bucket size")
    parser.add_argument("--restore-rate", type=float, default=DEFAULT_RESTORE_RATE)
    args = parser.parse_args(argv)
    shop = Shop(Store(), Faults(), CostBucket(args.maximum, args.restore_rate))
    shop.base_url = f"http://{args.host}:{args.port}"
    app = create_app(shop, access_token=args.token)
    print(f"Shopify Admin GraphQL on {shop.base_url}/admin/api/<version>/graphql.json")
    config = uvicorn.Config(
        app, host=args.host, port=args.port, http="h11", ws="none", lifespan="off"
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
