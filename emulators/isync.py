"""An iSync "Sync EAI" messaging service to test and demo the iSync connector against.

It answers the way section 2 of ``erp-wire-formats.md`` says iSync answers:
SOAP 1.1 on ``POST /MessageService.svc``, namespace ``http://tempuri.org/``,
SOAPAction ``http://tempuri.org/IMessageService/{Login|Execute}``.

* ``Login(Username, Password)`` returns a fresh session key and **ends every
  earlier key of that user**; wrong credentials are a SOAP Fault (HTTP 500,
  ``faultcode`` ``s:Client``, ``faultstring`` "Invalid username or password").
  The user name is matched without regard to case (it is an email address).
* ``Execute(SessionKey, Operation, MessageXml)`` answers ``Resultflag``,
  ``ResponseText`` and ``MessageXml`` (an escaped string). Like a WCF data
  contract, the three are in their own namespace. A replaced or unknown key
  answers ``Resultflag false`` with ``Invalid session: log in again``.
* ``GetProducts`` lists stock lines ordered by ``JobProductID`` then ``SKU``
  (the order the connector's full read relies on), paged by
  ``PageNumber``/``PageSize``, filtered by ``ModifiedSince`` (``Modified >=``).
* ``CreateSalesOrder`` validates every line's ``ProductStockID`` against the
  stock lines and the service items (shipping), the ``CustomerCode`` against
  the known customers, ``Units`` and ``SellingPrice``; the first problem is
  ``Resultflag false`` naming it, e.g. ``Line 2: ProductStockID 'X' does not
  exist``. Nothing is stored unless all of it is valid.
* ``GetSalesOrder`` finds an order by ``PONumber``: the same
  ``SalesOrderResult``, or an empty ``<SalesOrderResult/>``.

Choices where the reference is silent, made as a real ERP likely does:

* **A duplicate PONumber is refused** (``Resultflag false``, "PONumber
  '#1001' already exists as sales order SO000001"), since ``GetSalesOrder``
  treats the PONumber as the key of an order. The refusal does not hide a
  hub that raises twice: :meth:`IsyncData.create_attempts` counts every
  CreateSalesOrder per PONumber, and :meth:`IsyncData.order_counts` the
  orders stored.
* **ProductStockID is the SKU** by default. Seed 001 sends the website's
  SKU as ``ProductStockID``, so on an iSync the hub can serve, a stock
  line's ``ProductStockID`` equals its ``SKU``; generated data follows that.
  Some installations key stock lines by a number instead; with
  ``numeric_ids`` every generated line gets one (``100001`` upwards, in
  listing order), and an order line must quote it: ``CreateSalesOrder``
  validates ``ProductStockID`` against the lines' ids, never their SKUs.

Faults (:class:`Faults`) stand in for what goes wrong between the hub and a
cloud service: latency, an HTTP status from a gateway, a SOAP fault, a body
that is not XML, ``Resultflag false`` on the next calls, a session ended by
another login, and a connection that drops after an order was committed.
A test holds the object (``serve(...).faults``); by hand, ``POST /_faults``
sets the same things (see :meth:`Faults.configure`) and ``GET /_faults``
shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import http
import json
import math
import random
import secrets
import sys
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

import uvicorn
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from emulators import serving
from emulators.serving import DROP_KEY as _DROP_KEY
from emulators.serving import DroppableApp

__all__ = [
    "COLOURS",
    "CUSTOMERS",
    "DEFAULT_NAMESPACE",
    "SERVICE_PATH",
    "SIZES",
    "ConnectionDropped",
    "Faults",
    "IsyncData",
    "RunningServer",
    "create_app",
    "generate_stock",
    "main",
    "serve",
]

SERVICE_PATH = "/MessageService.svc"
DEFAULT_NAMESPACE = "http://tempuri.org/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CONTRACT_NS = "http://schemas.datacontract.org/2004/07/ISync.MessageService"
GET_PRODUCTS = "GetProducts"
CREATE_SALES_ORDER = "CreateSalesOrder"
GET_SALES_ORDER = "GetSalesOrder"
INVALID_SESSION_TEXT = "Invalid session: log in again"
BAD_LOGIN_TEXT = "Invalid username or password"

SIZES: tuple[str, ...] = ("S", "M", "L", "XL")
COLOURS: tuple[str, ...] = ("Black", "Navy", "Red", "White", "Olive")
CUSTOMERS: tuple[str, ...] = ("ACC001", "CASH01", "WEB001")
FIELDS: tuple[str, ...] = (
    "JobProductID",
    "ProductStockID",
    "SKU",
    "JobDescription",
    "RetailSellingPrice",
    "SellingPrice",
    "AvailableUnits",
    "WebSale",
    "Size",
    "Colour",
    "ThirdPartyBarcode",
    "Modified",
)
DELIVERY_FIELDS: tuple[str, ...] = (
    "Name",
    "Address1",
    "Address2",
    "City",
    "Province",
    "PostalCode",
    "Country",
    "Phone",
    "Email",
)

_ADJECTIVES = ("Classic", "Organic", "Sport", "Heritage", "Urban", "Trail")
_NOUNS = ("T-Shirt", "Hoodie", "Polo", "Jacket", "Cap", "Sweater", "Shorts", "Socks")
_MODIFIED_FROM = datetime(2026, 1, 1)
_MODIFIED_TO = datetime(2026, 11, 1)  # exclusive
_STAMP = "%Y-%m-%dT%H:%M:%S"
_MAX_PAGE_SIZE = 5000


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def _ean13(rng: random.Random) -> str:
    digits = [rng.randint(0, 9) for _ in range(12)]
    check = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits)) + str(check)


def generate_stock(
    products: int = 100, variants_per_product: int = 3, seed: int = 1, numeric_ids: bool = False
) -> list[dict[str, str]]:
    """Stock lines for ``products`` products of ``variants_per_product`` lines each.

    A pure function of its arguments, so tests recompute the expected data.
    Lines come ordered by ``JobProductID`` then ``SKU`` (as GetProducts lists
    them); every value is text, as it travels in XML. Each product has one
    ``WebSale`` for all its lines (about 90% Active, 5% Ignore, 5% Delete),
    and its lines differ by ``Size`` and ``Colour``. ``ProductStockID`` is
    the SKU, or with ``numeric_ids`` a number from 100001 in listing order
    (see the module's notes); the rest of the data is the same either way.
    """
    limit = len(SIZES) * len(COLOURS)
    if products < 0 or not 1 <= variants_per_product <= limit:
        raise ValueError(f"products must be >= 0 and variants_per_product 1..{limit}")
    rng = random.Random(f"isync:{seed}")
    span = int((_MODIFIED_TO - _MODIFIED_FROM).total_seconds())
    lines: list[dict[str, str]] = []
    for number in range(1, products + 1):
        job = f"JP{number:05d}"
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {number}"
        web_sale = rng.choices(("Active", "Ignore", "Delete"), weights=(90, 5, 5))[0]
        base = rng.randint(5000, 150_000) / 100
        for variant in range(variants_per_product):
            size = SIZES[variant % len(SIZES)]
            colour = COLOURS[variant // len(SIZES)]
            sku = f"{job}-{colour[:3].upper()}-{size}"
            retail = round(base + 10 * SIZES.index(size), 2)
            units = rng.randint(0, 200) if rng.random() > 0.02 else -rng.randint(1, 3)
            modified = _MODIFIED_FROM + timedelta(seconds=rng.randrange(span))
            lines.append(
                {
                    "JobProductID": job,
                    "ProductStockID": sku,
                    "SKU": sku,
                    "JobDescription": title,
                    "RetailSellingPrice": f"{retail:.2f}",
                    "SellingPrice": f"{retail / 1.15:.2f}",
                    "AvailableUnits": str(units),
                    "WebSale": web_sale,
                    "Size": size,
                    "Colour": colour,
                    "ThirdPartyBarcode": _ean13(rng),
                    "Modified": modified.strftime(_STAMP),
                }
            )
    lines.sort(key=lambda line: (line["JobProductID"], line["SKU"]))
    if numeric_ids:
        for number, line in enumerate(lines, start=100_001):
            line["ProductStockID"] = str(number)
    return lines


def _order_key(line: Mapping[str, str]) -> tuple[str, str]:
    return (line.get("JobProductID") or "", line.get("SKU") or "")


def _parse_time(text: str) -> datetime | None:
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1]
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp.replace(tzinfo=None)


class IsyncData:
    """The service's data, in memory and thread-safe: stock, services, customers, orders.

    Also holds the sessions, since "one session per user" is the service's
    state, not a connection's.
    """

    def __init__(
        self, lines: Iterable[Mapping[str, str]] = (), customers: Iterable[str] = CUSTOMERS
    ) -> None:
        self._lock = threading.Lock()
        self._lines: dict[str, dict[str, str]] = {}
        self._services: dict[str, str] = {}
        self._customers: set[str] = set(customers)
        self._orders: list[dict[str, Any]] = []
        self._attempts: Counter[str] = Counter()
        self._sessions: dict[str, str] = {}  # user (folded) -> current key
        self.seed(lines)

    # ---- seeding -----------------------------------------------------------

    @classmethod
    def generated(
        cls,
        products: int = 100,
        variants_per_product: int = 3,
        seed: int = 1,
        numeric_ids: bool = False,
    ) -> IsyncData:
        """Data holding :func:`generate_stock`'s lines."""
        return cls(generate_stock(products, variants_per_product, seed, numeric_ids))

    def seed(self, lines: Iterable[Mapping[str, str]]) -> None:
        """Replace the stock lines (keyed by ProductStockID); orders are kept."""
        table: dict[str, dict[str, str]] = {}
        for line in lines:
            key = line.get("ProductStockID")
            if not key:
                raise ValueError(f"a stock line needs a ProductStockID: {dict(line)}")
            table[key] = {k: str(v) for k, v in line.items() if v is not None}
        with self._lock:
            self._lines = table

    def add_service_item(self, code: str = "SHIP", description: str = "Courier") -> None:
        """A non-stock service item orders may carry (the source's shipping_code).

        It is accepted on order lines but never listed by GetProducts.
        """
        with self._lock:
            self._services[code] = description

    def add_customer(self, code: str) -> None:
        with self._lock:
            self._customers.add(code)

    def touch(self, count: int, seed: int = 1, when: str = "2026-11-22T09:00:00") -> list[str]:
        """Change ``count`` lines' AvailableUnits and RetailSellingPrice; stamp Modified.

        Which lines, and their new values, follow from ``seed`` and the
        current lines, so an incremental test knows what must come through a
        ``ModifiedSince`` read. Returns the changed ProductStockIDs, sorted.
        """
        rng = random.Random(f"touch:{seed}")
        with self._lock:
            keys = sorted(self._lines)
            if count > len(keys):
                raise ValueError(f"only {len(keys)} stock lines can change, not {count}")
            chosen = sorted(rng.sample(keys, count))
            for key in chosen:
                line = self._lines[key]
                price = float(line.get("RetailSellingPrice") or 0) + rng.randint(1, 100)
                units = int(float(line.get("AvailableUnits") or 0)) + rng.randint(1, 50)
                line["RetailSellingPrice"] = f"{price:.2f}"
                line["AvailableUnits"] = str(units)
                line["Modified"] = when
        return chosen

    # ---- reading -----------------------------------------------------------

    def stock_lines(self) -> list[dict[str, str]]:
        """Every stock line, in listing order (copies)."""
        with self._lock:
            return [dict(line) for line in sorted(self._lines.values(), key=_order_key)]

    def orders(self) -> list[dict[str, Any]]:
        """Every stored order with its lines, in creation order (copies)."""
        with self._lock:
            return copy.deepcopy(self._orders)

    def order_counts(self) -> dict[str, int]:
        """Orders stored per PONumber: more than 1 would mean an order raised twice."""
        with self._lock:
            return dict(Counter(order["PONumber"] for order in self._orders))

    def create_attempts(self) -> dict[str, int]:
        """CreateSalesOrder calls that reached validation, per PONumber."""
        with self._lock:
            return dict(self._attempts)

    # ---- sessions ----------------------------------------------------------

    def start_session(self, user: str) -> str:
        """A new key for ``user``; every earlier key of that user stops working."""
        key = secrets.token_hex(16)
        with self._lock:
            self._sessions[user.casefold()] = key
        return key

    def session_user(self, key: str) -> str | None:
        with self._lock:
            for user, current in self._sessions.items():
                if current == key:
                    return user
        return None

    def invalidate_sessions(self, user: str | None = None) -> None:
        """As if someone else logged in: the current keys (of ``user``, or all) end."""
        with self._lock:
            for name in list(self._sessions):
                if user is None or name == user.casefold():
                    self._sessions[name] = secrets.token_hex(16)

    # ---- operations ----------------------------------------------------------

    def products_page(
        self, page: int, size: int, since: datetime | None
    ) -> tuple[list[dict[str, str]], int]:
        """One page of stock lines (changed since ``since``) and the number of pages."""
        with self._lock:
            lines = sorted(self._lines.values(), key=_order_key)
            if since is not None:
                lines = [
                    line
                    for line in lines
                    if (stamp := _parse_time(line.get("Modified", ""))) is not None
                    and stamp >= since
                ]
            total = max(1, math.ceil(len(lines) / size))
            start = (page - 1) * size
            return [dict(line) for line in lines[start : start + size]], total

    def find_order(self, po: str) -> str | None:
        with self._lock:
            for order in self._orders:
                if order["PONumber"] == po:
                    return str(order["OrderNumber"])
        return None

    def create_order(self, order: ET.Element) -> tuple[bool, str, str | None]:
        """Validate and store one SalesOrder: (ok, ResponseText, OrderNumber)."""
        po = _text(order, "PONumber")
        with self._lock:
            if po:
                self._attempts[po] += 1
            if not po:
                return False, "PONumber is required", None
            for existing in self._orders:
                if existing["PONumber"] == po:
                    return (
                        False,
                        f"PONumber '{po}' already exists as sales order {existing['OrderNumber']}",
                        None,
                    )
            customer = _text(order, "CustomerCode")
            if not customer:
                return False, "CustomerCode is required", None
            if customer not in self._customers:
                return False, f"CustomerCode '{customer}' does not exist", None
            delivery_node = _child(order, "DeliveryDetail")
            delivery = {name: _text(delivery_node, name) for name in DELIVERY_FIELDS}
            lines_node = _child(order, "Lines")
            line_nodes = [n for n in lines_node or () if _local(n.tag) == "line"]
            if not line_nodes:
                return False, "The order has no lines", None
            lines: list[dict[str, Any]] = []
            for index, node in enumerate(line_nodes, start=1):
                code = _text(node, "ProductStockID")
                if not code:
                    return False, f"Line {index}: ProductStockID is required", None
                if code not in self._lines and code not in self._services:
                    return False, f"Line {index}: ProductStockID '{code}' does not exist", None
                units = _decimal(_text(node, "Units"))
                if units is None or units != units.to_integral_value() or units < 1:
                    return (
                        False,
                        f"Line {index}: Units '{_text(node, 'Units')}' is not a whole number "
                        "above 0",
                        None,
                    )
                price = _decimal(_text(node, "SellingPrice"))
                if price is None or price < 0:
                    return (
                        False,
                        f"Line {index}: SellingPrice '{_text(node, 'SellingPrice')}' is not a "
                        "valid price",
                        None,
                    )
                lines.append(
                    {"ProductStockID": code, "Units": int(units), "SellingPrice": str(price)}
                )
            number = f"SO{len(self._orders) + 1:06d}"
            self._orders.append(
                {
                    "OrderNumber": number,
                    "PONumber": po,
                    "CustomerCode": customer,
                    "DeliveryDetail": delivery,
                    "Lines": lines,
                }
            )
        return True, "OK", number


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


class ConnectionDropped(Exception):
    """Raised where the server cannot drop the connection itself (e.g. TestClient).

    Under uvicorn the connection is closed instead and nothing is raised.
    """


class Faults:
    """Faults to inject, and counts of calls, shared by a test and the server.

    Thread-safe. Pending faults are consumed one call at a time, in this
    order: ``fail_next`` (an HTTP status), ``garbage_next`` (a 200 that is
    not XML), ``fault_next`` (a SOAP fault); then, for Execute only,
    ``invalidate_next`` (the session is ended before the call is checked)
    and ``result_false_next`` (``Resultflag false``). ``drop_after_commit_next``
    is consumed only by a CreateSalesOrder that stored an order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency = 0.0
        self._pending: Counter[str] = Counter()
        self._fail_status = 503
        self._fault_text = "The server was unable to process the request due to an internal error."
        self._false_text = "Service busy, please try again"
        self._garbage = b"<html><body>Service Unavailable</body></html>"
        self._calls: Counter[str] = Counter()
        self._injected: Counter[str] = Counter()

    @property
    def latency(self) -> float:
        """Seconds every call waits before it is handled."""
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0 or math.isnan(seconds):
            raise ValueError("latency cannot be negative")
        with self._lock:
            self._latency = float(seconds)

    def _set(self, kind: str, n: int) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        self._pending[kind] = n

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` calls with HTTP ``status`` and a plain-text body."""
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status")
        with self._lock:
            self._set("fail", n)
            self._fail_status = status

    def garbage_next(self, n: int, body: bytes | None = None) -> None:
        """Answer the next ``n`` calls with HTTP 200 and ``body`` (by default an HTML page)."""
        with self._lock:
            self._set("garbage", n)
            if body is not None:
                self._garbage = body

    def fault_next(self, n: int, faultstring: str | None = None) -> None:
        """Answer the next ``n`` calls with a SOAP fault (HTTP 500, ``s:Server``)."""
        with self._lock:
            self._set("fault", n)
            if faultstring is not None:
                self._fault_text = faultstring

    def result_false_next(self, n: int, text: str | None = None) -> None:
        """Answer the next ``n`` Execute calls ``Resultflag false`` with ``text``."""
        with self._lock:
            self._set("result_false", n)
            if text is not None:
                self._false_text = text

    def invalidate_next(self, n: int) -> None:
        """End the caller's session before each of the next ``n`` Execute calls.

        As if another login with the same account happened just before.
        """
        with self._lock:
            self._set("invalidate", n)

    def drop_after_commit_next(self, n: int) -> None:
        """Store the next ``n`` sales orders, then close the connection unanswered."""
        with self._lock:
            self._set("drop", n)

    def reset(self) -> None:
        """Clear latency and pending faults; counts are kept (see ``reset_counts``)."""
        with self._lock:
            self._latency = 0.0
            self._pending.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self._calls.clear()
            self._injected.clear()

    def count(self, name: str) -> int:
        """Calls of ``name``: ``Login``, ``Execute``, or an operation such as ``GetProducts``."""
        wanted = name.lower()
        with self._lock:
            return sum(n for key, n in self._calls.items() if key.lower() == wanted)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    def injected(self) -> dict[str, int]:
        """Faults that fired, by kind (``fail``, ``garbage``, ``fault``, ``result_false``,
        ``invalidate``, ``drop``)."""
        with self._lock:
            return dict(self._injected)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data, for ``GET /_faults``."""
        with self._lock:
            return {
                "latency": self._latency,
                "pending": {k: v for k, v in self._pending.items() if v},
                "fail_status": self._fail_status,
                "fault_text": self._fault_text,
                "result_false_text": self._false_text,
                "calls": dict(self._calls),
                "injected": dict(self._injected),
            }

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Apply a ``POST /_faults`` body.

        ``{"reset": true, "latency": 0.5, "fail_next": 2 | {"n": 2, "status": 502},
        "garbage_next": 1, "fault_next": 1 | {"n": 1, "faultstring": "..."},
        "result_false_next": 1 | {"n": 1, "text": "..."}, "invalidate_next": 1,
        "drop_after_commit_next": 1}``; ``reset`` is applied first.
        """
        if spec.get("reset"):
            self.reset()
        if "latency" in spec:
            self.latency = float(spec["latency"])

        def parts(value: Any, extra: str) -> tuple[int, Any]:
            if isinstance(value, Mapping):
                return int(value.get("n", 1)), value.get(extra)
            return int(value), None

        if "fail_next" in spec:
            n, status = parts(spec["fail_next"], "status")
            self.fail_next(n, int(status) if status is not None else 503)
        if "garbage_next" in spec:
            n, body = parts(spec["garbage_next"], "body")
            self.garbage_next(n, str(body).encode() if body is not None else None)
        if "fault_next" in spec:
            self.fault_next(*parts(spec["fault_next"], "faultstring"))
        if "result_false_next" in spec:
            self.result_false_next(*parts(spec["result_false_next"], "text"))
        if "invalidate_next" in spec:
            self.invalidate_next(int(spec["invalidate_next"]))
        if "drop_after_commit_next" in spec:
            self.drop_after_commit_next(int(spec["drop_after_commit_next"]))

    # The server's side -------------------------------------------------------

    def _arrived(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self._calls[name] += 1

    def _take(self, kind: str) -> bool:
        with self._lock:
            if self._pending[kind] <= 0:
                return False
            self._pending[kind] -= 1
            self._injected[kind] += 1
            return True

    @property
    def _status(self) -> int:
        with self._lock:
            return self._fail_status

    @property
    def _texts(self) -> tuple[str, str, bytes]:
        with self._lock:
            return self._fault_text, self._false_text, self._garbage


# --------------------------------------------------------------------------
# SOAP
# --------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _child(node: ET.Element | None, name: str) -> ET.Element | None:
    if node is None:
        return None
    wanted = name.lower()
    return next((item for item in node if _local(item.tag) == wanted), None)


def _text(node: ET.Element | None, name: str) -> str:
    found = _child(node, name)
    return (found.text or "").strip() if found is not None else ""


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _envelope(inner: str) -> Response:
    body = (f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>{inner}</s:Body></s:Envelope>').encode()
    return Response(body, status_code=200, media_type="text/xml; charset=utf-8")


def _fault(code: str, text: str) -> Response:
    body = (
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault>'
        f"<faultcode>{escape(code)}</faultcode>"
        f'<faultstring xml:lang="en-US">{escape(text)}</faultstring>'
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()
    return Response(body, status_code=500, media_type="text/xml; charset=utf-8")


def _execute_result(namespace: str, ok: bool, text: str, message: str = "") -> Response:
    ns = escape(namespace, {'"': "&quot;"})
    return _envelope(
        f'<ExecuteResponse xmlns="{ns}"><ExecuteResult xmlns:a="{CONTRACT_NS}" '
        'xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f"<a:MessageXml>{escape(message)}</a:MessageXml>"
        f"<a:ResponseText>{escape(text)}</a:ResponseText>"
        f"<a:Resultflag>{'true' if ok else 'false'}</a:Resultflag>"
        "</ExecuteResult></ExecuteResponse>"
    )


def _products_xml(lines: Sequence[Mapping[str, str]], page: int, total: int) -> str:
    products = "".join(
        "<Product>"
        + "".join(
            f"<{name}>{escape(line[name])}</{name}>"
            for name in FIELDS
            if line.get(name) is not None
        )
        + "</Product>"
        for line in lines
    )
    return f'<Products PageNumber="{page}" TotalPages="{total}">{products}</Products>'


def _order_result(number: str | None) -> str:
    if number is None:
        return "<SalesOrderResult/>"
    return f"<SalesOrderResult><OrderNumber>{escape(number)}</OrderNumber></SalesOrderResult>"


def _status_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class IsyncApp(DroppableApp):
    """The Starlette app, with a hook that can drop the client's connection.

    The hook must see the server's own ``send`` (Starlette's middleware wraps
    it), so it is put into the scope before Starlette runs."""


def create_app(
    data: IsyncData,
    *,
    username: str,
    password: str,
    faults: Faults | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    action_prefix: str = "http://tempuri.org/IMessageService/",
) -> IsyncApp:
    """The MessageService for ``data``; ``app.state.faults`` and ``app.state.data`` hold both."""
    state_faults = faults if faults is not None else Faults()

    def products(message: ET.Element) -> tuple[bool, str, str]:
        if _local(message.tag) != "getproducts":
            return False, f"Expected <GetProducts>, not <{message.tag}>", ""
        page_text = _text(message, "PageNumber") or "1"
        size_text = _text(message, "PageSize") or "100"
        page, size = _decimal(page_text), _decimal(size_text)
        if page is None or page != page.to_integral_value() or page < 1:
            return False, f"PageNumber '{page_text}' must be a whole number of at least 1", ""
        if size is None or size != size.to_integral_value() or not 1 <= size <= _MAX_PAGE_SIZE:
            return False, f"PageSize '{size_text}' must be a whole number 1..{_MAX_PAGE_SIZE}", ""
        since_text = _text(message, "ModifiedSince")
        since = _parse_time(since_text) if since_text else None
        if since_text and since is None:
            return False, f"ModifiedSince '{since_text}' is not a date and time", ""
        lines, total = data.products_page(int(page), int(size), since)
        return True, "OK", _products_xml(lines, int(page), total)

    def find(message: ET.Element) -> tuple[bool, str, str]:
        po = _text(message, "PONumber")
        if not po:
            return False, "PONumber is required", ""
        return True, "OK", _order_result(data.find_order(po))

    async def execute(request: Request, call: ET.Element) -> Response:
        key = _text(call, "SessionKey")
        operation = _text(call, "Operation")
        if state_faults._take("invalidate"):
            user = data.session_user(key)
            if user is not None:
                data.invalidate_sessions(user)
        if data.session_user(key) is None:
            return _execute_result(namespace, False, INVALID_SESSION_TEXT)
        if state_faults._take("result_false"):
            return _execute_result(namespace, False, state_faults._texts[1])
        if operation not in (GET_PRODUCTS, CREATE_SALES_ORDER, GET_SALES_ORDER):
            return _execute_result(namespace, False, f"Unknown operation '{operation}'")
        raw = _text(call, "MessageXml")
        try:
            message = safe_fromstring(raw, forbid_dtd=True)
        except (ET.ParseError, DefusedXmlException, ValueError) as exc:
            return _execute_result(namespace, False, f"MessageXml is not valid XML: {exc}")
        if operation == GET_PRODUCTS:
            return _execute_result(namespace, *products(message))
        if operation == GET_SALES_ORDER:
            return _execute_result(namespace, *find(message))
        if _local(message.tag) != "salesorder":
            return _execute_result(namespace, False, f"Expected <SalesOrder>, not <{message.tag}>")
        ok, text, number = data.create_order(message)
        if ok and state_faults._take("drop"):
            close = request.scope.get(_DROP_KEY)
            if close is None or not await close():
                raise ConnectionDropped("the order was stored; no answer is sent")
        return _execute_result(namespace, ok, text, _order_result(number) if ok else "")

    async def service(request: Request) -> Response:
        raw = await request.body()
        try:
            envelope = safe_fromstring(raw, forbid_dtd=True)
        except (ET.ParseError, DefusedXmlException, ValueError):
            state_faults._arrived("invalid")
            return _fault("s:Client", "The request is not a SOAP envelope")
        body = _child(envelope, "Body")
        call = next(iter(body), None) if body is not None else None
        tag = call.tag.rsplit("}", 1)[-1] if call is not None else ""
        name = tag.lower()
        operation = _text(call, "Operation") if name == "execute" else ""
        state_faults._arrived(*(n for n in (tag, operation) if n))
        latency = state_faults.latency
        if latency > 0:
            await asyncio.sleep(latency)
        if state_faults._take("fail"):
            status = state_faults._status
            return PlainTextResponse(_status_phrase(status), status_code=status)
        if state_faults._take("garbage"):
            return Response(state_faults._texts[2], status_code=200, media_type="text/html")
        if state_faults._take("fault"):
            return _fault("s:Server", state_faults._texts[0])
        if call is None or name not in ("login", "execute"):
            return _fault("s:Client", "The message has no Login or Execute in its Body")
        action = request.headers.get("soapaction", "").strip().strip('"')
        expected = f"{action_prefix}{tag}"
        if action != expected:
            return _fault(
                "a:ActionNotSupported",
                f"The message with Action '{action}' cannot be processed at the receiver, "
                "due to a ContractFilter mismatch at the EndpointDispatcher.",
            )
        if call.tag != f"{{{namespace}}}{tag}":
            return _fault(
                "a:DeserializationFailed",
                f"Expected to find an element with name '{tag}' and namespace '{namespace}'.",
            )
        if name == "login":
            user = _text(call, "Username")
            if user.casefold() != username.casefold() or _text(call, "Password") != password:
                return _fault("s:Client", BAD_LOGIN_TEXT)
            key = data.start_session(user)
            ns = escape(namespace, {'"': "&quot;"})
            return _envelope(
                f'<LoginResponse xmlns="{ns}"><LoginResult>{key}</LoginResult></LoginResponse>'
            )
        return await execute(request, call)

    async def faults_view(request: Request) -> Response:
        if request.method == "POST":
            try:
                spec = json.loads(await request.body() or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                state_faults.configure(spec)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(state_faults.snapshot())

    app = IsyncApp(
        routes=[
            Route(SERVICE_PATH, service, methods=["POST"]),
            Route("/_faults", faults_view, methods=["GET", "POST"]),
        ]
    )
    app.state.faults = state_faults
    app.state.data = data
    return app


# --------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------


@dataclass
class RunningServer:
    """A served emulator: where it listens, its data and the faults a test can set."""

    base_url: str
    service_url: str
    faults: Faults
    data: IsyncData
    username: str


@contextmanager
def serve(
    data: IsyncData | None = None,
    *,
    password: str,
    username: str = "hub@example.co.za",
    faults: Faults | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Run the emulator on a local port until the block ends (see ``emulators.serving``)."""
    data = data if data is not None else IsyncData()
    faults = faults if faults is not None else Faults()
    app = create_app(data, username=username, password=password, faults=faults, namespace=namespace)
    with serving.in_thread(
        app,
        title="iSync",
        host=host,
        port=port,
        startup_timeout=startup_timeout,
        lifespan="off",
    ) as base_url:
        yield RunningServer(
            base_url=base_url,
            service_url=f"{base_url}{SERVICE_PATH}",
            faults=faults,
            data=data,
            username=username,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Seed and serve: ``python -m emulators.isync --password secret``."""
    parser = argparse.ArgumentParser(
        prog="python -m emulators.isync",
        description="Serve an iSync MessageService over generated stock lines.",
    )
    parser.add_argument("--products", type=int, default=200, help="products to generate")
    parser.add_argument("--variants", type=int, default=3, help="stock lines per product")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument(
        "--numeric-ids",
        action="store_true",
        help="key stock lines by a number (ProductStockID) instead of their SKU",
    )
    parser.add_argument("--shipping-code", default="SHIP", help="service item for shipping")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--username", default="hub@example.co.za")
    parser.add_argument("--password", required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to calls")
    args = parser.parse_args(argv)
    if args.latency < 0 or math.isnan(args.latency):
        parser.error("--latency must not be negative")
    try:
        data = IsyncData.generated(args.products, args.variants, args.seed, args.numeric_ids)
    except ValueError as exc:
        parser.error(str(exc))
    data.add_service_item(args.shipping_code)
    faults = Faults()
    faults.latency = args.latency
    app = create_app(data, username=args.username, password=args.password, faults=faults)
    print(
        f"iSync MessageService on http://{args.host}:{args.port}{SERVICE_PATH} "
        f"({len(data.stock_lines())} stock lines, shipping item {args.shipping_code})"
    )
    uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, http="h11", ws="none", lifespan="off")
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
