"""The one retry curve of the workers: sync retries and order raises alike.

A fetch that met a transient ERP failure is retried by Celery after
``delay(retries so far)`` seconds; an order whose raise met one is queued
again for ``delay(previous attempts)`` seconds. Both read the curve from the
settings (``S2S_RETRY_BASE``, ``S2S_RETRY_CAP``), so an operator tunes one
curve, and a test can make every retry fast with one variable.
"""

from __future__ import annotations

import random

from hub.settings import get_settings

# Beyond this many doublings every delay is at the cap anyway; stopping the
# exponent here keeps ``2 ** attempt`` from overflowing a float when an ERP
# is given hundreds of attempts.
_MAX_DOUBLINGS = 64


def delay(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts
    the failures before this one, from 0).

    The ceiling doubles from ``S2S_RETRY_BASE`` per attempt up to
    ``S2S_RETRY_CAP``, and the delay is drawn between half the ceiling and
    the ceiling ("equal jitter"). Full jitter (anywhere from 0 to the
    ceiling) spreads retries slightly better, but it lets a retry come back
    almost at once, and retries here are counted: a fetch fails its run after
    ``FETCH_MAX_RETRIES`` and an order is dead-lettered after its maximum
    attempts. With full jitter a run of short draws could spend every attempt
    within a few seconds of an ERP outage; with equal jitter the attempts
    always span at least half the curve, so the ERP gets the time the
    settings promise it, while the random half still keeps many workers
    (or many orders) that failed together from retrying together.
    """
    settings = get_settings()
    doublings = min(max(attempt, 0), _MAX_DOUBLINGS)
    ceiling = min(settings.retry_cap, settings.retry_base * 2.0**doublings)
    return random.uniform(ceiling / 2, ceiling)
