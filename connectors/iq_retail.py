"""IQ Retail through its "IQ API Interface" (seed 000; erp-wire-formats.md section 1).

IQ Retail runs on the client's own server and is reached over a small REST
API: every call is ``POST {request_url}/IQRetailRestAPI/v1/{Method}`` with a
JSON envelope that repeats the credentials in the body. Stock is read with
``IQ_API_Request_GenericSQL`` (SQL text, DBISAM flavour) and orders go in as
``IQ_API_Submit_Document_Sales_Order`` documents.

Three rules shape this module:

* **Read every answer defensively.** IQ answers HTTP 200 even for errors
  (the outcome is ``iq_api_error[0].iq_error_code``), sites sit behind
  proxies that answer 503 or a rate limiter's ``{"response_code": 429}``,
  key case varies between versions and numbers may arrive as padded text.
  Keys are folded to lower case once, at every level, and only code 0 is
  success.
* **GenericSQL takes text, not parameters**, so every value the hub puts in
  a statement goes through :func:`sql_literal` (quotes doubled, control
  characters refused) and every statement is built by :func:`stock_page_sql`
  or a constant. Nothing else reaches IQ's SQL.
* **No secret leaves this module.** The password and partner passphrase go
  into the request and nowhere else: every message is scrubbed of them,
  even text the server sent back, and ``repr`` shows only public settings.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from connectors import http
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
    "IqRetailConnector",
    "IqRetailSettingsSchema",
    "find_order_sql",
    "sql_literal",
    "stock_page_sql",
]

API_PATH: Final = "/IQRetailRestAPI/v1"
METHOD_SQL: Final = "IQ_API_Request_GenericSQL"
METHOD_SALES_ORDER: Final = "IQ_API_Submit_Document_Sales_Order"
STOCK_COLUMNS: Final = ("code", "descript", "webitem", "sellprice1", "onhand", "modified")
STAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
# How many of IQ's own error sentences a rejection message quotes before it
# summarises the rest: enough to fix an order, short enough for a log line.
MAX_QUOTED_ERRORS: Final = 20

_IDENTIFIER = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


# --------------------------------------------------------------------------
# SQL text for GenericSQL
# --------------------------------------------------------------------------


def sql_literal(value: str) -> str:
    """``value`` as a DBISAM string literal: single quotes doubled.

    GenericSQL has no bound parameters, so this is the only thing standing
    between a stock code (or an order number from a channel) and IQ's SQL.
    Control characters are refused rather than escaped: DBISAM has no
    portable escape for them, and a line break inside a literal is how
    statement splitting tricks start. Backslash is an ordinary character in
    DBISAM (and standard SQL) literals, so it needs nothing.
    """
    if not isinstance(value, str):
        raise TypeError(f"an SQL literal must be text, not {type(value).__name__}")
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(
            f"{value!r} contains a control character ({bad.group()!r}), "
            "which cannot be put into IQ's SQL safely"
        )
    return "'" + value.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain table name (letters, digits and _)")
    return name


def stock_page_sql(
    table: str, limit: int, after: str | None = None, modified_since: str | None = None
) -> str:
    """One keyed page of stock: ``TOP limit`` rows after ``after`` in code order.

    Keyed paging (``code > last``) rather than offsets, so that items added
    or removed between pages are neither skipped nor read twice.
    ``modified_since`` is a ``YYYY-MM-DD HH:MM:SS`` text compared with the
    ``modified`` column.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of at least 1, not {limit!r}")
    conditions: list[str] = []
    if after is not None:
        conditions.append(f"code > {sql_literal(after)}")
    if modified_since is not None:
        conditions.append(f"modified >= {sql_literal(modified_since)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return (
        f"SELECT TOP {limit} {', '.join(STOCK_COLUMNS)} FROM {_identifier(table)}"
        f"{where} ORDER BY code"
    )


def find_order_sql(reference: str) -> str:
    """The sales order documents raised under ``reference`` (IQ does not deduplicate)."""
    literal = sql_literal(reference)
    return f"SELECT document FROM sorders WHERE ordernum = {literal} ORDER BY document"


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


