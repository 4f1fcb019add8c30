"""The contract every channel connector (a store the hub pushes products to) follows.

The hub decides *what* a store should show; a channel connector only says
it in the store's words. So the hub hands a connector listings already
rendered for that channel (the price tier chosen, the warehouses summed,
the options named) together with what it knows of each product in the store
(the ids an earlier push confirmed), and gets back one outcome per listing:
the store's ids, or the store's own refusal. The connector never touches
the hub's database, and it keeps no state between pushes beyond its HTTP
client and what it learned of the store's rate limits.

Retrying a push must never create a product twice. Every listing carries
``key``, the hub's identity of the product within its client; a connector
writes it into the store (Shopify: a custom-id metafield) and upserts by it,
so a push repeated after a lost answer, or after a worker was killed
mid-batch, updates what the first attempt made.

Errors are the ERP connectors' (``connectors.base``): a failure of the whole
call is raised (``TransientError`` is retried by the hub, ``SettingsError``
fails the run with the setting named), and a refusal of one product is an
:class:`Outcome` with ``error`` set, so one bad product never sinks its batch.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from connectors.base import _scrub

# The statuses a listing can ask for, in the hub's words; each kind maps
# them to its own (Shopify: ACTIVE / ARCHIVED / DRAFT).
ACTIVE = "active"
ARCHIVED = "archived"
STATUSES = frozenset({ACTIVE, ARCHIVED})


@dataclass(frozen=True)
class ListingVariant:
    """One variant as the channel should sell it.

    ``price`` and ``compare_at_price`` are decimal strings ("19.99") or None;
    ``qty`` is the stock to show (None: the hub does not manage it for this
    channel); ``options`` holds the values of the listing's options, in order.
    """

    sku: str
    price: str | None
    compare_at_price: str | None = None
    qty: int | None = None
    options: tuple[str, ...] = ()
    barcode: str | None = None
    grams: int | None = None


@dataclass(frozen=True)
class Listing:
    """One product as the channel should show it, rendered by the hub."""

    key: str
    title: str
    status: str = ACTIVE
    body_html: str | None = None
    vendor: str | None = None
    product_type: str | None = None
    tags: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    variants: tuple[ListingVariant, ...] = ()


@dataclass(frozen=True)
class Bound:
    """What an earlier push confirmed about a product in the store.

    ``product_id``: the store's id of the product; ``variants`` and
    ``items``: the store's ids of each variant and of its stock record
    (Shopify's inventory item), by SKU; ``stock``: the quantity last
    confirmed per SKU.
    """

    product_id: str | None = None
    variants: Mapping[str, str] = field(default_factory=dict)
    items: Mapping[str, str] = field(default_factory=dict)
    stock: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PushItem:
    """One listing to push, and what to send of it.

    ``send_product``: the listing's data (anything but stock) changed since
    the store last confirmed it, or the store has never confirmed it;
    ``send_stock``: only its quantities changed. A connector that cannot
    send stock alone sends the whole product for either.
    """

    listing: Listing
    bound: Bound | None = None
    send_product: bool = True
    send_stock: bool = False


@dataclass(frozen=True)
class Outcome:
    """What the store made of one listing.

    Confirmed: ``error`` is None and ``bound`` holds the store's ids (and the
    quantities now set). Refused: ``error`` holds the store's own words, with
    the field when the store named one; ``permanent`` says whether sending the
    same listing again could succeed (a duplicate SKU cannot; a product the
    store could not save for a passing reason may).
    """

    key: str
    bound: Bound | None = None
    error: str | None = None
    permanent: bool = True

    @property
    def confirmed(self) -> bool:
        return self.error is None


def listing_problem(listing: Listing) -> str | None:
    """What makes a listing unsendable, or None: checked by a connector
    before the store is asked, so the refusal is one line naming the field."""
    if listing.status not in STATUSES:
        allowed = ", ".join(sorted(STATUSES))
        return f"status: {listing.status!r} is not one of {allowed}"
    if not listing.variants:
        return "variants: a product needs at least one variant"
    seen: set[str] = set()
    for n, variant in enumerate(listing.variants):
        where = f"variants[{n}]"
        if not variant.sku.strip():
            return f"{where}.sku: a variant needs a SKU"
        if variant.sku in seen:
            return f"{where}.sku: SKU {variant.sku} appears twice in the product"
        seen.add(variant.sku)
        if len(variant.options) != len(listing.options):
            return (
                f"{where} (SKU {variant.sku}).options: {len(variant.options)} values"
                f" for {len(listing.options)} options ({', '.join(listing.options) or 'none'})"
            )
    if not listing.options and len(listing.variants) > 1:
        return "options: several variants need options to tell them apart"
    return None


class ChannelConnector(abc.ABC):
    """One kind of store. An instance holds one channel's settings and secrets.

    ``settings`` are the channel's plain settings with defaults applied
    (``workers.channels.resolved_settings``); ``secrets`` its decrypted
    secret settings. Instances must be closed (or used as a context manager).
    """

    kind: ClassVar[str]
    title: ClassVar[str]
    # Listings one ``push`` call is given at most; the hub's batches are this size.
    batch_size: ClassVar[int] = 50

    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self._secrets = {k: str(v) for k, v in secrets.items() if v not in (None, "")}

    # ---- secrets ----------------------------------------------------------

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, longest first, for scrubbing."""
        found = {v for v in self._secrets.values() if v} | {
            v.strip() for v in self._secrets.values() if v.strip()
        }
        return tuple(sorted(found, key=len, reverse=True))

    def _scrub(self, text: str) -> str:
        return _scrub(text, self.secrets())

    # ---- the contract -----------------------------------------------------

    @abc.abstractmethod
    def check(self) -> str:
        """Reach the store with these credentials and say in one line what was found."""

    @abc.abstractmethod
    def push(self, items: Sequence[PushItem]) -> list[Outcome]:
        """Send up to ``batch_size`` listings; one outcome per item, in order.

        Raises ``TransientError`` when the store could not be reached or
        asked the hub to wait longer than a call may; ``SettingsError`` when
        the settings are wrong (credentials, the store's address, a location).
        """

    @abc.abstractmethod
    def find(self, key: str) -> Bound | None:
        """The store's ids of the product pushed under ``key``, or None."""

    def push_bulk(self, items: Sequence[PushItem]) -> list[Outcome]:
        """Send a large first push in one go where the store offers a bulk
        import; by default, batch after batch through :meth:`push`."""
        out: list[Outcome] = []
        for start in range(0, len(items), self.batch_size):
            out.extend(self.push(items[start : start + self.batch_size]))
        return out

    @property
    def bulk_threshold(self) -> int | None:
        """From how many listings a first push goes by :meth:`push_bulk`
        (None: never)."""
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def keys_of(items: Iterable[PushItem]) -> list[str]:
    return [item.listing.key for item in items]
