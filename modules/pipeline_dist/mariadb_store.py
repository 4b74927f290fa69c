"""The admission store on MariaDB: raw aiomysql, its SQL, and the batched stored procedures.

The transactions run on a small aiomysql pool of their own (READ COMMITTED). Each worker caches
the admission context (distributor, link, pipeline, capacity, list prices) and the admission
checks its `table_versions` counter in the same transaction (stale: read again, decide again).
The usual admission is then a stored procedure (`procedures`: lock and read the counters, and
only if all have room insert the call and add 1 to each), called for a batch: the admissions
that arrived on this worker while earlier ones were at the database share one CALL and one
commit (app.core.batching; measured: MariaDB CPU per admit+finish 0.54 -> 0.28 ms). A member on
a new period or a full limit writes nothing there and is decided alone with the general
compound statement (`_admit_sql`). Finishes are batched the same way (a finish that changes units reads
its price first and goes alone). Python parses MySQL packets slowly, so answers are short strings.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import msgspec

from app.core.batching import Batcher
from app.core.cache import TTLCache
from app.core.db import CLUSTER_VARIABLES, ClusterMisconfigured, cluster_refusal, first_host, hosts, is_unavailable
from app.core.retry import Retryable
from modules.pipeline_dist.limits import CALL_COLUMNS, CALL_TIMES, LINK_KEYS, PRICE_KEYS, Duplicate, Limit
from modules.pipeline_dist.raw_pool import FailoverPool
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

def _json(pairs: list[tuple[str, str]]) -> str:
    return "JSON_OBJECT(" + ", ".join(f"'{k}', {v}" for k, v in pairs) + ")"


_CALL_JSON = _json([(c, f"u.{c}") for c in CALL_COLUMNS] + [("code", "p.code")])
_LINK_PAIRS = [(f"l_{c}", f"l.{c}") for c in LINK_KEYS]
_PRICES_JSON = ("(SELECT JSON_ARRAYAGG(" + _json([(c, f"r.{c}") for c in (
    "id", *PRICE_KEYS, "currency", "billing_unit", "effective_from", "effective_to")]) + ") "
    "FROM pipeline_pricing r WHERE r.pipeline_id = {pipe} AND r.step_id IS NULL AND r.model IS NULL "
    "AND r.status = 'active' AND r.effective_from <= {at} AND (r.effective_to IS NULL OR r.effective_to > {at}))")
MY_CONTEXT = "SELECT " + _json([
    ("pipeline_id", "p.id"), ("code", "p.code"), ("name", "p.name"), ("d_name", "d.name"), ("p_status", "p.status"),
    ("published_version", "p.published_version"),
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
        args = admit_member(limits, usage, now, version)
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
        if result["twin"]:
            raise Duplicate(usage["request_id"])
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


def admit_member(limits: list[Limit], usage: dict[str, Any], now: datetime, version: int | None) -> dict[str, Any]:
    """One admission as the named arguments of `pa_admit`'s member and of `_admit_sql`."""
    args: dict[str, Any] = {"now": _stamp(now), "ver": version, "n": len(limits)}
    for i in range(MAX_COUNTERS):
        lim = limits[i] if i < len(limits) else None
        args[f"c{i}"] = lim and lim.counter_id
        args[f"l{i}"] = lim and lim.limit
    for c in USAGE_PARAMS:
        value = usage.get(c)  # a snapshot column left out is NULL
        args["u_" + c] = _stamp(value) if isinstance(value, datetime) else value
    return args


def _stamp(value: datetime) -> str:
    """A naive UTC time as MariaDB reads it (escaping a str is much cheaper than a datetime)."""
    return value.isoformat(" ")


_VERSION_CURRENT = "(SELECT version FROM table_versions WHERE name = 'dist_context') <=> %(ver)s"
_USAGE_INSERT = usage_insert(lambda name: f"%({name})s")


