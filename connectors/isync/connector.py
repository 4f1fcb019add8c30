"""iSync through its "Sync EAI" messaging service (seed 001; erp-wire-formats.md section 2).

iSync is cloud-hosted and reached over SOAP 1.1 (a WCF ``MessageService.svc``)
with two calls: ``Login(Username, Password)`` returns a session key, and
``Execute(SessionKey, Operation, MessageXml)`` runs one operation whose
request and answer are XML documents sent as escaped strings. Every
``Execute`` answer carries ``Resultflag`` and ``ResponseText``.

Four rules shape this module:

* **One session per account.** Every Login ends the account's earlier
  sessions, so the key is cached on the instance and a login happens only
  when there is none. An ``Invalid session`` answer means someone else
  logged in with the account: log in again and retry that call once; a
  second one in a row is a TransientError (two users are fighting over the
  account, and the workers' shared slot keyed by :meth:`session_key` is
  what stops that between hub workers).
* **Parse every answer as hostile.** Both the SOAP envelope and the
  MessageXml inside it go through :mod:`connectors.xmlsafe` (no DOCTYPE, no
  entities); names are matched without namespace and case; anything that
  is not the expected document is a TransientError saying what arrived.
* **Never split a product in a full read.** Stock lines sharing a
  ``JobProductID`` are one product, and the hub replaces a product's
  variants whenever it writes it; so the lines of the last product of a
  page are held back in the cursor and emitted with the next page. This
  relies on the listing being grouped by ``JobProductID`` (the reference's
  and the emulator's order: ``JobProductID`` then ``SKU``); a page that is
  not grouped is regrouped, and a warning is logged, but a product whose
  lines are spread over several pages of an ungrouped listing cannot be
  reassembled. Incremental reads return only the changed lines, which the
  hub merges into stored products (``partial_incremental``).
* **No secret leaves this module.** The password and the session key go
  into requests and nowhere else: every message is scrubbed of them, and
  ``repr`` shows only the account name and the service address.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import httpx
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from connectors import http, xmlsafe
from connectors.base import (
    Connector,
    ConnectorError,
    Page,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)

__all__ = [
    "DELIVERY_FIELDS",
    "IsyncConnector",
    "IsyncSettingsSchema",
    "get_sales_order_xml",
    "hold_back_last_product",
    "products_request_xml",
    "sales_order_xml",
    "soap_envelope",
]

log = logging.getLogger(__name__)

SOAP_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
STAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
PRODUCT_ID: Final = "JobProductID"
LINE_IDS: Final = ("ProductStockID", "SKU")
DELIVERY_FIELDS: Final = (
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
CENT: Final = Decimal("0.01")

# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.-]{0,127}\Z")
_INVALID_SESSION = re.compile(r"\A\s*invalid session", re.IGNORECASE)
_UNKNOWN_OPERATION = re.compile(
    r"unknown operation|no such operation|invalid operation|operation\b.*\bnot\b"
    r".*\b(supported|found|recogni[sz]ed|known)",
    re.IGNORECASE,
)
_BUSY = re.compile(
    r"try again|\bbusy\b|temporar|timed? ?out|unavailable|deadlock|maintenance", re.IGNORECASE
)
_NOT_FOUND = re.compile(r"not found|does not exist|no such|no sales order", re.IGNORECASE)
_NAMES_A_LINE = re.compile(r"\bline\s*\d+", re.IGNORECASE)
_ACCESS = re.compile(
    r"not authori[sz]ed|unauthori[sz]ed|access denied|permission|not permitted|forbidden",
    re.IGNORECASE,
)
_CREDENTIALS = re.compile(
    r"user ?name|password|credential|log ?in|log ?on|authenticat|unauthori|not authori"
    r"|access denied|invalid user|unknown user|incorrect|wrong",
    re.IGNORECASE,
)
_SERVER_FAULT = re.compile(
    r"internal error|internal server|timed? ?out|unavailable|\bbusy\b|try again|temporar",
    re.IGNORECASE,
)
_CONTRACT = re.compile(r"ActionNotSupported|ContractFilter|EndpointDispatcher", re.IGNORECASE)


# --------------------------------------------------------------------------
# Request documents
# --------------------------------------------------------------------------


def _xml_text(value: Any, what: str) -> str:
    """``value`` as XML character data; ValueError for what XML cannot carry."""
    text = "" if value is None else str(value)
    bad = _NOT_XML.search(text)
    if bad:
        raise ValueError(f"{what} contains a control character ({bad.group()!r}) XML cannot carry")
    return escape(text)


def _element(name: str, value: Any, what: str | None = None) -> str:
    return f"<{name}>{_xml_text(value, what or name)}</{name}>"


def soap_envelope(namespace: str, operation: str, params: Sequence[tuple[str, Any]]) -> bytes:
    """A SOAP 1.1 request: ``<operation xmlns=namespace>`` holding ``params`` in order.

    Parameter values are escaped here, which is how ``Execute`` carries its
    MessageXml: as text, not as nested elements.
    """
    if not _NAME.fullmatch(operation):
        raise ValueError(f"{operation!r} is not an XML element name")
    body = "".join(_element(name, value) for name, value in params)
    ns = escape(namespace, {'"': "&quot;"})
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<{operation} xmlns="{ns}">{body}</{operation}>'
        "</soap:Body></soap:Envelope>"
    ).encode()


def products_request_xml(page: int, size: int, modified_since: str | None = None) -> str:
    """The GetProducts MessageXml for one page, optionally of lines changed since a time."""
    parts = [_element("PageNumber", int(page)), _element("PageSize", int(size))]
    if modified_since is not None:
        parts.append(_element("ModifiedSince", modified_since))
    return f"<GetProducts>{''.join(parts)}</GetProducts>"


def get_sales_order_xml(reference: str) -> str:
    """The GetSalesOrder MessageXml that looks an order up by its PONumber."""
    return f"<GetSalesOrder>{_element('PONumber', reference)}</GetSalesOrder>"


def _plain(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _units(value: Any, label: str) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{label} Units {value!r} is not a whole number above 0")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{label} Units {value!r} is not a whole number above 0") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 1:
        raise ValueError(f"{label} Units {value!r} is not a whole number above 0")
    return str(int(number))


def _price(value: Any, label: str) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{label} SellingPrice {value!r} is not a price")
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{label} SellingPrice {value!r} is not a price") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{label} SellingPrice {value!r} is not a price of 0 or more")
    return str(number.quantize(CENT, rounding=ROUND_HALF_UP))


def sales_order_xml(payload: Mapping[str, Any], default_customer_code: str | None = None) -> str:
    """The CreateSalesOrder MessageXml for the orders map's payload.

    The payload is ``{PONumber, CustomerCode, DeliveryDetail: {Name, ...},
    Lines: [{ProductStockID, Units, SellingPrice}]}`` (keys in any case; a
    ``SalesOrder`` wrapper is accepted). Elements are written in the
    reference's order, every DeliveryDetail element present (blank when
    unknown), Units as whole numbers and prices with two decimals. Raises
    ValueError naming the line and field at fault: the payload, not iSync,
    is wrong, and sending it could only be refused.
    """
    wrapped = http.ci_get(payload, "SalesOrder")
    order = wrapped if isinstance(wrapped, Mapping) else payload
    if not isinstance(order, Mapping):
        raise ValueError("the order payload is not a set of fields")
    po = _plain(http.ci_get(order, "PONumber"))
    if not po:
        raise ValueError("the order payload has no PONumber")
    customer = _plain(http.ci_get(order, "CustomerCode")) or _plain(default_customer_code)
    if not customer:
        raise ValueError(
            "the order has no CustomerCode and the source has no default_customer_code"
        )
    lines = http.ci_get(order, "Lines")
    if isinstance(lines, Mapping):  # {"Line": [...]}, as XML-minded code may write it
        lines = http.ci_get(lines, "Line")
    if not isinstance(lines, list) or not lines:
        raise ValueError(f"order {po} has no lines to raise")
    delivery = http.ci_get(order, "DeliveryDetail")
    delivery = delivery if isinstance(delivery, Mapping) else {}
    parts = [
        _element("PONumber", po),
        _element("CustomerCode", customer),
        "<DeliveryDetail>"
        + "".join(
            _element(name, _plain(http.ci_get(delivery, name)), f"DeliveryDetail {name}")
            for name in DELIVERY_FIELDS
        )
        + "</DeliveryDetail>",
        "<Lines>",
    ]
    for index, line in enumerate(lines, start=1):
        label = f"line {index}"
        if not isinstance(line, Mapping):
            raise ValueError(f"{label} is not a set of fields")
        code = _plain(http.ci_get(line, "ProductStockID"))
        if not code:
            raise ValueError(f"{label} has no ProductStockID")
        parts.append(
            "<Line>"
            + _element("ProductStockID", code, f"{label} ProductStockID")
            + _element("Units", _units(http.ci_get(line, "Units"), label))
            + _element("SellingPrice", _price(http.ci_get(line, "SellingPrice"), label))
            + "</Line>"
        )
    parts.append("</Lines>")
    return f"<SalesOrder>{''.join(parts)}</SalesOrder>"


# --------------------------------------------------------------------------
# Reading answers
# --------------------------------------------------------------------------


def _attr(node: ET.Element, name: str) -> str | None:
    """An attribute without regard to namespace or case."""
    wanted = name.lower()
    for key, value in node.attrib.items():
        if xmlsafe.local(key) == wanted:
            return value.strip()
    return None


def _whole(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def _stock_line(node: ET.Element) -> dict[str, Any]:
    """One ``Product`` element as a flat dict: element names as sent, text stripped.

    Blank elements become None. Nested elements (none are documented) are
    left out rather than flattened into something a map might misread.
    """
    record: dict[str, Any] = {}
    for item in node:
        if len(item):
            continue
        name = item.tag.rsplit("}", 1)[-1]
        text = item.text.strip() if item.text is not None else ""
        record[name] = text or None
    return record


def _field(record: Mapping[str, Any], name: str) -> Any:
    value = record.get(name)
    return value if value is not None else http.ci_get(record, name)


def _product_of(record: Mapping[str, Any]) -> str:
    return _plain(_field(record, PRODUCT_ID))


def _line_id(record: Mapping[str, Any]) -> str | None:
    for name in LINE_IDS:
        value = _plain(_field(record, name))
        if value:
            return value
    return None


def _grouped(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Lines deduplicated by stock line, grouped by product in first-seen order.

    Returns the lines and whether the input was out of product order. The
    same line twice happens when page-number paging meets a line inserted
    between two pages: the later copy is the fresher one and wins.
    """
    by_line: dict[str, int] = {}
    unique: list[dict[str, Any]] = []
    for line in lines:
        key = _line_id(line)
        if key is not None and key in by_line:
            unique[by_line[key]] = line
            continue
        if key is not None:
            by_line[key] = len(unique)
        unique.append(line)
    groups: dict[str, list[dict[str, Any]]] = {}
    order_broken = False
    previous: str | None = None
    for line in unique:
        product = _product_of(line)
        if product in groups and product != previous:
            order_broken = True
        groups.setdefault(product, []).append(line)
        previous = product
    return [line for group in groups.values() for line in group], order_broken


