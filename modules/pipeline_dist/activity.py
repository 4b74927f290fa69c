"""What the distributor API notes about its callers beside the calls: when and from where each
key was last used, and how many calls were refused, per distributor, pipeline, reason and
business day.

Why in memory first: both happen on the hot path (every keyed request, every refusal), and a
write per request would be one more round trip per call, and a 429 flood a write flood. Each
worker keeps the latest use per key and a count per refusal key in two dicts (a dict store per
request, nothing else) and a background task writes them every `interval` seconds in one
transaction: one UPDATE per key used since (one executemany), one multi-row upsert of the
counters (`refusals = refusals + n`, app.core.dialects.upsert). So a key's row is written at most once
per interval per worker, and a flood of refusals is one counter row per distributor, pipeline,
reason and day. A crash loses at most one interval of these notes, never a call or a quota.

The writes go through lightweight `table()` clauses on purpose: the catalog's `distributors`
table is watched by `app.core.table_versions`, and a bump every few seconds would make every
worker's admission context cache stale again and again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, column, table, update

from app.core.background import Background
from app.core.clock import utcnow
from app.core.dialects import upsert
from modules.pipeline_dist.limits import periods

log = logging.getLogger("pipeline.dist")
TICK = 0.2  # seconds between looks at the clock of the background writer
CURRENT, PREVIOUS = "current", "previous"  # which of a distributor's two keys was used
_USE_COLUMNS = {CURRENT: ("key_last_used_at", "key_last_used_ip"),
                PREVIOUS: ("prev_key_last_used_at", "prev_key_last_used_ip")}


def _use_statement(slot: str) -> Any:
    """UPDATE distributors SET <slot>'s time and IP, never back in time (workers flush in any order)."""
    at, ip = _USE_COLUMNS[slot]
    t = table("distributors", column("id"), column(at), column(ip))
    return (update(t).where(t.c.id == bindparam("b_id"))
            .where((t.c[at].is_(None)) | (t.c[at] <= bindparam("b_at")))
            .values({at: bindparam("b_at"), ip: bindparam("b_ip")}))


@dataclass
class Refusals:
    """One counter's pending increment."""

    count: int
    first_at: datetime
    last_at: datetime


class Activity(Background):
    """Per worker: key uses and refusal counts, written in the background (`start`, `flush`, `stop`)."""

    name = "dist-activity"

    def __init__(self, ctx: Any, interval: float = 5.0):
        self.ctx, self.interval = ctx, interval
        self.uses: dict[tuple[str, str], tuple[datetime, str | None]] = {}
        self.refusals: dict[tuple[str, str | None, str, str], Refusals] = {}
        self.lock = asyncio.Lock()

    def key_used(self, distributor_id: str, slot: str, ip: str | None) -> None:
        """Hot path: the latest use wins; the row is written at the next flush."""
        self.uses[(distributor_id, slot)] = (utcnow(), ip)

    def refused(self, distributor_id: str, pipeline_id: str | None, reason: str) -> None:
        """Hot path: one more refusal today (business day) for this distributor, pipeline and reason."""
        now = utcnow()
        day = periods(self.ctx.settings.business_timezone, now)[0]
        key = (distributor_id, pipeline_id, reason, day)
        pending = self.refusals.get(key)
        if pending is None:
            self.refusals[key] = Refusals(1, now, now)
        else:
            pending.count += 1
            pending.last_at = now

    async def flush(self) -> None:
        """Write what was noted since the last flush, in one transaction; on failure keep it for the next."""
        async with self.lock:
            uses, self.uses = self.uses, {}
            refusals, self.refusals = self.refusals, {}
            if not uses and not refusals:
                return
            try:
                async with self.ctx.db.begin() as conn:
                    for slot in (CURRENT, PREVIOUS):
                        rows = [{"b_id": d, "b_at": at, "b_ip": ip} for (d, s), (at, ip) in uses.items() if s == slot]
                        if rows:
                            await conn.execute(_use_statement(slot), rows)
                    if refusals:
                        await conn.execute(self._counter_upsert(conn.dialect.name, refusals))
            except Exception:
                self._keep(uses, refusals)
                raise

    def _counter_upsert(self, dialect: str, refusals: dict[tuple[str, str | None, str, str], Refusals]) -> Any:
        t = self.ctx.catalog.tables["dist_rejections"].table
        rows = sorted(({"id": rejection_id(d, p, reason, day), "distributor_id": d, "pipeline_id": p, "reason": reason,
                        "day": date.fromisoformat(day[2:]), "refusals": r.count, "first_at": r.first_at,
                        "last_at": r.last_at} for (d, p, reason, day), r in refusals.items()),
                      key=lambda row: row["id"])  # one lock order for every worker: no deadlocks
        return upsert(dialect, t, rows, ["id"], lambda new: {"refusals": t.c.refusals + new["refusals"],
                                                               "last_at": new["last_at"]})

    def _keep(self, uses: dict, refusals: dict) -> None:
        """A failed flush's notes go back, under what arrived meanwhile (newer uses win, counts add)."""
        self.uses = {**uses, **self.uses}
        for key, r in refusals.items():
            now = self.refusals.get(key)
            self.refusals[key] = r if now is None else Refusals(r.count + now.count, r.first_at, now.last_at)

    async def stop(self) -> None:
        """Stop the timer and write what is left (shutdown)."""
        await super().stop()
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - shutting down: say so, do not hang the shutdown
            log.exception("could not write the last key uses and refusal counts")

    async def _run(self) -> None:
        """Every `interval` seconds (read on each tick, so it can be changed while running)."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            if time.monotonic() - last < self.interval:
                continue
            last = time.monotonic()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a database hiccup must not end the notes
                log.exception("writing key uses and refusal counts failed; trying again in %.1f s", self.interval)


def rejection_id(distributor_id: str, pipeline_id: str | None, reason: str, day: str) -> str:
    """The counter row's key: one row per distributor, pipeline, reason and day (`D:YYYY-MM-DD`)."""
    return f"{distributor_id}|{pipeline_id or '-'}|{reason}|{day[2:]}"
