"""Reading IQ Retail's error answers as typed errors.

IQ answers HTTP 200 even for errors (the outcome is
``iq_api_error[0].iq_error_code``, and only code 0 is success), sites sit
behind proxies that answer 503 or a rate limiter's ``{"response_code":
429}``, and a refused login, a busy company and a bad query all arrive as a
sentence. This module turns each of those into a :class:`~connectors.http.Failure`
the connector raises as its own (scrubbed) error; which sentence means what
is a table of rules, read top down.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from connectors.base import PermanentError, RejectedError, SettingsError, TransientError
from connectors.http import AnswerRule, Call, Failure, first_failure, retry_seconds, short
from connectors.iq_retail.wire import API_PATH, as_int, json_answer

# How many of IQ's own error sentences a rejection message quotes before it
# summarises the rest: enough to fix an order, short enough for a log line.
MAX_QUOTED_ERRORS: Final = 20


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


def error_text(entry: Any) -> str | None:
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
        code = as_int(entry.get(key))
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
                text = error_text(entry)
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


# Which settings a refused login points at, by the words of the refusal; all
# three login fields when none match.
_LOGIN_FIELDS: Final = (
    (re.compile("company", re.IGNORECASE), ("company_number",)),
    (
        re.compile(
            r"user|password|credential|log ?in|log ?on|authori|authentic|api ?key|access|forbid",
            re.IGNORECASE,
        ),
        ("user_number", "user_password"),
    ),
    (re.compile("passphrase|partner", re.IGNORECASE), ("partner_passphrase",)),
)
_ALL_LOGIN_FIELDS: Final = ("company_number", "user_number", "user_password")


def login_fields(description: str) -> list[str]:
    """The settings a refused login names, for the hint."""
    names = [
        name for pattern, found in _LOGIN_FIELDS if pattern.search(description) for name in found
    ]
    return names or list(_ALL_LOGIN_FIELDS)


def credentials_failure(description: str, site: Mapping[str, str]) -> Failure:
    """IQ (or its web server) refused the login: the settings must change."""
    return Failure(
        SettingsError,
        f"{site['where']} refused the login to company {site['company']} as user "
        f"{site['user']}: {short(description)}",
        f"check {', '.join(login_fields(description))} in the source's settings",
    )


@dataclass(frozen=True)
class Refusal:
    """IQ's first ``iq_api_error`` entry (not code 0) and the call it answered.

    ``nested``: IQ's own sentences about the document's lines, labelled.
    """

    code: int | None
    description: str
    nested: list[str]
    call: Call


def _rejected(r: Refusal) -> bool:
    return r.code == 9 or bool(r.nested and r.call.submitting)


def _busy(r: Refusal) -> bool:
    return bool(_BUSY.search(r.description)) and not _NOT_BUSY.search(r.description)


def _login(r: Refusal) -> bool:
    text = r.description
    return bool(text and _CREDENTIALS.search(text)) and not _SQL_WORDS.search(text)


def _query(r: Refusal) -> bool:
    return r.call.sql and (bool(_SQL_WORDS.search(r.description)) or r.code in (6, 7))


_REFUSALS: Final[tuple[AnswerRule[Refusal], ...]] = (
    AnswerRule(
        _rejected,
        RejectedError,
        "IQ Retail refused {order}: {detail}",
        "correct the order (stock codes, debtor account) or the source's settings, then replay it",
    ),
    AnswerRule(
        _busy, TransientError, "{where} is busy while {what}: {shown}", "the hub will try again"
    ),
    AnswerRule(
        _login,
        SettingsError,
        "{where} refused the login to company {company} as user {user}: {said}",
        "check {login_fields} in the source's settings",
    ),
    AnswerRule(
        _query,
        SettingsError,
        "{where} could not run the query while {what}: {shown}",
        "check stock_table (now {stock_table}){columns} in the source's settings, and that "
        "the API user may read it",
    ),
    AnswerRule(
        lambda _: True,
        PermanentError,
        "{where} refused {what}: {shown}{code}",
        "see IQ's message; correct the cause in IQ or in the source's settings, then replay",
    ),
)


def _first_error(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    """The entry of ``iq_api_error`` that decides; an empty list is success."""
    errors = answer["iq_api_error"]
    if isinstance(errors, Mapping):
        return errors
    if isinstance(errors, list):
        first = next((e for e in errors if isinstance(e, Mapping)), None)
        if first is not None:
            return first
        if not errors:
            return {"iq_error_code": 0}
    return {}


def refusal_failure(
    answer: Mapping[str, Any], call: Call, site: Mapping[str, str]
) -> Failure | None:
    """What a non-zero ``iq_error_code`` means (None: code 0, success)."""
    first = _first_error(answer)
    code = as_int(first.get("iq_error_code"))
    if code == 0:
        return None
    description = str(first.get("iq_error_description") or "").strip()
    refusal = Refusal(code, description, collect_errors(answer), call)
    shown = description or f"error code {first.get('iq_error_code')!r}"
    if refusal.nested:
        quoted = refusal.nested[:MAX_QUOTED_ERRORS]
        more = len(refusal.nested) - len(quoted)
        detail = "; ".join(quoted) + (f"; and {more} more" if more > 0 else "")
    else:
        detail = shown
    words = {
        **site,
        "what": call.what,
        "order": call.what.removeprefix("raising "),
        "detail": detail,
        "shown": short(shown),
        "said": short(description),
        "login_fields": ", ".join(login_fields(description)),
        "code": f" (code {code})" if code is not None else "",
    }
    return first_failure(_REFUSALS, refusal, words)


def _not_iq(response: httpx.Response, call: Call, where: str) -> Failure:
    """An answer that is not IQ's JSON: a wrong address, or a proxy's page."""
    status = response.status_code
    if status == 404:
        return Failure(
            SettingsError,
            f"{where} has no IQ API at {API_PATH} (HTTP 404)",
            "check request_url: it is the server's address, without the API path",
        )
    if status >= 400:
        return Failure(
            PermanentError,
            f"{where} answered HTTP {status} while {call.what}",
            "check request_url and the IQ API service's configuration",
        )
    sample = short(response.text, 80) if response.content else "an empty body"
    if call.submitting:
        return Failure(TransientError, f"the answer was not IQ's JSON ({sample})", "", True)
    return Failure(
        TransientError,
        f"{where} answered {call.what} with something that is not IQ's JSON: {sample}",
        "a proxy or a busy server may have cut the answer short; the hub will try again",
    )


def _rate_limited(
    answer: Mapping[str, Any], response: httpx.Response, call: Call, where: str
) -> Failure | None:
    """A rate limiter's ``{"response_code": 429}``, with the wait it asked for."""
    if as_int(answer.get("response_code")) != 429:
        return None
    retry = retry_seconds(response.headers.get("retry-after"))
    for key in ("retry_after", "retry-after", "retryafter"):
        if retry is not None:
            break
        retry = retry_seconds(answer.get(key))
    message = str(answer.get("response_message") or "too many requests")
    return Failure(
        TransientError,
        f"{where} is rate limiting the hub while {call.what}: {short(message)}",
        "the hub will try again after the wait IQ asked for",
        retry_after=retry,
    )