class _Code(fields.String):
    """A number IQ keys by as text ("002", "99").

    ``allow_number`` accepts a bare whole number (a user number typed into a
    YAML file without quotes). The company number refuses one: YAML reads
    ``002`` as 2 and the leading zeros select the company.
    """

    def __init__(self, *, allow_number: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_number = allow_number

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if not self.allow_number:
                raise ValidationError(
                    'must be text such as "002": quote it, since a number loses its leading zeros'
                )
            value = str(value)
        text = super()._deserialize(value, attr, data, **kwargs)
        text = text.strip()
        if not text:
            raise ValidationError("must not be blank")
        if _CONTROL.search(text):
            raise ValidationError("must not contain control characters")
        return text


class _RequestUrl(fields.String):
    """The site's base address, normalised so that loading twice changes nothing.

    Operators paste the address in several forms; a trailing slash or the
    API path itself is trimmed here rather than failing every call with 404.
    User names and passwords in the address are refused: they would travel
    into every message that names the address.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "must be an http:// or https:// address, e.g. http://10.0.0.5:8080"
            )
        if parts.username is not None or parts.password is not None:
            raise ValidationError(
                "must not contain a user name or password: give them as user_number and "
                "user_password"
            )
        if parts.query or parts.fragment:
            raise ValidationError("must be the server's base address, without ? or #")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValidationError("has a port that is not a number from 1 to 65535") from None
        path = parts.path.rstrip("/")
        if path.lower().endswith(API_PATH.lower()):
            path = path[: -len(API_PATH)].rstrip("/")
        return f"{parts.scheme.lower()}://{parts.netloc}{path}"


class IqRetailSettingsSchema(Schema):
    """Seed 000's prerequisites, field by field, plus what a site may tune."""

    class Meta:
        unknown = RAISE

    request_url = _RequestUrl(
        required=True,
        metadata={"description": "Request URL of the IQ API Interface, e.g. http://iq.local:8080"},
    )
    company_number = _Code(
        required=True,
        allow_number=False,
        validate=validate.Length(max=32),
        metadata={"description": 'IQ Company Number, as text with its zeros, e.g. "002"'},
    )
    user_number = _Code(
        required=True,
        validate=validate.Length(max=32),
        metadata={"description": "IQ User Number the API logs in as"},
    )
    user_password = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"secret": True, "description": "IQ User Password (the API key)"},
    )
    terminal_number = _Code(
        load_default="1",
        validate=validate.Length(max=32),
        metadata={"description": "Terminal orders are processed against"},
    )
    sales_rep_number = fields.Integer(
        load_default=1,
        validate=validate.Range(min=0),
        metadata={"description": "Sales representative orders are processed with"},
    )
    default_debtor_account = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Debtor account for orders without a customer code, e.g. CASH01"},
    )
    shipping_code = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Stock code of the service item shipping is raised as"},
    )
    partner_passphrase = fields.String(
        load_default="",
        metadata={"secret": True, "description": "IQ_Partner_Passphrase, when IQ issued one"},
    )
    page_size = fields.Integer(
        load_default=500,
        validate=validate.Range(1, 5000),
        metadata={"description": "Stock items per page the hub asks for"},
    )
    timeout = fields.Float(
        load_default=30.0,
        validate=validate.Range(min=0.1, max=600),
        metadata={"description": "Seconds to wait for IQ to answer one call"},
    )
    overlap_minutes = fields.Integer(
        load_default=10,
        validate=validate.Range(0, 24 * 60),
        metadata={
            "description": "Incremental reads start this long before the last change seen, "
            "so items saved while a sync ran are not missed"
        },
    )
    stock_table = fields.String(
        load_default="Stock",
        validate=validate.Regexp(_IDENTIFIER, error="must be a plain table name"),
        metadata={"description": "Table stock is read from"},
    )
    overrides = fields.List(
        fields.String(validate=validate.Length(min=1, max=100)),
        load_default=lambda: ["ideNegativeStock"],
        metadata={"description": "IQ_Overrides sent with every sales order"},
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
# Reading answers
# --------------------------------------------------------------------------


def _lower_keys(value: Any) -> Any:
    """IQ answers in lower case, other versions and proxies do not: fold once."""
    if isinstance(value, Mapping):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def _as_int(value: Any) -> int | None:
    """Codes arrive as 0, 0.0, "0" or " 0 "; anything else is unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if number.is_integer() else None
    return None


def _error_text(entry: Any) -> str | None:
    """One of IQ's nested error entries as its own words (plus its code)."""
    if isinstance(entry, str):
        return entry.strip() or None
    if not isinstance(entry, Mapping):
        return None
    description = None
    for key in (
        "error_description",
        "iq_error_description",
        "description",
        "error_message",
        "message",
        "error",
    ):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            description = value.strip()
            break
    code = None
    for key in ("error_code", "iq_error_code", "code"):
        code = _as_int(entry.get(key))
        if code is not None:
            break
    if description is None:
        return None if code is None else f"error code {code}"
    return description if code is None else f"{description} (code {code})"


def _line_label(index: int, item: Any) -> str:
    code = None
    if isinstance(item, Mapping):
        for key in ("stock_code", "code"):
            if isinstance(item.get(key), str | int) and str(item.get(key)).strip():
                code = str(item[key]).strip()
                break
    return f"line {index + 1}" + (f" ({code})" if code else "")


def collect_errors(node: Any, label: str = "") -> list[str]:
    """Every ``errors`` list anywhere in an answer, labelled by the line it belongs to.

    The reference places document-level errors and per-item errors in the
    echoed document under ``iq_error_data...error_data[i]``, but versions
    differ on where exactly ``iq_error_data`` sits and how deep the document
    is, so the whole answer is searched and duplicates are dropped.
    """
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, Mapping):
            errors = value.get("errors")
            entries = errors if isinstance(errors, list) else [errors] if errors else []
            for entry in entries:
                text = _error_text(entry)
                if text:
                    found.append(f"{where}: {text}" if where else text)
            for key, child in value.items():
                if key == "errors":
                    continue
                if key == "items" and isinstance(child, list):
                    for index, item in enumerate(child):
                        walk(item, _line_label(index, item))
                else:
                    walk(child, where)
        elif isinstance(value, list):
            for child in value:
                walk(child, where)

    walk(node, label)
    return list(dict.fromkeys(found))


