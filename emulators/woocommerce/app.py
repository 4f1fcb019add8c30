"""The HTTP side: WordPress's REST server in front of the shop, faults, ``/_faults``.

Every ``/wp-json/...`` request goes as WordPress sends it through: a fault a
host or CDN would raise (5xx, 429 with ``Retry-After``) first, then the
WooCommerce key check (an authentication error answers at once), then the
route (``rest_no_route``), the parameters (``rest_invalid_param``), the
endpoint's permission check (anonymous requests get 401
``woocommerce_rest_cannot_*``) and the handler. A write that took effect can
then have its connection dropped without an answer (``drop_after_commit``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from emulators.serving import DROP_KEY as _DROP_KEY
from emulators.serving import DroppableApp

from . import auth
from .errors import NO_ROUTE, RestError
from .schema import PRODUCT, VARIATION, collection, validate
from .shop import Page, Shop

JSON_TYPE = "application/json; charset=UTF-8"
WC_VERSION = "10.3.0"
WP_VERSION = "6.8.3"
EDIT = ("POST", "PUT", "PATCH")
CRITICAL = (
    '<p>There has been a critical error on this website.</p><p><a href="https://wordpress.org/'
    'documentation/article/faq-troubleshooting/">'
    "Learn more about troubleshooting WordPress.</a></p>"
)


class ConnectionDropped(Exception):
    """Raised where the server cannot drop the connection itself (e.g. Starlette's TestClient)."""


@dataclass
class Call:
    """One API request as a handler sees it."""

    method: str
    route: str
    query: dict[str, str]
    query_items: list[tuple[str, str]]
    body: Any
    base: str
    user: bool
    args: dict[str, str] = field(default_factory=dict)

    def number(self, name: str = "id") -> int:
        return int(self.args[name])

    def require(self, code: str, message: str) -> None:
        if not self.user:
            raise RestError(code, message, 401)


@dataclass
class Result:
    data: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    wrote: bool = False


Handler = Callable[[Shop, Call], Result]

CANNOT_LIST = ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
CANNOT_VIEW = ("woocommerce_rest_cannot_view", "Sorry, you cannot view this resource.")
CANNOT_CREATE = (
    "woocommerce_rest_cannot_create",
    "Sorry, you are not allowed to create resources.",
)
CANNOT_EDIT = ("woocommerce_rest_cannot_edit", "Sorry, you are not allowed to edit this resource.")
CANNOT_DELETE = (
    "woocommerce_rest_cannot_delete",
    "Sorry, you are not allowed to delete this resource.",
)
CANNOT_BATCH = (
    "woocommerce_rest_cannot_batch",
    "Sorry, you are not allowed to batch manipulate this resource.",
)


# ---------------------------------------------------------------- handlers


def _listing(call: Call, page: Page, path: str) -> Result:
    headers = {"X-WP-Total": str(page.total), "X-WP-TotalPages": str(page.pages)}
    link = _link_header(f"{call.base}/wp-json/wc/v3/{path}", call.query_items, page)
    if link:
        headers["Link"] = link
    return Result(page.items, headers=headers)


def _link_header(url: str, query: list[tuple[str, str]], page: Page) -> str:
    """``Link`` as the docs describe it (core itself sends only ``prev``/``next``):
    ``first``/``prev`` after page 1, ``next``/``last`` before the end."""

    def at(number: int) -> str:
        params = [(k, v) for k, v in query if k != "page"] + [("page", str(number))]
        return f"<{url}?{urlencode(params)}>"

    parts = []
    if page.page > 1:
        parts += [
            f'{at(1)}; rel="first"',
            f'{at(max(1, min(page.page - 1, page.pages)))}; rel="prev"',
        ]
    if page.pages > page.page:
        parts += [f'{at(page.page + 1)}; rel="next"', f'{at(page.pages)}; rel="last"']
    return ", ".join(parts)


def list_products(shop: Shop, call: Call) -> Result:
    collection(call.query)
    call.require(*CANNOT_LIST)
    return _listing(call, shop.list_products(call.query, call.base), "products")


def create_product(shop: Shop, call: Call) -> Result:
    validate(_params(call), PRODUCT)
    call.require(*CANNOT_CREATE)
    data = shop.create_product(_params(call), call.base)
    location = f"{call.base}/wp-json/wc/v3/products/{data['id']}"
    return Result(data, 201, {"Location": location}, wrote=True)


def get_product(shop: Shop, call: Call) -> Result:
    if shop.store.get(call.number()) is not None:
        call.require(*CANNOT_VIEW)
    return Result(shop.get_product(call.number(), call.base))


def update_product(shop: Shop, call: Call) -> Result:
    validate(_params(call), PRODUCT)
    if shop.store.get(call.number()) is not None:
        call.require(*CANNOT_EDIT)
    return Result(shop.update_product(call.number(), _params(call), call.base), wrote=True)


def delete_product(shop: Shop, call: Call) -> Result:
    force = shop.delete_params({**call.query, **_params(call)})
    if shop.store.get(call.number()) is not None:
        call.require(*CANNOT_DELETE)
    return Result(shop.delete_product(call.number(), force, call.base), wrote=True)


def _stored(answer: dict[str, Any]) -> bool:
    """Whether any batch item took effect (only then can a connection drop after a commit)."""
    return any("error" not in item for items in answer.values() for item in items)


def batch_products(shop: Shop, call: Call) -> Result:
    call.require(*CANNOT_BATCH)
    answer = shop.batch_products(call.body, call.base)
    return Result(answer, wrote=_stored(answer))


def list_variations(shop: Shop, call: Call) -> Result:
    collection(call.query)
    call.require(*CANNOT_LIST)
    product_id = call.number("product_id")
    page = shop.list_variations(product_id, call.query, call.base)
    return _listing(call, page, f"products/{product_id}/variations")


def list_all_variations(shop: Shop, call: Call) -> Result:
    collection(call.query)
    call.require(*CANNOT_LIST)
    return _listing(call, shop.list_variations(None, call.query, call.base), "variations")


def create_variation(shop: Shop, call: Call) -> Result:
    validate(_params(call), VARIATION)
    call.require(*CANNOT_CREATE)
    product_id = call.number("product_id")
    data = shop.create_variation(product_id, _params(call), call.base)
    location = f"{call.base}/wp-json/wc/v3/products/{product_id}/variations/{data['id']}"
    return Result(data, 201, {"Location": location}, wrote=True)


def get_variation(shop: Shop, call: Call) -> Result:
    if call.number() in shop.store.variations:
        call.require(*CANNOT_VIEW)
    return Result(shop.get_variation(call.number(), call.base))


def update_variation(shop: Shop, call: Call) -> Result:
    validate(_params(call), VARIATION)
    if call.number() in shop.store.variations:
        call.require(*CANNOT_EDIT)
    data = shop.update_variation(
        call.number("product_id"), call.number(), _params(call), call.base, check_parent=True
    )
    return Result(data, wrote=True)


def delete_variation(shop: Shop, call: Call) -> Result:
    force = shop.delete_params({**call.query, **_params(call)})
    if call.number() in shop.store.variations:
        call.require(*CANNOT_DELETE)
    return Result(shop.delete_variation(call.number(), force, call.base), wrote=True)


def batch_variations(shop: Shop, call: Call) -> Result:
    call.require(*CANNOT_BATCH)
    answer = shop.batch_variations(call.number("product_id"), call.body, call.base)
    return Result(answer, wrote=_stored(answer))


def system_status(shop: Shop, call: Call) -> Result:
    call.require(*CANNOT_LIST)
    counts = [
        {"type": "product", "count": str(len(shop.store.products))},
        {"type": "product_variation", "count": str(len(shop.store.variations))},
    ]
    environment = {
        "home_url": call.base,
        "site_url": call.base,
        "version": WC_VERSION,
        "wp_version": WP_VERSION,
        "wp_multisite": False,
        "language": "en_US",
    }
    settings = {
        "api_enabled": True,
        "currency": "USD",
        "currency_symbol": "&#36;",
        "currency_position": "left",
        "thousand_separator": ",",
        "decimal_separator": ".",
        "number_of_decimals": 2,
    }
    return Result(
        {
            "environment": environment,
            "settings": settings,
            "security": {"secure_connection": call.base.startswith("https"), "hide_errors": True},
            "active_plugins": [],
            "post_type_counts": counts,
        }
    )


def _params(call: Call) -> dict[str, Any]:
    return call.body if isinstance(call.body, dict) else {}


# ---------------------------------------------------------------- routing

ROUTES: list[tuple[str, str, dict[str, Handler]]] = [
    ("/wc/v3/system_status", "/wc/v3/system_status", {"GET": system_status}),
    ("/wc/v3/products", "/wc/v3/products", {"GET": list_products, "POST": create_product}),
    ("/wc/v3/products/batch", "/wc/v3/products/batch", dict.fromkeys(EDIT, batch_products)),
    (
        r"/wc/v3/products/(?P<id>\d+)",
        "/wc/v3/products/(?P<id>[\\d]+)",
        {"GET": get_product, **dict.fromkeys(EDIT, update_product), "DELETE": delete_product},
    ),
    (
        r"/wc/v3/products/(?P<product_id>\d+)/variations",
        "/wc/v3/products/(?P<product_id>[\\d]+)/variations",
        {"GET": list_variations, "POST": create_variation},
    ),
    (
        r"/wc/v3/products/(?P<product_id>\d+)/variations/batch",
        "/wc/v3/products/(?P<product_id>[\\d]+)/variations/batch",
        dict.fromkeys(EDIT, batch_variations),
    ),
    (
        r"/wc/v3/products/(?P<product_id>\d+)/variations/(?P<id>\d+)",
        "/wc/v3/products/(?P<product_id>[\\d]+)/variations/(?P<id>[\\d]+)",
        {"GET": get_variation, **dict.fromkeys(EDIT, update_variation), "DELETE": delete_variation},
    ),
    ("/wc/v3/variations", "/wc/v3/variations", {"GET": list_all_variations}),
]
COMPILED = [(re.compile(f"^{pattern}$"), handlers) for pattern, _, handlers in ROUTES]


def _route_index(base: str) -> dict[str, Any]:
    routes: dict[str, Any] = {
        "/wc/v3": {"namespace": "wc/v3", "methods": ["GET"], "endpoints": [{"methods": ["GET"]}]}
    }
    for pattern, shown, handlers in ROUTES:
        methods = sorted(handlers)
        entry: dict[str, Any] = {
            "namespace": "wc/v3",
            "methods": methods,
            "endpoints": [{"methods": methods, "args": {}}],
        }
        if "(" not in pattern:
            entry["_links"] = {"self": [{"href": f"{base}/wp-json{pattern}"}]}
        routes[shown] = entry
    return routes


def dispatch(shop: Shop, call: Call) -> Result:
    """Route an authenticated (or anonymous) call to its handler."""
    if call.route == "/":
        index = {
            "name": "Emulated WooCommerce store",
            "description": "",
            "url": call.base,
            "home": call.base,
            "gmt_offset": 0,
            "timezone_string": "UTC",
            "namespaces": ["wc/v3"],
            "authentication": [],
            "routes": _route_index(call.base),
        }
        return Result(index)
    if call.route == "/wc/v3" and call.method == "GET":
        up = {"up": [{"href": f"{call.base}/wp-json/"}]}
        return Result({"namespace": "wc/v3", "routes": _route_index(call.base), "_links": up})
    for regex, handlers in COMPILED:
        match = regex.match(call.route)
        if match and call.method in handlers:
            call.args = match.groupdict()
            return handlers[call.method](shop, call)
    raise NO_ROUTE


# ---------------------------------------------------------------- the app


def _parse_body(content_type: str, raw: bytes) -> tuple[Any, dict[str, str]]:
    """The JSON body (as WordPress reads it for ``application/json``) and any form fields."""
    if not raw.strip():
        return {}, {}
    if "json" in content_type:
        try:
            return json.loads(raw), {}
        except ValueError:
            raise RestError(
                "rest_invalid_json",
                "Invalid JSON body passed.",
                400,
                json_error_code=4,
                json_error_message="Syntax error",
            ) from None
    if "application/x-www-form-urlencoded" in content_type:
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return form, form
    return {}, {}


def _server_error(status: int) -> Response:
    if status == 500:
        body = {"code": "internal_server_error", "message": CRITICAL, "data": {"status": 500}}
        return JSONResponse({**body, "additional_errors": []}, 500, media_type=JSON_TYPE)
    phrase = f"{status} {HTTPStatus(status).phrase}"
    html = f"<html><head><title>{phrase}</title></head><body><h1>{phrase}</h1></body></html>"
    return PlainTextResponse(html, status, media_type="text/html")


class WooCommerceApp(DroppableApp):
    """The Starlette app, with the server's own ``send`` kept for dropping a connection."""


def create_app(shop: Shop, authenticator: auth.Authenticator) -> WooCommerceApp:
    async def api_view(request: Request) -> Response:
        faults = shop.faults
        faults.count("requests")
        if faults.take("rate_limit_next"):
            faults.count("rate_limited")
            headers = {"Retry-After": str(faults.retry_after)}
            return PlainTextResponse("Too Many Requests", 429, headers=headers)
        if faults.take("fail_next"):
            faults.count("failed")
            return _server_error(faults.fail_status)
        raw = await request.body()
        try:
            result = _answer(shop, authenticator, request, raw)
        except RestError as exc:
            return JSONResponse(exc.error(), exc.status, media_type=JSON_TYPE)
        if result.wrote and faults.take("drop_after_commit"):
            faults.count("dropped")
            close = request.scope.get(_DROP_KEY)
            if close is None or not await close():
                raise ConnectionDropped("the write was stored; no answer is sent")
            return Response(status_code=500)
        return JSONResponse(result.data, result.status, result.headers, media_type=JSON_TYPE)

    async def faults_view(request: Request) -> Response:
        if request.method == "POST":
            shop.faults.configure(await request.json())
        return JSONResponse(shop.faults.snapshot())

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app = WooCommerceApp(
        routes=[
            Route("/wp-json", api_view, methods=methods),
            Route("/wp-json/{rest:path}", api_view, methods=methods),
            Route("/_faults", faults_view, methods=["GET", "POST"]),
        ]
    )
    app.state.shop = shop
    return app


def _answer(shop: Shop, authenticator: auth.Authenticator, request: Request, raw: bytes) -> Result:
    body, form = _parse_body(request.headers.get("content-type", ""), raw)
    route = "/" + request.path_params.get("rest", "").strip("/")
    route = route.rstrip("/") or "/"
    method = "GET" if request.method == "HEAD" else request.method
    base = str(request.base_url).rstrip("/")
    query = dict(request.query_params)
    with shop.store.lock:
        user = False
        if route.startswith("/wc/"):
            user = authenticator.authenticate(
                auth.Request(
                    method=method,
                    url=f"{base}{request.url.path}",
                    query=query,
                    form=form,
                    headers=request.headers,
                )
            )
        call = Call(
            method, route, query, list(request.query_params.multi_items()), body, base, user
        )
        return dispatch(shop, call)
