"""Serve the emulated store by hand.

``python -m emulators.woocommerce --key ck_x --secret cs_x``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from .app import create_app
from .auth import Authenticator
from .faults import Faults
from .shop import Shop
from .store import Store


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.woocommerce",
        description="Serve an emulated WooCommerce store's REST API v3.",
    )
    parser.add_argument("--key", required=True, help="the consumer key to accept")
    parser.add_argument("--secret", required=True, help="its consumer secret")
    parser.add_argument(
        "--permissions", choices=["read", "write", "read_write"], default="read_write"
    )
    parser.add_argument(
        "--plain-http",
        action="store_true",
        help="no TLS terminator in front: Basic auth is refused, OAuth 1.0a is needed",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8096)
    args = parser.parse_args(argv)
    authenticator = Authenticator(
        args.key, args.secret, permissions=args.permissions, assume_https=not args.plain_http
    )
    app = create_app(Shop(Store(), Faults()), authenticator)
    print(f"WooCommerce REST API v3 on http://{args.host}:{args.port}/wp-json/wc/v3")
    config = uvicorn.Config(
        app, host=args.host, port=args.port, http="h11", ws="none", lifespan="off"
    )
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
