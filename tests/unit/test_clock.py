"""The `clock` fixture: `utcnow` follows it, `at_local` only goes back, `advance` jumps ahead."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core.clock import business_day, utcnow, zone


def test_at_local_goes_back_to_the_latest_noon_and_advance_jumps(clock):
    before = utcnow()
    day = clock.at_local("Asia/Shanghai")
    now = utcnow()
    assert timedelta(0) <= before - now < timedelta(days=1)
    assert business_day("Asia/Shanghai", now) == day
    local = now.replace(tzinfo=UTC).astimezone(zone("Asia/Shanghai"))
    assert (local.hour, local.minute) == (12, 0)
    clock.advance(hours=3)
    assert timedelta(hours=3) <= utcnow() - now < timedelta(hours=3, seconds=5)


def test_the_clock_runs_on(clock):
    start = clock()
    clock.advance(seconds=0)
    assert clock() >= start and abs(clock() - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_stopped_clock_moves_only_when_told(clock):
    clock.stop()
    held = utcnow()
    assert clock() == clock()
    clock.advance(minutes=2)
    assert utcnow() - held == timedelta(minutes=2)