def _without_iq_error(
    answer: Mapping[str, Any], call: Call, site: Mapping[str, str]
) -> Failure | None:
    """An answer without ``iq_api_error``: a gateway's status, or rows without one."""
    where = site["where"]
    response_code = as_int(answer.get("response_code"))
    message = answer.get("response_message")
    if response_code is not None and response_code >= 500:
        return Failure(
            TransientError,
            f"{where} answered {response_code} while {call.what}: {short(str(message or ''))}",
            "the hub will try again",
        )
    if response_code in (401, 403):
        return credentials_failure(str(message or "refused"), site)
    if "iq_api_result_data" in answer or "iq_api_success" in answer:
        return None
    if call.submitting:
        return Failure(TransientError, "the answer had no iq_api_error", "", True)
    return Failure(
        TransientError,
        f"{where} answered {call.what} without iq_api_error: {short(json.dumps(answer), 120)}",
        "a proxy may be answering instead of IQ; the hub will try again",
    )


def read_answer(
    response: httpx.Response, call: Call, site: Mapping[str, str]
) -> dict[str, Any] | Failure:
    """IQ's answer with keys in lower case, or the failure it stands for.

    ``site`` holds the words messages are built of: ``where``, ``company``,
    ``user``, ``stock_table`` and ``columns`` (what the settings add to the
    columns read, said after the table, or blank). Statuses every HTTP ERP
    shares (429, 5xx, redirects) are read before this, by ``HttpConnector``.
    """
    status = response.status_code
    if status in (401, 403):
        return credentials_failure(f"HTTP {status} {response.reason_phrase}".strip(), site)
    answer = json_answer(response)
    has_iq = answer is not None and "iq_api_error" in answer
    if answer is None or (not has_iq and status >= 400):
        return _not_iq(response, call, site["where"])
    failure = _rate_limited(answer, response, call, site["where"])
    if failure is None:
        if has_iq:
            failure = refusal_failure(answer, call, site)
        else:
            failure = _without_iq_error(answer, call, site)
    return answer if failure is None else failure
