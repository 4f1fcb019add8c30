"""The vocabulary maps are written in, gathered in one place.

A map is a seed page's field table made executable: one `Row` per line of the
table, in the table's order, so the same rows both transform raw ERP records
and print the documentation (`s2s mappings show sql products`). Keeping the
two in one place is what stops the documentation drifting from the code, and
a test holds every map's `render()` against the seed's table.

Inbound maps (products, customers) turn a raw ERP record into a *flat* dict
keyed by hub path ("variants.qty"); `build_products` / `build_customers` then
assemble the nested canonical shapes. Outbound maps (orders) document the
ERP columns and delegate to the ERP module's payload builder.

The pieces live in their own modules (`mappings.scalars` the scalar parsers,
`mappings.paths` the hub paths, `mappings.rows` rows and records,
`mappings.maps` the `Map`, `mappings.building` the canonical shapes,
`mappings.registry` the registry); this module names them all, so that a map
module imports its whole vocabulary from one place.

Nothing here does I/O or imports the rest of the project: maps are pure data
plus pure functions, so they can be previewed, tested and rendered anywhere.
"""

from mappings.building import (
    RETAIL_TIER,
    KeyOf,
    build_customers,
    build_products,
    customer_key,
    map_records,
    product_key,
)
from mappings.maps import Map
from mappings.paths import (
    ADDRESS_FIELDS,
    CUSTOMER_PATHS,
    INBOUND,
    KEY_PATHS,
    PATH_PREFIXES,
    PRODUCT_PATHS,
    STREAMS,
    UNKNOWN_KEY,
    Parser,
    availability,
    hub_paths,
    parser_for,
    raw_state,
    tiers,
)
from mappings.registry import MAPS, get_map, register, supported
from mappings.rows import (
    UNSET,
    Compute,
    Flat,
    MissingSettingError,
    RawRecord,
    RecordError,
    Row,
    Transform,
    computed,
    const,
)
from mappings.scalars import AMOUNT_LIMIT, MappingError, flag, number, shown, text

__all__ = [
    "ADDRESS_FIELDS",
    "AMOUNT_LIMIT",
    "CUSTOMER_PATHS",
    "INBOUND",
    "KEY_PATHS",
    "MAPS",
    "PATH_PREFIXES",
    "PRODUCT_PATHS",
    "RETAIL_TIER",
    "STREAMS",
    "UNKNOWN_KEY",
    "UNSET",
    "Compute",
    "Flat",
    "KeyOf",
    "Map",
    "MappingError",
    "MissingSettingError",
    "Parser",
    "RawRecord",
    "RecordError",
    "Row",
    "Transform",
    "availability",
    "build_customers",
    "build_products",
    "computed",
    "const",
    "customer_key",
    "flag",
    "get_map",
    "hub_paths",
    "map_records",
    "number",
    "parser_for",
    "product_key",
    "raw_state",
    "register",
    "shown",
    "supported",
    "text",
    "tiers",
]
