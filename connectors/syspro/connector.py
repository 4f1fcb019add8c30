"""The SYSPRO connector: the database half and the e.net half joined.

``SysproDatabase`` (``reads``) reads products and customers and finds
orders in ``SorMaster``; ``SysproEnet`` (``enet``) logs on, posts SORTOI
documents and logs off. What needs both lives here: raising an order (an
e.net post, then a lookup in the database when SYSPRO says the PO number is
already used), ``check`` (a count, then a logon), the session key and
``release``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from connectors.base import ConnectorError, RejectedError, SettingsError
from connectors.http import Call
from connectors.http import ci_get as _ci
from connectors.syspro.enet import SysproEnet
from connectors.syspro.reads import SysproDatabase
from connectors.syspro.settings import SysproSettingsSchema
from connectors.syspro.sortoi import PO_TEMPLATE_DEFAULT, compose_po, render_sortoidoc

# The channel the hub records an order under when the order names none.
DEFAULT_CHANNEL = "api"


class SysproConnector(SysproDatabase, SysproEnet):
    """Products and customers from the company database; sales orders through e.net.

    ``read`` ignores ``since``: SYSPRO has no reliable modified column on
    these tables, so every run reads everything and the hub's hashes find
    what changed. No secret leaves it: the database URL's password, the
    operator and company passwords and the session id are scrubbed from
    every message, and ``repr`` shows only public settings.
    """

    kind = "syspro"
    title = "SYSPRO"
    streams = frozenset({"products", "customers"})
    settings_schema = SysproSettingsSchema
    session_limit = 1

    def __repr__(self) -> str:
        return (
            f"<SysproConnector company {self._company!r} at {self.base_url} as operator "
            f"{self._operator!r}; database {self._database_label()}>"
        )

    def session_key(self) -> str:
        """``syspro:`` + a hash of the e.net address and the operator: one session each."""
        raw = f"{self.base_url}\n{self._operator.lower()}".encode()
        return "syspro:" + hashlib.sha256(raw).hexdigest()

    def release(self) -> None:
        """Between tasks: close the e.net keep-alive sockets and the database
        connections, keeping the engine (its statement cache and the query
        counter) for the next task."""
        self.close_http()
        super().release()

    def order_reference(self, channel_order_code: str, channel: str | None = None) -> str:
        """The CustomerPoNumber a channel's order is raised and found under.

        SYSPRO knows an order from the web only by CustomerPoNumber, and the
        retry guard (``CheckForCustomerPoNumbers``) and ``find_order`` both
        key on it. The hub keeps orders apart per client, channel and order
        number, so when a client's channels may share numbers (Shopify's
        ``#1001`` and WooCommerce's ``1001`` are small counters both) the
        source's ``po_number`` template must put the channel in, e.g.
        ``{channel}-{channel_order_code}``; else the second order would be
        taken for the first and never raised. The default, the order number
        alone, keeps every order already in SorMaster findable. Changing the
        template while orders are in flight makes those unfindable by their
        old reference (SYSPRO's guard then no longer sees the repeat), so
        change it with the source's queue empty. Raises ValueError for a
        result longer than SYSPRO's 30 characters.
        """
        return compose_po(self._po_template, channel or DEFAULT_CHANNEL, channel_order_code)

    @property
    def _po_template(self) -> str:
        return str(self.settings.get("po_number") or PO_TEMPLATE_DEFAULT)

    def find_order(self, reference: str, channel: str | None = None) -> str | None:
        """The sales order raised for ``reference``.

        With ``channel``, ``reference`` is the channel's order number and is
        made a CustomerPoNumber as ``raise_order`` made it. Without, it is
        taken as the CustomerPoNumber itself: a bare order number then finds
        nothing under a template with a prefix, which is safe (a resend is
        refused by SYSPRO's duplicate-PO check and answered with the first
        number), where guessing the channel could return another channel's
        order and lose this one.
        """
        if channel is None:
            return super().find_order(reference)
        try:
            po = self.order_reference(reference, channel)
        except ValueError as exc:
            raise self._error(SettingsError, str(exc), self._po_hint) from None
        return super().find_order(po)

    _po_hint = "give the source's po_number a shorter prefix, then replay the order"

    def _with_reference(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload with its CustomerPoNumber made from the ``po_number`` template.

        The orders map puts the order's channel and number under
        ``reference``; a payload built by hand without it is the API's.
        """
        reference = _ci(payload, "reference")
        header = _ci(payload, "header")
        if not isinstance(header, Mapping):
            return payload
        if isinstance(reference, Mapping):
            code = _ci(reference, "channel_order_code")
            channel = _ci(reference, "channel")
        else:
            code, channel = _ci(header, "CustomerPoNumber"), None
        if code is None or (reference is None and self._po_template == PO_TEMPLATE_DEFAULT):
            return payload
        po = self.order_reference(str(code), str(channel) if channel else None)
        kept = {k: v for k, v in header.items() if str(k).lower() != "customerponumber"}
        return {**payload, "header": {"CustomerPoNumber": po, **kept}}

    def raise_order(self, payload: dict[str, Any]) -> str:
        """Post one SORTOIDOC; SYSPRO's sales order number, e.g. ``000123``.

        ``CheckForCustomerPoNumbers=Y`` makes SYSPRO refuse a second order
        under the same CustomerPoNumber; when that is the refusal, the order
        is already in (an earlier attempt's answer was lost) and its number
        is returned. Any other ambiguous failure is a TransientError, and
        the hub calls ``find_order`` before sending again.
        """
        try:
            payload = self._with_reference(payload)
        except ValueError as exc:
            raise self._error(SettingsError, str(exc), self._po_hint) from None
        try:
            xml_in, po = render_sortoidoc(payload)
        except ValueError as exc:
            raise self._error(RejectedError, str(exc), "correct the order mapping") from None
        call = Call(f"raising order {po}", submitting=True)
        answer, element = self._post(xml_in, call)
        if answer.sales_order:
            return answer.sales_order
        if not answer.recognised:
            raise self._unknown_outcome(call, f"the answer had no SalesOrder element ({element})")
        if answer.duplicate_po:
            existing = super().find_order(po)
            if existing is not None:
                return existing
        raise self._error(
            RejectedError,
            f"SYSPRO refused order {po}: {answer.refusal()}",
            "correct the order (stock codes, customer, prices) or the source's settings, "
            "then replay it",
        )

    def check(self) -> str:
        """Count stock codes, then log on to e.net and off again: one line, or the fix."""
        master = self._tables["InvMaster"]
        rows = self._read_db(
            lambda c: self._rows(c, select(func.count().label("n")).select_from(master)),
            "counting InvMaster",
        )
        count = int(rows[0]["n"]) if rows else 0
        found = f"database {self._database_label()} answers with {count:,} stock codes"
        try:
            session = self._logon()
        except ConnectorError as exc:
            raise self._error(type(exc), f"{found}, but {exc.message}", exc.hint) from None
        self._logoff(session)
        version = self.settings.get("syspro_version")
        return (
            f"{found}; e.net logon and logoff as operator {self._operator!r} to company "
            f"{self._company!r} work at {self.base_url}"
            + (f" (SYSPRO {version})" if version else "")
        )
