"""The shared slots and "a task is on its way" markers of workers.limits,
on an in-process Redis (fakeredis, with its Lua scripting) and on the hub
database (the embedded broker's fallback): no Redis server needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import marshmallow
import pytest

from connectors.base import Connector, Page
from hub.settings import get_settings
from workers import limits


@pytest.fixture
def fake_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    """limits talking to an in-process Redis, as with a Redis broker."""
    monkeypatch.setenv("S2S_BROKER_URL", "redis://127.0.0.1:1/0")  # never dialled
    get_settings.cache_clear()
    server = fakeredis.FakeRedis()
    monkeypatch.setattr(limits, "_redis_client", server)
    yield server
    get_settings.cache_clear()


@pytest.fixture
def on_database(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """limits on the hub database's ``source_leases``, as with the embedded broker."""
    monkeypatch.setenv("S2S_DATABASE_URL", db)
    monkeypatch.delenv("S2S_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


@pytest.fixture(params=["redis", "database"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each slot test runs on both stores of slots."""
    request.getfixturevalue("fake_redis" if request.param == "redis" else "on_database")
    assert limits._uses_redis() is (request.param == "redis")
    return str(request.param)


def test_slots_are_taken_up_to_the_limit_and_not_beyond(backend: str) -> None:
    tokens = [limits.acquire(7, 3, 30) for _ in range(3)]
    assert all(tokens) and len(set(tokens)) == 3
    assert limits.acquire(7, 3, 30) is None
    # Another key has slots of its own.
    assert limits.acquire("account:erp-a", 1, 30) is not None
    assert limits.acquire("account:erp-a", 1, 30) is None


def test_a_released_slot_is_free_again(backend: str) -> None:
    first = limits.acquire(7, 1, 30)
    assert first is not None and limits.acquire(7, 1, 30) is None
    limits.release(7, first)
    second = limits.acquire(7, 1, 30)
    assert second is not None and second != first
    # Releasing a token that no longer holds a slot frees nothing.
    limits.release(7, first)
    assert limits.acquire(7, 1, 30) is None


def test_an_expired_lease_frees_its_slot(backend: str) -> None:
    """A worker killed while holding a slot blocks the source only until its lease ends."""
    assert limits.acquire(7, 1, 0.3) is not None
    assert limits.acquire(7, 1, 30) is None
    time.sleep(0.5)
    assert limits.acquire(7, 1, 30) is not None


def test_a_limit_below_one_is_one(backend: str) -> None:
    assert limits.acquire(9, 0, 30) is not None
    assert limits.acquire(9, 0, 30) is None


def test_holding_takes_every_slot_or_none(backend: str) -> None:
    account: list[tuple[limits.Key, int]] = [("account:erp-a", 1)]
    both: list[tuple[limits.Key, int]] = [(11, 5), ("account:erp-a", 1)]
    with limits.holding(account, 30) as held:
        assert held
        with limits.holding(both, 30) as other:
            assert not other  # the account is taken ...
        # ... and the source's slot it took on the way was let go at once.
        assert limits.acquire(11, 1, 30) is not None
    with limits.holding(both, 30) as other:
        assert other
    # Leaving the block let go of everything.
    with limits.holding(both, 30) as again:
        assert again


def test_holding_lets_go_when_the_block_raises(backend: str) -> None:
    with pytest.raises(RuntimeError), limits.holding([(12, 1)], 30) as held:
        assert held
        raise RuntimeError("the read failed")
    assert limits.acquire(12, 1, 30) is not None


def test_renewal_extends_a_held_lease(backend: str) -> None:
    token = limits.acquire(7, 1, 0.5)
    assert token is not None
    for _ in range(4):  # renewed past its first expiry, twice over
        time.sleep(0.3)
        assert limits.renew(7, token, 0.5)
    assert limits.acquire(7, 1, 30) is None  # still held
    time.sleep(0.7)  # no more renewals: the lease runs out
    assert limits.acquire(7, 1, 30) is not None


def test_a_renewal_after_another_holder_took_the_slot_does_nothing(backend: str) -> None:
    stale = limits.acquire(7, 1, 0.2)
    assert stale is not None
    time.sleep(0.4)
    taker = limits.acquire(7, 1, 30)  # the lease ran out and another worker took the slot
    assert taker is not None
    assert not limits.renew(7, stale, 30)
    # The taker still holds the only slot, and releasing it frees it.
    assert limits.acquire(7, 1, 30) is None
    limits.release(7, taker)
    assert limits.acquire(7, 1, 30) is not None


def test_holding_renews_its_slots_while_the_block_works(backend: str) -> None:
    """A block longer than its lease keeps its slots: the ERP call is not cut off."""
    both: list[tuple[limits.Key, int]] = [(13, 1), ("account:erp-b", 1)]
    with limits.holding(both, 0.6) as held:
        assert held
        time.sleep(1.5)  # two and a half leases
        assert limits.acquire(13, 1, 30) is None
        assert limits.acquire("account:erp-b", 1, 30) is None
    assert limits.acquire(13, 1, 30) is not None
    assert limits.acquire("account:erp-b", 1, 30) is not None
    assert not [t for t in threading.enumerate() if t.name == "slot-heartbeat"]


def test_a_holder_that_stops_renewing_frees_its_slot_after_the_lease(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed inside ``holding``: its renewals stop with it, and the
    account is free one short lease later rather than after the longest call."""
    lease = 0.6
    with limits.holding([("account:erp-c", 1)], lease) as held:
        assert held
        time.sleep(lease * 1.5)
        assert limits.acquire("account:erp-c", 1, 30) is None  # renewed while alive
        # The process is gone: no renewal reaches the store any more.
        monkeypatch.setattr(limits, "renew", lambda *_: True)
        stopped = time.monotonic()
        while limits.acquire("account:erp-c", 1, 30) is None:
            assert time.monotonic() - stopped < lease + 0.5, "the slot was not freed"
            time.sleep(0.05)
        assert time.monotonic() - stopped <= lease + 0.1


def test_renewal_pushes_the_redis_key_expiry_later_only(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    long = limits.acquire("account:erp-a", 2, 600)
    short = limits.acquire("account:erp-a", 2, 5)
    assert long is not None and short is not None
    assert limits.renew("account:erp-a", short, 5)
    # The longer holder's lease keeps the set alive.
    assert fake_redis.ttl("s2s:slots:account:erp-a") > 600


def test_slot_keys_are_kept_apart_in_redis(fake_redis: fakeredis.FakeRedis) -> None:
    token = limits.acquire("account:erp-a", 2, 30)
    assert token is not None
    assert fake_redis.zscore("s2s:slots:account:erp-a", token) is not None
    # The set expires on its own a minute after its last lease.
    assert 30 < fake_redis.ttl("s2s:slots:account:erp-a") <= 91


def test_request_once_sends_once_until_started_or_expired(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    assert limits.request_once("drain:7", 10)
    assert not limits.request_once("drain:7", 10)  # one is on its way
    assert limits.request_once("drain:8", 10)  # another name is another task
    limits.started("drain:7")
    assert limits.request_once("drain:7", 0.2)  # the task started: asks send again
    assert not limits.request_once("drain:7", 0.2)
    time.sleep(0.4)  # the task was lost with its message: the marker expires
    assert limits.request_once("drain:7", 10)


def test_request_by_keeps_the_soonest_ask(fake_redis: fakeredis.FakeRedis) -> None:
    assert limits.request_by("drain-later:7", 5.0)
    assert not limits.request_by("drain-later:7", 5.0)
    assert not limits.request_by("drain-later:7", 60.0)  # the sooner one stands in
    # A sooner ask is not covered by a later task: it is sent, and now rules.
    assert limits.request_by("drain-later:7", 0.2)
    assert not limits.request_by("drain-later:7", 1.0)
    time.sleep(0.4)  # due: the marker is gone
    assert limits.request_by("drain-later:7", 1.0)


def test_markers_survive_a_redis_that_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis down: every caller sends (and the send's failure is handled there)."""
    monkeypatch.setenv("S2S_BROKER_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    server = fakeredis.FakeServer()
    server.connected = False  # every command fails with a ConnectionError
    monkeypatch.setattr(limits, "_redis_client", fakeredis.FakeRedis(server=server))
    try:
        assert limits.request_once("route", 10) and limits.request_once("route", 10)
        assert limits.request_by("drain-later:7", 5) and limits.request_by("drain-later:7", 5)
        limits.started("route")  # no error either
    finally:
        get_settings.cache_clear()


def test_without_redis_every_ask_is_sent(on_database: str) -> None:
    assert limits.request_once("route", 10) and limits.request_once("route", 10)
    assert limits.request_by("drain-later:7", 5) and limits.request_by("drain-later:7", 5)


class _Settings(marshmallow.Schema):
    pass


class _Erp(Connector):
    """A connector whose ERP allows ``session_limit`` sessions per account."""

    kind, title, streams, settings_schema = "fake", "Fake ERP", frozenset(), _Settings

    def __init__(self, account: str | None, limit: int = 1) -> None:
        super().__init__({})
        self.account = account
        self.session_limit = limit  # type: ignore[misc]  # per instance: each test's ERP

    def session_key(self) -> str | None:
        return self.account

    def check(self) -> str:
        return "ok"

    def _read(self, stream: str, cursor: Any, limit: int, since: Any) -> Page:
        raise NotImplementedError

    def raise_order(self, payload: dict[str, Any]) -> str:
        raise NotImplementedError

    def find_order(self, reference: str) -> str | None:
        return None


def test_session_slots_come_from_the_connector_contract() -> None:
    assert limits.session_slots(_Erp(None), 4, 2) == [(4, 2)]
    assert limits.session_slots(_Erp(None), None, None) == []
    # The source first, then the account: every caller takes them in this order.
    assert limits.session_slots(_Erp("isync:abc", 2), 4, 2) == [(4, 2), ("account:isync:abc", 2)]
    assert limits.session_slots(_Erp("isync:abc", 0), None, None) == [("account:isync:abc", 1)]
