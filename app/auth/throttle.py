"""Login throttling that can neither be outrun nor turned against someone.

Keys: `u:<user id>@<client ip>` for a user that exists (the id the RBAC database resolved the typed
name to, so every spelling its collation folds together is one user) and `ip:<client ip>` for
every attempt (one address spraying many names). A stranger failing from other addresses only
charges their own keys, so the owner's right password from a new address still gets in.

Atomic: an attempt is charged *before* the password is checked, in one transaction that locks the
attempt's rows in sorted order; an attempt whose key is already waiting is refused unchecked. So
however many wrong passwords arrive at once, on however many workers, at most the free handful is
checked. A success clears the user's key for that address.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.auth.sessions import throttle_table
from app.core.dialects import insert_missing
from app.core.retry import in_transaction

THROTTLE_FREE_FAILURES = 5          # consecutive failures before a key has to wait
THROTTLE_MAX_SECONDS = 15 * 60      # the wait doubles up to this cap: nobody is locked out for good
THROTTLE_FORGET = timedelta(days=1)  # failures older than this no longer count


def throttle_key(kind: str, value: str) -> str:
    """`<kind>:<value>`; a value too long for the column is hashed."""
    key = f"{kind}:{value}"
    return key if len(key) <= 160 else f"{kind}:#{hashlib.sha256(value.encode()).hexdigest()}"


def login_keys(user_id: str | None, client_ip: str) -> list[str]:
    """The keys one attempt charges, sorted (the lock order)."""
    keys = [throttle_key("ip", client_ip)]
    if user_id is not None:
        keys.append(throttle_key("u", f"{user_id}@{client_ip}"))
    return sorted(keys)


def throttle_delay(failures: int) -> float:
    """Seconds a key waits after `failures` consecutive failures: none for the first
    THROTTLE_FREE_FAILURES - 1, then 1, 2, 4 … capped at THROTTLE_MAX_SECONDS."""
    if failures < THROTTLE_FREE_FAILURES:
        return 0
    return min(2.0 ** min(failures - THROTTLE_FREE_FAILURES, 30), THROTTLE_MAX_SECONDS)


def _ceil_second(moment: datetime) -> datetime:
    """DATETIME columns drop fractions: round a wait's end up, never down."""
    return moment.replace(microsecond=0) + timedelta(seconds=1 if moment.microsecond else 0)


async def charge_attempt(engine: AsyncEngine, keys: list[str], now: datetime) -> float:
    """Charge one failure to every key, unless one of them is waiting: then nothing is charged
    and the seconds to wait are returned. 0 means the attempt may check its password."""
    t = throttle_table()

    async def attempt(conn: AsyncConnection) -> float:
        await conn.execute(insert_missing(conn.dialect.name, t, [
            {"id": k, "fail_count": 0, "last_fail": None, "locked_until": None} for k in keys], ["id"]))
        rows = (await conn.execute(select(t.c.id, t.c.fail_count, t.c.last_fail, t.c.locked_until)
                                   .where(t.c.id.in_(keys)).order_by(t.c.id).with_for_update())).all()
        waits = [(r.locked_until - now).total_seconds() for r in rows if r.locked_until and r.locked_until > now]
        if waits:
            return max(waits)
        for r in rows:
            count = (r.fail_count or 0) + 1 if r.last_fail and now - r.last_fail < THROTTLE_FORGET else 1
            delay = throttle_delay(count)
            await conn.execute(update(t).where(t.c.id == r.id).values(
                fail_count=count, last_fail=now,
                locked_until=_ceil_second(now + timedelta(seconds=delay)) if delay else None))
        return 0.0

    return await in_transaction(engine, attempt, path="throttle")


async def clear_keys(engine: AsyncEngine, keys: list[str]) -> None:
    """A successful login: its keys start again from nothing."""
    t = throttle_table()

    async def attempt(conn: AsyncConnection) -> None:
        await conn.execute(delete(t).where(t.c.id.in_(keys)))

    await in_transaction(engine, attempt, path="throttle")
