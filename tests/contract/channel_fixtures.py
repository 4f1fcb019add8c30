"""What each channel kind supplies to the channel contract suite.

A kind gives data and a way to start its store's emulator
(``ChannelFixtures``); everything the suite asserts is the same for every
kind (``tests/contract/test_channel_kinds.py``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ServedStore:
    """A running emulated store: the connector's settings and secrets that
    reach it, what it holds, and a switch for a lost answer."""

    settings: dict[str, Any]
    secrets: dict[str, str]
    skus: Callable[[], dict[str, int]]
    drop_next_write: Callable[[], None]


@dataclass(frozen=True)
class ChannelFixtures:
    """Everything the channel contract suite needs to know about one kind.

    ``declared``: a channel declaration (``workers.channels.check``) with a
    value for every secret setting. ``bad_settings``: (setting, value) pairs
    the kind's schema refuses, each named in the error. ``sample_order``: the
    body of the kind's order webhook, as the store sends it. ``serve``: the
    kind's emulated store for the length of the block. ``wrong_secrets``:
    credentials the running store refuses, with the setting the error must
    name.
    """

    kind: str
    declared: dict[str, Any]
    bad_settings: list[tuple[str, Any]]
    sample_order: Callable[[], dict[str, Any]]
    serve: Callable[[], AbstractContextManager[ServedStore]]
    wrong_secrets: tuple[dict[str, str], str]


def load_all() -> dict[str, ChannelFixtures]:
    """Every ``channel_kinds/<kind>.py``'s ``FIXTURES``, by kind."""
    from tests.contract import channel_kinds

    found: dict[str, ChannelFixtures] = {}
    for info in pkgutil.iter_modules([str(Path(channel_kinds.__file__).parent)]):
        module = importlib.import_module(f"{channel_kinds.__name__}.{info.name}")
        fixtures: ChannelFixtures = module.FIXTURES
        found[fixtures.kind] = fixtures
    return found


def sku_counts(products: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for product in products:
        for variant in product.get("variants") or []:
            sku = variant.get("sku")
            if sku:
                counts[sku] = counts.get(sku, 0) + 1
    return counts
