"""The contract suite over every kind the registry declares.

Each kind supplies its fixtures in ``kinds/<kind>.py``; a kind registered
without them, or fixtures for a kind not registered, fails here, as does a
kind the README's list of ERPs does not name.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT
from tests.contract.fixtures import KindFixtures, load_all
from tests.contract.suite import ContractSuite
from workers import kinds

FIXTURES = load_all()
REGISTERED = kinds.names()


class TestRegisteredKind(ContractSuite):
    @pytest.fixture(params=REGISTERED)
    def kind(self, request: pytest.FixtureRequest) -> str:
        name: str = request.param
        return name

    @pytest.fixture
    def fixtures(self, kind: str) -> KindFixtures:
        if kind not in FIXTURES:
            pytest.fail(f"kind {kind!r} has no contract fixtures (tests/contract/kinds/{kind}.py)")
        return FIXTURES[kind]


def test_every_fixtures_module_is_for_a_registered_kind() -> None:
    assert set(FIXTURES) - set(REGISTERED) == set(), "fixtures for kinds not in workers.kinds"


def _readme_erps() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^### ERPs\n(.*?)(?=^#{1,3} )", text, re.MULTILINE | re.DOTALL)
    assert found, "the README has no '### ERPs' section"
    return found.group(1)


@pytest.mark.parametrize("kind", REGISTERED)
def test_the_readme_names_every_registered_kind(kind: str) -> None:
    assert f"kind: {kind}" in _readme_erps(), f"the README's ERPs section does not name {kind}"


def _shipped_connectors() -> dict[str, type]:
    """Every concrete connector class the connectors package holds, by kind."""
    import importlib
    import inspect
    import pkgutil

    import connectors
    from connectors.base import Connector

    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(connectors.__path__, "connectors."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Connector)
                and not inspect.isabstract(cls)
                and "kind" in vars(cls)
                and cls.__module__.startswith("connectors.")
            ):
                found[cls.kind] = cls
    return found


def test_every_connector_shipped_is_registered() -> None:
    # An ERP connector written but left out of the registry would never get a
    # queue, a map or a CLI choice, and no other test would notice.
    shipped = _shipped_connectors()
    assert shipped, "no connector found under connectors/"
    for kind, cls in shipped.items():
        assert kind in REGISTERED, f"{cls.__module__}.{cls.__name__} ({kind}) is not registered"
        assert kinds.connector_class(kind) is cls
