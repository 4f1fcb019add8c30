"""Schedules as operators write them: intervals, cron, time zones, mistakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.schedule import Cron, Schedule, ScheduleError, format_seconds, parse
from s2s.metrics import Exposition


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (900, Schedule(every=900)),
        ("900", Schedule(every=900)),
        ("15m", Schedule(every=900)),
        ("1h", Schedule(every=3600)),
        ("2 days", Schedule(every=172800)),
        (None, Schedule()),
        (0, Schedule()),
        ("off", Schedule()),
        ("*/15 * * * *", Schedule(cron="*/15 * * * *")),
        ("  0   2 * *   mon-fri ", Schedule(cron="0 2 * * mon-fri")),
        ("@daily", Schedule(cron="@daily")),
    ],
)
def test_parse_reads_intervals_cron_and_off(value: object, expected: Schedule) -> None:
    assert parse(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5", "too short"),
        ("* * * *", "5 fields"),
        ("61 * * * *", "outside 0-59"),
        ("0 24 * * *", "outside 0-23"),
        ("0 0 0 * *", "outside 1-31"),
        ("*/0 * * * *", "step"),
        ("0 0 * * funday", "not a number"),
        ("every", "not a schedule"),
        ("5-1 * * * *", "backwards"),
        ("TZ=Mars/Olympus 0 0 * * *", "unknown time zone"),
        ("0 0 30 2 *", "never falls due"),
        (True, "seconds"),
    ],
)
def test_mistakes_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        schedule = parse(value)
        schedule.next_due(at("2026-01-01T00:00:00"))


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", "2026-03-01T10:07:30", "2026-03-01T10:15:00"),
        ("*/15 * * * *", "2026-03-01T10:15:00", "2026-03-01T10:30:00"),  # strictly after
        ("0 2 * * *", "2026-03-01T02:00:00", "2026-03-02T02:00:00"),
        ("30 23 31 12 *", "2026-06-01T00:00:00", "2026-12-31T23:30:00"),
        ("0 9 * * mon-fri", "2026-03-06T10:00:00", "2026-03-09T09:00:00"),  # Fri → Mon
        ("0 0 * * 7", "2026-03-02T00:00:00", "2026-03-08T00:00:00"),  # 7 is Sunday
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),  # leap day
        ("0 0 1,15 jan,jul *", "2026-01-02T00:00:00", "2026-01-15T00:00:00"),
        ("10-20/5 8 * * *", "2026-03-01T08:12:00", "2026-03-01T08:15:00"),
        ("@hourly", "2026-03-01T08:12:00", "2026-03-01T09:00:00"),
        # Day of month and weekday both restricted: either matches (Vixie cron).
        ("0 0 13 * fri", "2026-03-01T00:00:00", "2026-03-06T00:00:00"),
    ],
)
def test_cron_next_due(expr: str, after: str, expected: str) -> None:
    assert Cron.parse(expr).next_after(at(after)) == at(expected)


def test_cron_in_a_time_zone_is_due_at_local_time() -> None:
    # 02:00 in Johannesburg (UTC+2, no daylight saving) is 00:00 UTC.
    cron = Cron.parse("TZ=Africa/Johannesburg 0 2 * * *")
    assert cron.next_after(at("2026-03-01T12:00:00")) == at("2026-03-02T00:00:00")


def test_interval_next_due_and_description() -> None:
    start = at("2026-03-01T00:00:00")
    assert Schedule(every=900).next_due(start) == start + timedelta(minutes=15)
    assert Schedule().next_due(start) is None
    assert Schedule(every=900).describe() == "every 15m"
    assert Schedule(cron="@daily").describe() == "cron @daily"
    assert Schedule().describe() == "on demand"
    assert format_seconds(90) == "90s" and format_seconds(86400) == "1d"


def test_metrics_exposition_format() -> None:
    out = Exposition()
    out.family("s2s_x_total", "counter", "Things.", [({"a": 'q"u\\o\nte'}, 3), ({}, 1.5)])
    text = out.render()
    assert text.splitlines() == [
        "# HELP s2s_x_total Things.",
        "# TYPE s2s_x_total counter",
        's2s_x_total{a="q\\"u\\\\o\\nte"} 3',
        "s2s_x_total 1.5",
    ]
    assert text.endswith("\n")
