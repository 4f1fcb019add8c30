"""The SYSPRO connector: the database half and the e.net half joined.

``SysproDatabase`` (``reads``) reads products and customers and finds
orders in ``SorMaster``; ``SysproEnet`` (``enet``) logs on, posts SORTOI
documents and logs off. What needs both lives here: raising orders (e.net
posts, one session per batch, and a lookup in the database when SYSPRO says
the PO number is already used or a connection dropped after a post),
``check`` (what will sync, then a validate-only SORTOI), the session key
and ``release``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from connectors.base import (
    ConnectorError,
    PermanentError,
    RaiseOutcome,
    RejectedError,
    SettingsError,
    TransientError,
)
from connectors.http import Call
from connectors.http import ci_get as _ci
from connectors.syspro.enet import ConnectionDropped, EnetSession, SessionEnded, SysproEnet
from connectors.syspro.reads import SysproDatabase
from connectors.syspro.settings import SysproSettingsSchema
from connectors.syspro.sortoi import (
    BUSINESS_OBJECT,
    PO_TEMPLATE_DEFAULT,
    SORTOI_VALIDATE_PARAMETERS,
    SortoiAnswer,
    compose_po,
    render_sortoidoc,
)

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

    def _document(self, payload: dict[str, Any]) -> tuple[str, str]:
        """The SORTOIDOC for one payload and its CustomerPoNumber, or the error
        that refuses that order (a settings error for the template)."""
        try:
            payload = self._with_reference(payload)
        except ValueError as exc:
            raise self._error(SettingsError, str(exc), self._po_hint) from None
        try:
            return render_sortoidoc(payload)
        except ValueError as exc:
            raise self._error(RejectedError, str(exc), "correct the order mapping") from None

    def _number(self, answer: SortoiAnswer, element: str, po: str, call: Call) -> str:
        """SYSPRO's sales order number from its answer to one Post, or why not.

        A refusal of the CustomerPoNumber as one SYSPRO holds means an
        earlier attempt got the order in: its number is returned.
        """
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

    def raise_order(self, payload: dict[str, Any]) -> str:
        """Post one SORTOIDOC in a session of its own; SYSPRO's sales order number.

        ``CheckForCustomerPoNumbers=Y`` makes SYSPRO refuse a second order
        under the same CustomerPoNumber; when that is the refusal, the order
        is already in (an earlier attempt's answer was lost) and its number
        is returned. Any other ambiguous failure is a TransientError, and
        the hub calls ``find_order`` before sending again.
        """
        xml_in, po = self._document(payload)
        call = Call(f"raising order {po}", submitting=True)
        answer, element = self._post(xml_in, call)
        return self._number(answer, element, po, call)

    def raise_orders(self, payloads: Sequence[dict[str, Any]]) -> list[RaiseOutcome]:
        """Raise a batch in one e.net session: Logon once, a Post per order, Logoff once.

        e.net sessions are slow to open and each holds a licence, so a batch
        shares one. Each order is still settled on its own: SYSPRO refusing
        one (an ``ERROR`` answer, a line error) refuses that order alone and
        the others go on. A session that dies mid-batch (e.net answers that
        the session has ended, or the connection drops) is logged on again,
        at most ``REOPENS_PER_BATCH`` times; an order whose Post may have
        reached SYSPRO (the connection dropped after sending) is looked up
        in SorMaster before it is posted again. Any other transient failure
        (a busy licence, a timeout, HTTP 5xx) stops the batch as the
        contract's default does: that order's error, and ``None`` (not
        sent) for the orders after it. A Logon refused for good (a changed
        password) is every remaining order's outcome.
        """
        outcomes: list[RaiseOutcome] = [None] * len(payloads)
        ready: list[tuple[int, str, str]] = []
        for index, payload in enumerate(payloads):
            try:
                ready.append((index, *self._document(payload)))
            except ConnectorError as exc:
                outcomes[index] = exc
        if not ready:
            return outcomes
        session = EnetSession(self)
        try:
            for position, (index, xml_in, po) in enumerate(ready):
                if session.refused is not None:
                    for later, _, _ in ready[position:]:
                        outcomes[later] = session.refused
                    break
                try:
                    outcomes[index] = self._raise_in(session, xml_in, po)
                except TransientError as exc:
                    outcomes[index] = exc
                    break
                except Exception as exc:  # reported for this order alone
                    outcomes[index] = exc
        finally:
            session.close()
        return outcomes

    def _raise_in(self, session: EnetSession, xml_in: str, po: str) -> str:
        """Post one order of a batch, logging on again when the session died.

        After a dropped connection the order is looked up first, as the hub
        does before a retry: every order goes in once. Raises the order's
        error (the drop itself when the lookup or the new Logon fails, so
        that the hub asks SorMaster before sending it again).
        """
        call = Call(f"raising order {po}", submitting=True)
        lost: ConnectionDropped | None = None
        while True:
            if lost is not None:
                try:
                    existing = super().find_order(po)
                except ConnectorError:
                    raise lost from None
                if existing is not None:
                    return existing
            try:
                session_id = session.current()
            except ConnectorError:
                if lost is not None:
                    raise lost from None
                raise
            try:
                answer, element = self._post_in(session_id, xml_in, call)
            except SessionEnded as exc:
                session.ended(exc)  # nothing ran: post again in a new session
                continue
            except ConnectionDropped as exc:
                lost = exc
                session.ended(exc)
                continue
            return self._number(answer, element, po, call)

    def check(self) -> str:
        """What will sync, then a validate-only SORTOI in an e.net session: one line, or the fix.

        The count is of the stock codes a products run reads (all of
        InvMaster) split as the products map splits them by the source's
        active user field, so that the operator sees how many become
        products. The order is a test document SORTOI checks with
        ``ValidateOnly=Y`` (it records nothing) for the customer and
        warehouse orders will use, so that a setting SYSPRO refuses shows
        here, in SYSPRO's words, before a real order meets it.
        """
        found = f"database {self._database_label()} answers: {self._sync_counts()}"
        customer, stock_code = self._read_db(self._probe_codes, "choosing a test order's codes")
        try:
            session = self._logon()
        except ConnectorError as exc:
            raise self._error(type(exc), f"{found}; but {exc.message}", exc.hint) from None
        try:
            validated = self._validate(session, customer, stock_code)
        except ConnectorError as exc:
            raise self._error(type(exc), f"{found}; but {exc.message}", exc.hint) from None
        finally:
            self._logoff(session)
        version = self.settings.get("syspro_version")
        return (
            f"{found}; e.net at {self.base_url} logs on as operator {self._operator!r} to "
            f"company {self._company!r}"
            + (f" (SYSPRO {version})" if version else "")
            + "; "
            + validated
        )

    def _active_test(self) -> tuple[str, ColumnElement[bool], ColumnElement[bool] | None]:
        """The active user field's name, SQL for "marked active" and for "marked
        Delete" (None: every row not active is Delete), compared as the
        products map compares them: trimmed, whatever the case."""
        name = f"UserField{int(self.settings['active_user_field'])}"
        column = self._tables["InvMaster"].c[name]
        flag = func.upper(func.ltrim(func.rtrim(column)))

        def among(values: Sequence[Any]) -> ColumnElement[bool]:
            texts = sorted({str(v).strip().upper() for v in values})
            test = flag.in_(texts)
            return or_(test, column.is_(None)) if "" in texts else test

        deleting = self.settings.get("delete_values")
        return (
            name,
            among(self.settings["active_values"]),
            None if deleting is None else among(deleting),
        )

    def _sync_counts(self) -> str:
        """How many stock codes a products run reads, and what each becomes."""
        master = self._tables["InvMaster"]
        name, active, deleting = self._active_test()
        columns = [
            func.count().label("n"),
            func.sum(case((active, 1), else_=0)).label("active"),
        ]
        if deleting is not None:
            columns.append(func.sum(case((and_(~active, deleting), 1), else_=0)).label("deleting"))
        rows = self._read_db(
            lambda c: self._rows(c, select(*columns).select_from(master)), "counting InvMaster"
        )
        row = rows[0] if rows else {}
        total, marked = int(row.get("n") or 0), int(row.get("active") or 0)
        values = ", ".join(str(v) for v in self.settings["active_values"])
        line = f"{marked:,} of {total:,} stock codes will sync as products ({name} is {values})"
        rest = total - marked
        if deleting is None:
            return line + (f"; the other {rest:,} are read as Delete" if rest else "")
        gone = int(row.get("deleting") or 0)
        return line + f"; {gone:,} are read as Delete and {rest - gone:,} as Ignore"

    def _probe_codes(self, conn: Connection) -> tuple[str, str]:
        """The customer and stock code of the validate-only test order: the
        source's default customer (else the first account), and the first
        active stock code held in ``order_warehouse`` (else the first one)."""
        customer = self.settings.get("default_customer_code")
        if not customer:
            accounts = self._tables["ArCustomer"]
            first = select(accounts.c.Customer).order_by(accounts.c.Customer).limit(1)
            row = next(iter(self._rows(conn, first)), None)
            if row is None or not str(row["Customer"] or "").strip():
                raise self._error(
                    SettingsError,
                    "ArCustomer holds no customer for a test order, and default_customer_code "
                    "is not set",
                    "set default_customer_code, or check that database_url names the company "
                    "database",
                )
            customer = str(row["Customer"]).strip()
        master = self._tables["InvMaster"]
        stock = self._tables["InvWarehouse"]
        _, active, _ = self._active_test()
        warehouse = self.settings.get("order_warehouse")
        held = master.c.StockCode.in_(
            select(stock.c.StockCode).where(stock.c.Warehouse == warehouse)
        )
        tries = [and_(active, held), active] if warehouse else [active]
        for condition in [*tries, true()]:
            first = select(master.c.StockCode).where(condition).order_by(master.c.StockCode)
            row = next(iter(self._rows(conn, first.limit(1))), None)
            if row is not None:
                return str(customer), str(row["StockCode"]).strip()
        raise self._error(
            SettingsError,
            "InvMaster holds no stock code, so nothing will sync and no test order can be "
            "validated",
            "check that database_url names the SYSPRO company database",
        )

    def _validate(self, session: str, customer: str, stock_code: str) -> str:
        """Post a test order with ValidateOnly=Y; what SYSPRO said, or its refusal."""
        po = f"S2S-CHECK-{secrets.token_hex(4).upper()}"
        header = {
            "CustomerPoNumber": po,
            "OrderActionType": "A",
            "Customer": customer,
            "OrderDate": date.today().isoformat(),
            "OrderType": self.settings.get("order_type"),
            "Salesperson": self.settings.get("sales_rep"),
            "Warehouse": self.settings.get("order_warehouse"),
        }
        line = {
            "CustomerPoLine": 1,
            "LineActionType": "A",
            "StockCode": stock_code,
            "Warehouse": self.settings.get("order_warehouse"),
            "OrderQty": 1,
        }
        xml_in, _ = render_sortoidoc({"header": header, "lines": [line]})
        test = f"a test order (customer {customer}, stock code {stock_code})"
        call = Call(f"validating {test} with {BUSINESS_OBJECT}")
        answer, element = self._post_in(session, xml_in, call, SORTOI_VALIDATE_PARAMETERS)
        if answer.sales_order:
            raise self._error(
                PermanentError,
                f"{BUSINESS_OBJECT} recorded {test} as sales order {answer.sales_order} "
                f"(CustomerPoNumber {po}) although ValidateOnly=Y was sent",
                f"cancel sales order {answer.sales_order} in SYSPRO, and find out why e.net "
                "ignores ValidateOnly before raising orders",
            )
        if not answer.recognised:
            raise self._error(
                PermanentError,
                f"{self.where} answered {call.what} with {element}, not a {BUSINESS_OBJECT} answer",
                "check that enet_url is the REST base of e.net Solutions",
            )
        if answer.errors or answer.rejected_items:
            raise self._error(
                SettingsError,
                f"{BUSINESS_OBJECT} refused {test}: {answer.refusal()}",
                "check default_customer_code, order_warehouse, order_type and sales_rep "
                f"against SYSPRO, and that operator {self._operator!r} may import sales "
                "orders",
            )
        return f"{BUSINESS_OBJECT} validated {test} with ValidateOnly=Y, recording nothing"