def _document_number(answer: Mapping[str, Any]) -> str | None:
    """``iq_api_success_items[0][0].data``, found by its field name when there are several."""
    success = answer.get("iq_api_success")
    items = success.get("iq_api_success_items") if isinstance(success, Mapping) else success
    entries: list[Mapping[str, Any]] = []

    def flatten(value: Any) -> None:
        if isinstance(value, Mapping):
            entries.append(value)
        elif isinstance(value, list):
            for child in value:
                flatten(child)

    flatten(items)
    for entry in entries:
        if str(entry.get("fieldname", "")).strip().lower() == "document_number":
            data = entry.get("data")
            if data is not None and str(data).strip():
                return str(data).strip()
    for entry in entries:
        data = entry.get("data")
        if data is not None and str(data).strip():
            return str(data).strip()
    return None


def _records(answer: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The rows of a GenericSQL answer, or None when the answer has no recognisable rows."""
    result = answer.get("iq_api_result_data")
    if isinstance(result, str):
        # Some gateways send the result data as JSON inside a string.
        try:
            result = _lower_keys(json.loads(result))
        except ValueError:
            return None
    if result is None:
        return []
    if isinstance(result, Mapping):
        if "records" in result:
            result = result["records"]
        else:
            lists = [v for v in result.values() if isinstance(v, list)]
            result = lists[0] if len(lists) == 1 else [] if not lists else None
    if result is None:
        return []
    if not isinstance(result, list) or not all(isinstance(r, Mapping) for r in result):
        return None
    return [dict(r) for r in result]


def _parse_stamp(value: Any) -> datetime | None:
    """A ``modified`` value as a naive datetime; IQ keeps site-local times without a zone."""
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        text = text.replace("/", "-")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return stamp.replace(tzinfo=None) if stamp.tzinfo is not None else stamp


# Error sentences that mean "the login is wrong", and those that only look
# like it because they quote SQL ("no such column: user").
_CREDENTIALS = re.compile(
    r"user|password|passphrase|credential|company|log ?in|log ?on|authori[sz]|authenticat"
    r"|api ?key|access denied|not permitted|forbidden",
    re.IGNORECASE,
)
# IQ is a desktop ERP: a company open in another session or a backup in
# progress answers with an error that goes away by itself.
_BUSY = re.compile(
    r"\block(ed)?\b|\bbusy\b|try again|timed? ?out|\bin use\b|temporar|unavailable",
    re.IGNORECASE,
)
_NOT_BUSY = re.compile(r"password|account|invalid", re.IGNORECASE)
_SQL_WORDS = re.compile(r"\bsql\b|column|syntax|\btable\b|\bselect\b", re.IGNORECASE)


@dataclass(frozen=True)
class _Call:
    """What a call is doing, for the sentence an operator reads when it fails."""

    what: str
    submitting: bool = False
    sql: bool = False


# --------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------


class IqRetailConnector(Connector):
    """Products from IQ's Stock table; sales orders into IQ.

    Customers are not offered (seed 000): asking for them is a
    ``NotSupportedError`` from the base class.
    """

    kind = "iq_retail"
    title = "IQ Retail"
    streams = frozenset({"products"})
    settings_schema = IqRetailSettingsSchema

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        s = self.settings
        self._base = str(s["request_url"])
        self._company = str(s["company_number"])
        self._user = str(s["user_number"])
        self._password = str(s["user_password"])
        self._passphrase = str(s["partner_passphrase"] or "")
        token = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
        secrets = {self._password, self._passphrase, token}
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = tuple(sorted((x for x in secrets if x), key=len, reverse=True))
        self._http: httpx.Client | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return (
            f"<IqRetailConnector company {self._company!r} at {self._base} as user {self._user!r}>"
        )

    @property
    def page_size(self) -> int:
        """The page size this source's settings ask for."""
        return int(self.settings["page_size"])

    @property
    def _where(self) -> str:
        return f"IQ Retail at {self._base}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
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
            seconds = float(self.settings["timeout"])
            self._http = http.client(
                seconds,
                auth=httpx.BasicAuth(self._user, self._password),
                headers={"Accept": "application/json"},
            )
            self._pid = pid
        return self._http

    def close(self) -> None:
        """Close this process's connections."""
        if self._http is not None and self._pid == os.getpid():
            self._http.close()
        self._http = None
        self._pid = None

    def _envelope(self, method: str, method_fields: Mapping[str, Any]) -> dict[str, Any]:
        call: dict[str, Any] = {
            "IQ_Company_Number": self._company,
            "IQ_Terminal_Number": str(self.settings["terminal_number"]),
            "IQ_User_Number": self._user,
            "IQ_User_Password": self._password,
            "IQ_Partner_Passphrase": self._passphrase,
        }
        call.update(method_fields)
        return {"IQ_API": {method: call}}

    def _post(self, method: str, method_fields: Mapping[str, Any], call: _Call) -> dict[str, Any]:
        """One API call; the answer with keys in lower case, or a typed error."""
        try:
            body = json.dumps(self._envelope(method, method_fields), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise self._error(
                PermanentError,
                f"{call.what}: the request cannot be written as JSON ({exc})",
                "report this to the hub's developers",
            ) from None
        url = f"{self._base}{API_PATH}/{method}"
        try:
            response = self._client().post(
                url, content=body.encode(), headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from None
        return self._answer(response, call)

    def _unknown_outcome(
        self, call: _Call, happened: str, retry_after: float | None = None
    ) -> ConnectorError:
        return self._error(
            TransientError,
            f"{happened} while {call.what}, after the document was sent: IQ Retail may or may "
            "not have recorded it",
            "the hub looks the order up in IQ before sending it again",
            retry_after=retry_after,
        )

    def _transport_error(self, exc: httpx.HTTPError, call: _Call) -> ConnectorError:
        failure = http.transport_failure(
            exc,
            where=self._where,
            what=call.what,
            submitting=call.submitting,
            url_setting="request_url",
            erp="the IQ API service",
        )
        if failure.unknown_outcome:
            return self._unknown_outcome(call, failure.message)
        return self._error(failure.kind, failure.message, failure.hint)

    def _credentials_error(self, description: str) -> ConnectorError:
        names: list[str] = []
        low = description.lower()
        if "company" in low:
            names.append("company_number")
        if re.search(
            r"user|password|credential|log ?in|log ?on|authori|authentic|api ?key|access|forbid",
            low,
        ):
            names += ["user_number", "user_password"]
        if "passphrase" in low or "partner" in low:
            names.append("partner_passphrase")
        if not names:
            names = ["company_number", "user_number", "user_password"]
        return self._error(
            SettingsError,
            f"{self._where} refused the login to company {self._company} as user "
            f"{self._user}: {http.short(description)}",
            f"check {', '.join(names)} in the source's settings",
        )

    def _answer(self, response: httpx.Response, call: _Call) -> dict[str, Any]:
        status = response.status_code
        retry_after = http.retry_seconds(response.headers.get("retry-after"))
        if status == 429 or status >= 500:
            what = "is rate limiting the hub" if status == 429 else "is unavailable"
            if call.submitting and status != 429:
                raise self._unknown_outcome(
                    call, f"{self._where} answered HTTP {status}", retry_after
                )
            raise self._error(
                TransientError,
                f"{self._where} {what} (HTTP {status}) while {call.what}",
                "the hub will try again",
                retry_after=retry_after,
            )
        if status in (401, 403):
            raise self._credentials_error(f"HTTP {status} {response.reason_phrase}".strip())
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            raise self._error(
                SettingsError,
                f"{self._where} redirects (HTTP {status}) to {location or 'another address'}",
                "set request_url to the address the server redirects to",
            )
        try:
            answer = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            answer = None
        answer = _lower_keys(answer) if isinstance(answer, Mapping) else None
        has_iq = answer is not None and "iq_api_error" in answer
        if answer is None or (not has_iq and status >= 400):
            if status == 404:
                raise self._error(
                    SettingsError,
                    f"{self._where} has no IQ API at {API_PATH} (HTTP 404)",
                    "check request_url: it is the server's address, without the API path",
                )
            if status >= 400:
                raise self._error(
                    PermanentError,
                    f"{self._where} answered HTTP {status} while {call.what}",
                    "check request_url and the IQ API service's configuration",
                )
            sample = http.short(response.text, 80) if response.content else "an empty body"
            if call.submitting:
                raise self._unknown_outcome(call, f"the answer was not IQ's JSON ({sample})")
            raise self._error(
                TransientError,
                f"{self._where} answered {call.what} with something that is not IQ's JSON: "
                f"{sample}",
                "a proxy or a busy server may have cut the answer short; the hub will try again",
            )
        response_code = _as_int(answer.get("response_code"))
        if response_code == 429:
            retry = retry_after
            if retry is None:
                for key in ("retry_after", "retry-after", "retryafter"):
                    retry = http.retry_seconds(answer.get(key))
                    if retry is not None:
                        break
            message = str(answer.get("response_message") or "too many requests")
            raise self._error(
                TransientError,
                f"{self._where} is rate limiting the hub while {call.what}: {http.short(message)}",
                "the hub will try again after the wait IQ asked for",
                retry_after=retry,
            )
        if not has_iq:
            if response_code is not None and response_code >= 500:
                raise self._error(
                    TransientError,
                    f"{self._where} answered {response_code} while {call.what}: "
                    f"{http.short(str(answer.get('response_message') or ''))}",
                    "the hub will try again",
                )
            if response_code in (401, 403):
                raise self._credentials_error(str(answer.get("response_message") or "refused"))
            if "iq_api_result_data" in answer or "iq_api_success" in answer:
                return answer
            if call.submitting:
                raise self._unknown_outcome(call, "the answer had no iq_api_error")
            raise self._error(
                TransientError,
                f"{self._where} answered {call.what} without iq_api_error: "
                f"{http.short(json.dumps(answer), 120)}",
                "a proxy may be answering instead of IQ; the hub will try again",
            )
        errors = answer["iq_api_error"]
        first = errors if isinstance(errors, Mapping) else None
        if isinstance(errors, list):
            first = next((e for e in errors if isinstance(e, Mapping)), None)
            if first is None and not errors:
                first = {"iq_error_code": 0}
        if first is None:
            first = {}
        code = _as_int(first.get("iq_error_code"))
        if code == 0:
            return answer
        description = str(first.get("iq_error_description") or "").strip()
        shown = description or f"error code {first.get('iq_error_code')!r}"
        nested = collect_errors(answer)
        if code == 9 or (nested and call.submitting):
            raise self._rejection(call, shown, nested)
        if _BUSY.search(description) and not _NOT_BUSY.search(description):
            raise self._error(
                TransientError,
                f"{self._where} is busy while {call.what}: {http.short(shown)}",
                "the hub will try again",
            )
        if description and _CREDENTIALS.search(description) and not _SQL_WORDS.search(description):
            raise self._credentials_error(description)
        if call.sql and (_SQL_WORDS.search(description) or code in (6, 7)):
            raise self._error(
                SettingsError,
                f"{self._where} could not run the query while {call.what}: {http.short(shown)}",
                f"check stock_table (now {self.settings['stock_table']}) in the source's "
                "settings, and that the API user may read it",
            )
        raise self._error(
            PermanentError,
            f"{self._where} refused {call.what}: {http.short(shown)}"
            + (f" (code {code})" if code is not None else ""),
            "see IQ's message; correct the cause in IQ or in the source's settings, then replay",
        )

    def _rejection(self, call: _Call, description: str, nested: list[str]) -> ConnectorError:
        """A code 9: IQ's own sentences, verbatim, so that the fix is obvious."""
        if nested:
            quoted = nested[:MAX_QUOTED_ERRORS]
            more = len(nested) - len(quoted)
            detail = "; ".join(quoted) + (f"; and {more} more" if more > 0 else "")
        else:
            detail = description
        return self._error(
            RejectedError,
            f"IQ Retail refused {call.what.removeprefix('raising ')}: {detail}",
            "correct the order (stock codes, debtor account) or the source's settings, "
            "then replay it",
        )

    # ---- reading ---------------------------------------------------------

    def _sql(self, sql: str, what: str) -> list[dict[str, Any]]:
        answer = self._post(METHOD_SQL, {"IQ_SQL_Text": sql}, _Call(what=what, sql=True))
        records = _records(answer)
        if records is None:
            raise self._error(
                PermanentError,
                f"{self._where} answered {what} with rows in a shape the hub does not know: "
                f"{http.short(json.dumps(answer.get('iq_api_result_data')), 120)}",
                "report this answer to the hub's developers",
            )
        return records

    def check(self) -> str:
        """Log in and read one stock code; count the stock if IQ allows it."""
        table = _identifier(self.settings["stock_table"])
        self._sql(f"SELECT TOP 1 code FROM {table}", "checking the connection")
        count: int | None = None
        try:
            rows = self._sql(f"SELECT COUNT(*) AS stock_items FROM {table}", "counting stock")
        except (SettingsError, PermanentError):
            rows = []
        if rows:
            row = rows[0]
            count = _as_int(row.get("stock_items"))
            if count is None and len(row) == 1:
                count = _as_int(next(iter(row.values())))
        found = f"{count:,} stock items" if count is not None else f"the {table} table answers"
        return (
            f"reached IQ Retail company {self._company} at {self._base} as user {self._user}: "
            f"{found}"
        )

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
            sql = stock_page_sql(self.settings["stock_table"], limit, after, modified_since)
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
                f"{self._where} answered the stock query without a code column",
                "report this answer to the hub's developers",
            )
        next_cursor = last if isinstance(last, str) else str(last)
        if next_cursor == after:
            raise self._error(
                PermanentError,
                f"{self._where} returned stock code {next_cursor!r} again after it: "
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
            stamp = _parse_stamp(value)
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
        call = _Call(
            what=f"raising order {number}" if number else "raising an order", submitting=True
        )
        answer = self._post(METHOD_SALES_ORDER, method_fields, call)
        document = _document_number(answer)
        if document is None:
            raise self._unknown_outcome(call, "IQ answered success without a document number")
        return document

    def find_order(self, reference: str) -> str | None:
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
