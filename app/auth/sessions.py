"""Login state kept in the app database, so every worker process and machine sees the same:
server-side sessions (`sessions`) and login throttling (`login_throttle`). Every write is one
transaction, run again on a conflict (app.core.retry).

A session's row is read once per `session_cache_seconds` per worker, not on every request: a
session ended on another worker or machine (or by plain SQL) stops working within that time
everywhere; one ended here (logout, a new login, a password change) is forgotten at once."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.core.cache import TTLCache, engine_key
from app.core.catalog import current_catalog
from app.core.retry import in_transaction

SESSION_COOKIE = "pa_session"  # the browser cookie that carries a session's token


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
    expires_at: datetime


_cache = TTLCache()  # (engine, token hash) → Session | None


def _forget(engine: AsyncEngine, token: str) -> None:
    _cache.discard((engine_key(engine), token_hash(token)))


async def create_session(engine: AsyncEngine, user_id: str, username: str, now: datetime, hours: float,
                         replaces: str | None = None) -> str:
    """A new session (a fresh token, never the old one) → its token. `replaces`, the token of
    the session the browser had, is ended first; expired rows are swept on the way."""
    s = sessions_table()
    token = secrets.token_urlsafe(32)

    if replaces:
        _forget(engine, replaces)

    async def write(conn: AsyncConnection) -> None:
        if replaces:
            await conn.execute(delete(s).where(s.c.id == token_hash(replaces)))
        await conn.execute(delete(s).where(s.c.expires_at < now))
        await conn.execute(insert(s).values(id=token_hash(token), user_id=user_id, username=username,
                                            created_at=now, expires_at=now + timedelta(hours=hours)))

    await in_transaction(engine, write, path="session")
    return token


async def lookup_session(engine: AsyncEngine, token: str, now: datetime, ttl: float = 0) -> Session | None:
    """The live session of `token`, its row read at most once per `ttl` seconds in this worker
    (an unknown token's absence too); a cached session still ends at its `expires_at`."""
    s = sessions_table()
    if not token or len(token) > 256:
        return None
    key = token_hash(token)

    async def load() -> Session | None:
        async with engine.connect() as conn:
            row = (await conn.execute(select(s.c.user_id, s.c.username, s.c.expires_at)
                                      .where(s.c.id == key, s.c.expires_at > now))).first()
        return Session(row.user_id, row.username, row.expires_at) if row else None

    session = await _cache.get((engine_key(engine), key), load, ttl)
    return session if session is not None and session.expires_at > now else None


async def end_session(engine: AsyncEngine, token: str) -> None:
    s = sessions_table()
    _forget(engine, token)

    async def write(conn: AsyncConnection) -> None:
        await conn.execute(delete(s).where(s.c.id == token_hash(token)))

    await in_transaction(engine, write, path="session")


async def end_user_sessions(engine: AsyncEngine, user_id: str) -> int:
    """End every session of a user, on every worker and machine at once (the rows are the
    sessions): after a password change or reset, or when the user is disabled. This worker
    forgets every cached session (rare, and each costs one read to load again)."""
    s = sessions_table()
    _cache.clear()

    async def write(conn: AsyncConnection) -> int:
        return (await conn.execute(delete(s).where(s.c.user_id == user_id))).rowcount

    return await in_transaction(engine, write, path="session")
