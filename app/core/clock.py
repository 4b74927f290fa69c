"""Time: the one `utcnow`, and business days of the configured time zone as UTC bounds.

The databases store naive UTC (DATETIME has no zone on MariaDB or SQLite). People, quotas and
reports count in business days (`PIPELINE_TZ`), so every conversion between the two goes through
here. Days are built from local calendar dates, never by adding 24 hours, so a DST change never
shifts a day. Tests replace the clock's source (`set_source`) instead of sleeping to midnight.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_source: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731 - replaced by tests


def set_source(source: Callable[[], datetime] | None) -> None:
    """Make `utcnow` read `source()` (an aware datetime); None restores the real clock."""
    global _source
    _source = source or (lambda: datetime.now(UTC))


def seconds() -> float:
    """The clock as POSIX seconds, full precision: how old a cached value is (`TTLCache`), so a
    test that moves the clock ages the caches too instead of sleeping out their seconds."""
    return _source().timestamp()


def utcnow() -> datetime:
    """Naive UTC to the second, as the DATETIME columns store it."""
    return _source().astimezone(UTC).replace(tzinfo=None, microsecond=0)


# Days a person may ask for: far enough for any real report, and far from the calendar's ends,
# where a day's UTC bounds or "the day after" would not exist (year 1 and 9999).
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9000, 12, 31)


def clamp_day(day: date) -> date:
    """`day` moved into [FIRST_DAY, LAST_DAY]: a filter at the calendar's edge means "all"."""
    return min(max(day, FIRST_DAY), LAST_DAY)


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_utc(local: datetime, tz_name: str) -> datetime:
    """Naive UTC of a time people typed in `tz_name` (naive), or of an aware time as it says."""
    aware = local if local.tzinfo is not None else local.replace(tzinfo=zone(tz_name))
    return aware.astimezone(UTC).replace(tzinfo=None)


def to_local(utc: datetime, tz_name: str) -> datetime:
    """Naive local time in `tz_name` of a stored (naive UTC) time, as people read it."""
    aware = utc.replace(tzinfo=UTC) if utc.tzinfo is None else utc
    return aware.astimezone(zone(tz_name)).replace(tzinfo=None)


def business_day(tz_name: str, now_utc: datetime) -> date:
    """The local calendar day of naive UTC `now_utc`."""
    return now_utc.replace(tzinfo=UTC).astimezone(zone(tz_name)).date()


def midnight_utc(day: date, tz_name: str) -> datetime:
    """Naive UTC of the local midnight that starts `day`."""
    return datetime.combine(day, time(), tzinfo=zone(tz_name)).astimezone(UTC).replace(tzinfo=None)


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def day_bounds(tz_name: str, day: date) -> tuple[datetime, datetime]:
    """[start, end) of local `day` in naive UTC."""
    return midnight_utc(day, tz_name), midnight_utc(day + timedelta(days=1), tz_name)


def month_bounds(tz_name: str, day: date) -> tuple[datetime, datetime]:
    """[start, end) of the local month holding `day`, in naive UTC."""
    return midnight_utc(day.replace(day=1), tz_name), midnight_utc(next_month(day), tz_name)