def hold_back_last_product(
    lines: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split grouped ``lines`` into those to emit now and the last product's lines.

    The last product of a page that is not the listing's last may continue
    on the next page; emitting part of it would make the hub replace its
    variants with that part. When one product fills the whole page, nothing
    is emitted and all of it is carried on.
    """
    if not lines:
        return [], []
    last = _product_of(lines[-1])
    cut = len(lines)
    while cut > 0 and _product_of(lines[cut - 1]) == last:
        cut -= 1
    return lines[:cut], lines[cut:]


def _parse_stamp(value: Any) -> datetime | None:
    """A ``Modified`` value as a naive datetime (iSync sends no zone; one given is dropped)."""
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        text = value.strip().replace("/", "-")
        if not text:
            return None
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # .NET writes seven fractional digits; Python reads at most six.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return stamp.replace(tzinfo=None) if stamp.tzinfo is not None else stamp


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


class _ServiceUrl(fields.String):
    """The MessageService.svc address, normalised so that loading twice changes nothing.

    A pasted ``?wsdl`` is dropped (it is the same service); other queries,
    fragments and credentials in the address are refused, since the address
    appears in messages.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "must be an http:// or https:// address, e.g. "
                "https://isync.example.com/MessageService.svc"
            )
        if parts.username is not None or parts.password is not None:
            raise ValidationError(
                "must not contain a user name or password: give them as username and password"
            )
        query = parts.query.lower()
        if (query and query not in ("wsdl", "singlewsdl")) or parts.fragment:
            raise ValidationError("must be the service's address, without ? or #")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValidationError("has a port that is not a number from 1 to 65535") from None
        netloc = parts.netloc.lower()
        return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


