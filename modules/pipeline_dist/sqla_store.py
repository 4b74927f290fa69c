"""The admission store on SQLite and PostgreSQL (any SQLAlchemy database): the same statements as
`mariadb_store` through SQLAlchemy Core, typed by the catalog's tables, with no context cache
(each admission reads its context in its own transaction) and one transaction at a time per
process on SQLite. Counter rows are always locked in id order (the upsert's rows are sorted; a
finish locks its two slots with an ordered SELECT … FOR UPDATE first: PostgreSQL's UPDATE … IN
locks in whatever order it scans), so admissions and finishes cannot deadlock one another.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core.dialects import upsert
from app.core.retry import transient
from modules.pipeline_dist.limits import CALL_COLUMNS, LINK_KEYS, Duplicate, Limit, hit_limit, slot_ids

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
            p.c.id.label("pipeline_id"), p.c.code, p.c.name, d.c.name.label("d_name"), p.c.status.label("p_status"),
            p.c.published_version,
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
        if any(lim.limit is not None for lim in limits):
            # a limit already full in the committed values refuses without queueing for the hot rows'
            # locks (a burst of refusals would otherwise take turns on them); room is decided locked
            committed = await self.counters(ids)
            if hit_limit(limits, committed) is not None:
                await self._no_twin(usage)
                return False, committed
        await self.conn.execute(upsert(self.conn.dialect.name, q, rows, ["id"], lambda new: {"used": q.c.used}))
        before = await self.counters(ids)
        if hit_limit(limits, before) is not None:
            await self._no_twin(usage)
            return False, before
        try:
            await self.conn.execute(insert(self.t["pipeline_usage_log"]).values(**usage))
        except IntegrityError as exc:
            raise Duplicate(str(exc)) from exc
        await self.conn.execute(update(q).where(q.c.id.in_(ids)).values(used=q.c.used + 1, updated_at=now))
        return True, {k: v + 1 for k, v in before.items()}

    async def _no_twin(self, usage: dict[str, Any]) -> None:
        """Before a refusal: a twin with this request_id that committed while this call waited for
        the counters' locks took the last room with it, so this request is that call (Duplicate:
        answered as a replay), not a 429. One read of the unique (distributor_id, request_id) index."""
        from sqlalchemy import select

        u = self.t["pipeline_usage_log"]
        twin = await self.conn.execute(select(u.c.id).where(u.c.distributor_id == usage["distributor_id"],
                                                            u.c.request_id == usage["request_id"]))
        if twin.first() is not None:
            raise Duplicate("a twin with this request_id was admitted meanwhile")

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
        from sqlalchemy import select, update

        u, q = self.t["pipeline_usage_log"], self.t["quota_counters"]
        call = await self._call(u.c.id == call_id, u.c.distributor_id == distributor_id)
        if call is None:
            return False, None
        slots = slot_ids(distributor_id, call["pipeline_id"])
        values = {k: v for k, v in (("units", units), ("amount", amount), ("error", error)) if v is not None}
        latency = max(0, int((now - call["started_at"]).total_seconds() * 1000))
        result = await self.conn.execute(update(u).where(u.c.id == call_id, u.c.distributor_id == distributor_id,
                                                         u.c.status == "running")
                                         .values(status=status, finished_at=now, latency_ms=latency, updated_at=now,
                                                 **values))
        won = result.rowcount == 1
        if won:
            await self.conn.execute(select(q.c.id).where(q.c.id.in_(slots)).order_by(q.c.id).with_for_update())
            await self.conn.execute(update(q).where(q.c.id.in_(slots), q.c.used > 0)
                                    .values(used=q.c.used - 1, updated_at=now))
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
        """A conflict (deadlock, serialization failure, a locked SQLite) is `Retryable`."""
        if self.lock is not None:
            await self.lock.acquire()
        try:
            async with transient(self.engine.begin()) as conn:
                yield SqlaTx(conn, self.tables)
        finally:
            if self.lock is not None:
                self.lock.release()

    async def close(self) -> None:
        return None
