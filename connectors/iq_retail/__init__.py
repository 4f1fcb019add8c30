"""IQ Retail through its "IQ API Interface" (seed 000; erp-wire-formats.md section 1).

The package splits along what changes for different reasons: the wire
format (:mod:`.wire`), the settings (:mod:`.settings`), reading IQ's error
answers (:mod:`.errors`) and the connector itself (:mod:`.connector`). The
names other modules import are re-exported here.
"""

from connectors.iq_retail.connector import IqRetailConnector
from connectors.iq_retail.errors import collect_errors
from connectors.iq_retail.settings import IqRetailSettingsSchema
from connectors.iq_retail.wire import find_order_sql, sql_literal, stock_page_sql

__all__ = [
    "IqRetailConnector",
    "IqRetailSettingsSchema",
    "collect_errors",
    "find_order_sql",
    "sql_literal",
    "stock_page_sql",
]
