"""What each kind supplies to the contract suite, and the checks' helpers.

A kind gives only data and a way to start its emulator (``KindFixtures``);
everything the suite asserts is the same for every kind, as in singer-sdk's
``get_tap_test_class`` or the Airbyte CDK's ``SourceTestSuiteBase``.
"""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import Connector, ConnectorError


@dataclass(frozen=True)
class Served:
    """A running emulator: settings that reach it, and an order it accepts."""

    settings: dict[str, Any]
    order: dict[str, Any]


@dataclass(frozen=True)
class KindFixtures:
    """Everything the contract suite needs to know about one kind.

    ``settings``: sample settings that load without reaching the ERP, with a
    value for every secret field. ``bad_settings``: (field, value) pairs,
    each a value the field's schema refuses in the sample settings (the
    suite expects the error to name that field).
    ``serve``: start the kind's emulator, its files under the given folder,
    for the length of the block. ``refused``: setting overrides with which
    the running emulator refuses the connector (a wrong password).
    """

    kind: str
    settings: dict[str, Any]
    bad_settings: list[tuple[str, Any]]
    serve: Callable[[Path], AbstractContextManager[Served]]
    refused: dict[str, Any] = field(default_factory=dict)


FIXTURES: dict[str, KindFixtures] = {}


def add(fixtures: KindFixtures) -> KindFixtures:
    """Declare a kind's fixtures (each module in ``kinds/`` calls this once)."""
    if fixtures.kind in FIXTURES:
        raise ValueError(f"fixtures for {fixtures.kind!r} are declared twice")
    FIXTURES[fixtures.kind] = fixtures
    return fixtures


def load_all() -> dict[str, KindFixtures]:
    """Import every module of ``tests.contract.kinds``; the fixtures by kind."""
    from tests.contract import kinds

    for module in pkgutil.iter_modules(kinds.__path__):
        importlib.import_module(f"{kinds.__name__}.{module.name}")
    return FIXTURES


def secrets_of(cls: type[Connector], *settings: Mapping[str, Any]) -> list[str]:
    """The values of the secret fields in any of ``settings``, as text."""
    return [
        str(s[name])
        for s in settings
        for name in sorted(cls.secret_fields())
        if s.get(name) not in (None, "")
    ]


def shown(error: BaseException) -> Iterator[str]:
    """Every form in which an error travels: its text, repr, hint, a pickled
    copy (Celery results) and the formatted traceback (logs)."""
    yield str(error)
    yield repr(error)
    if isinstance(error, ConnectorError):
        yield error.hint or ""
    yield repr(pickle.loads(pickle.dumps(error)))
    yield "".join(traceback.format_exception(error))


def assert_no_secret(error: BaseException, secrets: Iterable[str]) -> None:
    for text in shown(error):
        for secret in secrets:
            assert secret not in text, f"a secret shows in {type(error).__name__}: {text[:200]}"
