"""Admission and settlement of metered distributor calls: the distributor API's hot path.

Why it is built this way:

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
  normally later; they are counted by reason in the `pipeline_dist_calls_total` metric and, per
  distributor, pipeline, reason and day, in `dist_rejections` (`activity`, off the hot path).
* Idempotency is the unique (distributor_id, request_id) index: a repeat is answered from the
  first call's row; a racing twin loses on the index before it counts anything (the call is
  inserted before its counters are incremented) and is answered from the winner's row.
* The statements run through a `Store` (`stores.open_store`): raw aiomysql with a context cache
  and batched stored procedures on MariaDB (`mariadb_store`), SQLAlchemy elsewhere (`sqla_store`).
  A store that caches contexts checks them in the admission's own transaction (stale: read
  again, decide again); refusals are always decided on a fresh read.
* Money is Decimal end to end; the usage row keeps the resolved unit price, so a later price
  change never rewrites history. The limits, periods and refusals themselves are `limits`.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from app.core.background import Background
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.ids import new_id
from app.core.retry import Retryable, retrying
from modules.pipeline_dist.limits import (
    REPORT_ORDER,
    DistError,
    Duplicate,
    Limit,
    checked_amount,
    checked_offer,
    hit_limit,
    limits_for,
    offer_refusal,
    price_of,
    quota_refusal,
    refused,
    tally,
)
from modules.pipeline_ops.pricing import Price

log = logging.getLogger("pipeline.dist")
RETRIES = 4  # a context that keeps changing is read again this many times
# Conflicts (deadlocks; on Galera, certification at COMMIT) are retried for this long: a finish
# much longer, so that a conflict does not leave its call running until its lease ends.
ADMIT_BUDGET, FINISH_BUDGET = 2.0, 10.0


class Tx(Protocol):
    """The statements of one transaction (`RawTx`, `SqlaTx`). `admit` and `settle` commit."""

    async def context(self, distributor_id: str, code: str, request_id: str, now: datetime,
                      cached: bool = False) -> dict | None:
        """Distributor (`d_name`), pipeline (`code`, `name`), link, capacity, list prices now
        (`prices`) and the call already made with this request_id (`call`), or None when no
        pipeline has this code. `cached`: a
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

    return await retrying(attempt, path="admission", budget=ADMIT_BUDGET)


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
            refusal = offer_refusal(ctx, distributor_id, now)
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
                    refusal = quota_refusal(hit, 0), hit.name, None
            if refusal is not None:
                if ctx is not None and ctx.get("cached"):
                    fresh = True
                    continue
                raise refused(*refusal, ctx)
            usage = {"id": new_id(), "pipeline_id": ctx["pipeline_id"], "version_no": ctx["published_version"],
                     "distributor_id": distributor_id, "request_id": request_id, "units": units,
                     "unit_price": price.unit_price, "amount": checked_amount(price.amount(units)),
                     "currency": price.currency,
                     "price_mode": price.mode, "package_units": price.package_units,
                     "package_price": price.package_price, "pipeline_code": ctx["code"],
                     "pipeline_name": ctx.get("name"), "distributor_name": ctx.get("d_name"),
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
        raise refused(quota_refusal(hit, values[hit.counter_id]), hit.name, None, ctx)
    call = {**usage, "code": ctx["code"], "finished_at": None, "latency_ms": None}
    tally("admitted")
    return Admitted(call, [lim.quota(values[lim.counter_id]) for lim in limits if lim.limit is not None], False)



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
        return await _answer_replay(tx, settings, checked_offer(ctx, distributor_id, now), distributor_id, now)


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
                    amount = checked_amount(_reprice(call).amount(units))
            _, row = await tx.settle(call_id, distributor_id, status, settled_units, amount, None, now)
        if row is None:
            raise DistError(404, "call not found")
        return row

    return await retrying(attempt, path="finish", budget=FINISH_BUDGET)


def _reprice(call: dict) -> Price:
    """The call's price again, for units changed at finish: the terms stored on the row at admission
    (mode, unit price, package terms), so a price edited since never reprices it. A row written
    before the package terms were kept resolves its price at its start time and uses it only if it
    is the one stored on the row; otherwise it is charged its stored unit price per unit."""
    mode, units, package = call.get("price_mode"), call.get("package_units"), call.get("package_price")
    if mode == "unit" or (mode == "package" and units and package is not None):
        return Price(mode, Decimal(call["unit_price"] or 0), int(units) if units else None,
                     None if package is None else Decimal(package), call["currency"], "call", "call")
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


class Sweeper(Background):
    """One per worker: expires calls never finished, every few seconds, until cancelled."""

    name = "dist-lease-sweeper"

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.interval = max(0.5, min(5.0, settings.call_lease_minutes * 60 / 4))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await sweep(self.store)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the sweeper
                log.exception("lease sweep failed; trying again in %.1f s", self.interval)
