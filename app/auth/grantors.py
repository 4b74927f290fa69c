"""Whom a refused user should ask: the active users who may change grants.

Those are the users whose roles open the grants form's write (`/rbac/grants/edit`, which
`/rbac/**` covers): they are the people who can actually fix a missing path, whatever the roles
are called in a shared RBAC database. Found from the same tables as every grant check, with the
ecosystem's wildcard role forms, and cached per worker: a 403 page must not cost a scan each time.
"""
from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import rbac
from app.auth.grants import grant_set
from app.core.cache import TTLCache

GRANTS_EDIT = "/rbac/grants/edit"
MAX_SHOWN = 5
_cache = TTLCache()


async def _load(engine: AsyncEngine) -> tuple[str, ...]:
    u, ur, r, rp, p = (rbac.table(n) for n in ("users", "userrole", "role", "rolepermission", "permission"))
    async with engine.connect() as conn:
        role_paths: dict[str, set[str]] = defaultdict(set)
        for row in await conn.execute(select(r.c.id, r.c.orgtypeid, r.c.name, p.c.path)
                                      .select_from(rp.join(r, r.c.id == rp.c.roleid).join(p, p.c.id == rp.c.permid))):
            if row.path:
                role_paths[rbac.role_key(row.orgtypeid, row.name, row.id)].add(row.path)
        users: dict[str, set[str]] = defaultdict(lambda: {"any", "logined"})
        for row in await conn.execute(select(u.c.username, r.c.id, r.c.orgtypeid, r.c.name)
                                      .select_from(u.join(ur, ur.c.userid == u.c.id).join(r, r.c.id == ur.c.roleid))
                                      .where(u.c.user_status == rbac.ACTIVE_STATUS).limit(20000)):
            users[row.username].add(rbac.role_key(row.orgtypeid, row.name, row.id))
    found = []
    for username in sorted(users):
        paths = {path for key in rbac.held_keys(users[username]) for path in role_paths.get(key, ())}
        if grant_set(tuple(sorted(paths))).allows(GRANTS_EDIT, GRANTS_EDIT):
            found.append(username)
    return tuple(found)


async def grant_admins(engine: AsyncEngine, ttl: float = 60) -> tuple[str, ...]:
    """Usernames of the active users who may change grants (sorted; every one, the page shows a few)."""
    return await _cache.get(("grantors", str(engine.url)), lambda: _load(engine), ttl)
