"""Schedules of a source's streams: an interval, or a 5-field cron expression.

Schedules are rows (``source_streams``), not beat entries: beat only runs
``dispatch_due`` every few seconds, which reads the rows. So a schedule
changed with ``s2s schedule`` (or a YAML ``apply``) takes effect at the next
dispatch, without restarting beat.

The cron parser is small and ours rather than a dependency: five fields
(minute hour day-of-month month day-of-week) with ``*``, lists, ranges,
steps and month / weekday names, the ``@hourly`` style shorthands, and an
optional ``TZ=Area/City`` prefix (default UTC). As in Vixie cron, when both
day-of-month and day-of-week are restricted a day matching either is due.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import SourceStream, utcnow


class ScheduleError(ValueError):
    """A schedule that cannot be read; the message says what was expected."""


_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, low, high, names)
_FIELDS = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _value(text: str, field: str, low: int, high: int, names: list[str] | None) -> int:
    key = text.lower()
    if names and key in names:
        return names.index(key) + (1 if field == "month" else 0)
    if not text.isdigit():
        raise ScheduleError(f"cron {field}: {text!r} is not a number")
    n = int(text)
    if not low <= n <= high:
        raise ScheduleError(f"cron {field}: {n} is outside {low}-{high}")
    return n


def _field(text: str, field: str, low: int, high: int, names: list[str] | None) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"cron {field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start = _value(a, field, low, high, names)
            end = _value(b, field, low, high, names)
            if start > end:
                raise ScheduleError(f"cron {field}: range {base!r} runs backwards")
        else:
            start = _value(base, field, low, high, names)
            end = high if step_text else start
        out.update(range(start, end + 1, step))
    return out


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; ``next_after`` gives the next due time in UTC."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_restricted: bool
    weekday_restricted: bool
    zone: tzinfo

    @classmethod
    def parse(cls, text: str) -> Cron:
        raw = " ".join(text.split())
        zone: tzinfo = UTC
        expr = raw
        m = re.match(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$", raw)
        if m:
            try:
                zone = ZoneInfo(m.group(1))
            except (ZoneInfoNotFoundError, ValueError):
                raise ScheduleError(f"unknown time zone {m.group(1)!r}") from None
            expr = m.group(2)
        expr = _SHORTHANDS.get(expr.lower(), expr)
        parts = expr.split(" ")
        if len(parts) != 5:
            raise ScheduleError(
                f"a cron expression has 5 fields (minute hour day month weekday), not {raw!r}"
            )
        sets = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = {d % 7 for d in sets[4]}  # 7 is Sunday too
        return cls(
            text=raw,
            minutes=frozenset(sets[0]),
            hours=frozenset(sets[1]),
            days=frozenset(sets[2]),
            months=frozenset(sets[3]),
            weekdays=frozenset(weekdays),
            day_restricted=not parts[2].startswith("*"),
            weekday_restricted=not parts[4].startswith("*"),
            zone=zone,
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, after: datetime) -> datetime:
        """The first due minute strictly after ``after`` (aware), in UTC."""
        local = after.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        day = local.date()
        for _ in range(366 * 8):  # leap days and rare weekday/day combinations
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime(
                            day.year, day.month, day.day, hour, minute, tzinfo=self.zone
                        ).astimezone(UTC)
                        if candidate > after:
                            return candidate
            day += timedelta(days=1)
        raise ScheduleError(f"cron {self.text!r} never falls due")


_DURATION = re.compile(r"^(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days)?$", re.I)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = 10


@dataclass(frozen=True)
class Schedule:
    """What ``parse`` read: an interval in seconds, a cron expression, or neither (off)."""

    every: int | None = None
    cron: str | None = None

    def describe(self) -> str:
        if self.cron:
            return f"cron {self.cron}"
        if self.every:
            return f"every {format_seconds(self.every)}"
        return "on demand"

    def next_due(self, after: datetime) -> datetime | None:
        if self.cron:
            return Cron.parse(self.cron).next_after(after)
        if self.every:
            return after + timedelta(seconds=self.every)
        return None


def format_seconds(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse(value: object) -> Schedule:
    """Read a schedule as an operator writes it.

    ``900`` or ``"15m"`` / ``"1h"`` / ``"1d"``: an interval; ``"*/15 * * * *"``,
    ``"@daily"`` or ``"TZ=Africa/Johannesburg 0 2 * * *"``: cron; ``None``,
    ``0``, ``"off"``: on demand only.
    """
    if value is None or value is False:
        return Schedule()
    if isinstance(value, bool):
        raise ScheduleError("a schedule is seconds, a duration such as 15m, cron, or off")
    if isinstance(value, int | float):
        seconds = int(value)
        return _interval(seconds) if seconds else Schedule()
    text = str(value).strip()
    if text.lower() in ("", "0", "off", "none", "manual", "on demand"):
        return Schedule()
    m = _DURATION.match(text)
    if m:
        unit = (m.group(2) or "s")[0].lower()
        return _interval(int(m.group(1)) * _UNIT[unit])
    if " " not in text and not text.startswith("@"):
        raise ScheduleError(
            f"{text!r} is not a schedule: give seconds, a duration such as 15m / 1h / 1d, "
            "a cron expression such as '*/15 * * * *', or off"
        )
    return Schedule(cron=Cron.parse(text).text)


def _interval(seconds: int) -> Schedule:
    if seconds < MIN_INTERVAL:
        raise ScheduleError(
            f"an interval of {seconds}s is too short: beat checks schedules every few "
            f"seconds; use at least {MIN_INTERVAL}s"
        )
    return Schedule(every=seconds)


def of(row: SourceStream) -> Schedule:
    return Schedule(every=row.interval_seconds, cron=row.cron)


def set_schedule(session: Session, row: SourceStream, schedule: Schedule) -> bool:
    """Give a stream its schedule. Returns True if it changed.

    An unchanged schedule keeps its next due time (re-applying a YAML file
    does not postpone anything); a changed one is due at its next time from
    now, which the next dispatch honours without a beat restart.
    """
    if of(row) == schedule:
        if schedule.next_due(utcnow()) is not None and row.next_due_at is None:
            row.next_due_at = schedule.next_due(utcnow())
            return True
        return False
    row.interval_seconds = schedule.every
    row.cron = schedule.cron
    row.next_due_at = schedule.next_due(utcnow())
    return True


def streams_of(session: Session, source_id: int, stream: str | None = None) -> list[SourceStream]:
    query = select(SourceStream).where(SourceStream.source_id == source_id)
    if stream is not None:
        query = query.where(SourceStream.stream == stream)
    return list(session.scalars(query.order_by(SourceStream.stream)))


def set_paused(session: Session, rows: list[SourceStream], paused: bool) -> list[str]:
    """Pause or resume streams; returns the streams whose state changed.

    Resuming a stream whose due time passed while paused makes it due now
    (one catch-up run, not one per missed slot).
    """
    changed: list[str] = []
    now = utcnow()
    for row in rows:
        if row.paused == paused:
            continue
        row.paused = paused
        if not paused and row.next_due_at is not None and row.next_due_at < now:
            row.next_due_at = now
        changed.append(row.stream)
    return changed
