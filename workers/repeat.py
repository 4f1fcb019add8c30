"""One small daemon thread that repeats an action while a block runs.

Slots renew their leases and push steps touch their run's heartbeat this
way: work that can take minutes (a slow ERP call, a throttled batch) keeps
showing it is alive, so a lease or a staleness limit can stay short and
still only catch holders that are gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def repeating(every: float, action: Callable[[], None], name: str) -> Iterator[None]:
    """Run ``action`` every ``every`` seconds until the block ends (not at
    its start); ``action`` handles its own errors. The thread is stopped and
    joined before the block's exit goes on."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            action()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
