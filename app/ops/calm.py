"""Logging that stays calm under faults: one traceback per kind of failure per interval.

When a database node dies, every request fails the same way for seconds; a full traceback per
request filled 118 MB of logs and told nothing new after the first. The first failure of a kind
(exception type and where it was raised) is logged whole; repeats within `interval` seconds only
count, and the next line says how many were held back.
"""
from __future__ import annotations

import logging
import time
import traceback

INTERVAL = 10.0
_last: dict[tuple[str, str], tuple[float, int]] = {}  # kind → (logged at, repeats held back)


def _kind(exc: BaseException) -> tuple[str, str]:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    return type(exc).__name__, where


def log_failure(logger: logging.Logger, exc: BaseException, message: str, *args: object,
                interval: float = INTERVAL) -> None:
    """`logger.error(message, exc_info=exc)`, at most once per kind of failure per `interval`."""
    kind, now = _kind(exc), time.monotonic()
    logged_at, held = _last.get(kind, (float("-inf"), 0))
    if now - logged_at < interval:
        _last[kind] = (logged_at, held + 1)
        return
    _last[kind] = (now, 0)
    suffix = f" ({held} more like it in the last {interval:.0f} s)" if held else ""
    logger.error(message + suffix, *args, exc_info=exc)
