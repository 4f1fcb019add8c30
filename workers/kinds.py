"""The one registry of ERP kinds: each declared once, loaded on demand.

A kind is named here with where its parts live, as import strings, so that
reading the registry imports nothing: the CLI's choices, the raise queues,
the maps, the demo's acts and the README's list of kinds all come from this
table, and importing it costs nothing. Adding an ERP is its new files plus
one ``register`` line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.base import Connector


class UnknownKind(LookupError):
    """A source names a kind no registry line declares."""

    def __init__(self, name: str) -> None:
        known = ", ".join(names())
        super().__init__(f"unknown source kind {name!r} (known: {known})")


@dataclass(frozen=True)
class Kind:
    """Where one ERP kind's parts live.

    ``connector``: ``"module:Class"`` of its ``Connector``. ``maps``: the
    module whose import registers its maps. The demo finds a kind's act on
    its own (``s2s.demo_acts.<name>``), so that this table, in ``workers/``,
    names nothing of the edges above it.
    """

    name: str
    connector: str
    maps: str


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Declare a kind (tests declare throw-away kinds the same way)."""
    if ":" not in kind.connector:
        raise ValueError(f"{kind.name}: connector must be 'module:Class', not {kind.connector!r}")
    KINDS[kind.name] = kind
    _load.cache_clear()
    return kind


def unregister(name: str) -> None:
    """Forget a kind (for tests that declared one)."""
    KINDS.pop(name, None)
    _load.cache_clear()


def names() -> tuple[str, ...]:
    """Every declared kind's name, sorted."""
    return tuple(sorted(KINDS))


def get(name: str) -> Kind:
    """The declared kind ``name``; an unknown name lists the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(name) from None


@cache
def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def connector_class(name: str) -> type[Connector]:
    """The connector class of ``name``, imported on first use."""
    cls: type[Connector] = _load(get(name).connector)
    return cls


def load_maps(name: str) -> None:
    """Import the module that registers ``name``'s maps."""
    _load(get(name).maps)


register(Kind("sql", "connectors.sql:SqlConnector", "mappings.sql"))
register(Kind("iq_retail", "connectors.iq_retail:IqRetailConnector", "mappings.iq_retail"))
register(Kind("isync", "connectors.isync:IsyncConnector", "mappings.isync"))
register(Kind("syspro", "connectors.syspro:SysproConnector", "mappings.syspro"))
