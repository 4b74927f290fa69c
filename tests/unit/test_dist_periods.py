"""Quota periods: the business day and month an admission counts in, and when they reset."""
from __future__ import annotations

from datetime import datetime

from modules.pipeline_dist.limits import periods


def test_shanghai_day_and_month_and_their_resets():
    # 2026-12-01 00:30 in Shanghai (UTC+8): the new day and month began 30 minutes ago
    assert periods("Asia/Shanghai", datetime(2026, 11, 30, 16, 30)) == (
        "D:2026-12-01", "M:2026-12", 23 * 3600 + 1800, 30 * 86400 + 23 * 3600 + 1800)
    # one second before local midnight (an earlier instant than the call above: the kept day is left)
    assert periods("Asia/Shanghai", datetime(2026, 11, 30, 15, 59, 59)) == ("D:2026-11-30", "M:2026-11", 1, 1)
    # and forward again, later the same local day
    assert periods("Asia/Shanghai", datetime(2026, 12, 1, 3, 0)) == (
        "D:2026-12-01", "M:2026-12", 13 * 3600, 30 * 86400 + 13 * 3600)


def test_a_dst_day_is_a_calendar_day():
    # New York leaves DST on 2026-11-01: that local day has 25 hours
    assert periods("America/New_York", datetime(2026, 11, 1, 4, 0)) == ("D:2026-11-01", "M:2026-11", 25 * 3600,
                                                                        30 * 86400 + 3600)
    # the day after has 24 again
    assert periods("America/New_York", datetime(2026, 11, 2, 5, 0))[:3] == ("D:2026-11-02", "M:2026-11", 86400)
