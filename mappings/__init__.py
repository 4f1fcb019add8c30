"""Declarative maps from each ERP's records to the hub's canonical model.

Importing the package registers the maps of every module in it (each map
module registers its maps when imported); look them up with
`get_map(erp, stream)`. The modules are found, not listed, so that a new
ERP's map module needs no line here: the registry of kinds
(`workers.kinds`) names each kind's map module, and maps kept elsewhere are
loaded through it.
"""

import importlib
import pkgutil

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
    "map_records",
    "product_key",
    "register",
    "supported",
]


def _register_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "core":
            importlib.import_module(f"{__name__}.{module.name}")


_register_all()
