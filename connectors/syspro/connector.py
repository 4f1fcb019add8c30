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
from typing import Any

from sqlalchemy import func, select

from connectors.base import ConnectorError, RejectedError
from connectors.http import Call
from connectors.syspro.enet import SysproEnet
from connectors.syspro.reads import SysproDatabase
from connectors.syspro.settings import SysproSettingsSchema
from connectors.syspro.sortoi import render_sortoidoc


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

    def raise_order(self, payload: dict[str, Any]) -> str:
        """Post one SORTOIDOC; SYSPRO's sales order number, e.g. ``000123``.

        ``CheckForCustomerPoNumbers=Y`` makes SYSPRO refuse a second order
        under the same CustomerPoNumber; when that is the refusal, the order
        is already in (an earlier attempt's answer was lost) and its number
        is returned. Any other ambiguous failure is a TransientError, and
        the hub calls ``find_order`` before sending again.
        """
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
            existing = self.find_order(po)
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
