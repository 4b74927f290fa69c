"""Users, day to day: find them, create them, reset a password, enable or disable, file them under
an organisation, give and take roles.

Permission paths: the list `/rbac/users`, one user's page `/rbac/users/{id}`; the writes each
have their own: roles `/rbac/users/edit` (the POST shares the list's address, so its handler names
its own path), `/rbac/users/new`, `/rbac/users/{id}/password`, `/rbac/users/{id}/status`,
`/rbac/users/{id}/org`. Acting on a user needs every path that user holds (nobody resets the
password of someone above them); a new password or a disabled account ends that user's sessions.
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from litestar import Request
from litestar.params import FromPath
from litestar.response import Redirect, Response
from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg
from app.auth import rbac
from app.auth.grants import PERMISSION_OPT
from app.auth.passwords import PasswordScheme
from app.auth.principal import principal_of
from app.auth.sessions import end_user_sessions
from app.core.context import ctx_of
from app.core.retry import in_transaction
from app.crud.rows import CrudError
from app.web.rbac_admin import messages
from app.web.rbac_admin.common import (MEMBERSHIP, admin_get, admin_post, field, record, require, role_key_of,
                                       role_paths, roles, toggle)
from app.web.render import render

USERS_EDIT = "/rbac/users/edit"
MIN_PASSWORD, MAX_PASSWORD = 8, 128
LIST_LIMIT = 200


def _list_url(q: str = "") -> str:
    return "/rbac/users" + ("?" + urlencode({"q": q}) if q else "")


def _user_url(request: Request, user_id: str) -> str:
    """Back to the user's page when the actor may open it, else to the list."""
    path = f"/rbac/users/{user_id}"
    return path if principal_of(request).allows(path, "/rbac/users/{id}") else _list_url()


async def _user(conn, user_id: str) -> Row | None:
    u = rbac.table("users")
    return (await conn.execute(select(u.c.id, u.c.username, u.c.user_status, u.c.orgid, u.c.created_at,
                                      u.c.last_login).where(u.c.id == user_id))).first()


def _password_problem(request: Request, password: str, again: str) -> str | None:
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        return messages.say(
            request, 'A password has {min_password}–{max_password} characters.',
            min_password=MIN_PASSWORD, max_password=MAX_PASSWORD)
    if password != again:
        return messages.say(request, 'The two passwords differ.')
    return None


async def _hash(request: Request, password: str) -> str:
    """The stored form in the configured scheme (argon2 takes ~50 ms: off the event loop)."""
    return await asyncio.to_thread(PasswordScheme.of(ctx_of(request).settings).hash, password)


@admin_get("/rbac/users")
async def users_page(request: Request) -> Response:
    q = request.query_params.get("q", "").strip()[:200]
    u, ur = rbac.table("users"), rbac.table("userrole")
    async with ctx_of(request).rbac_db.connect() as conn:
        found_roles = await roles(conn)
        stmt = select(u.c.id, u.c.username, u.c.user_status, u.c.orgid).order_by(u.c.username).limit(LIST_LIMIT)
        if q:
            stmt = stmt.where(u.c.username.contains(q, autoescape=True))
        users = (await conn.execute(stmt)).all()
        links = {(row.userid, row.roleid) for row in (await conn.execute(
            select(ur.c.userid, ur.c.roleid).where(ur.c.userid.in_([x.id for x in users] or [""])))).all()}
        orgs = await rbac.organizations(conn)
    principal = principal_of(request)
    response = render(
        request, "rbac_users.html", users=users, roles=found_roles, links=links, q=q, orgs=orgs,
        org_names=dict(orgs), limit=LIST_LIMIT, action=_list_url(q),
        default_org=ctx_of(request).settings.rbac_default_orgid,
        active=rbac.ACTIVE_STATUS, can_roles=principal.may_write(USERS_EDIT),
        can_create=principal.may_write("/rbac/users/new"),
        can_open=principal.allows("/rbac/users/x", "/rbac/users/{id}"), flash=messages.taken(request))
    return messages.shown(request, response)


@admin_post("/rbac/users", opt={PERMISSION_OPT: USERS_EDIT})
async def change_user_role(request: Request) -> Redirect:
    back = _list_url(request.query_params.get("q", "").strip()[:200])
    form = await request.form()
    if field(form, "back", 300).startswith("/rbac/users/"):
        back = field(form, "back", 300)
    change = await toggle(request, MEMBERSHIP, back)
    await record(request, f"role_{change.op}", "userrole", change.other_id, {"user": change.other, "role": change.role})
    who, role = change.other, change.role
    text = (messages.say(request, '{who} now has role {role}', who=who, role=role) if change.op == "add"
            else messages.say(request, 'Role {role} taken from {who}', role=role, who=who))
    return messages.back(request, back, text)


@admin_get("/rbac/users/{id:str}")
async def user_page(request: Request, id: FromPath[str]) -> Response:  # noqa: A002 - the route's {id}
    user_id = id
    ur = rbac.table("userrole")
    async with ctx_of(request).rbac_db.connect() as conn:
        user = await _user(conn, user_id)
        if user is None:
            raise CrudError(404, Msg('no such user'))
        found_roles = await roles(conn)
        held = set((await conn.execute(select(ur.c.roleid).where(ur.c.userid == user_id))).scalars())
        orgs = await rbac.organizations(conn)
    principal, base = principal_of(request), f"/rbac/users/{user_id}"
    response = render(
        request, "rbac_user.html", user=user, roles=found_roles, held=held, orgs=orgs, org_names=dict(orgs),
        active=user.user_status == rbac.ACTIVE_STATUS, me=principal.user_id == user.id,
        can_roles=principal.may_write(USERS_EDIT),
        **{f"can_{action}": principal.allows(f"{base}/{action}", f"/rbac/users/{{id}}/{action}")
           for action in ("password", "status", "org")},
        flash=messages.taken(request))
    return messages.shown(request, response)


