"""Distributor API keys as a service: issue (generate / rotate), revoke and verify.

Used by the record-page actions, the `pipeline-app dist genkey` command and the distributor
API. The key itself exists only in the return value of `issue_key`; the table keeps its HMAC
(`modules.pipeline_dist.key_format.key_hash` with `settings.key_secret`) and a display prefix. Rotation keeps exactly
one previous key alive for a grace period so clients can switch without an outage; a leak is
handled with grace 0 or a revoke, both immediate. Every change writes an audit row in the same
transaction; the audit drops the view's confidential fields (both hashes).
"""
from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.catalog import current_catalog
from app.core.clock import utcnow
from app.core.config import Settings
from app.crud.rows import Actor, CrudError
from app.crud.store import audit, get_row, write_transaction
from modules.pipeline_dist.activity import CURRENT, PREVIOUS
from modules.pipeline_dist.key_format import display_prefix, generate_key, key_hash, well_formed

MAX_GRACE_HOURS = 24 * 30


def grace_of(settings: Settings, raw: Any) -> float:
    """The rotation grace in hours: the request's `grace_hours` (0 = at once, for a leak) or the setting."""
    if raw is None or raw == "":
        return float(settings.key_grace_hours)
    try:
        if isinstance(raw, bool):
            raise InvalidOperation
        hours = Decimal(str(raw).strip())
    except InvalidOperation:
        raise CrudError(422, "invalid input", {"grace_hours": "must be a number of hours"}) from None
    if not hours.is_finite() or not 0 <= hours <= MAX_GRACE_HOURS:
        raise CrudError(422, "invalid input", {"grace_hours": f"must be between 0 and {MAX_GRACE_HOURS}"})
    return float(hours)


async def _locked(conn: AsyncConnection, tv: Any, distributor_id: str) -> dict[str, Any]:
    """The distributor row, locked for this transaction (two operators clicking at once → one wins)."""
    t = tv.table
    row = (await conn.execute(select(t).where(t.c.id == distributor_id).with_for_update())).first()
    if row is None:
        raise CrudError(404, "not found")
    return dict(row._mapping)


async def issue_key(ctx: Any, actor: Actor, distributor_id: str, *, rotate: bool = False,
                    grace_hours: float | None = None) -> tuple[str, dict[str, Any]]:
    """A new key for the distributor → (key, row after). The only place a key is ever seen.

    generate: refused (409) when a key exists — replacing one silently would cut a live client off.
    rotate: the current hash moves to prev_key_hash, valid until now + grace (none at grace 0).
    """
    tv = ctx.catalog.tables["distributors"]
    key, now = generate_key(), utcnow()

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        before = await _locked(conn, tv, distributor_id)
        if before["api_key_hash"] is not None and not rotate:
            raise CrudError(409, "this distributor already has a key: rotate it instead")
        if before["api_key_hash"] is None and rotate:
            raise CrudError(409, "this distributor has no key to rotate: generate one")
        values: dict[str, Any] = {
            "api_key_hash": key_hash(key, ctx.settings.key_secret), "api_key_prefix": display_prefix(key),
            "key_created_at": now, "key_expires_at": None, "prev_key_hash": None, "prev_key_expires_at": None,
            "key_last_used_at": None, "key_last_used_ip": None, "prev_key_last_used_at": None,
            "prev_key_last_used_ip": None, "updated_at": now,
        }
        grace = grace_of(ctx.settings, grace_hours) if rotate else 0
        if grace > 0:
            until = now + timedelta(seconds=round(grace * 3600))  # whole seconds, as the column stores
            if before["key_expires_at"] is not None:
                until = min(until, before["key_expires_at"])  # grace never extends a key's own expiry
            values |= {"prev_key_hash": before["api_key_hash"], "prev_key_expires_at": until,
                       "prev_key_last_used_at": before["key_last_used_at"],
                       "prev_key_last_used_ip": before["key_last_used_ip"]}
        await conn.execute(update(tv.table).where(tv.table.c.id == distributor_id).values(**values))
        after = await get_row(ctx, tv, distributor_id, conn)
        action = "rotate_key" if rotate else "generate_key"
        await audit(ctx, conn, actor, action, tv, distributor_id, before, after)
        return after

    return key, await write_transaction(ctx, write)


async def revoke_key(ctx: Any, actor: Actor, distributor_id: str) -> dict[str, Any]:
    """Current and previous key stop working at once; the distributor row stays."""
    tv = ctx.catalog.tables["distributors"]

    async def write(conn: AsyncConnection) -> dict[str, Any]:
        before = await _locked(conn, tv, distributor_id)
        if before["api_key_hash"] is None and before["prev_key_hash"] is None:
            raise CrudError(409, "this distributor has no key to revoke")
        await conn.execute(update(tv.table).where(tv.table.c.id == distributor_id).values(
            api_key_hash=None, api_key_prefix=None, key_created_at=None, key_expires_at=None,
            prev_key_hash=None, prev_key_expires_at=None, prev_key_last_used_at=None, prev_key_last_used_ip=None,
            updated_at=utcnow()))
        after = await get_row(ctx, tv, distributor_id, conn)
        await audit(ctx, conn, actor, "revoke_key", tv, distributor_id, before, after)
        return after

    return await write_transaction(ctx, write)


async def distributor_id_by_name(ctx: Any, name: str) -> str | None:
    t = ctx.catalog.tables["distributors"].table
    async with ctx.db.connect() as conn:
        return (await conn.execute(select(t.c.id).where(t.c.name == name))).scalar()


def _distributors() -> Table:
    """The distributors table of the catalog this process loaded, for `verify_key`, whose callers
    have settings but no catalog."""
    return current_catalog().tables["distributors"].table


async def verify_key(conn: AsyncConnection, settings: Settings, key: str, *,
                     now: datetime | None = None) -> dict[str, Any] | None:
    """The distributor a key belongs to, or None: unknown, revoked, expired, past its grace, or
    the distributor is not active. A malformed key (typo, wrong checksum) costs no query. The row
    comes with `key_slot`: which of its keys matched (`activity.CURRENT` or `PREVIOUS`).

    The lookup is by hash (indexed, current or previous); the match is then confirmed with
    `hmac.compare_digest`. `now` (naive UTC) is for tests.
    """
    if not isinstance(key, str) or not well_formed(key):
        return None
    digest, now = key_hash(key, settings.key_secret), now or utcnow()
    t = _distributors()
    found = (await conn.execute(select(t).where(or_(t.c.api_key_hash == digest, t.c.prev_key_hash == digest))
                                .limit(2))).all()
    for r in found:
        row = dict(r._mapping)
        current = row["api_key_hash"] is not None and hmac.compare_digest(row["api_key_hash"], digest) \
            and (row["key_expires_at"] is None or now < row["key_expires_at"])
        previous = row["prev_key_hash"] is not None and hmac.compare_digest(row["prev_key_hash"], digest) \
            and row["prev_key_expires_at"] is not None and now < row["prev_key_expires_at"]
        if (current or previous) and row["status"] == "active":
            return {**row, "key_slot": CURRENT if current else PREVIOUS}
    return None
