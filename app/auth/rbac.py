"""The shared RBAC database: users, roles, logins, and registering the app's paths.

Which path a grant opens is `app.auth.grants` (no database); its names used by the web and CLI
layers are re-exported here, so `rbac.<name>` stays their one entry to access control.

Tables are the ecosystem's (`models/rbac/*.json`), compiled into build/ by `./build.sh`; every
statement below is built from those `Table` objects with bound values.

Role keys are `orgtypeid.name` (`pipeline.admin`). The implicit roles `any`, `anonymous` and
`logined` have no org type: they are `role` rows with an empty `orgtypeid`, and their key is the
bare name.

Lookups (a user's status and roles; the grants of a role set) are cached per worker process for
`rbac_cache_seconds`; `invalidate()` drops the cache at once when this process changes a grant,
other workers follow within the cache time.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Table, func, insert, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.auth.grants import GrantSet as GrantSet
from app.auth.grants import app_paths as app_paths
from app.auth.grants import grant_set as grant_set
from app.auth.grants import path_matches as path_matches
from app.auth.grants import permission_path as permission_path
from app.auth.passwords import DEFAULT, PasswordScheme
from app.core.cache import TTLCache, engine_key
from app.core.catalog import current_catalog
from app.core.ids import new_id
from app.core.retry import in_transaction

IMPLICIT_ROLES = ("any", "anonymous", "logined")  # built-in roles, known by these literal ids
DEFAULT_ORG = ("pipeline-app", "Pipeline-App")  # (id, name) users are filed under unless told
ACTIVE_STATUS, DISABLED_STATUS = "0", "1"
"""`users.user_status`: the ecosystem's default "0" means active; "1" or anything else is disabled."""


# ---------------------------------------------------------------- tables

def table(name: str) -> Table:
    """An RBAC table, as build/ compiled it (`models/rbac`) and the catalog loaded it."""
    return current_catalog().rbac_table(name)


def role_key(orgtypeid: str | None, name: str, role_id: str | None = None) -> str:
    """A role row's key: a built-in role is known by its literal id (`any`, `anonymous`, `logined`)
    whatever its orgtypeid holds (`'0'`, `''` or NULL, as the ecosystem writes it); any other role
    by `orgtypeid.name`, or `name` alone when it has no orgtypeid."""
    if role_id in IMPLICIT_ROLES:
        return role_id
    return f"{orgtypeid}.{name}" if orgtypeid else name


def held_keys(keys: Iterable[str]) -> frozenset[str]:
    """The role keys a user's roles give them, with the ecosystem's wildcard forms: holding
    `pipeline.admin` also means holding `pipeline.*` and `*.admin`."""
    out = set(keys)
    for key in tuple(out):
        orgtypeid, name = split_role_key(key)
        if orgtypeid:
            out |= {f"{orgtypeid}.*", f"*.{name}"}
    return frozenset(out)


def split_role_key(key: str) -> tuple[str, str]:
    """`pipeline.admin` → (`pipeline`, `admin`); `any` → (``, `any`)."""
    orgtypeid, dot, name = key.partition(".")
    return (orgtypeid, name) if dot else ("", key)


# ---------------------------------------------------------------- cached lookups

_cache = TTLCache()


def invalidate() -> None:
    """Forget every cached role and grant in this process (call after changing a grant)."""
    _cache.clear()


@dataclass(frozen=True)
class UserInfo:
    username: str
    active: bool
    roles: frozenset[str]


async def user_info(engine: AsyncEngine, user_id: str, ttl: float) -> UserInfo | None:
    """A user's name, status and role keys: one query, cached."""
    async def load() -> UserInfo | None:
        u, ur, r = table("users"), table("userrole"), table("role")
        stmt = (select(u.c.username, u.c.user_status, r.c.id, r.c.orgtypeid, r.c.name)
                .select_from(u.outerjoin(ur, ur.c.userid == u.c.id).outerjoin(r, r.c.id == ur.c.roleid))
                .where(u.c.id == user_id))
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            return None
        roles = held_keys(role_key(row.orgtypeid, row.name, row.id) for row in rows if row.id)
        return UserInfo(rows[0].username, rows[0].user_status == ACTIVE_STATUS, roles)

    return await _cache.get(("user", engine_key(engine), user_id), load, ttl)


