"""iSync through its "Sync EAI" messaging service (seed 001; erp-wire-formats.md section 2).

The package splits along what changes for different reasons: the wire
format (:mod:`.wire`), the settings (:mod:`.settings`), reading iSync's
error answers (:mod:`.errors`) and the connector itself (:mod:`.connector`).
The names other modules import are re-exported here.
"""

from connectors.isync.connector import IsyncConnector
from connectors.isync.settings import IsyncSettingsSchema
from connectors.isync.wire import (
    DELIVERY_FIELDS,
    get_sales_order_xml,
    hold_back_last_product,
    products_request_xml,
    sales_order_xml,
    soap_envelope,
)

__all__ = [
    "DELIVERY_FIELDS",
    "IsyncConnector",
    "IsyncSettingsSchema",
    "get_sales_order_xml",
    "hold_back_last_product",
    "products_request_xml",
    "sales_order_xml",
    "soap_envelope",
]
