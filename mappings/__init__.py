"""Declarative maps from each ERP's records to the hub's canonical model.

Importing the package registers every ERP's maps; look them up with
`get_map(erp, stream)`.
"""

from mappings import iq_retail, isync, sql, syspro  # noqa: F401 - importing a map module registers it
from mappings.core import (
    MAPS,
    Flat,
    Map,
    MappingError,
    MissingSettingError,
    RecordError,
    Row,
    build_customers,
    build_products,
    computed,
    const,
    customer_key,
    get_map,
    hub_paths,
    map_records,
    product_key,
    register,
    supported,
)

__all__ = [
    "MAPS",
    "Flat",
    "Map",
    "MappingError",
    "MissingSettingError",
    "RecordError",
    "Row",
    "build_customers",
    "build_products",
    "computed",
    "const",
    "customer_key",
    "get_map",
    "hub_paths",
    "isync",
    "map_records",
    "product_key",
    "register",
    "sql",
    "supported",
    "syspro",
]
