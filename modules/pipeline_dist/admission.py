"""Admission and settlement of metered distributor calls: the distributor API's hot path.

Why it is built this way (docs: /work/shared/design/distributor-api.md):

* Quotas hold exactly across workers and machines, so every limit is a row of `quota_counters`
  (`id = scope|period`) changed by atomic SQL inside the admission's one transaction, never a
  number in process memory. The counters of a call are first locked with one multi-row upsert
  in sorted id order (`INSERT .. ON DUPLICATE KEY UPDATE used = used`: makes missing rows and
  takes every lock in the same order in every transaction, so they cannot deadlock; a batch of
  calls locks all its counters first, in that same order), then
  checked while locked (`used < limit` for each), and only if all pass incremented together
  with the usage row's insert. A refusal changes nothing. A limit of 0 refuses before anything
  is touched.
* Every counter is kept for every call, limit or not: the day's and month's count per scope
  (distributor, link, pipeline) and the in-flight gauges (period `C`, freed exactly once, on
  finish or lease expiry, behind `UPDATE .. WHERE status = 'running'`). That costs up to eight
  locked rows per call and buys exactness when an operator sets a limit mid-period (a daily
  quota of 100 set at 15:00 counts the day's earlier calls) or sets or clears
  `max_concurrency` while calls run (counting only while limited would leak slots or free
  slots never taken).
* Refused calls (429) leave no usage row, so a retry with the same request_id is admitted
  normally later; they are counted by reason in the `pipeline_dist_calls_total` metric.
* Idempotency is the unique (distributor_id, request_id) index: a repeat is answered from the
  first call's row; a racing twin loses on the index, rolls back (its counter increments with
  it) and is answered from the winner's row.
* On MariaDB the transactions run on raw aiomysql (a small pool of its own, READ COMMITTED).
  Each worker caches the admission context (distributor, link, pipeline, capacity, list prices)
  and the admission checks its `table_versions` counter in the same transaction (stale: read
  again, decide again); refusals are always decided on a fresh read. The usual admission is then
  a stored procedure (app/dist_procedures.py: insert the call, one UPDATE adding 1 to every
  counter with room), called for a batch: the admissions that arrived on this worker while
  earlier ones were at the database share one CALL and one commit, each behind its own savepoint
  (app.core.batching; measured: MariaDB CPU per admit+finish 0.54 -> 0.28 ms). A new period or a full
  limit rolls that member back and decides it alone with the general compound statement below.
  Finishes are batched the same way (a finish that changes units reads its price first and goes
  alone). Python parses MySQL packets slowly, so answers are short strings.
  On SQLite the same steps run through SQLAlchemy, one transaction at a time per process.
* Money is Decimal end to end; the usage row keeps the resolved unit price, so a later price
  change never rewrites history.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

import msgspec

from app.core.batching import Batcher
from app.core.cache import TTLCache
from app.core.clock import business_day, day_bounds, month_bounds, utcnow
from app.core.config import Settings
from app.core.dialects import upsert
from app.core.retry import Retryable, retrying
from app.core.ids import new_id
from app.ops.observability import DIST_CALLS, child
from modules.pipeline_dist.procedures import (
    ADMIT_MEMBER,
    FINISH_MEMBER,
    MAX_COUNTERS,
    USAGE_PARAMS,
    Procedures,
    install,
    procedures,
    usage_insert,
)
from modules.pipeline_ops.pricing import Price, pick_price

log = logging.getLogger("pipeline.dist")

def tally(outcome: str, reason: str = "") -> None:
    """Admissions and refusals by reason (limit name, `unauthorized`, `not_found`) for /metrics."""
    child(DIST_CALLS, outcome, reason).inc()

# Which limit a 429 names when several are hit: the one that stays shut longest first.
REPORT_ORDER = ("distributor.monthly", "link.monthly", "pipeline.monthly", "distributor.daily", "link.daily",
                "pipeline.daily", "distributor.concurrency", "pipeline.concurrency")
CALL_COLUMNS = ("id", "pipeline_id", "version_no", "distributor_id", "request_id", "units", "unit_price", "amount",
                "currency", "status", "started_at", "finished_at", "lease_expires_at", "latency_ms")
CALL_TIMES = ("started_at", "finished_at", "lease_expires_at")
PRICE_KEYS = ("price_mode", "unit_price", "package_units", "package_price")
LINK_KEYS = ("id", "enabled", *PRICE_KEYS, "effective_from", "effective_to")
RETRIES = 4  # deadlock / lock-wait victims are retried this many times


class DistError(Exception):
    """A refusal with its HTTP status; `limit` names the quota a 429 hit."""

    def __init__(self, status: int, message: str, *, code: str | None = None, limit: Limit | None = None,
                 used: int = 0):
        super().__init__(message)
        self.status, self.message, self.code, self.limit, self.used = status, message, code, limit, used


class Duplicate(Exception):
    """The usage insert hit the unique (distributor_id, request_id) index: a twin got there first."""


# ---- limits and periods -------------------------------------------------------------------------

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


# ---- storage: one protocol, raw aiomysql on MariaDB, SQLAlchemy elsewhere -------------------------

class Tx(Protocol):
    """The statements of one transaction (`RawTx`, `SqlaTx`). `admit` and `settle` commit."""

    async def context(self, distributor_id: str, code: str, request_id: str, now: datetime,
                      cached: bool = False) -> dict | None:
        """Distributor, pipeline, link, capacity, list prices now (`prices`) and the call already
        made with this request_id (`call`), or None when no pipeline has this code. `cached`: a
        store may answer from its cache, without `call` and with `cached` set (see `admit`)."""

    async def admit(self, limits: list[Limit], usage: dict[str, Any], now: datetime,
                    version: int | None = None) -> tuple[bool | None, dict[str, int]]:
        """Lock the counters, check them, increment them and insert the call only if all pass.
        → (admitted, counter values: after the increment if admitted, else before). A store that
        caches contexts checks `version` (the context's `table_versions` counter) in the same
        transaction and answers (None, {}) when it moved: nothing written, the context is stale."""

    async def counters(self, ids: list[str]) -> dict[str, int]: ...

    async def priced_call(self, call_id: str, distributor_id: str) -> dict | None:
        """The call with its link (`l_`) and the list prices at its start (`prices`)."""

    async def settle(self, call_id: str, distributor_id: str, status: str, units: int | None,
                     amount: Decimal | None, error: str | None, now: datetime) -> tuple[bool, dict | None]:
        """Close the call if still running and free its slots only then; → (closed now, call)."""

    async def expired(self, now: datetime, limit: int) -> list[dict]: ...


class Store(Protocol):
    def transaction(self) -> Any: ...  # async context manager → Tx; commits (if not yet) on success

    async def close(self) -> None: ...


# ---- the operations -------------------------------------------------------------------------------

@dataclass
class Admitted:
    call: dict[str, Any]
    quotas: list[dict[str, Any]]
    replayed: bool


async def admit(store: Store, settings: Settings, *, distributor_id: str, code: str, request_id: str,
                units: int, client_ip: str | None) -> Admitted:
    """Admit one call or raise DistError (401 distributor not active, 404 not offered, 409 request_id
    used for another pipeline, 429 limit). Deadlock victims are retried."""
    async def attempt() -> Admitted:
        try:
            return await _admit_once(store, settings, distributor_id, code, request_id, units, client_ip)
        except Duplicate:
            return await _replay(store, settings, distributor_id, code, request_id)

    return await retrying(attempt, give_up=_busy, attempts=RETRIES)


def _busy() -> DistError:
    return DistError(503, "the database is busy; retry shortly", code="busy")


async def _admit_once(store: Store, settings: Settings, distributor_id: str, code: str, request_id: str,
                      units: int, client_ip: str | None) -> Admitted:
    """One admission. The context may come from the worker's cache (`cached` set): the admission's
    transaction then checks the cache is current (a stale one is reloaded and the call decided
    again), and a refusal is only ever decided on a freshly read context."""
    fresh = False
    for _ in range(RETRIES):
        now = utcnow()
        async with store.transaction() as tx:
            ctx = await tx.context(distributor_id, code, request_id, now, cached=not fresh)
            refusal = _offer_refusal(ctx, distributor_id, now)
            if refusal is None and ctx.get("call") is not None:
                return await _answer_replay(tx, settings, ctx, distributor_id, now)
            price = price_of(ctx, now) if refusal is None else None
            if refusal is None and price is None:
                refusal = DistError(404, "pipeline not found"), "not_found", (
                    logging.WARNING, "admission refused: pipeline %s has no price for distributor %s", code,
                    distributor_id)
            limits: list[Limit] = []
            if refusal is None:
                limits = limits_for(ctx, distributor_id, ctx["pipeline_id"], settings.business_timezone, now)
                closed = [lim for lim in limits if lim.limit == 0]
                if closed:
                    hit = min(closed, key=lambda lim: REPORT_ORDER.index(lim.name))
                    refusal = _refusal(hit, 0), hit.name, None
            if refusal is not None:
                if ctx is not None and ctx.get("cached"):
                    fresh = True
                    continue
                raise _refused(*refusal)
            usage = {"id": new_id(), "pipeline_id": ctx["pipeline_id"], "version_no": ctx["published_version"],
                     "distributor_id": distributor_id, "request_id": request_id, "units": units,
                     "unit_price": price.unit_price, "amount": price.amount(units), "currency": price.currency,
                     "status": "running", "started_at": now,
                     "lease_expires_at": now + timedelta(minutes=settings.call_lease_minutes),
                     "client_ip": client_ip, "created_at": now, "updated_at": now}
            admitted, values = await tx.admit(limits, usage, now, ctx.get("version"))
        if admitted is None:  # the cached context was stale: read it again and decide again
            fresh = True
            continue
        break
    else:
        raise Retryable("the pipeline's settings kept changing during the admission")
    if not admitted:
        hit = hit_limit(limits, values)
        if hit is None:  # cannot happen: the check and this test read the same locked values
            raise DistError(503, "admission check disagreed; retry", code="busy")
        raise _refused(_refusal(hit, values[hit.counter_id]), hit.name, None)
    call = {**usage, "code": ctx["code"], "finished_at": None, "latency_ms": None}
    tally("admitted")
    return Admitted(call, [lim.quota(values[lim.counter_id]) for lim in limits if lim.limit is not None], False)


Refusal = tuple[DistError, str, tuple | None]  # the error, its metric reason, (log level, format, *args)


def _refused(error: DistError, reason: str, logged: tuple | None) -> DistError:
    """Count (and log) a refusal once it is final."""
    if logged is not None:
        log.log(*logged)
    tally("rejected", reason)
    return error


def _offer_refusal(ctx: dict | None, distributor_id: str, now: datetime) -> Refusal | None:
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


def _check(ctx: dict | None, distributor_id: str, now: datetime) -> dict:
    """`_offer_refusal` on a freshly read context, raised."""
    refusal = _offer_refusal(ctx, distributor_id, now)
    if refusal is not None:
        raise _refused(*refusal)
    return ctx


def _refusal(limit: Limit, used: int) -> DistError:
    what = "concurrent calls" if limit.reset is None else "quota"
    return DistError(429, f"{limit.name} {what} exhausted ({limit.limit})", code="rate_limited", limit=limit,
                     used=used)


async def _answer_replay(tx: Tx, settings: Settings, ctx: dict, distributor_id: str, now: datetime) -> Admitted:
    call = ctx["call"]
    if call["pipeline_id"] != ctx["pipeline_id"]:
        raise DistError(409, "this request_id was already used for another pipeline", code="conflict")
    limits = [lim for lim in limits_for(ctx, distributor_id, ctx["pipeline_id"], settings.business_timezone, now)
              if lim.limit is not None]
    values = await tx.counters([lim.counter_id for lim in limits]) if limits else {}
    return Admitted({**call, "code": ctx["code"]}, [lim.quota(values.get(lim.counter_id, 0)) for lim in limits],
                    True)


async def _replay(store: Store, settings: Settings, distributor_id: str, code: str, request_id: str) -> Admitted:
    """The answer for a request whose twin won the race on the unique index (now committed)."""
    now = utcnow()
    async with store.transaction() as tx:
        ctx = await tx.context(distributor_id, code, request_id, now)
        if ctx is None or ctx.get("call") is None:
            raise DistError(409, "a concurrent request with this request_id failed; retry", code="conflict")
        return await _answer_replay(tx, settings, _check(ctx, distributor_id, now), distributor_id, now)


async def finish(store: Store, *, distributor_id: str, call_id: str, status: str, units: int | None) -> dict:
    """Settle a running call once; a call already settled (finished, expired) is returned as it is.
    Another distributor's call is a 404. Units that change the amount reprice it at its start."""
    async def attempt() -> dict:
        now, settled_units, amount = utcnow(), units, None
        async with store.transaction() as tx:
            if units is not None:
                call = await tx.priced_call(call_id, distributor_id)
                if call is None:
                    raise DistError(404, "call not found")
                if call["status"] != "running":
                    return call
                if units == call["units"]:
                    settled_units = None
                else:
                    amount = _reprice(call).amount(units)
            _, row = await tx.settle(call_id, distributor_id, status, settled_units, amount, None, now)
        if row is None:
            raise DistError(404, "call not found")
        return row

    return await retrying(attempt, give_up=_busy, attempts=RETRIES)


def _reprice(call: dict) -> Price:
    """The call's price again, for units changed at finish: resolved at its start time and used only
    if it is the price stored on the row; otherwise (the link's price edited in place since) the
    stored unit price, charged per unit. (Storing mode and package on the row would make this exact.)"""
    price = price_of(call, call["started_at"])
    if price is not None and price.unit_price == call["unit_price"] and price.currency == call["currency"]:
        return price
    log.warning("call %s: price at start no longer resolvable; charging its stored unit price per unit", call["id"])
    return Price("unit", Decimal(call["unit_price"] or 0), None, None, call["currency"], "stored", "call")


async def sweep(store: Store, batch: int = 200) -> int:
    """Expire running calls whose lease has passed, one transaction each, freeing their slots
    exactly once (another worker sweeping the same call finds it no longer running)."""
    now = utcnow()
    async with store.transaction() as tx:
        due = await tx.expired(now, batch)
    done = 0
    for row in due:
        try:
            async with store.transaction() as tx:
                won, _ = await tx.settle(row["id"], row["distributor_id"], "expired", None, None, "lease expired",
                                         now)
            done += won
        except Retryable:
            continue  # the next sweep picks it up again
    if done:
        log.info("expired %d call(s) past their lease", done)
    return done


class Sweeper:
    """One per worker: expires calls never finished, every few seconds, until cancelled."""

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.interval = max(0.5, min(5.0, settings.call_lease_minutes * 60 / 4))
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="dist-lease-sweeper")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await sweep(self.store)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the sweeper
                log.exception("lease sweep failed; trying again in %.1f s", self.interval)


