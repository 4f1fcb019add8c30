"""iSync through its "Sync EAI" messaging service (seed 001; erp-wire-formats.md section 2).

iSync is cloud-hosted and reached over SOAP 1.1 (a WCF ``MessageService.svc``)
with two calls: ``Login(Username, Password)`` returns a session key, and
``Execute(SessionKey, Operation, MessageXml)`` runs one operation whose
request and answer are XML documents sent as escaped strings. Every
``Execute`` answer carries ``Resultflag`` and ``ResponseText``.

Four rules shape this package:

* **One session per account.** Every Login ends the account's earlier
  sessions, so the key is cached on the instance (kept across ``close``,
  dropped in a forked child) and a login happens only when there is none.
  An ``Invalid session`` answer means someone else logged in with the
  account: log in again and retry that call once; a second one in a row is
  a TransientError (two users are fighting over the account, and the
  workers' shared slot keyed by :meth:`IsyncConnector.session_key` is what
  stops that between hub workers).
* **Parse every answer as hostile** (:mod:`.errors`): both the SOAP envelope
  and the MessageXml inside it go through :mod:`connectors.xmlsafe`; names
  are matched without namespace and case; anything that is not the
  expected document is a TransientError saying what arrived.
* **Never split a product in a full read** (:mod:`.wire`). This relies on
  the listing being grouped by ``JobProductID`` (the reference's and the
  emulator's order: ``JobProductID`` then ``SKU``); a page that is not
  grouped is regrouped, and a warning is logged, but a product whose lines
  are spread over several pages of an ungrouped listing cannot be
  reassembled. Incremental reads return only the changed lines, which the
  hub merges into stored products (``partial_incremental``).
* **No secret leaves this package.** The password (also as escaped in the
  request) and the session key go into requests and nowhere else: every
  message is scrubbed of them, and ``repr`` shows only the account name and
  the service address.
"""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import httpx

