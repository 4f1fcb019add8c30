"""SYSPRO's e.net half: orders go in through e.net Solutions' REST service.

``Logon`` gives a session id, ``Transaction/Post`` runs the ``SORTOI``
business object, and ``Logoff`` always follows, because SYSPRO allows one
session per operator (workers also hold a shared slot keyed by
``SysproConnector.session_key``). A batch of orders shares one session
(``EnetSession``): sessions are slow to open and each holds a licence. The
errors say what a batch may do next: ``SessionEnded`` (nothing ran; log on
and post again), ``ConnectionDropped`` (look the order up first) and any
other ``AnswerLost``. Answers are HTTP 200 whatever happened:
plain ``ERROR: ...`` text or XML whose element case varies. XML is parsed
with :mod:`connectors.xmlsafe`, which refuses a DOCTYPE or entity
declaration outright.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from connectors import xmlsafe
from connectors.base import (
    ConnectorError,
    PermanentError,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.http import (
    NO_ANSWER_AFTER_SENDING,
    NOT_CONNECTED,
    UNKNOWN_HOST,
    Call,
    HttpConnector,
    TransportRule,
    short,
)
from connectors.syspro.sortoi import (
    BUSINESS_OBJECT,
    SORTOI_PARAMETERS,
    SortoiAnswer,
    parse_sortoi_answer,
)

# How many times one batch of orders may log on again after its session died
# (ended by e.net, or lost with a dropped connection). Past that the batch's
# other orders wait for the hub's retry, rather than fight another program
# that keeps logging on as the same operator.
REOPENS_PER_BATCH = 3
# Transport failures after a Post was sent that are a broken connection (not
# a timeout, not an HTTP status): the session may have gone with it.
_DROPS = (httpx.NetworkError, httpx.RemoteProtocolError)

_SESSION = re.compile(r"\A[0-9A-Fa-f]{16,64}\s*\Z")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_BUSY = re.compile(
    r"licen[cs]e|already logged|in use|too many|busy|try again|timed? ?out|unavailable"
    r"|temporar|deadlock|locked",
    re.IGNORECASE,
)
_SESSION_LOST = re.compile(
    r"session|user ?id|guid|not logged|logged (off|out)|expired|log ?on again",
    re.IGNORECASE,
)
_BUSINESS_OBJECT = re.compile(
    r"business object|sortoi|not (enabled|authori[sz]ed|allowed|permitted)|access denied",
    re.IGNORECASE,
)

# SYSPRO's own words for transport failures; first match wins, the last row
# takes any httpx error. Unlike the shared table (connectors.http), a TLS
# failure is retried like any failed connection, and every failure after
# the order was sent leaves its outcome unknown.
_TRANSPORT_RULES: tuple[TransportRule, ...] = (
    TransportRule(
        (httpx.UnsupportedProtocol, httpx.InvalidURL),
        SettingsError,
        "cannot call {where}: {detail}",
        "check {url_setting}",
    ),
    UNKNOWN_HOST,
    NOT_CONNECTED,
    NO_ANSWER_AFTER_SENDING,
    TransportRule(
        (httpx.HTTPError,),
        TransientError,
        "{where} dropped the connection ({detail})",
        "",
        submitting=True,
        unknown_outcome=True,
    ),
    TransportRule(
        (httpx.HTTPError,),
        TransientError,
        "{where} failed while {what}: {detail}",
        "the hub will try again",
    ),
)


class AnswerLost(TransientError):
    """A Post's answer was lost after the order was sent (a timeout, HTTP 5xx,
    a broken answer): SYSPRO may have recorded the order, so it is looked up
    in SorMaster before it is posted again."""


class ConnectionDropped(AnswerLost):
    """The connection broke after a Post was sent. Unlike a timeout, this says
    nothing about SYSPRO being slow, so a batch opens a new session, looks
    the order up and goes on with the others."""


class SessionEnded(TransientError):
    """e.net no longer knows the session (another Logon as the operator ended
    it, or e.net's idle timeout did): nothing was run, so a new session may
    post the same document again."""


class SysproEnet(HttpConnector):
    """The half of ``SysproConnector`` that speaks to e.net.

    It is an ``HttpConnector`` (one client per process, ``Call``, secrets
    scrubbed, an unknown outcome after a lost answer to a post), and
    ``SysproConnector`` joins it to ``SysproDatabase`` by multiple
    inheritance: both halves are cooperative subclasses of ``Connector``, so
    one instance holds one settings dict and one set of secrets, and
    ``close`` reaches both (the database base passes it on). Only the
    transport table is SYSPRO's own, to keep its words.
    """

    url_setting = "enet_url"
    service = "the e.net service"
    sent = "the order"
    looked_up_in = "SorMaster"
    transport_rules = _TRANSPORT_RULES

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self._operator = str(self.settings["operator"])
        self._company = str(self.settings["company_id"])
        self._session_ids: set[str] = set()

    @property
    def where(self) -> str:
        return f"SYSPRO e.net at {self.base_url}"

    def extra_secrets(self) -> Iterable[str]:
        """Secret settings as a query string spells them, and live session ids."""
        yield from super().extra_secrets()
        for name in self.secret_fields():
            value = self.settings.get(name)
            if value:
                yield quote(str(value), safe="")
        yield from self._session_ids

    def _get(self, path: str, params: Mapping[str, str], call: Call) -> httpx.Response:
        """One GET; the answer, or a typed error for what HTTP itself says.

        The query is encoded here with %20 for spaces (httpx would write
        ``+``): the session id ends in two spaces that must come back as is.
        """
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
        try:
            response = self._client().get(f"{self.base_url}/{path}?{query}")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from None
        status = response.status_code
        if status == 429 or status >= 500:
            if call.submitting and status != 429:
                raise self._unknown_outcome(call, f"{self.where} answered HTTP {status}")
            raise self._error(
                TransientError,
                f"{self.where} is unavailable (HTTP {status}) while {call.what}",
                "the hub will try again",
            )
        if status == 404:
            raise self._error(
                SettingsError,
                f"{self.where} has no {path} call (HTTP 404)",
                "set enet_url to the REST base, e.g. http://server:31002/SYSPROWCFService/Rest",
            )
        if 300 <= status < 400:
            raise self._error(
                SettingsError,
                f"{self.where} redirects (HTTP {status}) to "
                f"{response.headers.get('location') or 'another address'}",
                "set enet_url to the address the server redirects to",
            )
        if status >= 400:
            raise self._error(
                SettingsError if status in (401, 403) else PermanentError,
                f"{self.where} answered HTTP {status} while {call.what}",
                "check enet_url and the e.net service's configuration (its web server "
                "must let the hub call it without a login of its own)",
            )
        return response

    def _unknown_outcome(
        self, call: Call, happened: str, retry_after: float | None = None
    ) -> ConnectorError:
        """The shared "may or may not have recorded it" error, as ``AnswerLost``."""
        error = super()._unknown_outcome(call, happened, retry_after)
        return AnswerLost(error.message, hint=error.hint, retry_after=retry_after)

    def _transport_error(self, exc: httpx.HTTPError, call: Call) -> ConnectorError:
        """The shared classification; a connection broken after a Post was sent
        is ``ConnectionDropped``, so that a batch knows to log on again."""
        error = super()._transport_error(exc, call)
        if type(error) is AnswerLost and isinstance(exc, _DROPS):
            return ConnectionDropped(error.message, hint=error.hint)
        return error

    def _unwrap(self, response: httpx.Response, call: Call) -> tuple[str, ET.Element | None]:
        """The answer's text, and its XML root when it is XML.

        XML is parsed from the bytes, so that SYSPRO's ``encoding=
        "Windows-1252"`` declaration is honoured; the decoded text is the
        fallback for a server whose declaration lies. Some e.net hosts wrap
        the answer in a WCF ``<string>`` element or a JSON string; both are
        unwrapped and the inner text checked again, DOCTYPE refusal included.
        """
        text = response.text.lstrip("\ufeff")
        data: bytes | None = response.content.lstrip(b"\xef\xbb\xbf \t\r\n")
        for _ in range(3):
            stripped = text.strip()
            if stripped.startswith('"') and stripped.endswith('"'):
                try:
                    inner = json.loads(stripped)
                except ValueError:
                    return text, None
                if isinstance(inner, str):
                    text, data = inner, None
                    continue
            if not stripped.startswith("<"):
                return text, None
            root = self._parse(data, stripped, call)
            if xmlsafe.local(root.tag) == "string" and len(root) == 0:
                text, data = root.text or "", None
                continue
            return stripped, root
        return text, None

    def _parse(self, data: bytes | None, text: str, call: Call) -> ET.Element:
        what = f"SYSPRO's answer to {call.what}"
        try:
            try:
                if data is None:
                    raise xmlsafe.BadXmlError(what)
                return xmlsafe.parse(data, what=what)
            except xmlsafe.BadXmlError as first:
                try:
                    return xmlsafe.parse(_XML_DECLARATION.sub("", text, count=1), what=what)
                except xmlsafe.BadXmlError:
                    raise first from None
        except xmlsafe.UnsafeXmlError as exc:
            raise self._error(
                PermanentError,
                f"{self.where}: {exc}",
                "something between the hub and SYSPRO rewrites answers; fix that first."
                + (
                    " The order may have been recorded: the hub looks it up in SorMaster "
                    "when it is replayed"
                    if call.submitting
                    else ""
                ),
            ) from None
        except xmlsafe.BadXmlError as exc:
            if call.submitting:
                raise self._unknown_outcome(call, f"the answer was not XML ({exc})") from None
            raise self._error(
                TransientError,
                f"{self.where}: {exc}",
                "a proxy or a busy server may have cut the answer short; the hub will try again",
            ) from None

    def _enet_error(self, text: str, call: Call) -> ConnectorError:
        """An ``ERROR: ...`` answer as the error type that says what to do."""
        said = short(text.strip(), 300)
        reason = re.sub(r"^\s*ERROR\s*:?\s*", "", text.strip(), flags=re.IGNORECASE)
        if _BUSY.search(reason):
            return self._error(
                TransientError,
                f"{self.where} is busy while {call.what}: {said}",
                "SYSPRO allows one session per operator and a limited number of licences; "
                "the hub will try again",
            )
        if _SESSION_LOST.search(reason) and not re.search("password", reason, re.IGNORECASE):
            return self._error(
                SessionEnded,
                f"{self.where} ended the session while {call.what}: {said}",
                "another login as this operator ends the hub's session; the hub will log on again",
            )
        names: list[str] = []
        low = reason.lower()
        if "password" in low:
            names.append("company_password" if "company" in low else "operator_password")
        elif "operator" in low:
            names.append("operator")
        elif "company" in low:
            names.append("company_id")
        if names:
            return self._error(
                SettingsError,
                f"{self.where} refused the logon as operator {self._operator!r} to company "
                f"{self._company!r}: {said}",
                f"check {', '.join(names)} in the source's settings",
            )
        if _BUSINESS_OBJECT.search(reason):
            return self._error(
                SettingsError,
                f"{self.where} refused {call.what}: {said}",
                f"enable the {BUSINESS_OBJECT} business object for operator {self._operator!r} "
                "in SYSPRO",
            )
        if call.submitting:
            return self._error(
                RejectedError,
                f"SYSPRO refused {call.what.removeprefix('raising ')}: {said}",
                "correct the order (stock codes, customer, prices) or the source's settings, "
                "then replay it",
            )
        return self._error(
            PermanentError,
            f"{self.where} refused {call.what}: {said}",
            "see SYSPRO's message; correct the cause in SYSPRO or in the source's settings",
        )

    def _logon(self) -> str:
        call = Call("logging on")
        response = self._get(
            "Logon",
            {
                "Operator": self._operator,
                "OperatorPassword": str(self.settings["operator_password"] or ""),
                "CompanyId": self._company,
                "CompanyPassword": str(self.settings["company_password"] or ""),
            },
            call,
        )
        text, root = self._unwrap(response, call)
        if root is not None:
            raise self._error(
                PermanentError,
                f"{self.where} answered the logon with XML ({xmlsafe.local(root.tag)}), "
                "not a session id",
                "check that enet_url is the REST base of e.net Solutions",
            )
        if text.strip().upper().startswith("ERROR"):
            raise self._enet_error(text, call)
        if not _SESSION.match(text):
            raise self._error(
                PermanentError,
                f"{self.where} answered the logon with something that is not a session id: "
                f"{short(text, 80) if text.strip() else 'an empty body'}",
                "check that enet_url is the REST base of e.net Solutions",
            )
        # Kept exactly as sent (trailing spaces included), and scrubbed from messages.
        self._session_ids.add(text)
        return text

    def _logoff(self, session: str) -> None:
        """End the session; a failure here must not hide the call's own outcome."""
        try:
            self._get("Logoff", {"UserId": session}, Call("logging off"))
        except ConnectorError:
            pass
        finally:
            self._session_ids.discard(session)

    def _post(self, xml_in: str, call: Call) -> tuple[SortoiAnswer, str]:
        """Log on, post one SORTOIDOC and log off whatever happened (one order alone)."""
        session = self._logon()
        try:
            return self._post_in(session, xml_in, call)
        finally:
            self._logoff(session)

    def _post_in(
        self, session: str, xml_in: str, call: Call, parameters: str = SORTOI_PARAMETERS
    ) -> tuple[SortoiAnswer, str]:
        """Post one SORTOIDOC in an open session.

        Returns SYSPRO's answer and the name of its root element (for the
        message when it is not a SORTOI answer); an ``ERROR`` answer or one
        that is not XML raises.
        """
        response = self._get(
            "Transaction/Post",
            {
                "UserId": session,
                "BusinessObject": BUSINESS_OBJECT,
                "XmlParameters": parameters,
                "XmlIn": xml_in,
            },
            call,
        )
        text, root = self._unwrap(response, call)
        if root is None:
            if text.strip().upper().startswith("ERROR"):
                raise self._enet_error(text, call)
            if not call.submitting:
                raise self._error(
                    PermanentError,
                    f"{self.where} answered {call.what} with neither XML nor an ERROR "
                    f"({short(text, 80) if text.strip() else 'an empty body'})",
                    "check that enet_url is the REST base of e.net Solutions",
                )
            raise self._unknown_outcome(
                call,
                "the answer was neither XML nor an ERROR "
                f"({short(text, 80) if text.strip() else 'an empty body'})",
            )
        return parse_sortoi_answer(root), xmlsafe.local(root.tag)


class EnetSession:
    """One e.net session for a batch of Posts (``SysproConnector.raise_orders``).

    Logged on at the first Post, logged on again when it died (``ended``),
    logged off once at the end (``close``; a failed Logoff changes nothing).
    ``refused`` keeps a Logon refusal that no retry can help (a changed
    password), for the batch's other orders.
    """

    def __init__(self, enet: SysproEnet, reopens: int = REOPENS_PER_BATCH) -> None:
        self._enet = enet
        self._id: str | None = None
        self._reopens_left = reopens
        self.refused: PermanentError | None = None

    def current(self) -> str:
        """The live session's id, logging on when there is none."""
        if self._id is None:
            try:
                self._id = self._enet._logon()
            except PermanentError as exc:
                self.refused = exc
                raise
        return self._id

    def ended(self, error: TransientError) -> None:
        """The session died with ``error``: forget it, so the next Post logs on
        again, or raise ``error`` when the batch has logged on again too often.

        After a dropped connection the old session is logged off first (e.net
        may still hold it, and with it a licence); one e.net ended is gone.
        """
        if self._id is not None:
            session, self._id = self._id, None
            if isinstance(error, ConnectionDropped):
                self._enet._logoff(session)
            else:
                self._enet._session_ids.discard(session)
        if self._reopens_left <= 0:
            raise error
        self._reopens_left -= 1

    def close(self) -> None:
        if self._id is not None:
            session, self._id = self._id, None
            self._enet._logoff(session)
