"""A migrated SQLite hub with one client and one source, for unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.db import dispose_all
from tests.conftest import one_source_hub


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    yield one_source_hub(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    dispose_all()
