"""The served app leaves what it imported out of the collector's walks."""

from __future__ import annotations

import gc

from s2s.api_process import freeze_imports


def test_a_full_collection_after_freezing_walks_only_new_objects() -> None:
    import s2s.api  # noqa: F401  (the app's imports: what a served process holds)

    try:
        freeze_imports()
        assert gc.get_freeze_count() > 50_000
        kept = [object() for _ in range(10)]  # made after: still tracked
        gc.collect()
        assert len(gc.get_objects()) < 20_000
        assert kept
    finally:
        gc.unfreeze()
