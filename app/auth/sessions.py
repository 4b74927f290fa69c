"""Login state kept in the app database, so every worker process and machine sees the same:
server-side sessions (`sessions`) and login throttling (`login_throttle`)."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.catalog import current_catalog

THROTTLE_FREE_FAILURES = 5          # consecutive failures before a key has to wait
THROTTLE_MAX_SECONDS = 15 * 60      # the wait doubles up to this cap: nobody is locked out for good
THROTTLE_FORGET = timedelta(days=1)  # failures older than this no longer count


def sessions_table() -> Table:
    return current_catalog().tables["sessions"].table


def throttle_table() -> Table:
    return current_catalog().tables["login_throttle"].table


def token_hash(token: str) -> str:
    """The row id of a session: SHA-256 of its token (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- sessions

@dataclass(frozen=True)
class Session:
    user_id: str
    username: str


async def create_session(engine: AsyncEngine, user_id: str, username: str, now: datetime, hours: float,
                         replaces: str | None = None) -> str:
    """A new session (a fresh token, never the old one) → its token. `replaces`, the token of
    the session the browser had, is ended first; expired rows are swept on the way."""
    s = sessions_table()
    token = secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        if replaces:
            await conn.execute(delete(s).where(s.c.id == token_hash(replaces)))
        await conn.execute(delete(s).where(s.c.expires_at < now))
        await conn.execute(insert(s).values(id=token_hash(token), user_id=user_id, username=username,
                                            created_at=now, expires_at=now + timedelta(hours=hours)))
    return token


async def lookup_session(engine: AsyncEngine, token: str, now: datetime) -> Session | None:
    s = sessions_table()
    if not token or len(token) > 256:
        return None
    async with engine.connect() as conn:
        row = (await conn.execute(select(s.c.user_id, s.c.username)
                                  .where(s.c.id == token_hash(token), s.c.expires_at > now))).first()
    return Session(row.user_id, row.username) if row else None


async def end_session(engine: AsyncEngine, token: str) -> None:
    s = sessions_table()
    async with engine.begin() as conn:
        await conn.execute(delete(s).where(s.c.id == token_hash(token)))


# ---------------------------------------------------------------- throttling

def throttle_key(kind: str, value: str) -> str:
    """`u:<username>` / `ip:<address>`; a value too long for the column is hashed."""
    key = f"{kind}:{value}"
    return key if len(key) <= 160 else f"{kind}:#{hashlib.sha256(value.encode()).hexdigest()}"


def throttle_delay(failures: int) -> float:
    """Seconds a key waits after `failures` consecutive failures: none for the first
    THROTTLE_FREE_FAILURES - 1, then 1, 2, 4 … capped at THROTTLE_MAX_SECONDS."""
    if failures < THROTTLE_FREE_FAILURES:
        return 0
    return min(2.0 ** min(failures - THROTTLE_FREE_FAILURES, 30), THROTTLE_MAX_SECONDS)


async def throttle_wait(engine: AsyncEngine, keys: list[str], now: datetime) -> float:
    """Seconds until every key may try again (0: go ahead)."""
    t = throttle_table()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(t.c.locked_until).where(t.c.id.in_(keys)))).all()
    waits = [(row.locked_until - now).total_seconds() for row in rows if row.locked_until]
    return max([0.0, *waits])


def _ceil_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0) + timedelta(seconds=1 if moment.microsecond else 0)


async def throttle_fail(engine: AsyncEngine, keys: list[str], now: datetime) -> None:
    """Count one more consecutive failure for each key and set when it may try again.

    `locked_until` is rounded up to a whole second: DATETIME columns drop fractions, and a
    truncated time would shorten the wait."""
    t = throttle_table()
    for key in keys:
        for _attempt in range(3):
            try:
                async with engine.begin() as conn:
                    row = (await conn.execute(select(t.c.fail_count, t.c.last_fail)
                                              .where(t.c.id == key).with_for_update())).first()
                    count = 1
                    if row and row.last_fail and now - row.last_fail < THROTTLE_FORGET:
                        count = (row.fail_count or 0) + 1
                    delay = throttle_delay(count)
                    until = _ceil_second(now + timedelta(seconds=delay)) if delay else None
                    values = {"fail_count": count, "last_fail": now, "locked_until": until}
                    if row:
                        await conn.execute(update(t).where(t.c.id == key).values(**values))
                    else:
                        await conn.execute(insert(t).values(id=key, **values))
                break
            except IntegrityError:  # another worker inserted the key first: count on its row
                continue


async def throttle_reset(engine: AsyncEngine, keys: list[str]) -> None:
    t = throttle_table()
    async with engine.begin() as conn:
        await conn.execute(delete(t).where(t.c.id.in_(keys)))