class _Name(fields.String):
    """An operation name: it becomes the text of ``Operation``, so keep it plain."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not _NAME.fullmatch(text):
            raise ValidationError("must be a plain name (letters, digits, _ . -)")
        return text


class _Text(fields.String):
    """Text that ends up inside iSync's XML: stripped, no control characters."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            raise ValidationError("must not be blank")
        if _NOT_XML.search(text):
            raise ValidationError("must not contain control characters")
        return text


class IsyncSettingsSchema(Schema):
    """Seed 001's prerequisites (username and password), plus what a site may tune.

    The namespace, SOAPAction prefix and operation names are unverified in
    public (erp-wire-formats.md section 2), so they are settings: a site
    that differs changes them without code.
    """

    class Meta:
        unknown = RAISE

    service_url = _ServiceUrl(
        required=True,
        metadata={"description": "The iSync MessageService.svc address"},
    )
    username = _Text(
        required=True,
        validate=validate.Length(max=256),
        metadata={"description": "iSync Username/Email"},
    )
    password = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "iSync Password"},
    )
    shipping_code = _Text(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "ProductStockID of the service item shipping is raised as"},
    )
    default_customer_code = _Text(
        load_default=None,
        validate=validate.Length(max=64),
        metadata={"description": "CustomerCode for orders without a customer code"},
    )
    page_size = fields.Integer(
        load_default=500,
        validate=validate.Range(1, 5000),
        metadata={"description": "Stock lines per page the hub asks for"},
    )
    namespace = fields.String(
        load_default="http://tempuri.org/",
        validate=validate.Length(min=1, max=500),
        metadata={"description": "XML namespace of the service's operations"},
    )
    soap_action_prefix = fields.String(
        load_default="http://tempuri.org/IMessageService/",
        validate=validate.Length(min=1, max=500),
        metadata={"description": "SOAPAction is this prefix followed by Login or Execute"},
    )
    op_get_products = _Name(
        load_default="GetProducts",
        metadata={"description": "Operation that lists stock lines"},
    )
    op_create_sales_order = _Name(
        load_default="CreateSalesOrder",
        metadata={"description": "Operation that raises a sales order"},
    )
    op_get_sales_order = _Name(
        load_default="GetSalesOrder",
        metadata={"description": "Operation that finds a sales order by PONumber"},
    )
    timeout = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=0.1, max=600),
        metadata={"description": "Seconds to wait for iSync to answer one call"},
    )
    overlap_minutes = fields.Integer(
        load_default=10,
        validate=validate.Range(0, 24 * 60),
        metadata={
            "description": "Incremental reads start this long before the last change seen, "
            "so lines saved while a sync ran are not missed"
        },
    )

    @pre_load
    def _blank_is_unset(self, data: Any, **_: Any) -> Any:
        # Forms and YAML files hand over "" or null for a field left empty;
        # both mean "use the default", which also keeps loading idempotent.
        if not isinstance(data, Mapping):
            return data
        return {
            key: value
            for key, value in data.items()
            if value is not None and not (isinstance(value, str) and not value.strip())
        }