@lru_cache(maxsize=64)
def _admit_sql(limited: tuple[bool, ...]) -> str:
    """The admission's general case (new period, or a limit reached): lock the counters in id order
    (the upsert makes missing rows) before anything else, as the batches do, check and read them
    while locked, and only if all passed insert the call and increment them; a refusal rolls the
    whole transaction back (nothing of it leaves the node). A refused request whose request_id
    is taken is a twin (the worker's cached context knows no call): it is answered, not refused.
    Answers {"ok": true|false|null (stale context), "twin": .., "used": before}."""
    ids = ", ".join(f"%(c{i})s" for i in range(len(limited)))
    rows = ", ".join(f"(%(c{i})s, SUBSTRING_INDEX(%(c{i})s, '|', 1), SUBSTRING_INDEX(%(c{i})s, '|', -1), 0, %(now)s)"
                     for i in range(len(limited)))
    full = " ".join(f"WHEN id = %(c{i})s AND used >= %(l{i})s THEN 1" for i, lim in enumerate(limited) if lim)
    ok = f"SUM(CASE {full} ELSE 0 END) = 0" if full else "1"
    return f"""BEGIN NOT ATOMIC
DECLARE ok BOOLEAN DEFAULT NULL; DECLARE twin BOOLEAN DEFAULT FALSE; DECLARE counted LONGTEXT DEFAULT NULL;
IF {_VERSION_CURRENT} THEN
  INSERT INTO quota_counters (id, scope, period, used, updated_at) VALUES {rows} ON DUPLICATE KEY UPDATE used = used;
  SELECT {ok}, JSON_OBJECTAGG(id, used) INTO ok, counted FROM quota_counters WHERE id IN ({ids});
  IF ok THEN
    {_USAGE_INSERT};
    UPDATE quota_counters SET used = used + 1, updated_at = %(now)s WHERE id IN ({ids});
    COMMIT;
  ELSE
    SET twin = EXISTS (SELECT 1 FROM pipeline_usage_log
                       WHERE distributor_id = %(u_distributor_id)s AND request_id = %(u_request_id)s);
    ROLLBACK;
  END IF;
END IF;
SELECT JSON_OBJECT('ok', ok = 1, 'twin', twin = 1, 'used', JSON_EXTRACT(counted, '$'));
END"""


async def _refuse_misconfigured_cluster(conn: Any) -> None:
    """At startup: a Galera node the admissions cannot be exact on is never used (app.core.db)."""
    async with conn.cursor() as cur:
        await cur.execute(CLUSTER_VARIABLES)
        refusal = cluster_refusal(dict(await cur.fetchall()))
    if refusal:
        raise ClusterMisconfigured(refusal)


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
                try:
                    await tx.conn.commit()
                except Exception as error:  # on Galera a certification failure arrives here, as 1213
                    raise _classify(error) from error
            elif kind is not None and (tx.conn.closed or is_unavailable(exc)):
                tx.conn.close()  # the server is gone or the link broke: drop it, it rolls back there
            elif kind is not None:
                try:
                    await tx.conn.rollback()
                except Exception:
                    # A Galera node answers ROLLBACK of a transaction it aborted for a replicated
                    # one with 1213: drop the connection (the server rolls back) and let the
                    # error that ended the block be the one the caller handles.
                    tx.conn.close()
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
        """The pool of `url` (its hosts tried in order: app.core.db.hosts), checked and set up."""
        from sqlalchemy.engine import make_url

        u = make_url(first_host(url))
        pool = FailoverPool(hosts(url), dict(
            user=u.username or "root", password=u.password or "", db=u.database,
            charset=u.query.get("charset", "utf8mb4"), unix_socket=u.query.get("unix_socket"),
            autocommit=False, connect_timeout=3,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"), size)
        procs = procedures(_CALL_JSON)
        try:
            conn = await pool.acquire()
            try:
                await _refuse_misconfigured_cluster(conn)
                await install(conn, (procs.admit, procs.finish))
            finally:
                pool.release(conn)
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