async def paths_of_roles(conn: AsyncConnection, roles: frozenset[str]) -> tuple[str, ...]:
    """Every permission path any of the role keys `roles` holds (wildcard forms included as given)."""
    rp, p, r = table("rolepermission"), table("permission"), table("role")
    names = sorted({split_role_key(k)[1] for k in roles})
    builtin = sorted(roles & set(IMPLICIT_ROLES))
    stmt = (select(r.c.id, r.c.orgtypeid, r.c.name, p.c.path)
            .select_from(rp.join(r, r.c.id == rp.c.roleid).join(p, p.c.id == rp.c.permid))
            .where(or_(r.c.name.in_(names), r.c.id.in_(builtin))))
    rows = (await conn.execute(stmt)).all()
    return tuple(sorted({row.path for row in rows if row.path and role_key(row.orgtypeid, row.name, row.id) in roles}))


async def grants_for(engine: AsyncEngine, roles: frozenset[str], ttl: float) -> tuple[str, ...]:
    """Every permission path any of `roles` holds: one query, cached per role set."""
    async def load() -> tuple[str, ...]:
        async with engine.connect() as conn:
            return await paths_of_roles(conn, roles)

    return await _cache.get(("grants", engine_key(engine), roles), load, ttl)


# ---------------------------------------------------------------- login support

ECOSYSTEM_LOCK = (3, timedelta(minutes=5))  # the other apps lock an account 5 minutes after 3 failures


@dataclass(frozen=True)
class LoginRecord:
    user_id: str
    username: str
    password_hash: str | None
    active: bool
    fail_count: int = 0
    last_fail: datetime | None = None

    def locked_by_platform(self, now: datetime) -> bool:
        """Has the ecosystem locked this account (its own counter, on a shared database)?"""
        failures, period = ECOSYSTEM_LOCK
        return self.fail_count >= failures and self.last_fail is not None and now - self.last_fail < period


async def login_record(engine: AsyncEngine, username: str) -> LoginRecord | None:
    """The one place the password column is read: for the verify step, nothing else."""
    u = table("users")
    async with engine.connect() as conn:
        row = (await conn.execute(select(u.c.id, u.c.username, u.c.password, u.c.user_status,
                                         u.c.login_fail_count, u.c.last_login_fail)
                                  .where(u.c.username == username))).first()
    if row is None:
        return None
    return LoginRecord(row.id, row.username, row.password, row.user_status == ACTIVE_STATUS,
                       int(row.login_fail_count or 0), row.last_login_fail)


async def record_login(engine: AsyncEngine, user_id: str, ok: bool, now: datetime) -> None:
    """Success: `last_login`, failure count back to 0. Failure: count up, `last_login_fail`."""
    u = table("users")
    values = ({"last_login": now, "login_fail_count": 0} if ok else
              {"login_fail_count": func.coalesce(u.c.login_fail_count, 0) + 1, "last_login_fail": now})

    async def write(conn: AsyncConnection) -> None:
        await conn.execute(update(u).where(u.c.id == user_id).values(**values))

    await in_transaction(engine, write, path="rbac")


# ---------------------------------------------------------------- administration

def _ensure_sqlite_dir(engine: AsyncEngine) -> None:
    if engine.url.get_backend_name() == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)


async def ensure_rbac_schema(engine: AsyncEngine) -> None:
    """Create the RBAC tables that are missing (existing ones are left as they are); seed nothing."""
    _ensure_sqlite_dir(engine)
    metadata = current_catalog().rbac_metadata
    tables = [t for t in metadata.sorted_tables if not t.info.get("stub")]
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: metadata.create_all(sync, tables=tables, checkfirst=True))


async def _role_ids(conn: AsyncConnection) -> dict[str, str]:
    """Role key → id (the oldest row when the shared database holds duplicates)."""
    r = table("role")
    ids: dict[str, str] = {}
    for row in (await conn.execute(select(r.c.id, r.c.orgtypeid, r.c.name).order_by(r.c.id))).all():
        if row.name or row.id in IMPLICIT_ROLES:
            ids.setdefault(role_key(row.orgtypeid, row.name, row.id), row.id)
    return ids


