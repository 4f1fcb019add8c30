"""Batched order states on PostgreSQL: the unit tests' claims, settlements
and history rows again.

``raised_many`` and ``events`` have statements of their own on PostgreSQL
(the batch sent as one JSON record set); the same tests hold them to the
portable forms' results.
"""

from __future__ import annotations

import pytest

from tests.unit.test_orders_batch import (  # noqa: F401 - collected here against PostgreSQL
    test_a_batchs_events_are_written_in_its_order_with_long_messages_cut,
    test_claim_batch_settle_and_give_back,
    test_raised_many_settles_a_large_batch_each_order_by_its_own_attempt,
)

pytestmark = [pytest.mark.services]