# ---- MariaDB: raw aiomysql --------------------------------------------------------------------------

def _json(pairs: list[tuple[str, str]]) -> str:
    return "JSON_OBJECT(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"


_CALL_JSON = _json([(c, f"u.{c}") for c in CALL_COLUMNS] + [("code", "p.code")])
_LINK_PAIRS = [(f"l_{c}", f"l.{c}") for c in LINK_KEYS]
_PRICES_JSON = ("(SELECT JSON_ARRAYAGG(" + _json([(c, f"r.{c}") for c in (
    "id", *PRICE_KEYS, "currency", "billing_unit", "effective_from", "effective_to")]) + ") "
    "FROM pipeline_pricing r WHERE r.pipeline_id = {pipe} AND r.step_id IS NULL AND r.model IS NULL "
    "AND r.status = 'active' AND r.effective_from <= {at} AND (r.effective_to IS NULL OR r.effective_to > {at}))")
MY_CONTEXT = "SELECT " + _json([
    ("pipeline_id", "p.id"), ("code", "p.code"), ("p_status", "p.status"), ("published_version", "p.published_version"),
    ("d_status", "d.status"), ("d_daily", "d.daily_quota"), ("d_monthly", "d.monthly_quota"),
    ("d_conc", "d.max_concurrency"), *_LINK_PAIRS, ("l_daily", "l.daily_quota"), ("l_monthly", "l.monthly_quota"),
    ("c_status", "c.status"), ("c_daily", "c.daily_quota"), ("c_monthly", "c.monthly_quota"),
    ("c_conc", "c.max_concurrency"), ("prices", _PRICES_JSON.format(pipe="p.id", at="%(now)s")),
    ("version", "(SELECT version FROM table_versions WHERE name = 'dist_context')"),
    ("call", f"(SELECT {_CALL_JSON} FROM pipeline_usage_log u JOIN pipelines p ON p.id = u.pipeline_id "
             "WHERE u.distributor_id = d.id AND u.request_id = %(request_id)s)"),
]) + """
FROM pipelines p
JOIN distributors d ON d.id = %(distributor_id)s
LEFT JOIN distributor_pipeline l ON l.distributor_id = d.id AND l.pipeline_id = p.id
LEFT JOIN pipeline_capacity c ON c.pipeline_id = p.id
WHERE p.code = %(code)s"""
MY_PRICED_CALL = "SELECT " + _json([
    *[(c, f"u.{c}") for c in CALL_COLUMNS], ("code", "p.code"), *_LINK_PAIRS,
    ("prices", _PRICES_JSON.format(pipe="u.pipeline_id", at="u.started_at"))]) + """
FROM pipeline_usage_log u
JOIN pipelines p ON p.id = u.pipeline_id
LEFT JOIN distributor_pipeline l ON l.distributor_id = u.distributor_id AND l.pipeline_id = u.pipeline_id
WHERE u.id = %(call_id)s AND u.distributor_id = %(distributor_id)s"""
MY_EXPIRED = ("SELECT id, distributor_id FROM pipeline_usage_log "
              "WHERE status = 'running' AND lease_expires_at < %s AND distributor_id IS NOT NULL "
              "ORDER BY lease_expires_at LIMIT %s")
