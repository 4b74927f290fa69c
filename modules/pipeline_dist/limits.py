"""What an admission decides with: the call's columns, its errors, the limits and their periods,
the price and offer checks, and the refusals (counted by reason in `pipeline_dist_calls_total`).

Pure functions of an admission context (see `admission.Tx.context`) and the clock: the service
(`admission`) and both stores build on them, and the `/quota` endpoint shows the same limits.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from prometheus_client import Counter

from app.core.clock import business_day, day_bounds, month_bounds
from app.ops.observability import child
from modules.pipeline_ops.pricing import Price, pick_price

log = logging.getLogger("pipeline.dist")
DIST_CALLS = Counter(
    "pipeline_dist_calls_total", "Distributor call admissions and rejections by reason", ["outcome", "reason"]
)


def tally(outcome: str, reason: str = "") -> None:
    """Admissions and refusals by reason (limit name, `unauthorized`, `not_found`) for /metrics."""
    child(DIST_CALLS, outcome, reason).inc()


# Which limit a 429 names when several are hit: the one that stays shut longest first.
REPORT_ORDER = ("distributor.monthly", "link.monthly", "pipeline.monthly", "distributor.daily", "link.daily",
                "pipeline.daily", "distributor.concurrency", "pipeline.concurrency")
CALL_COLUMNS = ("id", "pipeline_id", "version_no", "distributor_id", "request_id", "units", "unit_price", "amount",
                "currency", "price_mode", "package_units", "package_price", "status", "started_at", "finished_at",
                "lease_expires_at", "latency_ms")
CALL_TIMES = ("started_at", "finished_at", "lease_expires_at")
PRICE_KEYS = ("price_mode", "unit_price", "package_units", "package_price")
LINK_KEYS = ("id", "enabled", *PRICE_KEYS, "effective_from", "effective_to")


class DistError(Exception):
    """A refusal with its HTTP status; `limit` names the quota a 429 hit. A refusal of an admission
    (`refused`) also carries its metric `reason` and the pipeline, for the refusal counters."""

    def __init__(self, status: int, message: str, *, code: str | None = None, limit: Limit | None = None,
                 used: int = 0):
        super().__init__(message)
        self.status, self.message, self.code, self.limit, self.used = status, message, code, limit, used
        self.reason: str | None = None
        self.pipeline_id: str | None = None


class Duplicate(Exception):
    """The usage insert hit the unique (distributor_id, request_id) index: a twin got there first."""


@dataclass(frozen=True, slots=True)
class Limit:
    """One counter a call is checked against. `limit` None = a gauge only (unlimited concurrency)."""

    name: str  # e.g. "pipeline.daily"
    counter_id: str  # "scope|period", e.g. "pipe:<id>|D:2026-11-23"
    limit: int | None
    reset: int | None  # seconds until the period rolls over; None for concurrency

    @property
    def scope(self) -> str:
        return self.counter_id.partition("|")[0]

    @property
    def period(self) -> str:
        return self.counter_id.partition("|")[2]

    def quota(self, used: int) -> dict[str, Any]:
        remaining = None if self.limit is None else max(0, self.limit - used)
        return {"limit": self.name, "max": self.limit, "used": used, "remaining": remaining, "reset": self.reset}


_windows: dict[str, tuple[datetime, datetime, datetime, str, str]] = {}


def periods(tz_name: str, now: datetime) -> tuple[str, str, int, int]:
    """(day id, month id, seconds to the next local midnight, seconds to the next month) for naive
    UTC `now` in the business time zone. Days are calendar days, so a DST change never shifts one.
    The current day's bounds are kept per zone: this runs on every admission."""
    window = _windows.get(tz_name)
    if window is None or not window[0] <= now < window[1]:
        window = _windows[tz_name] = _window(tz_name, now)
    _, next_day, next_month, day_id, month_id = window
    return (day_id, month_id, math.ceil((next_day - now).total_seconds()),
            math.ceil((next_month - now).total_seconds()))


def _window(tz_name: str, now: datetime) -> tuple[datetime, datetime, datetime, str, str]:
    """The local day around naive UTC `now`: its start and end and the next month's start (naive
    UTC), and the day and month ids."""
    day = business_day(tz_name, now)
    start, end = day_bounds(tz_name, day)
    return start, end, month_bounds(tz_name, day)[1], f"D:{day.isoformat()}", f"M:{day:%Y-%m}"


