"""The one registry of kinds, ERPs and channels: each declared once, loaded on demand.

A kind is named here with where its parts live, as import strings, so that
reading the registry imports nothing: the CLI's choices, the raise queues,
the maps, the demo's acts and the README's list of kinds all come from this
table, and importing it costs nothing. Adding an ERP is its new files plus
one ``register`` line below; adding a channel kind (a store the hub takes
orders from and pushes products to) is its package plus one
``register_channel`` line: the webhook route, the push queues and
connectors, the channel settings and the channel contract suite follow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

    from connectors.base import Connector
    from connectors.channel import ChannelConnector


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


# ------------------------------------------------------------------ channels


class UnknownChannelKind(LookupError):
    """A channel names a kind no registry line declares."""

    def __init__(self, name: str) -> None:
        known = ", ".join(channel_names())
        super().__init__(f"unknown channel kind {name!r} (known: {known})")


@dataclass(frozen=True)
class ChannelKind:
    """Where one channel kind's parts live.

    ``intake``: the module that reads its order webhooks (``SIGNATURE_HEADER``,
    ``DELIVERY_HEADER``, ``DEFAULT_ADD_ORDER_STATUS``, ``sign``, ``verify``,
    ``is_ping``, ``order``). ``connector``: ``"module:Class"`` of its push
    connector, or None while the hub only takes its orders.
    """

    name: str
    title: str
    intake: str
    connector: str | None = None


CHANNELS: dict[str, ChannelKind] = {}


def register_channel(kind: ChannelKind) -> ChannelKind:
    if kind.connector is not None and ":" not in kind.connector:
        raise ValueError(f"{kind.name}: connector must be 'module:Class', not {kind.connector!r}")
    CHANNELS[kind.name] = kind
    return kind


def unregister_channel(name: str) -> None:
    CHANNELS.pop(name, None)


def channel_names() -> tuple[str, ...]:
    """Every declared channel kind's name, sorted."""
    return tuple(sorted(CHANNELS))


def channel(name: str) -> ChannelKind:
    try:
        return CHANNELS[name]
    except KeyError:
        raise UnknownChannelKind(name) from None


def pushing_channel_names() -> tuple[str, ...]:
    """The channel kinds the hub pushes products to (those with a connector)."""
    return tuple(n for n in channel_names() if CHANNELS[n].connector is not None)


def channel_intake(name: str) -> ModuleType:
    """The intake module of channel kind ``name``, imported on first use."""
    module: ModuleType = _load(channel(name).intake)
    return module


def channel_connector_class(name: str) -> type[ChannelConnector]:
    """The push connector of channel kind ``name``; LookupError when it has none."""
    target = channel(name).connector
    if target is None:
        raise LookupError(f"the hub does not push products to {name} stores yet")
    cls: type[ChannelConnector] = _load(target)
    return cls


register_channel(
    ChannelKind(
        "shopify", "Shopify", "connectors.shopify.intake", "connectors.shopify:ShopifyConnector"
    )
)
register_channel(
    ChannelKind(
        "woocommerce",
        "WooCommerce",
        "connectors.woocommerce.intake",
        "connectors.woocommerce:WooCommerceConnector",
    )
)
