"""A large webhook or order body is checked, parsed and transformed off the
event loop; a small one on it (the hop to a thread costs more than the work)."""

from __future__ import annotations

import asyncio
import threading

from s2s.api_parts import OFF_LOOP_BYTES, off_loop


def test_small_bodies_stay_on_the_loop_large_ones_go_to_a_thread() -> None:
    async def where(size: int) -> int:
        return await off_loop(size, threading.get_ident)

    loop_thread = threading.get_ident()
    assert asyncio.run(where(1_000)) == loop_thread
    assert asyncio.run(where(OFF_LOOP_BYTES + 1)) != loop_thread
