"""IQ Retail through its "IQ API Interface" (seed 000; erp-wire-formats.md section 1).

IQ Retail runs on the client's own server and is reached over a small REST
API: every call is ``POST {request_url}/IQRetailRestAPI/v1/{Method}`` with a
JSON envelope that repeats the credentials in the body. Stock is read with
``IQ_API_Request_GenericSQL`` (SQL text, DBISAM flavour) and orders go in as
``IQ_API_Submit_Document_Sales_Order`` documents.

The SQL text and the envelope are :mod:`.wire`'s, the reading of IQ's error
answers :mod:`.errors`'s. **No secret leaves this connector**: the password,
the partner passphrase and the Basic token made of them go into the request
and nowhere else; every message is scrubbed of them (``HttpConnector``),
even text the server sent back, and ``repr`` shows only public settings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from connectors import http
from connectors.base import Page, PermanentError, RejectedError, SettingsError
from connectors.http import Call, Failure, HttpConnector
from connectors.iq_retail import errors, wire
from connectors.iq_retail.settings import IqRetailSettingsSchema
from connectors.iq_retail.wire import (
    STAMP_FORMAT,
    find_order_sql,
    stock_columns,
    stock_count_sql,
    stock_page_sql,
)


class IqRetailConnector(HttpConnector):
    """Products from IQ's Stock table; sales orders into IQ.

    Customers are not offered (seed 000): asking for them is a
    ``NotSupportedError`` from the base class.
    """

    kind = "iq_retail"
    title = "IQ Retail"
    streams = frozenset({"products"})
    settings_schema = IqRetailSettingsSchema
    url_setting = "request_url"
    service = "the IQ API service"
    sent = "the document"
    looked_up_in = "IQ"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        s = self.settings
        self._company = str(s["company_number"])
        self._user = str(s["user_number"])
        self._password = str(s["user_password"])
        self._passphrase = str(s["partner_passphrase"] or "")
        self._columns = stock_columns(str(s["qty_formula"]))

    def __repr__(self) -> str:
        return (
            f"<IqRetailConnector company {self._company!r} at {self.base_url} "
            f"as user {self._user!r}>"
        )

    def extra_secrets(self) -> Iterable[str]:
        """The Basic token: the user number and password, base64-encoded."""
        return (base64.b64encode(f"{self._user}:{self._password}".encode()).decode(),)

    # ---- HTTP ------------------------------------------------------------

    def client_options(self) -> dict[str, Any]:
        return {
            "auth": httpx.BasicAuth(self._user, self._password),
            "headers": {"Accept": "application/json"},
        }

    def _post(self, method: str, method_fields: Mapping[str, Any], call: Call) -> dict[str, Any]:
        """One API call; the answer with keys in lower case, or a typed error."""
        credentials = {
            "IQ_Company_Number": self._company,
            "IQ_Terminal_Number": str(self.settings["terminal_number"]),
            "IQ_User_Number": self._user,
            "IQ_User_Password": self._password,
            "IQ_Partner_Passphrase": self._passphrase,
        }
        try:
            body = wire.envelope(method, credentials, method_fields)
        except (TypeError, ValueError) as exc:
            raise self._error(
                PermanentError,
                f"{call.what}: the request cannot be written as JSON ({exc})",
                "report this to the hub's developers",
            ) from None
        url = f"{self.base_url}{wire.API_PATH}/{method}"
        try:
            response = self._client().post(
                url, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from None
        return self._answer(response, call)

    def _answer(self, response: httpx.Response, call: Call) -> dict[str, Any]:
        site = {
            "where": self.where,
            "company": self._company,
            "user": self._user,
            "stock_table": str(self.settings["stock_table"]),
            "columns": (
                ""
                if wire.SALES_ORDER_COLUMN not in self._columns
                else f" and qty_formula (now {self.settings['qty_formula']}, which reads the "
                f"{wire.SALES_ORDER_COLUMN} column)"
            ),
        }
        outcome = self._status_failure(response, call) or errors.read_answer(response, call, site)
        if isinstance(outcome, Failure):
            raise self._failed(outcome, call)
        return outcome

    # ---- reading ---------------------------------------------------------

    def _sql(self, sql: str, what: str) -> list[dict[str, Any]]:
        answer = self._post(wire.METHOD_SQL, {"IQ_SQL_Text": sql}, Call(what=what, sql=True))
        records = wire.result_rows(answer)
        if records is None:
            raise self._error(
                PermanentError,
                f"{self.where} answered {what} with rows in a shape the hub does not know: "
                f"{http.short(json.dumps(answer.get('iq_api_result_data')), 120)}",
                "report this answer to the hub's developers",
            )
        return records

    def check(self) -> str:
        """Log in, read one stock row as the products fetch reads it, and
        count what will sync.

        The row is read with the fetch's own columns, so a column the
        settings need (``salesorder`` for qty_formula) is found missing here
        rather than in the first run. The fetch reads every row (an unticked
        ``webitem`` removes its product), but only web items become
        products: that is the count given, beside all stock rows.
        """
        table = self.settings["stock_table"]
        self._sql(stock_page_sql(table, 1, columns=self._columns), "checking the connection")
        web = self._count(stock_count_sql(table, web_items_only=True), "counting web items")
        total = self._count(stock_count_sql(table), "counting stock")
        if web is not None:
            found = f"{web:,} web item{'s' if web != 1 else ''} will sync as products"
            if total is not None:
                found += (
                    f" (of {total:,} stock items; the other {max(total - web, 0):,} are not "
                    "ticked WebItem and stay out of the hub)"
                )
        elif total is not None:
            found = f"{total:,} stock items (IQ would not count the web items among them)"
        else:
            found = f"the {table} table answers"
        return (
            f"reached IQ Retail company {self._company} at {self.base_url} as user {self._user}: "
            f"{found}"
        )

    def _count(self, sql: str, what: str) -> int | None:
        """One COUNT(*) answer; None when IQ refuses the statement or answers oddly."""
        try:
            rows = self._sql(sql, what)
        except (SettingsError, PermanentError):
            return None
        if not rows:
            return None
        row = rows[0]
        count = wire.as_int(next(iter(row.values()))) if len(row) == 1 else None
        return count if count is not None and count >= 0 else None

    def _since_text(self, since: datetime) -> str:
        """The lower bound of an incremental read, in IQ's local-time text.

        IQ stores ``modified`` as site-local wall time without a zone, and the
        hub's watermark came from those same values, so an aware ``since`` is
        read as wall time too (its zone dropped, not converted).
        """
        overlap = timedelta(minutes=int(self.settings["overlap_minutes"]))
        start = since.replace(tzinfo=None) - overlap
        return start.strftime(STAMP_FORMAT)

    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        after = None if cursor is None else str(cursor)
        modified_since = self._since_text(since) if since is not None else None
        try:
            sql = stock_page_sql(
                self.settings["stock_table"], limit, after, modified_since, self._columns
            )
        except ValueError as exc:
            raise self._error(
                PermanentError,
                f"cannot read stock after code {after!r}: {exc}",
                "correct that stock code in IQ (it holds a control character), then resync",
            ) from None
        records = self._sql(sql, "reading stock")
        if len(records) < limit:
            return Page(records=records, next_cursor=None)
        last = records[-1].get("code")
        if last is None or not str(last).strip():
            raise self._error(
                PermanentError,
                f"{self.where} answered the stock query without a code column",
                "report this answer to the hub's developers",
            )
        next_cursor = last if isinstance(last, str) else str(last)
        if next_cursor == after:
            raise self._error(
                PermanentError,
                f"{self.where} returned stock code {next_cursor!r} again after it: "
                "paging would never end",
                "report this to the hub's developers with the IQ version",
            )
        return Page(records=records, next_cursor=next_cursor)

    def high_water(self, records: Iterable[Mapping[str, Any]]) -> str | None:
        """The latest ``modified`` among ``records``, as ``YYYY-MM-DD HH:MM:SS``.

        The hub keeps the highest of these as the stream's watermark and
        passes it back as ``since``; values IQ cannot have meant (blank,
        unparseable) are skipped rather than failing the page.
        """
        latest: datetime | None = None
        for record in records:
            if not isinstance(record, Mapping):
                continue
            value = record.get("modified")
            if value is None:
                value = http.ci_get(record, "modified")
            stamp = wire.parse_stamp(value)
            if stamp is not None and (latest is None or stamp > latest):
                latest = stamp
        return latest.strftime(STAMP_FORMAT) if latest is not None else None

    # ---- orders ----------------------------------------------------------

    def _submission(self, payload: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """The method fields of a sales order from the map's payload, and its order number.

        The orders map builds ``IQ_Company_Number``, ``IQ_Terminal_Number``
        (an order may choose its own) and ``IQ_Submit_Data``; a bare
        ``IQ_Root_JSON`` document is accepted too. Credentials and
        ``IQ_Overrides`` always come from the settings.
        """
        if not isinstance(payload, Mapping):
            raise self._error(RejectedError, "the order payload is not a JSON object")
        submit = http.ci_get(payload, "IQ_Submit_Data")
        if submit is None:
            root = http.ci_get(payload, "IQ_Root_JSON")
            if root is None and http.ci_get(payload, "Processing_Documents") is not None:
                root = payload
        else:
            root = http.ci_get(submit, "IQ_Root_JSON")
        documents = http.ci_get(root, "Processing_Documents")
        if not isinstance(documents, list) or not documents:
            raise self._error(
                RejectedError,
                "the order payload has no IQ_Root_JSON.Processing_Documents",
                "correct the order mapping",
            )
        number = str(
            http.ci_get(http.ci_get(documents[0], "Document"), "Order_Number") or ""
        ).strip()
        label = f"order {number}" if number else "the order"
        for document in documents:
            items = http.ci_get(document, "Items")
            if not isinstance(items, list) or not items:
                raise self._error(
                    RejectedError,
                    f"{label} has no items to raise",
                    "an order needs at least one line item",
                )
        company = http.ci_get(payload, "IQ_Company_Number")
        if company is None:
            company = http.ci_get(http.ci_get(root, "IQ_Identification_Info"), "Company_Code")
        terminal = http.ci_get(payload, "IQ_Terminal_Number")
        method_fields: dict[str, Any] = {
            "IQ_Company_Number": str(company).strip() if company is not None else self._company,
            "IQ_Terminal_Number": (
                str(terminal).strip()
                if terminal is not None
                else str(self.settings["terminal_number"])
            ),
            "IQ_Submit_Data": {"IQ_Root_JSON": root},
            "IQ_Overrides": list(self.settings["overrides"]),
        }
        return method_fields, number

    def raise_order(self, payload: dict[str, Any]) -> str:
        """Submit one sales order; IQ's document number, e.g. ``SAL96551``.

        IQ does not deduplicate by order number, so an ambiguous failure
        (the connection lost after sending) is a TransientError that says
        so, and the hub asks ``find_order`` before sending again.
        """
        method_fields, number = self._submission(payload)
        call = Call(
            what=f"raising order {number}" if number else "raising an order", submitting=True
        )
        answer = self._post(wire.METHOD_SALES_ORDER, method_fields, call)
        document = wire.document_number(answer)
        if document is None:
            raise self._unknown_outcome(call, "IQ answered success without a document number")
        return document

    def find_order(self, reference: str, channel: str | None = None) -> str | None:
        """The first sales order document raised under ``reference``, if any."""
        text = str(reference).strip()
        if not text:
            raise ValueError("an order reference must not be blank")
        try:
            sql = find_order_sql(text)
        except ValueError as exc:
            raise self._error(
                RejectedError,
                f"cannot look up order {text!r} in IQ: {exc}",
                "the order number holds a control character; correct it on the channel",
            ) from None
        records = self._sql(sql, f"looking up order {text}")
        for record in records:
            document = record.get("document")
            if document is None and len(record) == 1:
                document = next(iter(record.values()))
            if document is not None and str(document).strip():
                return str(document).strip()
        return None
