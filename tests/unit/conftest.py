"""A migrated SQLite hub with one client and one source, for unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.db import dispose_all, session_scope
from hub.migrate import upgrade
from hub.models import Client, Source


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    upgrade(url)
    with session_scope(url) as s:
        c = Client(code="c1", name="c1")
        s.add(c)
        s.flush()
        s.add(Source(client_id=c.id, code="erp", kind="sql", name="erp", settings={}))
    yield url
    dispose_all()
