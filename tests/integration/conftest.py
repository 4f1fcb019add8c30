"""What the PostgreSQL runs of the unit tests share.

Modules here import unit tests written against ``db`` (a migrated SQLite hub
with one client and one source, ``tests/unit/conftest.py``) and collect them
again against PostgreSQL; this is the ``db`` they then get.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import one_source_hub


@pytest.fixture
def db(postgres_db: Any) -> Iterator[str]:
    """A migrated PostgreSQL hub with one client and one source (ids 1)."""
    yield one_source_hub(postgres_db())