ER_DUP_ENTRY, ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK = 1062, 1205, 1213
_decode = msgspec.json.Decoder(float_hook=Decimal).decode  # exact decimals from JSON numbers


def _parse_times(row: dict, keys: tuple[str, ...]) -> None:
    for k in keys:
        if isinstance(row.get(k), str):
            row[k] = datetime.fromisoformat(row[k])


def _from_json(text: str | bytes | None) -> dict | None:
    """A JSON_OBJECT row back to Python: exact decimals, datetimes where the columns are."""
    if text is None:
        return None
    row = _decode(text)
    _parse_times(row, ("l_effective_from", "l_effective_to", *CALL_TIMES))
    for price in row.get("prices") or ():
        _parse_times(price, ("effective_from", "effective_to"))
        price.update(step_id=None, model=None, status="active")
    if row.get("call"):
        _parse_times(row["call"], CALL_TIMES)
    return row


ADMIT_STALE, ADMIT_TWIN = -1, -2  # pa_admit's answers besides n (admitted) and a shortfall
_encode = msgspec.json.Encoder().encode


def _batch(members: list[dict[str, Any]], order: tuple[str, ...]) -> str:
    """Members as the JSON array of arrays the procedures read (Decimal as a string: exact)."""
    return _encode([[m[k] for k in order] for m in members]).decode()


