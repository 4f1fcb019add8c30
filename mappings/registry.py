"""The registry of maps, keyed by (ERP, stream).

Each map module registers its maps when imported (`mappings/__init__`
imports them all), so the workers, the CLI and the tests find a map by name
without knowing which module holds it.
"""

from __future__ import annotations

from mappings.maps import Map
from mappings.paths import STREAMS

MAPS: dict[tuple[str, str], Map] = {}


def register(m: Map) -> Map:
    """Add a map to the registry; twice under one key is a programming error."""
    key = (m.erp, m.stream)
    if key in MAPS:
        raise ValueError(f"a map for {m.erp} {m.stream} is already registered")
    MAPS[key] = m
    return m


def supported(erp: str) -> list[str]:
    """The streams an ERP has maps for, in sync order; [] for an unknown ERP."""
    return [s for s in STREAMS if (erp, s) in MAPS]


def get_map(erp: str, stream: str) -> Map:
    try:
        return MAPS[(erp, stream)]
    except KeyError:
        erps = sorted({e for e, _ in MAPS})
        known = "; ".join(f"{e}: {', '.join(supported(e))}" for e in erps) or "none"
        if erp in erps:
            reason = f"{erp} does not support {stream} (it supports {', '.join(supported(erp))})"
        else:
            reason = f"there is no map for ERP {erp!r}"
        raise KeyError(f"{reason}; maps exist for {known}") from None
