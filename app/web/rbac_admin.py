"""The RBAC admin page: roles × registered paths as a grid, and users ↔ roles.

Every change is one click (a CSRF-protected POST), one transaction in the RBAC database, an
audit row in the app database, and a dropped grant cache, so a revoked path stops working on
this worker at once and on the others within `rbac_cache_seconds`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy import delete, func, insert, or_, select

from app.auth import rbac
from app.core.context import ctx_of
from app.core.ids import new_id
from app.crud.rows import CrudError
from app.crud.store import audit
from app.web.views.common import actor_of
from app.web.render import render

PAGE = 100


def _module_of(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return ""
    return parts[1] if parts[0] == "api" and len(parts) > 1 else parts[0]


async def _roles(conn) -> list[dict[str, str]]:
    r = rbac.table("role")
    rows = (await conn.execute(select(r.c.id, r.c.orgtypeid, r.c.name).order_by(r.c.orgtypeid, r.c.name))).all()
    return [{"id": row.id, "key": rbac.role_key(row.orgtypeid, row.name)} for row in rows if row.name]


async def _audit(request: Request, action: str, table: str, row_id: str, detail: dict[str, Any]) -> None:
    ctx = ctx_of(request)
    async with ctx.db.begin() as conn:
        await audit(ctx, conn, actor_of(request), action, table, row_id, None, detail)


@dataclass(frozen=True)
class Link:
    """A link table the pages toggle with one click: a role and one other end (a path or a user).

    `column` is the other end's column in `table`, `field` the form field with its id, `end` its
    table and `shown` the column the audit row names; `ops` are the form's (add, remove) ops."""

    table: str
    column: str
    field: str
    end: str
    shown: str
    ops: tuple[str, str]
    missing: str


GRANT = Link("rolepermission", "permid", "perm_id", "permission", "path", ("grant", "revoke"), "no such role or path")
MEMBERSHIP = Link("userrole", "userid", "user_id", "users", "username", ("add", "remove"), "no such user or role")


async def toggle(request: Request, link: Link) -> tuple[Any, str, str, Any]:
    """Add (`ops[0]`) or remove (`ops[1]`) the link the form names, in one RBAC transaction, and drop
    the grant cache. Returns the form, the op, the role's key and the other end (path, username)."""
    form = await request.form()
    role_id, other_id, op = str(form.get("role_id", "")), str(form.get(link.field, "")), str(form.get("op", ""))
    if op not in link.ops:
        raise CrudError(400, f"op must be {link.ops[0]} or {link.ops[1]}")
    lt, end, r = rbac.table(link.table), rbac.table(link.end), rbac.table("role")
    async with ctx_of(request).rbac_db.begin() as conn:
        other = (await conn.execute(select(end.c[link.shown]).where(end.c.id == other_id))).first()
        role = (await conn.execute(select(r.c.orgtypeid, r.c.name).where(r.c.id == role_id))).first()
        if other is None or role is None:
            raise CrudError(404, link.missing)
        linked = (lt.c.roleid == role_id, lt.c[link.column] == other_id)
        if op == link.ops[1]:
            await conn.execute(delete(lt).where(*linked))
        elif (await conn.execute(select(func.count()).select_from(lt).where(*linked))).scalar_one() == 0:
            await conn.execute(insert(lt).values(id=new_id(), roleid=role_id, **{link.column: other_id}))
    rbac.invalidate()
    return form, op, rbac.role_key(role.orgtypeid, role.name), other[0]


@get("/rbac/grants", include_in_schema=False)
async def grants_page(request: Request) -> Template:
    q = request.query_params.get("q", "").strip()[:200]
    module = request.query_params.get("module", "").strip()[:64]
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    p, rp = rbac.table("permission"), rbac.table("rolepermission")
    async with ctx_of(request).rbac_db.connect() as conn:
        roles = await _roles(conn)
        paths = [(row.id, row.path) for row in (await conn.execute(select(p.c.id, p.c.path).order_by(p.c.path))).all()
                 if row.path]
        links = {(row.roleid, row.permid) for row in (await conn.execute(select(rp.c.roleid, rp.c.permid))).all()}
    modules = sorted({_module_of(path) for _, path in paths} - {""})
    shown = [(pid, path) for pid, path in paths
             if (not q or q.lower() in path.lower()) and (not module or _module_of(path) == module)]
    total = len(shown)
    shown = shown[(page - 1) * PAGE: page * PAGE]
    base = {"q": q, "module": module}
    return render(request, "rbac_grants.html", roles=roles, paths=shown, links=links, q=q, module=module,
                  modules=modules, total=total, page=page, pages=max(1, -(-total // PAGE)),
                  here="/rbac/grants?" + urlencode({**base, "page": page}),
                  page_url=lambda n: "/rbac/grants?" + urlencode({**base, "page": n}))


@post("/rbac/grants", include_in_schema=False)
async def change_grant(request: Request) -> Redirect:
    form, op, role, path = await toggle(request, GRANT)
    await _audit(request, op, "rolepermission", str(form.get("role_id", "")), {"role": role, "path": path})
    back = str(form.get("back", ""))
    return Redirect(path=back if back.startswith("/rbac/") else "/rbac/grants", status_code=303)


@get("/rbac/users", include_in_schema=False)
async def users_page(request: Request) -> Template:
    q = request.query_params.get("q", "").strip()[:200]
    u, ur = rbac.table("users"), rbac.table("userrole")
    async with ctx_of(request).rbac_db.connect() as conn:
        roles = await _roles(conn)
        stmt = select(u.c.id, u.c.username, u.c.user_status).order_by(u.c.username).limit(200)
        if q:
            stmt = stmt.where(or_(u.c.username.contains(q, autoescape=True)))
        users = (await conn.execute(stmt)).all()
        links = {(row.userid, row.roleid) for row in (await conn.execute(select(ur.c.userid, ur.c.roleid))).all()}
    return render(request, "rbac_users.html", users=users, roles=roles, links=links, q=q)


@post("/rbac/users", include_in_schema=False)
async def change_user_role(request: Request) -> Redirect:
    form, op, role, user = await toggle(request, MEMBERSHIP)
    await _audit(request, f"role_{op}", "userrole", str(form.get("user_id", "")), {"user": user, "role": role})
    return Redirect(path="/rbac/users", status_code=303)


@post("/rbac/roles", include_in_schema=False)
async def add_role(request: Request) -> Redirect:
    form = await request.form()
    key = str(form.get("key", "")).strip()
    orgtypeid, name = rbac.split_role_key(key)
    if not key or len(name) > 100 or len(orgtypeid) > 32 or not all(c.isalnum() or c in "._-" for c in key):
        raise CrudError(422, "invalid input", {"key": "a role key is orgtype.name (letters, digits, . _ -)"})
    r = rbac.table("role")
    async with ctx_of(request).rbac_db.begin() as conn:
        exists = (await conn.execute(select(r.c.id).where(r.c.orgtypeid == orgtypeid, r.c.name == name))).first()
        if exists is None:
            await conn.execute(insert(r).values(id=new_id(), orgtypeid=orgtypeid, name=name))
    await _audit(request, "role_create", "role", key, {"role": key})
    return Redirect(path="/rbac/grants", status_code=303)


handlers = [grants_page, change_grant, users_page, change_user_role, add_role]