def limits_for(ctx: Mapping[str, Any], distributor_id: str, pipeline_id: str, tz_name: str,
               now: datetime) -> list[Limit]:
    """Every counter this call touches, in lock (id) order. `ctx` is the admission context."""
    day, month, day_reset, month_reset = periods(tz_name, now)
    dist, link, pipe = f"dist:{distributor_id}", f"link:{distributor_id}:{pipeline_id}", f"pipe:{pipeline_id}"
    capacity = ctx.get("c_status") == "active"
    wanted = [
        ("distributor.daily", dist, day, ctx.get("d_daily"), day_reset),
        ("distributor.monthly", dist, month, ctx.get("d_monthly"), month_reset),
        ("link.daily", link, day, ctx.get("l_daily"), day_reset),
        ("link.monthly", link, month, ctx.get("l_monthly"), month_reset),
        ("pipeline.daily", pipe, day, ctx.get("c_daily") if capacity else None, day_reset),
        ("pipeline.monthly", pipe, month, ctx.get("c_monthly") if capacity else None, month_reset),
    ]
    out = [Limit(name, f"{scope}|{period}", _int(limit), reset) for name, scope, period, limit, reset in wanted]
    out.append(Limit("distributor.concurrency", f"{dist}|C", _int(ctx.get("d_conc")), None))
    out.append(Limit("pipeline.concurrency", f"{pipe}|C", _int(ctx.get("c_conc")) if capacity else None, None))
    return sorted(out, key=lambda lim: lim.counter_id)


def slot_ids(distributor_id: str, pipeline_id: str) -> list[str]:
    """The two in-flight counters a running call holds (sorted: lock order)."""
    return sorted([f"dist:{distributor_id}|C", f"pipe:{pipeline_id}|C"])


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def hit_limit(limits: list[Limit], before: dict[str, int]) -> Limit | None:
    """The limit to report among those already full (values before this call), or None."""
    full = [lim for lim in limits if lim.limit is not None and before.get(lim.counter_id, 0) >= lim.limit]
    return min(full, key=lambda lim: REPORT_ORDER.index(lim.name)) if full else None


def price_of(ctx: Mapping[str, Any], at: datetime) -> Price | None:
    """The whole-pipeline price at `at`: the link's own (`l_` keys) else the list price (`prices`)."""
    link = None
    if ctx.get("l_id") is not None:
        link = {k: ctx["l_" + k] for k in LINK_KEYS}
    return pick_price(ctx.get("prices") or [], link, at=at)


def link_in_period(ctx: Mapping[str, Any], at: datetime) -> bool:
    start, end = ctx.get("l_effective_from"), ctx.get("l_effective_to")
    return (start is None or start <= at) and (end is None or at < end)


Refusal = tuple[DistError, str, tuple | None]  # the error, its metric reason, (log level, format, *args)


def refused(error: DistError, reason: str, logged: tuple | None, ctx: Mapping[str, Any] | None = None) -> DistError:
    """Count (and log) a refusal once it is final; `ctx` (the admission context) names its pipeline."""
    if logged is not None:
        log.log(*logged)
    tally("rejected", reason)
    error.reason, error.pipeline_id = reason, ctx.get("pipeline_id") if ctx else None
    return error


def offer_refusal(ctx: dict | None, distributor_id: str, now: datetime) -> Refusal | None:
    """Distributor active (401), pipeline offered to it now (404). A request_id already used
    skips the offer checks: the call happened, its answer stands."""
    if ctx is None:
        return DistError(404, "pipeline not found"), "not_found", None
    if ctx["d_status"] != "active":
        return (DistError(401, "invalid or missing API key"), "unauthorized",
                (logging.INFO, "distributor %s refused: status %s", distributor_id, ctx["d_status"]))
    if ctx.get("call") is not None:
        return None
    offered = (ctx.get("l_id") is not None and str(ctx["l_enabled"]) == "1" and link_in_period(ctx, now)
               and ctx["p_status"] == "active" and ctx["published_version"] is not None)
    if not offered:
        return DistError(404, "pipeline not found"), "not_found", (
            logging.INFO, "distributor %s: pipeline %s not offered (link %s enabled=%s, status %s, version %s)",
            distributor_id, ctx["pipeline_id"], ctx.get("l_id"), ctx.get("l_enabled"), ctx["p_status"],
            ctx["published_version"])
    return None


def checked_offer(ctx: dict | None, distributor_id: str, now: datetime) -> dict:
    """`offer_refusal` on a freshly read context, raised."""
    refusal = offer_refusal(ctx, distributor_id, now)
    if refusal is not None:
        raise refused(*refusal, ctx)
    return ctx


def quota_refusal(limit: Limit, used: int) -> DistError:
    what = "concurrent calls" if limit.reset is None else "quota"
    return DistError(429, f"{limit.name} {what} exhausted ({limit.limit})", code="rate_limited", limit=limit,
                     used=used)


# pipeline_usage_log.amount is DECIMAL(18, 6): 12 digits before the point
MAX_AMOUNT = Decimal(10) ** 12 - Decimal("0.000001")


def checked_amount(amount: Decimal | None) -> Decimal | None:
    """An amount the usage row can hold, or a 422 naming the limit before anything is written
    (a finish refused so leaves its call running and finishable with other units)."""
    if amount is not None and abs(amount) > MAX_AMOUNT:
        raise DistError(422, f"units × price is {amount}, more than the largest amount a call can bill "
                             f"({MAX_AMOUNT}); send fewer units", code="invalid")
    return amount