from connectors import http, xmlsafe
from connectors.base import (
    ConnectorError,
    Page,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.http import Call, Failure, HttpConnector
from connectors.isync import errors, wire
from connectors.isync.errors import PROXY_HINT
from connectors.isync.settings import IsyncSettingsSchema
from connectors.isync.wire import STAMP_FORMAT, hold_back_last_product, plain

# The package's name, as the logger was named before it became a package.
log = logging.getLogger("connectors.isync")


class IsyncConnector(HttpConnector):
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
    url_setting = "service_url"
    service = "iSync"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self._user = str(self.settings["username"])
        self._password = str(self.settings["password"])
        self._session: str | None = None

    def __repr__(self) -> str:
        return f"<IsyncConnector {self._user!r} at {self.base_url}>"

    def session_key(self) -> str:
        """``isync:`` and a hash of the service and the account (never the password).

        iSync ends an account's earlier sessions at every login, whichever
        source or worker logged in; so the key names the account, not the
        source, and the user name's case is folded as logins fold it.
        """
        digest = hashlib.sha256(f"{self.base_url}\n{self._user.lower()}".encode()).hexdigest()
        return f"isync:{digest}"

    def extra_secrets(self) -> Iterable[str]:
        """The password as escaped in the request, and the session key."""
        return (escape(self._password), self._session or "")

    # ---- HTTP ------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        return {"headers": {"Accept": "text/xml"}}

    def forked(self) -> None:
        """A forked child logs in on its own (``close`` keeps the key for reuse)."""
        self._session = None

    def _post(self, action: str, params: Sequence[tuple[str, Any]], call: Call) -> ET.Element:
        """One SOAP call; the first element inside the answer's Body, or a typed error."""
        try:
            body = wire.soap_envelope(str(self.settings["namespace"]), action, params)
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
            response = self._client().post(self.base_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from None
        return self._answer(response, call)

    def _answer(self, response: httpx.Response, call: Call) -> ET.Element:
        """A SOAP fault first (it says more than its status), then the status,
        then the first element inside the Body."""
        body, problem = errors.soap_body(response, call)
        fault = xmlsafe.child(body, "Fault") if body is not None else None
        failure: Failure | None
        if fault is not None:
            failure = errors.fault_failure(fault, call, response.status_code, self._site)
        else:
            failure = self._status_failure(response, call) or errors.status_failure(
                response.status_code, call, self.where
            )
        if failure is None:
            first = next(iter(body), None) if body is not None else None
            if first is not None:
                return first
            failure = errors.no_document(response, body, problem, call, self.where)
        raise self._failed(failure, call)

    @property
    def _site(self) -> dict[str, str]:
        """The words :mod:`.errors` builds messages of."""
        return {"where": self.where, "user": self._user}

    def _odd(self, message: str) -> ConnectorError:
        """An answer that is not what iSync sends: likely a proxy's."""
        return self._error(TransientError, message, PROXY_HINT)

    # ---- sessions --------------------------------------------------------

    def _login(self) -> str:
        """Log in and cache the key: this ends every other session of the account."""
        self._session = None
        first = self._post(
            "Login",
            [("Username", self._user), ("Password", self._password)],
            Call(what=f"logging in as {self._user}", login=True),
        )
        result = first if xmlsafe.local(first.tag) == "loginresult" else None
        result = result if result is not None else xmlsafe.find(first, "LoginResult")
        key = xmlsafe.text_of(result)
        if key is None:
            raise self._odd(
                f"{self.where} answered the login without a LoginResult "
                f"(<{xmlsafe.local(first.tag)}>)"
            )
        self._session = key
        return key

    def _execute(self, operation: str, message: str, call: Call) -> ET.Element | None:
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
            result, succeeded, text = self._result(first, call)
            if succeeded:
                return self._message(result, operation, call)
            if not errors.INVALID_SESSION.match(text):
                failure = errors.refusal_failure(operation, text, call, self._site)
                raise self._failed(failure, call)
            self._session = None
            if attempt == 2:
                raise self._error(
                    TransientError,
                    f"{self.where} ended the session of {self._user} again right after a "
                    f"new login while {call.what}: {http.short(text)}",
                    "someone else is logging in with this account (another source, tool or "
                    "person); iSync allows one session per user. The hub will try again",
                )
            log.info("iSync ended the session of %s; logging in again", self._user)
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(self, first: ET.Element, call: Call) -> tuple[ET.Element, bool, str]:
        """The ExecuteResult, whether its Resultflag is true, and its ResponseText."""
        result = first if xmlsafe.local(first.tag) == "executeresult" else None
        result = result if result is not None else xmlsafe.find(first, "ExecuteResult")
        result = result if result is not None else first
        flag = (xmlsafe.text_of(xmlsafe.child(result, "Resultflag")) or "").lower()
        text = xmlsafe.text_of(xmlsafe.child(result, "ResponseText")) or ""
        if flag in ("true", "1", "false", "0"):
            return result, flag in ("true", "1"), text
        sample = f"Resultflag {flag!r}" if flag else f"<{xmlsafe.local(first.tag)}>"
        if call.submitting:
            raise self._unknown_outcome(call, f"the answer had no Resultflag ({sample})")
        raise self._odd(
            f"{self.where} answered {call.what} without a Resultflag of true or false ({sample})"
        )

    def _message(self, result: ET.Element, operation: str, call: Call) -> ET.Element | None:
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
            raise self._odd(
                f"{self.where} answered {call.what} with a MessageXml that cannot be read: {exc}"
            ) from None

    # ---- reading ---------------------------------------------------------

    def _products(
        self, page: int, size: int, modified_since: str | None, what: str
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One GetProducts page: its stock lines and the TotalPages iSync reported."""
        call = Call(what=what, setting="op_get_products")
        operation = str(self.settings["op_get_products"])
        document = self._execute(
            operation, wire.products_request_xml(page, size, modified_since), call
        )
        if document is None or xmlsafe.local(document.tag) != "products":
            found = "nothing" if document is None else f"<{xmlsafe.local(document.tag)}>"
            raise self._odd(f"{self.where} answered {what} with {found} instead of <Products>")
        answered = wire.whole(wire.attr(document, "PageNumber"))
        if answered is not None and answered != page:
            raise self._error(
                PermanentError,
                f"{self.where} answered page {answered} when asked for page {page}: "
                "paging would never end",
                f"check that {operation} honours PageNumber; report this to the hub's developers",
            )
        lines = [wire.stock_line(node) for node in xmlsafe.children(document, "Product")]
        return lines, wire.whole(wire.attr(document, "TotalPages"))

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
        return f"reached {self.where} as {self._user}: {found}"

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
        combined, reordered = wire.grouped([*carry, *lines])
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
            stamp = wire.parse_stamp(wire.field(record, "Modified"))
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
            message = wire.sales_order_xml(payload, self.settings.get("default_customer_code"))
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
        po = plain(http.ci_get(http.ci_get(payload, "SalesOrder") or payload, "PONumber"))
        call = Call(what=f"raising order {po}", submitting=True, setting="op_create_sales_order")
        document = self._execute(str(self.settings["op_create_sales_order"]), message, call)
        number = xmlsafe.text_of(document, "OrderNumber") if document is not None else None
        if number is None:
            raise self._unknown_outcome(call, "iSync answered success without an OrderNumber")
        return number

    def find_order(self, reference: str, channel: str | None = None) -> str | None:
        """The OrderNumber of the order raised under PONumber ``reference``, if any."""
        text = str(reference).strip()
        if not text:
            raise ValueError("an order reference must not be blank")
        try:
            message = wire.get_sales_order_xml(text)
        except ValueError as exc:
            raise self._error(
                RejectedError,
                f"cannot look up order {text!r} in iSync: {exc}",
                "the order number holds a control character; correct it on the channel",
            ) from None
        call = Call(what=f"looking up order {text}", setting="op_get_sales_order")
        try:
            document = self._execute(str(self.settings["op_get_sales_order"]), message, call)
        except PermanentError as exc:
            # The reference answers an empty result for an unknown order; a
            # server that says "not found" instead means the same, and must
            # not stop the retry that asked.
            if type(exc) is PermanentError and errors.NOT_FOUND.search(exc.message):
                return None
            raise
        if document is None:
            return None
        if xmlsafe.local(document.tag) != "salesorderresult":
            raise self._odd(
                f"{self.where} answered {call.what} with <{xmlsafe.local(document.tag)}> "
                "instead of <SalesOrderResult>"
            )
        return xmlsafe.text_of(document, "OrderNumber")
