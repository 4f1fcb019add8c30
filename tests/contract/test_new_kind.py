"""The whole contract suite over a kind that exists only in this folder.

The kind is registered by the test (``workers.kinds.register``, as its
registry line would) and forgotten afterwards; nothing outside
``tests/contract`` knows of it, yet sources, the pipeline's maps and every
contract check work with it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from mappings import MAPS
from tests.contract.fixtures import KindFixtures
from tests.contract.suite import ContractSuite
from tests.contract.toy import KIND
from tests.contract.toy.fixtures import FIXTURES as TOY
from workers import kinds, sources

TOY_KIND = kinds.Kind(
    KIND, connector="tests.contract.toy.connector:ToyConnector", maps="tests.contract.toy.maps"
)


@pytest.fixture
def registered() -> Iterator[str]:
    """The toy kind, registered for one test and then forgotten, maps included,
    so that no other test sees it."""
    assert KIND not in kinds.names()
    kinds.register(TOY_KIND)
    try:
        yield KIND
    finally:
        kinds.unregister(KIND)
        for key in [key for key in MAPS if key[0] == KIND]:
            del MAPS[key]
        sys.modules.pop(TOY_KIND.maps, None)  # registered again on the next import


class TestThrowAwayKind(ContractSuite):
    @pytest.fixture
    def kind(self, registered: str) -> str:
        return registered

    @pytest.fixture
    def fixtures(self) -> KindFixtures:
        return TOY


def test_sources_find_the_kind_only_while_it_is_registered(registered: str) -> None:
    assert sources.connector_class(registered).kind == registered
    kinds.unregister(registered)
    with pytest.raises(sources.SetupError, match=f"unknown source kind '{registered}'"):
        sources.connector_class(registered)