# --------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """What a call is doing, for the sentence an operator reads when it fails.

    ``submitting``: the call may have changed iSync (CreateSalesOrder), so a
    lost answer leaves the outcome unknown. ``setting``: the settings field
    naming the operation, for when iSync does not know it.
    """

    what: str
    submitting: bool = False
    login: bool = False
    setting: str | None = None


class IsyncConnector(Connector):
    """Products from iSync's stock lines; sales orders into iSync.

    Customers are not offered (seed 001): asking for them is a
    ``NotSupportedError`` from the base class.
    """

    kind = "isync"
    title = "iSync"
    streams = frozenset({"products"})
    settings_schema = IsyncSettingsSchema
    partial_incremental = True
    session_limit = 1

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        s = self.settings
        self._url = str(s["service_url"])
        self._user = str(s["username"])
        self._password = str(s["password"])
        self._session: str | None = None
        self._http: httpx.Client | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"<IsyncConnector {self._user!r} at {self._url}>"

    @property
    def page_size(self) -> int:
        """The page size this source's settings ask for."""
        return int(self.settings["page_size"])

    def session_key(self) -> str:
        """``isync:`` and a hash of the service and the account (never the password).

        iSync ends an account's earlier sessions at every login, whichever
        source or worker logged in; so the key names the account, not the
        source, and the user name's case is folded as logins fold it.
        """
        digest = hashlib.sha256(f"{self._url}\n{self._user.lower()}".encode()).hexdigest()
        return f"isync:{digest}"

    @property
    def _where(self) -> str:
        return f"iSync at {self._url}"

    def _secrets(self) -> list[str]:
        found = {self._password, escape(self._password), self._session or ""}
        # Longest first, so that a secret containing another is replaced whole.
        return sorted((x for x in found if x), key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _error(
        self, cls: type[ConnectorError], message: str, hint: str | None = None, **extra: Any
    ) -> ConnectorError:
        """Every error leaves through here, so no message can carry a secret."""
        return cls(self._scrub(message), hint=self._scrub(hint) if hint else None, **extra)

    # ---- HTTP ------------------------------------------------------------

    def _client(self) -> httpx.Client:
        """One client per process: a pool inherited over a fork would be shared."""
        pid = os.getpid()
        if self._http is None or self._pid != pid:
            if self._pid is not None and self._pid != pid:
                self._session = None  # a forked child logs in on its own
            seconds = float(self.settings["timeout"])
            self._http = http.client(seconds, headers={"Accept": "text/xml"})
            self._pid = pid
        return self._http

    def close(self) -> None:
        """Close this process's connections (the session key is kept for reuse)."""
        if self._http is not None and self._pid == os.getpid():
            self._http.close()
        self._http = None
        self._pid = None

    def _post(self, action: str, params: Sequence[tuple[str, Any]], call: _Call) -> ET.Element:
        """One SOAP call; the first element inside the answer's Body, or a typed error."""
        try:
            body = soap_envelope(str(self.settings["namespace"]), action, params)
        except ValueError as exc:
            raise self._error(
                RejectedError if call.submitting else PermanentError,
                f"cannot send {call.what} to iSync: {exc}",
                "correct the value named; XML cannot carry control characters",
            ) from None
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{self.settings["soap_action_prefix"]}{action}"',
        }
        try:
            response = self._client().post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from None
        return self._answer(response, call)

    def _unknown_outcome(
        self, call: _Call, happened: str, retry_after: float | None = None
    ) -> ConnectorError:
        return self._error(
            TransientError,
            f"{happened} while {call.what}, after the order was sent: iSync may or may not "
            "have recorded it",
            "the hub looks the order up in iSync before sending it again",
            retry_after=retry_after,
        )

    def _transport_error(self, exc: httpx.HTTPError, call: _Call) -> ConnectorError:
        failure = http.transport_failure(
            exc,
            where=self._where,
            what=call.what,
            submitting=call.submitting,
            url_setting="service_url",
            erp="iSync",
        )
        if failure.unknown_outcome:
            return self._unknown_outcome(call, failure.message)
        return self._error(failure.kind, failure.message, failure.hint)

    def _not_soap(self, call: _Call, sample: str) -> ConnectorError:
        if call.submitting:
            return self._unknown_outcome(call, f"the answer was not a SOAP envelope ({sample})")
        return self._error(
            TransientError,
            f"{self._where} answered {call.what} with something that is not a SOAP envelope: "
            f"{sample}",
            "a proxy or a busy server may have cut the answer short; the hub will try again",
        )

    def _answer(self, response: httpx.Response, call: _Call) -> ET.Element:
        status = response.status_code
        envelope: ET.Element | None = None
        problem = ""
        if response.content:
            try:
                envelope = xmlsafe.parse(response.content, what=f"iSync's answer to {call.what}")
            except ValueError as exc:  # BadXmlError or UnsafeXmlError
                problem = str(exc)
        body = xmlsafe.child(envelope, "Body") if envelope is not None else None
        if envelope is not None and (xmlsafe.local(envelope.tag) != "envelope" or body is None):
            problem = f"<{xmlsafe.local(envelope.tag)}> without a SOAP Body"
            body = None
        fault = xmlsafe.child(body, "Fault") if body is not None else None
        if fault is not None:
            raise self._fault_error(fault, call, status)
        if status == 429 or status >= 500:
            retry_after = http.retry_seconds(response.headers.get("retry-after"))
            if call.submitting and status != 429:
                raise self._unknown_outcome(
                    call, f"{self._where} answered HTTP {status}", retry_after
                )
            what = "is rate limiting the hub" if status == 429 else "is unavailable"
            raise self._error(
                TransientError,
                f"{self._where} {what} (HTTP {status}) while {call.what}",
                "the hub will try again",
                retry_after=retry_after,
            )
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            raise self._error(
                SettingsError,
                f"{self._where} redirects (HTTP {status}) to {location or 'another address'}",
                "set service_url to the address the server redirects to",
            )
        if status in (401, 403):
            raise self._error(
                SettingsError,
                f"{self._where} refused access (HTTP {status}) while {call.what}",
                "check service_url, username and password in the source's settings",
            )
        if status == 404:
            raise self._error(
                SettingsError,
                f"{self._where} has no service at that address (HTTP 404)",
                "check service_url: it is the address of MessageService.svc",
            )
        if status >= 400:
            raise self._error(
                SettingsError,
                f"{self._where} refused the request as malformed (HTTP {status}) while {call.what}",
                "check service_url, namespace and soap_action_prefix in the source's settings",
            )
        if body is None:
            sample = problem or (
                http.short(response.text, 80) if response.content else "an empty body"
            )
            raise self._not_soap(call, sample)
        first = next(iter(body), None)
        if first is None:
            raise self._not_soap(call, "an empty SOAP Body")
        return first

    def _fault_error(self, fault: ET.Element, call: _Call, status: int) -> ConnectorError:
        text = xmlsafe.text_of(fault, "faultstring") or xmlsafe.text_of(fault, "Text") or ""
        code = xmlsafe.text_of(fault, "faultcode") or xmlsafe.text_of(fault, "Value") or ""
        shown = http.short(text or code or f"HTTP {status}")
        if _CONTRACT.search(f"{code} {text}"):
            return self._error(
                SettingsError,
                f"{self._where} does not know the call it was sent while {call.what}: {shown}",
                "check namespace and soap_action_prefix in the source's settings",
            )
        if call.login and (_CREDENTIALS.search(text) or not _SERVER_FAULT.search(text)):
            return self._error(
                SettingsError,
                f"{self._where} refused the login as {self._user}: {shown}",
                "check username and password in the source's settings",
            )
        if call.submitting:
            return self._unknown_outcome(call, f"{self._where} answered a SOAP fault ({shown})")
        return self._error(
            TransientError,
            f"{self._where} answered a SOAP fault while {call.what}: {shown}",
            "the hub will try again",
        )

    # ---- sessions --------------------------------------------------------

    def _login(self) -> str:
        """Log in and cache the key: this ends every other session of the account."""
        self._session = None
        first = self._post(
            "Login",
            [("Username", self._user), ("Password", self._password)],
            _Call(what=f"logging in as {self._user}", login=True),
        )
        result = first if xmlsafe.local(first.tag) == "loginresult" else None
        result = result if result is not None else xmlsafe.find(first, "LoginResult")
        key = xmlsafe.text_of(result)
        if key is None:
            raise self._error(
                TransientError,
                f"{self._where} answered the login without a LoginResult "
                f"(<{xmlsafe.local(first.tag)}>)",
                "a proxy may be answering instead of iSync; the hub will try again",
            )
        self._session = key
        return key

    def _execute(self, operation: str, message: str, call: _Call) -> ET.Element | None:
        """Run one operation; its MessageXml document (None when empty), or a typed error.

        An ``Invalid session`` answer (another login replaced ours) means the
        operation did not run, so it is safe to log in and send it once more,
        orders included.
        """
        for attempt in (1, 2):
            key = self._session or self._login()
            first = self._post(
                "Execute",
                [("SessionKey", key), ("Operation", operation), ("MessageXml", message)],
                call,
            )
            result = first if xmlsafe.local(first.tag) == "executeresult" else None
            result = result if result is not None else xmlsafe.find(first, "ExecuteResult")
            result = result if result is not None else first
            flag = (xmlsafe.text_of(xmlsafe.child(result, "Resultflag")) or "").lower()
            text = xmlsafe.text_of(xmlsafe.child(result, "ResponseText")) or ""
            if flag in ("true", "1"):
                return self._message(result, operation, call)
            if flag not in ("false", "0"):
                sample = f"Resultflag {flag!r}" if flag else f"<{xmlsafe.local(first.tag)}>"
                if call.submitting:
                    raise self._unknown_outcome(call, f"the answer had no Resultflag ({sample})")
                raise self._error(
                    TransientError,
                    f"{self._where} answered {call.what} without a Resultflag of true or false "
                    f"({sample})",
                    "a proxy may be answering instead of iSync; the hub will try again",
                )
            if _INVALID_SESSION.match(text):
                self._session = None
                if attempt == 1:
                    log.info("iSync ended the session of %s; logging in again", self._user)
                    continue
                raise self._error(
                    TransientError,
                    f"{self._where} ended the session of {self._user} again right after a "
                    f"new login while {call.what}: {http.short(text)}",
                    "someone else is logging in with this account (another source, tool or "
                    "person); iSync allows one session per user. The hub will try again",
                )
            raise self._refusal(operation, text, call)
        raise AssertionError("unreachable")  # pragma: no cover

    def _message(self, result: ET.Element, operation: str, call: _Call) -> ET.Element | None:
        holder = xmlsafe.child(result, "MessageXml")
        if holder is None:
            return None
        nested = next(iter(holder), None)
        if nested is not None:  # sent as elements rather than as an escaped string
            return nested
        text = (holder.text or "").strip()
        if not text:
            return None
        try:
            return xmlsafe.parse(text, what=f"iSync's {operation} MessageXml")
        except ValueError as exc:
            if call.submitting:
                raise self._unknown_outcome(call, str(exc)) from None
            raise self._error(
                TransientError,
                f"{self._where} answered {call.what} with a MessageXml that cannot be read: {exc}",
                "a proxy may be answering instead of iSync; the hub will try again",
            ) from None

    def _refusal(self, operation: str, text: str, call: _Call) -> ConnectorError:
        """``Resultflag false``: iSync's own words, typed by what would fix it."""
        shown = text or "no reason given"
        if _UNKNOWN_OPERATION.search(text):
            setting = call.setting or "the op_ settings"
            return self._error(
                SettingsError,
                f"{self._where} does not know operation {operation!r}: {http.short(shown)}",
                f"check {setting} in the source's settings",
            )
        if _BUSY.search(text) and not _NAMES_A_LINE.search(text):
            return self._error(
                TransientError,
                f"{self._where} is busy while {call.what}: {http.short(shown)}",
                "the hub will try again",
            )
        if call.submitting:
            return self._error(
                RejectedError,
                f"iSync refused {call.what.removeprefix('raising ')}: {shown}",
                "correct the order (stock codes, customer code) or the source's settings, "
                "then replay it",
            )
        if _ACCESS.search(text):
            return self._error(
                SettingsError,
                f"{self._where} refused {call.what} for {self._user}: {http.short(shown)}",
                "check that the iSync user may run this operation",
            )
        return self._error(
            PermanentError,
            f"{self._where} refused {call.what}: {http.short(shown)}",
            "see iSync's message; correct the cause in iSync or in the source's settings",
        )

    # ---- reading ---------------------------------------------------------

    def _products(
        self, page: int, size: int, modified_since: str | None, what: str
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One GetProducts page: its stock lines and the TotalPages iSync reported."""
        call = _Call(what=what, setting="op_get_products")
        operation = str(self.settings["op_get_products"])
        document = self._execute(operation, products_request_xml(page, size, modified_since), call)
        if document is None or xmlsafe.local(document.tag) != "products":
            found = "nothing" if document is None else f"<{xmlsafe.local(document.tag)}>"
            raise self._error(
                TransientError,
                f"{self._where} answered {what} with {found} instead of <Products>",
                "a proxy may be answering instead of iSync; the hub will try again",
            )
        answered = _whole(_attr(document, "PageNumber"))
        if answered is not None and answered != page:
            raise self._error(
                PermanentError,
                f"{self._where} answered page {answered} when asked for page {page}: "
                "paging would never end",
                f"check that {operation} honours PageNumber; report this to the hub's developers",
            )
        lines = [_stock_line(node) for node in xmlsafe.children(document, "Product")]
        return lines, _whole(_attr(document, "TotalPages"))

    def check(self) -> str:
        """Read one stock line (logging in first); with a page size of 1, TotalPages counts them.

        A cached session is reused rather than replaced: a fresh login would
        end the session of whoever else is using the account right now.
        """
        lines, total = self._products(1, 1, None, "checking the connection")
        if total is not None:
            found = f"{total:,} stock line{'s' if total != 1 else ''}"
        elif lines:
            found = "the product listing answers"
        else:
            found = "no stock lines"
        return f"reached {self._where} as {self._user}: {found}"

    def _since_text(self, since: datetime) -> str:
        """The lower bound of an incremental read: ``since`` less the overlap.

        The watermark came from iSync's own ``Modified`` values, which carry
        no zone, so an aware ``since`` is read as that wall time (its zone
        dropped, not converted).
        """
        overlap = timedelta(minutes=int(self.settings["overlap_minutes"]))
        return (since.replace(tzinfo=None) - overlap).strftime(STAMP_FORMAT)

    def _cursor(self, cursor: Any) -> tuple[int, list[dict[str, Any]]]:
        if cursor is None:
            return 1, []
        if isinstance(cursor, int) and not isinstance(cursor, bool) and cursor >= 1:
            return cursor, []
        if isinstance(cursor, Mapping):
            page = cursor.get("page")
            carry = cursor.get("carry") or []
            if (
                isinstance(page, int)
                and not isinstance(page, bool)
                and page >= 1
                and isinstance(carry, list)
                and all(isinstance(line, Mapping) for line in carry)
            ):
                return page, [dict(line) for line in carry]
        raise self._error(
            PermanentError,
            f"the stored cursor {http.short(repr(cursor), 80)} is not an iSync page cursor",
            "start a full resync of this source",
        )

    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        """One page of stock lines; in a full read, whole products only.

        ``limit`` is the PageSize asked of iSync (the worker passes the
        source's page_size). A hub page may hold more or fewer lines than
        that, because the last product of each iSync page waits in the
        cursor (``{"page": n, "carry": [lines]}``) for the rest of its lines.
        """
        page, carry = self._cursor(cursor)
        modified_since = self._since_text(since) if since is not None else None
        lines, total = self._products(page, limit, modified_since, f"reading stock page {page}")
        last = page >= total if total is not None else len(lines) < limit
        if since is not None:
            # Incremental: changed lines are merged into stored products, so
            # a product may span pages; nothing is held back.
            return Page(records=lines, next_cursor=None if last else {"page": page + 1})
        combined, reordered = _grouped([*carry, *lines])
        if reordered:
            log.warning(
                "iSync stock page %d is not grouped by JobProductID; regrouped, but a product "
                "spread over several pages may be written in parts",
                page,
            )
        if last:
            return Page(records=combined, next_cursor=None)
        emit, hold = hold_back_last_product(combined)
        return Page(records=emit, next_cursor={"page": page + 1, "carry": hold})

    def high_water(self, records: Iterable[Mapping[str, Any]]) -> str | None:
        """The latest ``Modified`` among ``records``, as ``YYYY-MM-DDTHH:MM:SS``.

        The hub keeps the highest of these as the stream's watermark and
        passes it back as ``since``; values that cannot be read (blank,
        unparseable) are skipped rather than failing the page.
        """
        latest: datetime | None = None
        for record in records:
            if not isinstance(record, Mapping):
                continue
            stamp = _parse_stamp(_field(record, "Modified"))
            if stamp is not None and (latest is None or stamp > latest):
                latest = stamp
        return latest.strftime(STAMP_FORMAT) if latest is not None else None

    # ---- orders ----------------------------------------------------------

    def raise_order(self, payload: dict[str, Any]) -> str:
        """Create one sales order; iSync's OrderNumber, e.g. ``SO000123``.

        A lost answer (timeout, dropped connection, 5xx, a success without
        an OrderNumber) is a TransientError saying the outcome is unknown:
        the worker asks ``find_order`` before sending it again.
        """
        try:
            message = sales_order_xml(payload, self.settings.get("default_customer_code"))
        except ValueError as exc:
            if "default_customer_code" in str(exc):
                raise self._error(
                    SettingsError,
                    f"cannot raise the order in iSync: {exc}",
                    "set default_customer_code to iSync's cash customer",
                ) from None
            raise self._error(
                RejectedError, f"cannot raise the order in iSync: {exc}", "correct the order"
            ) from None
        po = _plain(http.ci_get(http.ci_get(payload, "SalesOrder") or payload, "PONumber"))
        call = _Call(what=f"raising order {po}", submitting=True, setting="op_create_sales_order")
        document = self._execute(str(self.settings["op_create_sales_order"]), message, call)
        number = xmlsafe.text_of(document, "OrderNumber") if document is not None else None
        if number is None:
            raise self._unknown_outcome(call, "iSync answered success without an OrderNumber")
        return number

    def find_order(self, reference: str) -> str | None:
        """The OrderNumber of the order raised under PONumber ``reference``, if any."""
        text = str(reference).strip()
        if not text:
            raise ValueError("an order reference must not be blank")
        try:
            message = get_sales_order_xml(text)
        except ValueError as exc:
            raise self._error(
                RejectedError,
                f"cannot look up order {text!r} in iSync: {exc}",
                "the order number holds a control character; correct it on the channel",
            ) from None
        call = _Call(what=f"looking up order {text}", setting="op_get_sales_order")
        try:
            document = self._execute(str(self.settings["op_get_sales_order"]), message, call)
        except PermanentError as exc:
            # The reference answers an empty result for an unknown order; a
            # server that says "not found" instead means the same, and must
            # not stop the retry that asked.
            if type(exc) is PermanentError and _NOT_FOUND.search(exc.message):
                return None
            raise
        if document is None:
            return None
        if xmlsafe.local(document.tag) != "salesorderresult":
            raise self._error(
                TransientError,
                f"{self._where} answered {call.what} with <{xmlsafe.local(document.tag)}> "
                "instead of <SalesOrderResult>",
                "a proxy may be answering instead of iSync; the hub will try again",
            )
        return xmlsafe.text_of(document, "OrderNumber")