def new_role(key: str) -> dict[str, str]:
    """The row of a role we create: a built-in one with its literal id (and the ecosystem's
    orgtypeid '0'), so the platform's other apps recognise it; any other with a new id."""
    if key in IMPLICIT_ROLES:
        return {"id": key, "orgtypeid": "0", "name": key}
    orgtypeid, name = split_role_key(key)
    return {"id": new_id(), "orgtypeid": orgtypeid, "name": name}


async def _ensure_role(conn: AsyncConnection, key: str) -> str:
    found = (await _role_ids(conn)).get(key)
    if found:
        return found
    row = new_role(key)
    await conn.execute(insert(table("role")).values(**row))
    return row["id"]


async def has_org(conn: AsyncConnection, orgid: str) -> bool:
    o = table("organization")
    return (await conn.execute(select(o.c.id).where(o.c.id == orgid))).first() is not None


async def ensure_org(conn: AsyncConnection, orgid: str, name: str) -> None:
    """The organisation users are filed under (`users.orgid`), created when missing."""
    if not await has_org(conn, orgid):
        await conn.execute(insert(table("organization")).values(id=orgid, orgname=name))


async def _insert_user(conn: AsyncConnection, username: str, hashed: str, orgid: str) -> str:
    user_id = new_id()
    await conn.execute(insert(table("users")).values(
        id=user_id, username=username, password=hashed, user_status=ACTIVE_STATUS, orgid=orgid,
        created_at=date.today(), login_fail_count=0))
    return user_id


async def link_role(conn: AsyncConnection, user_id: str, role_id: str) -> None:
    """Give the user the role (no duplicate link)."""
    ur = table("userrole")
    if (await conn.execute(select(ur.c.id).where(ur.c.userid == user_id, ur.c.roleid == role_id))).first() is None:
        await conn.execute(insert(ur).values(id=new_id(), userid=user_id, roleid=role_id))


async def has_users(engine: AsyncEngine) -> bool:
    u = table("users")
    async with engine.connect() as conn:
        return (await conn.execute(select(u.c.id).limit(1))).first() is not None


async def add_user(engine: AsyncEngine, username: str, password: str, role: str, *,
                   scheme: PasswordScheme = DEFAULT, org: tuple[str, str] = DEFAULT_ORG) -> tuple[str, bool]:
    """Create user `username` with `password` and link it to role `role` (made if missing), in
    organisation `org` = (id, name) (made if missing). The password is written in `scheme`'s
    format, so on a shared database every app of the platform accepts it.

    An existing user gets the new password and the role link (no duplicate link); the caller
    ends its sessions (`sessions.end_user_sessions`). Returns (user id, whether it was created)."""
    if not username or not password:
        raise ValueError("username and password must not be empty")
    hashed = scheme.hash(password)
    u = table("users")

    async def write(conn: AsyncConnection) -> tuple[str, bool]:
        role_id = await _ensure_role(conn, role)
        row = (await conn.execute(select(u.c.id).where(u.c.username == username))).first()
        if row is None:
            await ensure_org(conn, *org)
            user_id = await _insert_user(conn, username, hashed, org[0])
        else:
            user_id = row.id
            await conn.execute(update(u).where(u.c.id == user_id).values(password=hashed))
        await link_role(conn, user_id, role_id)
        return user_id, row is None

    done = await in_transaction(engine, write, path="rbac")
    invalidate()
    return done


async def registered_paths(engine: AsyncEngine) -> list[str]:
    """Every permission path in the RBAC database, sorted."""
    p = table("permission")
    async with engine.connect() as conn:
        return sorted(path for path in (await conn.execute(select(p.c.path))).scalars() if path)