@admin_post("/rbac/users/new")
async def create_user(request: Request) -> Redirect:
    """A new user with a password, an organisation and (optionally) a first role."""
    form = await request.form()
    username, orgid, role_id = field(form, "username"), field(form, "orgid", 32), field(form, "role_id", 64)
    password, again = str(form.get("password") or ""), str(form.get("password2") or "")
    problem = _password_problem(request, password, again)
    if not username or any(ord(c) < 32 or c.isspace() for c in username):
        problem = messages.say(request, 'A username is not empty and has no spaces or control characters.')
    if problem:
        return messages.back(request, _list_url(), problem, "error")
    hashed = await _hash(request, password)
    settings = ctx_of(request).settings
    orgid = orgid or settings.rbac_default_orgid

    async def write(conn: AsyncConnection) -> tuple[str | None, str]:
        key = await role_key_of(conn, role_id) if role_id else ""
        if key is None:
            raise CrudError(404, Msg('no such role'))
        if key:
            require(request, await role_paths(conn, key), _list_url())
        if orgid == settings.rbac_default_orgid:
            await rbac.ensure_org(conn, orgid, settings.rbac_default_orgname)
        elif not await rbac.has_org(conn, orgid):
            raise CrudError(404, Msg('no such organisation'))
        user_id = await rbac.create_user(conn, username, hashed, orgid)
        if user_id is not None and key:
            await rbac.link_role(conn, user_id, role_id)
        return user_id, key

    user_id, key = await in_transaction(ctx_of(request).rbac_db, write, path="rbac")
    if user_id is None:
        return messages.back(request, _list_url(), messages.say(
            request, 'The username {username} is taken.', username=username), "error")
    rbac.invalidate()
    await record(request, "user_create", "users", user_id, {"user": username, "org": orgid, "role": key or None})
    return messages.back(request, _list_url(username), messages.say(
        request, 'User {username} created.', username=username))


async def _act_on(request: Request, conn, user_id: str) -> Row:
    """The target user, after checking the actor holds every path that user holds."""
    user = await _user(conn, user_id)
    if user is None:
        raise CrudError(404, Msg('no such user'))
    require(request, await rbac.user_paths(conn, user_id), _user_url(request, user_id))
    return user


@admin_post("/rbac/users/{id:str}/password")
async def reset_password(request: Request, id: FromPath[str]) -> Redirect:  # noqa: A002 - the route's {id}
    user_id = id
    form = await request.form()
    password, again = str(form.get("password") or ""), str(form.get("password2") or "")
    problem = _password_problem(request, password, again)
    if problem:
        return messages.back(request, _user_url(request, user_id), problem, "error")
    hashed = await _hash(request, password)

    async def write(conn: AsyncConnection) -> Row:
        user = await _act_on(request, conn, user_id)
        await rbac.set_password(conn, user_id, hashed)
        return user

    user = await in_transaction(ctx_of(request).rbac_db, write, path="rbac")
    ended = await end_user_sessions(ctx_of(request).db, user_id)
    await record(request, "password_reset", "users", user_id, {"user": user.username, "sessions_ended": ended})
    return messages.back(request, _user_url(request, user_id), messages.say(
        request, 'Password of {username} reset; {ended} of their sessions ended.', username=user.username, ended=ended))


@admin_post("/rbac/users/{id:str}/status")
async def change_status(request: Request, id: FromPath[str]) -> Redirect:  # noqa: A002 - the route's {id}
    user_id = id
    form = await request.form()
    wanted = field(form, "status", 16)
    if wanted not in ("active", "disabled"):
        raise CrudError(400, Msg('status must be active or disabled'))
    if wanted == "disabled" and principal_of(request).user_id == user_id:
        return messages.back(request, _user_url(request, user_id), messages.say(
            request, 'You cannot disable your own account.'), "error")

    async def write(conn: AsyncConnection) -> Row:
        user = await _act_on(request, conn, user_id)
        await rbac.set_status(conn, user_id, wanted == "active")
        return user

    user = await in_transaction(ctx_of(request).rbac_db, write, path="rbac")
    rbac.invalidate()
    ended = await end_user_sessions(ctx_of(request).db, user_id) if wanted == "disabled" else 0
    await record(request, "user_enable" if wanted == "active" else "user_disable", "users", user_id,
                 {"user": user.username, "sessions_ended": ended})
    text = (messages.say(request, '{username} enabled.', username=user.username) if wanted == "active" else
            messages.say(
                request, '{username} disabled; {ended} of their sessions ended.', username=user.username, ended=ended))
    return messages.back(request, _user_url(request, user_id), text)


@admin_post("/rbac/users/{id:str}/org")
async def change_org(request: Request, id: FromPath[str]) -> Redirect:  # noqa: A002 - the route's {id}
    user_id = id
    form = await request.form()
    orgid = field(form, "orgid", 32)

    async def write(conn: AsyncConnection) -> Row:
        if not await rbac.has_org(conn, orgid):
            raise CrudError(404, Msg('no such organisation'))
        user = await _act_on(request, conn, user_id)
        await rbac.set_org(conn, user_id, orgid)
        return user

    user = await in_transaction(ctx_of(request).rbac_db, write, path="rbac")
    await record(request, "org_set", "users", user_id, {"user": user.username, "org": orgid, "was": user.orgid})
    return messages.back(request, _user_url(request, user_id), messages.say(
        request, '{username} now belongs to {orgid}.', username=user.username, orgid=orgid))


handlers = [users_page, change_user_role, create_user, user_page, reset_password, change_status, change_org]
