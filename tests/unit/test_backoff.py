"""The one retry curve: equal jitter on a doubling ceiling, read from the
settings, used by the sync retries and the order raises alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.base import TransientError
from hub.models import Source
from hub.orders import Claimed
from hub.settings import get_settings
from workers import backoff
from workers.orders import _outcomes


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("S2S_RETRY_BASE", "S2S_RETRY_CAP", "S2S_VISIBILITY_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _use(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_each_delay_lies_between_half_the_ceiling_and_the_ceiling() -> None:
    for attempt in range(12):
        ceiling = min(300.0, 2.0 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays))
        # Jittered: workers that failed together do not all come back together.
        assert len(set(delays)) > 100


def test_the_curve_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, S2S_RETRY_BASE="0.2", S2S_RETRY_CAP="1.5")
    assert all(0.1 <= backoff.delay(0) <= 0.2 for _ in range(100))
    assert all(0.4 <= backoff.delay(2) <= 0.8 for _ in range(100))
    assert all(0.75 <= backoff.delay(3) <= 1.5 for _ in range(100))  # capped
    assert all(0.75 <= backoff.delay(10_000) <= 1.5 for _ in range(10))  # no overflow


def test_a_negative_attempt_is_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, S2S_RETRY_BASE="4")
    assert all(2.0 <= backoff.delay(-3) <= 4.0 for _ in range(50))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"S2S_RETRY_BASE": "soon"}, "S2S_RETRY_BASE must be a positive number of seconds"),
        ({"S2S_RETRY_BASE": "0"}, "S2S_RETRY_BASE must be a positive number of seconds"),
        ({"S2S_RETRY_CAP": "-5"}, "S2S_RETRY_CAP must be a positive number of seconds"),
        ({"S2S_RETRY_CAP": "inf"}, "S2S_RETRY_CAP must be a positive number of seconds"),
        ({"S2S_RETRY_BASE": "10", "S2S_RETRY_CAP": "5"}, "S2S_RETRY_BASE must be at most"),
        # A countdown held past the visibility timeout is delivered twice.
        ({"S2S_RETRY_CAP": "2000"}, "S2S_RETRY_CAP must be well below S2S_VISIBILITY_TIMEOUT"),
    ],
)
def test_a_bad_curve_is_refused_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    _use(monkeypatch, **env)
    with pytest.raises(ValueError) as caught:
        get_settings()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    assert (settings.retry_base, settings.retry_cap) == (2.0, 300.0)
    _use(monkeypatch, S2S_VISIBILITY_TIMEOUT="7200", S2S_RETRY_CAP="1800")
    assert get_settings().retry_cap == 1800.0


def _claimed(order_id: int, attempt: int) -> Claimed:
    return Claimed(order_id, 1, f"#{order_id}", {}, attempt, False, False)


def test_an_order_raise_retries_on_the_same_curve(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, S2S_RETRY_BASE="1", S2S_RETRY_CAP="3")
    source = Source(id=7, kind="sql", code="erp")
    batch = [_claimed(1, 1), _claimed(2, 3), _claimed(3, 1)]
    down = TransientError("the ERP timed out")
    outcomes, longest = _outcomes(source, batch, {}, {1: down, 2: down}, {1, 2})
    delays = {order_id: delay for order_id, _, _, delay in outcomes.retry}
    assert 0.5 <= delays[1] <= 1.0  # first retry: the base
    assert 1.5 <= delays[2] <= 3.0  # third: 4 s, capped at 3
    assert longest == max(delays.values())
    # The order after the failure was not sent: handed back, no attempt spent.
    assert outcomes.unsent == [(3, 1, False)]
    # An ERP's own Retry-After wins over the curve.
    slow = TransientError("busy", retry_after=42.0)
    outcomes, longest = _outcomes(source, batch[:1], {}, {1: slow}, {1})
    assert outcomes.retry[0][3] == longest == 42.0
