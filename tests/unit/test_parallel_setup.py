"""The parallel test run's isolation: each xdist worker its own Redis database."""

from __future__ import annotations

import pytest

from tests.conftest import worker_redis_url


@pytest.mark.parametrize(
    ("url", "worker", "expected"),
    [
        ("redis://127.0.0.1:6379/11", "", "redis://127.0.0.1:6379/11"),
        ("redis://127.0.0.1:6379/11", "master", "redis://127.0.0.1:6379/11"),
        ("redis://127.0.0.1:6379/11", "gw0", "redis://127.0.0.1:6379/11"),
        ("redis://127.0.0.1:6379/8", "gw2", "redis://127.0.0.1:6379/10"),
        ("redis://:pw@redis.local:6380/3", "gw1", "redis://:pw@redis.local:6380/4"),
        ("redis://127.0.0.1:6379", "gw1", "redis://127.0.0.1:6379/1"),
    ],
)
def test_each_worker_takes_the_given_database_plus_its_number(
    url: str, worker: str, expected: str
) -> None:
    assert worker_redis_url(url, worker) == expected


def test_a_worker_past_redis_last_database_is_a_clear_error() -> None:
    with pytest.raises(pytest.UsageError, match="would need Redis database 16"):
        worker_redis_url("redis://127.0.0.1:6379/14", "gw2")
