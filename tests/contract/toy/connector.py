"""The toy ERP's connector: the smallest complete ``Connector``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from marshmallow import fields, validate

from connectors.base import (
    Connector,
    Page,
    RejectedError,
    SettingsError,
    SettingsSchema,
    TransientError,
)
from tests.contract.toy import KIND
from tests.contract.toy.erp import RUNNING, ToyErp


class ToySettings(SettingsSchema):
    erp = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9-]+$"))
    password = fields.String(required=True, metadata={"secret": True})
    page_size = fields.Integer(load_default=100, validate=validate.Range(min=1))
    default_customer_code = fields.String(load_default="CASH")


class ToyConnector(Connector):
    kind: ClassVar[str] = KIND
    title: ClassVar[str] = "Toy ERP"
    streams: ClassVar[frozenset[str]] = frozenset({"products"})
    settings_schema = ToySettings

    def __repr__(self) -> str:
        return f"ToyConnector(erp={self.settings['erp']!r})"

    def _erp(self) -> ToyErp:
        erp = RUNNING.get(self.settings["erp"])
        if erp is None:
            raise self._error(TransientError, f"toy ERP {self.settings['erp']!r} is not running")
        if erp.password != self.settings["password"]:
            raise self._error(
                SettingsError,
                f"toy ERP {self.settings['erp']!r} refused the password "
                f"{self.settings['password']!r}",
                hint="check password in the source's settings",
            )
        return erp

    def check(self) -> str:
        return f"reached toy ERP {self.settings['erp']!r}: {len(self._erp().stock)} products"

    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        start = int(cursor or 0)
        stock = self._erp().stock
        end = start + limit
        return Page([dict(r) for r in stock[start:end]], end if end < len(stock) else None)

    def raise_order(self, payload: dict[str, Any]) -> str:
        erp = self._erp()
        known = {item["code"] for item in erp.stock}
        for line in payload["lines"]:
            if line["code"] not in known:
                raise self._error(RejectedError, f"toy ERP has no item {line['code']!r}")
        return erp.document_for(payload["reference"])

    def find_order(self, reference: str, channel: str | None = None) -> str | None:
        return self._erp().orders.get(reference)
