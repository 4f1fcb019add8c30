"""SYSPRO (seed 003; erp-wire-formats.md section 3).

SYSPRO is spoken to in two ways, and this package keeps them apart:

* **Reading** goes straight to the company database (SQL Server in the
  field) with a read-only user, three SELECTs per page of products
  (``reads``, on the shared ``connectors.database`` base).
* **Orders** go in through e.net Solutions' REST service: ``Logon``,
  ``Transaction/Post`` running ``SORTOI`` for each order of a batch, and
  ``Logoff`` always (``enet``, on the shared ``connectors.http`` base), as
  SORTOIDOC XML (``sortoi``).

``connector`` joins the two halves; ``settings`` holds the schema.
"""

from connectors.syspro.connector import SysproConnector
from connectors.syspro.reads import MAX_PAGE
from connectors.syspro.settings import SysproSettingsSchema
from connectors.syspro.sortoi import (
    BUSINESS_OBJECT,
    PO_TEMPLATE_DEFAULT,
    SORTOI_PARAMETERS,
    SORTOI_VALIDATE_PARAMETERS,
    SortoiAnswer,
    compose_po,
    parse_sortoi_answer,
    po_number,
    render_sortoidoc,
)

__all__ = [
    "BUSINESS_OBJECT",
    "MAX_PAGE",
    "PO_TEMPLATE_DEFAULT",
    "SORTOI_PARAMETERS",
    "SORTOI_VALIDATE_PARAMETERS",
    "SortoiAnswer",
    "SysproConnector",
    "SysproSettingsSchema",
    "compose_po",
    "parse_sortoi_answer",
    "po_number",
    "render_sortoidoc",
]
