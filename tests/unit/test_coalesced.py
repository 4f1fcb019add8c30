"""``workers.limits.Coalesced``: a burst of asks costs at most two calls, and
every ask is followed by a call that starts after it."""

from __future__ import annotations

import threading
import time

from workers.limits import Coalesced


def test_a_burst_is_one_call_now_and_one_after_the_last_ask() -> None:
    calls: list[float] = []
    done = threading.Event()

    def fn() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            done.set()

    asks = Coalesced(fn, 0.05)
    asked: list[float] = []
    for _ in range(200):
        asked.append(time.monotonic())
        asks.ask()
    assert len(calls) == 1  # the first ask called at once
    assert done.wait(2)
    time.sleep(0.1)
    assert len(calls) == 2
    assert calls[1] >= asked[-1]  # the folded call came after the last ask


def test_asks_apart_each_call_at_once() -> None:
    calls: list[int] = []
    asks = Coalesced(lambda: calls.append(1), 0.01)
    for _ in range(3):
        asks.ask()
        time.sleep(0.03)
    assert len(calls) == 3


def test_asks_from_many_threads_are_all_followed_by_a_call() -> None:
    calls: list[float] = []
    lock = threading.Lock()

    def fn() -> None:
        with lock:
            calls.append(time.monotonic())

    asks = Coalesced(fn, 0.02)
    last_ask: list[float] = []

    def burst() -> None:
        for _ in range(100):
            with lock:
                last_ask.append(time.monotonic())
            asks.ask()
            time.sleep(0.001)

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.1)
    assert calls and max(calls) >= max(last_ask)
    assert len(calls) < 100  # folded, not one per ask