class RawTx:
    """One MariaDB transaction on a raw aiomysql connection (autocommit off, READ COMMITTED), taken
    at its first statement: an admission decided on a cached context, or a plain finish, never
    holds a connection while it waits for its batch (`RawStore.admissions`, `.finishes`)."""

    def __init__(self, store: RawStore):
        self.store, self.cache, self.procs = store, store.contexts, store.procs
        self.conn: Any = None
        self.cur: Any = None
        self.committed = False

    async def _cursor(self) -> Any:
        if self.cur is None:
            await self.store.gate.acquire()
            try:
                self.conn = await self.store.pool.acquire()
                self.cur = await self.conn.cursor()
            except BaseException:
                if self.conn is not None:
                    self.store.pool.release(self.conn)
                    self.conn = None
                self.store.gate.release()
                raise
        return self.cur

    async def _one(self, sql: str, args: Any) -> Any:
        cur = await self._cursor()
        await cur.execute(sql, args)
        row = await cur.fetchone()
        return None if row is None else row[0]

    async def context(self, distributor_id: str, code: str, request_id: str, now: datetime,
                      cached: bool = False) -> dict | None:
        key = (distributor_id, code)
        if cached and (hit := self.cache.peek(key)) is not None:
            return {**hit, "cached": True}
        ctx = _from_json(await self._one(MY_CONTEXT, {"now": now, "request_id": request_id,
                                                      "distributor_id": distributor_id, "code": code}))
        if ctx is not None:
            self.cache.put(key, {**ctx, "call": None})
        return ctx

    async def admit(self, limits: list[Limit], usage: dict[str, Any], now: datetime,
                    version: int | None = None) -> tuple[bool | None, dict[str, int]]:
        """The `pa_admit` procedure decides the usual case (every counter exists and has room), in
        the worker's next batch when nothing was read in this transaction yet; else the general
        case (`_admit_sql`) makes missing counters and tells which limit is full. Named
        parameters: each distinct value is escaped once however often a statement uses it."""
        args: dict[str, Any] = {"now": _stamp(now), "ver": version, "n": len(limits)}
        for i in range(MAX_COUNTERS):
            lim = limits[i] if i < len(limits) else None
            args[f"c{i}"] = lim and lim.counter_id
            args[f"l{i}"] = lim and lim.limit
        for c in USAGE_PARAMS:
            value = usage[c]
            args["u_" + c] = _stamp(value) if isinstance(value, datetime) else value
        if self.cur is None:
            n, counted = await self.store.admissions.submit(args)
        else:
            ((n, counted),) = await self.admit_batch([args])
        if n == ADMIT_STALE:
            return None, {}
        if n == ADMIT_TWIN:
            raise Duplicate(usage["request_id"])
        if n == len(limits):
            after = dict(pair.split("=") for pair in counted.split(","))
            return True, {k: int(v) for k, v in after.items()}
        result = _decode(await self._compound(_admit_sql(tuple(lim.limit is not None for lim in limits)), args))
        if result["ok"] is None:
            return None, {}
        before = {k: int(v) for k, v in result["used"].items()}
        return (True, {k: v + 1 for k, v in before.items()}) if result["ok"] is True else (False, before)

    async def admit_batch(self, members: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """`pa_admit` over `members` (argument dicts of `admit`) → (n, "id=used,..") for each."""
        counters = [tuple(m[f"c{i}"] for i in range(MAX_COUNTERS)) for m in members]
        # One set of counters for all (one distributor and pipeline): the first member's UPDATE
        # locks them all in index order anyway, so the lock pass would only repeat it.
        locks = [] if len(set(counters)) == 1 else list({c for cs in counters for c in cs} - {None})
        answer = await self._compound(self.procs.admit.call, {"batch": _batch(members, ADMIT_MEMBER),
                                                              "locks": _encode(locks).decode()})
        return [(int(n), counted) for n, _, counted in (line.partition(" ") for line in answer.splitlines())]

    async def _compound(self, sql: str, args: dict[str, Any]) -> str:
        """Run one self-committing compound statement; → the one value its last SELECT answers."""
        cur = await self._cursor()
        try:
            await cur.execute(sql, args)
            (result,) = await cur.fetchone()
            await cur.nextset()  # the statement's end (COMMIT ran before the answer SELECT)
        except Exception as exc:
            raise _classify(exc) from exc
        self.committed = True
        return result

    async def counters(self, ids: list[str]) -> dict[str, int]:
        cur = await self._cursor()
        await cur.execute(f"SELECT id, used FROM quota_counters WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)
        return {row[0]: int(row[1]) for row in await cur.fetchall()}

    async def priced_call(self, call_id: str, distributor_id: str) -> dict | None:
        return _from_json(await self._one(MY_PRICED_CALL, {"call_id": call_id, "distributor_id": distributor_id}))

    async def settle(self, call_id: str, distributor_id: str, status: str, units: int | None,
                     amount: Decimal | None, error: str | None, now: datetime) -> tuple[bool, dict | None]:
        """The `pa_finish` procedure, in the worker's next batch when nothing was read here yet."""
        member = {"call": call_id, "dist": distributor_id, "status": status, "units": units, "amount": amount,
                  "error": error, "now": _stamp(now)}
        if self.cur is None:
            return await self.store.finishes.submit(member)
        return (await self.settle_batch([member]))[0]

    async def settle_batch(self, members: list[dict[str, Any]]) -> list[tuple[bool, dict | None]]:
        """`pa_finish` over `members` → (closed now, the call or None) for each."""
        out = []
        for settled, call in _decode(await self._compound(self.procs.finish.call,
                                                          {"batch": _batch(members, FINISH_MEMBER)})):
            if call is not None:
                _parse_times(call, CALL_TIMES)
            out.append((settled == 1, call))
        return out

    async def expired(self, now: datetime, limit: int) -> list[dict]:
        cur = await self._cursor()
        await cur.execute(MY_EXPIRED, (now, limit))
        return [{"id": r[0], "distributor_id": r[1]} for r in await cur.fetchall()]


def _stamp(value: datetime) -> str:
    """A naive UTC time as MariaDB reads it (escaping a str is much cheaper than a datetime)."""
    return value.isoformat(" ")


_VERSION_CURRENT = "(SELECT version FROM table_versions WHERE name = 'dist_context') <=> %(ver)s"
_USAGE_INSERT = usage_insert(lambda name: f"%({name})s")


@lru_cache(maxsize=64)
def _admit_sql(limited: tuple[bool, ...]) -> str:
    """The admission's general case (new period, or a limit reached): lock the counters in id order
    (the upsert makes missing rows) before anything else, as the batches do, insert the call,
    check and read the counters while locked, and increment them and keep the call only if all
    passed. Answers {"ok": true|false|null (stale context), "used": before}."""
    ids = ", ".join(f"%(c{i})s" for i in range(len(limited)))
    rows = ", ".join(f"(%(c{i})s, SUBSTRING_INDEX(%(c{i})s, '|', 1), SUBSTRING_INDEX(%(c{i})s, '|', -1), 0, %(now)s)"
                     for i in range(len(limited)))
    full = " ".join(f"WHEN id = %(c{i})s AND used >= %(l{i})s THEN 1" for i, lim in enumerate(limited) if lim)
    ok = f"SUM(CASE {full} ELSE 0 END) = 0" if full else "1"
    return f"""BEGIN NOT ATOMIC
DECLARE ok BOOLEAN DEFAULT NULL; DECLARE counted LONGTEXT DEFAULT NULL;
IF {_VERSION_CURRENT} THEN
  INSERT INTO quota_counters (id, scope, period, used, updated_at) VALUES {rows} ON DUPLICATE KEY UPDATE used = used;
  {_USAGE_INSERT};
  SELECT {ok}, JSON_OBJECTAGG(id, used) INTO ok, counted FROM quota_counters WHERE id IN ({ids});
  IF ok THEN
    UPDATE quota_counters SET used = used + 1, updated_at = %(now)s WHERE id IN ({ids});
    COMMIT;
  ELSE
    ROLLBACK;
  END IF;
END IF;
SELECT JSON_OBJECT('ok', ok = 1, 'used', JSON_EXTRACT(counted, '$'));
END"""


def _classify(exc: Exception) -> Exception:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code == ER_DUP_ENTRY:
        return Duplicate(str(exc))
    if code in (ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT):
        return Retryable(str(exc))
    return exc


class _RawTransaction:
    """`async with`: a transaction whose connection (if it took one) is rolled back on error,
    committed unless a procedure already did, and returned to the pool. (A class, not
    @asynccontextmanager: this runs twice per call.)"""

    __slots__ = ("tx",)

    def __init__(self, store: RawStore):
        self.tx = RawTx(store)

    async def __aenter__(self) -> RawTx:
        return self.tx

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> None:
        tx = self.tx
        if tx.conn is None:
            return
        try:
            if kind is None and not tx.committed:
                await tx.conn.commit()
            elif kind is not None:
                try:
                    await tx.conn.rollback()
                except BaseException:
                    tx.conn.close()  # mid-protocol (cancelled): drop it; the server rolls back
                    raise
        finally:
            tx.store.pool.release(tx.conn)
            tx.store.gate.release()


class RawStore:
    """A small aiomysql pool of the app database, for the admission and finish transactions.
    Callers queue on a FIFO semaphore in front of it: aiomysql's own wait lets newcomers barge
    past waiters, which under load turns into second-long tail latencies."""

    def __init__(self, pool: Any, size: int, procs: Procedures):
        self.pool, self.procs = pool, procs
        self.gate = asyncio.Semaphore(size)
        # Admission contexts per (distributor, pipeline code). Why this worker may cache them at all:
        # each admission checks the contexts' `table_versions` counter in its own transaction (see
        # `app.core.table_versions`), so an app-made change is seen by the next call on every worker;
        # the TTL bounds changes made behind the app's back (plain SQL).
        self.contexts = TTLCache(3.0)
        self.admissions: Batcher[dict, tuple[int, str]] = Batcher(self._admit_batch)
        self.finishes: Batcher[dict, tuple[bool, dict | None]] = Batcher(self._settle_batch)

    async def _admit_batch(self, members: list[dict[str, Any]]) -> list[tuple[int, str]]:
        async with self.transaction() as tx:
            return await tx.admit_batch(members)

    async def _settle_batch(self, members: list[dict[str, Any]]) -> list[tuple[bool, dict | None]]:
        async with self.transaction() as tx:
            return await tx.settle_batch(members)

    @classmethod
    async def open(cls, url: str, size: int = 10) -> RawStore:
        import aiomysql
        from sqlalchemy.engine import make_url

        u = make_url(url)
        pool = await aiomysql.create_pool(
            host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root", password=u.password or "",
            db=u.database, charset=u.query.get("charset", "utf8mb4"), unix_socket=u.query.get("unix_socket"),
            autocommit=False, minsize=1, maxsize=size,
            pool_recycle=1800,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        procs = procedures(_CALL_JSON)
        try:
            async with pool.acquire() as conn:
                await install(conn, (procs.admit, procs.finish))
        except BaseException:
            pool.close()
            await pool.wait_closed()
            raise
        return cls(pool, size, procs)

    def transaction(self) -> _RawTransaction:  # noqa: D102
        return _RawTransaction(self)

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()


# ---- SQLite (and other SQLAlchemy databases) --------------------------------------------------------

class SqlaTx:
    """The same statements through SQLAlchemy Core, typed by the catalog's tables."""

    def __init__(self, conn: Any, tables: dict[str, Any]):
        self.conn, self.t = conn, tables

    async def _prices(self, pipeline_id: str, at: datetime) -> list[dict]:
        from sqlalchemy import or_, select

        r = self.t["pipeline_pricing"]
        rows = await self.conn.execute(select(r).where(
            r.c.pipeline_id == pipeline_id, r.c.step_id.is_(None), r.c.model.is_(None), r.c.status == "active",
            r.c.effective_from <= at, or_(r.c.effective_to.is_(None), r.c.effective_to > at)))
        return [dict(row._mapping) for row in rows]

    async def _call(self, *where: Any) -> dict | None:
        from sqlalchemy import select

        u, p = self.t["pipeline_usage_log"], self.t["pipelines"]
        row = (await self.conn.execute(select(*[u.c[k] for k in CALL_COLUMNS], p.c.code)
                                       .select_from(u.join(p, p.c.id == u.c.pipeline_id)).where(*where))).first()
        return None if row is None else dict(row._mapping)

    async def context(self, distributor_id: str, code: str, request_id: str, now: datetime,
                      cached: bool = False) -> dict | None:
        """Always read in this transaction (no cache: the checks and the writes share it)."""
        from sqlalchemy import and_, select

        t = self.t
        p, d, lk, c, u = (t["pipelines"], t["distributors"], t["distributor_pipeline"], t["pipeline_capacity"],
                          t["pipeline_usage_log"])
        row = (await self.conn.execute(select(
            p.c.id.label("pipeline_id"), p.c.code, p.c.status.label("p_status"), p.c.published_version,
            d.c.status.label("d_status"), d.c.daily_quota.label("d_daily"), d.c.monthly_quota.label("d_monthly"),
            d.c.max_concurrency.label("d_conc"), *[lk.c[k].label("l_" + k) for k in LINK_KEYS],
            lk.c.daily_quota.label("l_daily"), lk.c.monthly_quota.label("l_monthly"), c.c.status.label("c_status"),
            c.c.daily_quota.label("c_daily"), c.c.monthly_quota.label("c_monthly"),
            c.c.max_concurrency.label("c_conc"))
            .select_from(p.join(d, d.c.id == distributor_id)
                         .outerjoin(lk, and_(lk.c.distributor_id == d.c.id, lk.c.pipeline_id == p.c.id))
                         .outerjoin(c, c.c.pipeline_id == p.c.id))
            .where(p.c.code == code))).first()
        if row is None:
            return None
        ctx = dict(row._mapping)
        ctx["prices"] = await self._prices(ctx["pipeline_id"], now)
        ctx["call"] = await self._call(u.c.distributor_id == distributor_id, u.c.request_id == request_id)
        return ctx

    async def admit(self, limits: list[Limit], usage: dict[str, Any], now: datetime,
                    version: int | None = None) -> tuple[bool | None, dict[str, int]]:
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        q = self.t["quota_counters"]
        ids = [lim.counter_id for lim in limits]
        rows = [{"id": lim.counter_id, "scope": lim.scope, "period": lim.period, "used": 0, "updated_at": now}
                for lim in limits]
        await self.conn.execute(upsert(self.conn.dialect.name, q, rows, ["id"], lambda new: {"used": q.c.used}))
        before = await self.counters(ids)
        if hit_limit(limits, before) is not None:
            return False, before
        await self.conn.execute(update(q).where(q.c.id.in_(ids)).values(used=q.c.used + 1, updated_at=now))
        try:
            await self.conn.execute(insert(self.t["pipeline_usage_log"]).values(**usage))
        except IntegrityError as exc:
            raise Duplicate(str(exc)) from exc
        return True, {k: v + 1 for k, v in before.items()}

    async def counters(self, ids: list[str]) -> dict[str, int]:
        from sqlalchemy import select

        q = self.t["quota_counters"]
        rows = await self.conn.execute(select(q.c.id, q.c.used).where(q.c.id.in_(ids)))
        return {row.id: int(row.used) for row in rows}

    async def priced_call(self, call_id: str, distributor_id: str) -> dict | None:
        from sqlalchemy import select

        u, lk = self.t["pipeline_usage_log"], self.t["distributor_pipeline"]
        call = await self._call(u.c.id == call_id, u.c.distributor_id == distributor_id)
        if call is None:
            return None
        link = (await self.conn.execute(select(*[lk.c[k].label("l_" + k) for k in LINK_KEYS]).where(
            lk.c.distributor_id == distributor_id, lk.c.pipeline_id == call["pipeline_id"]))).first()
        return {**call, **(dict(link._mapping) if link else {}),
                "prices": await self._prices(call["pipeline_id"], call["started_at"])}

    async def settle(self, call_id: str, distributor_id: str, status: str, units: int | None,
                     amount: Decimal | None, error: str | None, now: datetime) -> tuple[bool, dict | None]:
        from sqlalchemy import update

        u, q = self.t["pipeline_usage_log"], self.t["quota_counters"]
        call = await self._call(u.c.id == call_id, u.c.distributor_id == distributor_id)
        if call is None:
            return False, None
        values = {k: v for k, v in (("units", units), ("amount", amount), ("error", error)) if v is not None}
        latency = max(0, int((now - call["started_at"]).total_seconds() * 1000))
        result = await self.conn.execute(update(u).where(u.c.id == call_id, u.c.distributor_id == distributor_id,
                                                         u.c.status == "running")
                                         .values(status=status, finished_at=now, latency_ms=latency, updated_at=now,
                                                 **values))
        won = result.rowcount == 1
        if won:
            await self.conn.execute(update(q).where(q.c.id.in_(slot_ids(distributor_id, call["pipeline_id"])),
                                                    q.c.used > 0).values(used=q.c.used - 1, updated_at=now))
        return won, await self._call(u.c.id == call_id)

    async def expired(self, now: datetime, limit: int) -> list[dict]:
        from sqlalchemy import select

        u = self.t["pipeline_usage_log"]
        rows = await self.conn.execute(select(u.c.id, u.c.distributor_id).where(
            u.c.status == "running", u.c.lease_expires_at < now, u.c.distributor_id.is_not(None))
            .order_by(u.c.lease_expires_at).limit(limit))
        return [dict(r._mapping) for r in rows]


class SqlaStore:
    """Transactions on the app's SQLAlchemy engine. SQLite has one writer at a time anyway, so
    this process runs one admission/finish at a time (no busy-lock churn between its own tasks)."""

    def __init__(self, engine: Any, catalog: Any):
        self.engine = engine
        self.tables = {name: catalog.tables[name].table for name in (
            "pipelines", "distributors", "distributor_pipeline", "pipeline_capacity", "pipeline_pricing",
            "pipeline_usage_log", "quota_counters")}
        self.lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlaTx]:
        from sqlalchemy.exc import OperationalError

        if self.lock is not None:
            await self.lock.acquire()
        try:
            async with self.engine.begin() as conn:
                yield SqlaTx(conn, self.tables)
        except OperationalError as exc:
            text = str(exc).lower()
            if "deadlock" in text or "locked" in text:
                raise Retryable(text) from exc
            raise
        finally:
            if self.lock is not None:
                self.lock.release()

    async def close(self) -> None:
        return None


async def open_store(settings: Settings, engine: Any, catalog: Any, pool_size: int = 10) -> Store:
    """Raw aiomysql on MariaDB/MySQL, SQLAlchemy on anything else."""
    if engine.dialect.name in ("mysql", "mariadb"):
        return await RawStore.open(settings.database, pool_size)
    return SqlaStore(engine, catalog)
