"""Reading iSync's error answers as typed errors.

iSync speaks of failure three ways: an HTTP status, a SOAP fault (the
service itself failed, or the login was refused) and, inside a successful
``Execute``, ``Resultflag false`` with iSync's own sentence. Each becomes a
:class:`~connectors.http.Failure` the connector raises as its own
(scrubbed) error; which status, fault or sentence means what is a table of
rules, read top down. Every answer is parsed as hostile, through
:mod:`connectors.xmlsafe`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

from connectors import xmlsafe
from connectors.base import PermanentError, RejectedError, SettingsError, TransientError
from connectors.http import AnswerRule, Call, Failure, first_failure, short

INVALID_SESSION = re.compile(r"\A\s*invalid session", re.IGNORECASE)
_UNKNOWN_OPERATION = re.compile(
    r"unknown operation|no such operation|invalid operation|operation\b.*\bnot\b"
    r".*\b(supported|found|recogni[sz]ed|known)",
    re.IGNORECASE,
)
_BUSY = re.compile(
    r"try again|\bbusy\b|temporar|timed? ?out|unavailable|deadlock|maintenance", re.IGNORECASE
)
NOT_FOUND = re.compile(r"not found|does not exist|no such|no sales order", re.IGNORECASE)
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


@dataclass(frozen=True)
class Said:
    """What iSync said (a fault's code and text, or a ResponseText) to a call."""

    text: str
    call: Call
    code: str = ""


_NOT_SOAP_HINT: Final = (
    "a proxy or a busy server may have cut the answer short; the hub will try again"
)
PROXY_HINT: Final = "a proxy may be answering instead of iSync; the hub will try again"

# HTTP statuses left once HttpConnector has read 429, 5xx and redirects, and
# there was no SOAP fault to say more.
_STATUSES: Final[tuple[AnswerRule[int], ...]] = (
    AnswerRule(
        lambda status: status in (401, 403),
        SettingsError,
        "{where} refused access (HTTP {status}) while {what}",
        "check service_url, username and password in the source's settings",
    ),
    AnswerRule(
        lambda status: status == 404,
        SettingsError,
        "{where} has no service at that address (HTTP 404)",
        "check service_url: it is the address of MessageService.svc",
    ),
    AnswerRule(
        lambda status: status >= 400,
        SettingsError,
        "{where} refused the request as malformed (HTTP {status}) while {what}",
        "check service_url, namespace and soap_action_prefix in the source's settings",
    ),
)

# A SOAP fault. A refused login is a settings error unless the fault reads
# as the server's own trouble; after an order was sent, the outcome is unknown.
_FAULTS: Final[tuple[AnswerRule[Said], ...]] = (
    AnswerRule(
        lambda said: bool(_CONTRACT.search(f"{said.code} {said.text}")),
        SettingsError,
        "{where} does not know the call it was sent while {what}: {shown}",
        "check namespace and soap_action_prefix in the source's settings",
    ),
    AnswerRule(
        lambda said: (
            said.call.login
            and bool(_CREDENTIALS.search(said.text) or not _SERVER_FAULT.search(said.text))
        ),
        SettingsError,
        "{where} refused the login as {user}: {shown}",
        "check username and password in the source's settings",
    ),
    AnswerRule(
        lambda said: said.call.submitting,
        TransientError,
        "{where} answered a SOAP fault ({shown})",
        unknown_outcome=True,
    ),
    AnswerRule(
        lambda said: True,
        TransientError,
        "{where} answered a SOAP fault while {what}: {shown}",
        "the hub will try again",
    ),
)

# ``Resultflag false``: iSync's own words, typed by what would fix them.
_REFUSALS: Final[tuple[AnswerRule[Said], ...]] = (
    AnswerRule(
        lambda said: bool(_UNKNOWN_OPERATION.search(said.text)),
        SettingsError,
        "{where} does not know operation {operation!r}: {shown}",
        "check {setting} in the source's settings",
    ),
    AnswerRule(
        lambda said: bool(_BUSY.search(said.text)) and not _NAMES_A_LINE.search(said.text),
        TransientError,
        "{where} is busy while {what}: {shown}",
        "the hub will try again",
    ),
    AnswerRule(
        lambda said: said.call.submitting,
        RejectedError,
        "iSync refused {order}: {said}",
        "correct the order (stock codes, customer code) or the source's settings, then replay it",
    ),
    AnswerRule(
        lambda said: bool(_ACCESS.search(said.text)),
        SettingsError,
        "{where} refused {what} for {user}: {shown}",
        "check that the iSync user may run this operation",
    ),
    AnswerRule(
        lambda said: True,
        PermanentError,
        "{where} refused {what}: {shown}",
        "see iSync's message; correct the cause in iSync or in the source's settings",
    ),
)


def _decided(rules: tuple[AnswerRule[Said], ...], said: Said, words: Mapping[str, str]) -> Failure:
    failure = first_failure(rules, said, words)
    if failure is None:  # every table ends with a rule that always applies
        raise AssertionError("no rule applied")
    return failure


def refusal_failure(operation: str, text: str, call: Call, site: Mapping[str, str]) -> Failure:
    """``Resultflag false`` for ``operation``, as the failure it stands for."""
    shown = text or "no reason given"
    words = {
        **site,
        "what": call.what,
        "order": call.what.removeprefix("raising "),
        "operation": operation,
        "setting": call.setting or "the op_ settings",
        "said": shown,
        "shown": short(shown),
    }
    return _decided(_REFUSALS, Said(text, call), words)


def fault_failure(fault: ET.Element, call: Call, status: int, site: Mapping[str, str]) -> Failure:
    """A SOAP fault (1.1 or 1.2 names), as the failure it stands for."""
    text = xmlsafe.text_of(fault, "faultstring") or xmlsafe.text_of(fault, "Text") or ""
    code = xmlsafe.text_of(fault, "faultcode") or xmlsafe.text_of(fault, "Value") or ""
    words = {**site, "what": call.what, "shown": short(text or code or f"HTTP {status}")}
    return _decided(_FAULTS, Said(text, call, code), words)


def not_soap(call: Call, sample: str, where: str) -> Failure:
    """An answer that is not a SOAP envelope: a proxy's page, or one cut short."""
    if call.submitting:
        return Failure(TransientError, f"the answer was not a SOAP envelope ({sample})", "", True)
    return Failure(
        TransientError,
        f"{where} answered {call.what} with something that is not a SOAP envelope: {sample}",
        _NOT_SOAP_HINT,
    )


def soap_body(response: httpx.Response, call: Call) -> tuple[ET.Element | None, str]:
    """The answer's SOAP Body, or None and why there is none ("" for an empty answer)."""
    if not response.content:
        return None, ""
    try:
        envelope = xmlsafe.parse(response.content, what=f"iSync's answer to {call.what}")
    except ValueError as exc:  # BadXmlError or UnsafeXmlError
        return None, str(exc)
    body = xmlsafe.child(envelope, "Body")
    if xmlsafe.local(envelope.tag) != "envelope" or body is None:
        return None, f"<{xmlsafe.local(envelope.tag)}> without a SOAP Body"
    return body, ""


def no_document(
    response: httpx.Response, body: ET.Element | None, problem: str, call: Call, where: str
) -> Failure:
    """A successful status without a document in a SOAP Body."""
    if body is not None:
        return not_soap(call, "an empty SOAP Body", where)
    sample = problem or (short(response.text, 80) if response.content else "an empty body")
    return not_soap(call, sample, where)


def status_failure(status: int, call: Call, where: str) -> Failure | None:
    """A 4xx the shared reading of statuses left (None for any other status)."""
    return first_failure(
        _STATUSES, status, {"where": where, "what": call.what, "status": str(status)}
    )