async def register_paths(engine: AsyncEngine, paths: Iterable[str], defaults: dict[str, list[str]],
                         dry_run: bool) -> list[str]:
    """Insert the missing `permission` rows (every served path and every default grant path) and
    the default grants (`{role key: [grant paths]}`), making missing roles. Idempotent.
    Returns the changes, one line each; with `dry_run` nothing is written."""
    p, rp, r = table("permission"), table("rolepermission"), table("role")
    wanted = sorted(set(paths) | {g for grants in defaults.values() for g in grants})

    async def work(conn: AsyncConnection) -> list[str]:  # a dry run writes nothing: its commit is empty
        changes: list[str] = []
        present = await conn.run_sync(lambda sync: inspect(sync).has_table("permission"))
        perms: dict[str, str] = {}
        roles: dict[str, str] = {}
        links: set[tuple[str, str]] = set()
        if present:
            perms = {row.path: row.id for row in (await conn.execute(select(p.c.path, p.c.id))).all()
                     if row.path}
            roles = await _role_ids(conn)
            links = {(row.roleid, row.permid)
                     for row in (await conn.execute(select(rp.c.roleid, rp.c.permid))).all()}
        for path in wanted:
            if path not in perms:
                changes.append(f"add permission {path}")
                perms[path] = new_id()
                if not dry_run:
                    await conn.execute(insert(p).values(id=perms[path], name=path, path=path,
                                                        permtype="path"))
        for key in sorted(defaults):
            if key not in roles:
                changes.append(f"add role {key}")
                row = new_role(key)
                roles[key] = row["id"]
                if not dry_run:
                    await conn.execute(insert(r).values(**row))
            for grant in defaults[key]:
                link = (roles[key], perms[grant])
                if link not in links:
                    changes.append(f"grant {grant} to {key}")
                    links.add(link)
                    if not dry_run:
                        await conn.execute(insert(rp).values(id=new_id(), roleid=link[0], permid=link[1]))
        return changes

    changes = await in_transaction(engine, work, path="rbac")
    if changes and not dry_run:
        invalidate()
    return changes


# ---------------------------------------------------------------- user administration (the admin pages)
# Each takes the caller's connection, so the checks of an admin action and its write are one
# transaction; the caller commits, then calls `invalidate()`.

async def create_user(conn: AsyncConnection, username: str, hashed: str, orgid: str) -> str | None:
    """A new active user with the already hashed password in organisation `orgid` → its id; None
    when the name is taken (as the database's collation compares names)."""
    u = table("users")
    if (await conn.execute(select(u.c.id).where(u.c.username == username))).first() is not None:
        return None
    return await _insert_user(conn, username, hashed, orgid)


async def _set_user(conn: AsyncConnection, user_id: str, **values: object) -> bool:
    u = table("users")
    return (await conn.execute(update(u).where(u.c.id == user_id).values(**values))).rowcount > 0


async def set_password(conn: AsyncConnection, user_id: str, hashed: str) -> bool:
    """A new (already hashed) password; the caller ends the user's sessions. False: no such user."""
    return await _set_user(conn, user_id, password=hashed)


async def set_status(conn: AsyncConnection, user_id: str, active: bool) -> bool:
    """Enable ("0") or disable ("1") a user; a disabled user's sessions are the caller's to end."""
    return await _set_user(conn, user_id, user_status=ACTIVE_STATUS if active else DISABLED_STATUS)


async def set_org(conn: AsyncConnection, user_id: str, orgid: str) -> bool:
    """File the user under organisation `orgid` (which must exist: see `organizations`)."""
    return await _set_user(conn, user_id, orgid=orgid)


async def organizations(conn: AsyncConnection, limit: int = 1000) -> list[tuple[str, str]]:
    """(id, name) of the organisations users can be filed under, by name."""
    o = table("organization")
    rows = (await conn.execute(select(o.c.id, o.c.orgname).order_by(o.c.orgname, o.c.id).limit(limit))).all()
    return [(row.id, row.orgname or row.id) for row in rows]


async def user_paths(conn: AsyncConnection, user_id: str) -> tuple[str, ...]:
    """Every permission path a user's roles give them (with `any`, `logined` and the wildcard
    forms): what an admin must hold themselves to act on this user."""
    ur, r = table("userrole"), table("role")
    rows = (await conn.execute(select(r.c.id, r.c.orgtypeid, r.c.name)
                               .select_from(ur.join(r, r.c.id == ur.c.roleid)).where(ur.c.userid == user_id))).all()
    keys = held_keys({"any", "logined", *(role_key(row.orgtypeid, row.name, row.id) for row in rows)})
    return await paths_of_roles(conn, keys)
