"""The catalogue read back on PostgreSQL: the change feed over the COPY path,
and (below) the HTTP routes and CLI commands over a synced hub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import one_source_hub
from tests.unit.test_change_feed import (  # noqa: F401  (run again here, on PostgreSQL)
    migration_numbers_existing_rows,
    test_an_unchanged_resync_adds_nothing_to_the_feed,
    test_customers_have_their_own_feed,
    test_inserts_updates_deletes_appear_once_each_in_order,
    test_listing_filters_and_one_by_code_or_sku,
    test_paging_with_small_limits_returns_every_change_exactly_once,
    test_two_clients_number_and_read_their_own_changes,
)

pytestmark = [pytest.mark.services]


@pytest.fixture
def db(postgres_db: Any) -> Iterator[str]:
    """A migrated PostgreSQL hub with one client and one source (ids 1)."""
    yield one_source_hub(postgres_db())


def test_the_migration_numbers_existing_rows_on_postgresql(postgres_db: Any) -> None:
    migration_numbers_existing_rows(postgres_db())
