"""The roles × paths grid: see who holds what (directly or through a wildcard), grant and revoke
with one click, create roles, and apply a module's preset to a role.

Permission paths: the grid is `/rbac/grants`; changing a grant is `/rbac/grants/edit` (the POST
shares the page's address, so its handler names its own path); a new role `/rbac/roles`; a preset
`/rbac/presets`. Each change needs the paths it hands out held by the actor (`common.require`).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.response import Redirect, Response
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg
from app.auth import rbac
from app.auth.grants import PERMISSION_OPT, app_path_methods
from app.auth.principal import principal_of
from app.core.context import ctx_of
from app.core.ids import new_id
from app.core.retry import in_transaction
from app.crud.rows import CrudError
from app.web.rbac_admin import messages
from app.web.rbac_admin.common import (GRANT, admin_get, admin_post, field, record, require, role_key_of, roles,
                                       toggle)
from app.web.rbac_admin.grid import KIND_TITLES, KINDS, NONE, RoleGrants, groups, rows_of
from app.web.rbac_admin.presets import PRESETS, preset_paths
from app.web.render import render

PAGE = 100
GRANTS_EDIT = "/rbac/grants/edit"


def served_paths(request: Request) -> dict[str, frozenset[str]]:
    """The permission paths this app serves with their methods, worked out once per app."""
    state = request.app.state
    if "rbac_served_paths" not in state:
        state["rbac_served_paths"] = app_path_methods(request.app)
    return state["rbac_served_paths"]


def _module_names(request: Request) -> list[str]:
    return [m["name"] for m in ctx_of(request).catalog.modules]


def _int(value: Any, default: int = 1) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


async def _grid_data(request: Request) -> tuple[list[dict[str, str]], list[tuple[str, str]], dict[str, set[str]]]:
    """Roles, (permission id, path) pairs and each role id's granted paths, in one read."""
    p, rp = rbac.table("permission"), rbac.table("rolepermission")
    async with ctx_of(request).rbac_db.connect() as conn:
        found = await roles(conn)
        paths = [(row.id, row.path) for row in (await conn.execute(select(p.c.id, p.c.path))).all() if row.path]
        links = (await conn.execute(select(rp.c.roleid, p.c.path).select_from(rp.join(p, p.c.id == rp.c.permid)))).all()
    granted: dict[str, set[str]] = {}
    for row in links:
        granted.setdefault(row.roleid, set()).add(row.path)
    return found, paths, granted


@admin_get("/rbac/grants")
async def grants_page(request: Request) -> Response:
    params = request.query_params
    q, module, kind = (params.get(k, "").strip()[:200] for k in ("q", "module", "kind"))
    role_q = params.get("role", "").strip()[:100]
    page = _int(params.get("page"))
    all_roles, paths, granted = await _grid_data(request)
    by_key: dict[str, set[str]] = {}
    for r in all_roles:
        by_key.setdefault(r["key"], set()).update(granted.get(r["id"], ()))
    shown_roles = [r for r in all_roles if not role_q or role_q.lower() in r["key"].lower()]
    rows = rows_of(paths, served_paths(request), _module_names(request))
    modules = list(dict.fromkeys(r.module for r in rows if r.module))
    rows = [r for r in rows if (not q or q.lower() in r.path.lower()) and (not module or r.module == module)
            and (not kind or r.kind == kind)]
    total, pages = len(rows), max(1, -(-len(rows) // PAGE))
    rows = rows[(page - 1) * PAGE: page * PAGE]
    holders = {r["id"]: RoleGrants(r["key"], granted.get(r["id"], ()), by_key) for r in shown_roles}
    held = {(rid, row.id): g.holding(row.path) for rid, g in holders.items() for row in rows}
    base = {"q": q, "module": module, "kind": kind, "role": role_q}
    principal = principal_of(request)
    response = render(
        request, "rbac_grants.html", roles=shown_roles, all_roles=all_roles, groups=groups(rows),
        held=lambda rid, pid: held.get((rid, pid), NONE), q=q, module=module, kind=kind, role_q=role_q,
        modules=modules, kinds=KINDS, kind_titles=KIND_TITLES, presets=PRESETS, preset_modules=_module_names(request),
        total=total, page=page, pages=pages, here="/rbac/grants?" + urlencode({**base, "page": page}),
        page_url=lambda n: "/rbac/grants?" + urlencode({**base, "page": n}),
        can_grant=principal.may_write(GRANTS_EDIT), can_role=principal.may_write("/rbac/roles"),
        can_preset=principal.may_write("/rbac/presets"), flash=messages.taken(request))
    return messages.shown(request, response)


@admin_post("/rbac/grants", opt={PERMISSION_OPT: GRANTS_EDIT})
async def change_grant(request: Request) -> Redirect:
    form = await request.form()
    back = field(form, "back", 2000)
    change = await toggle(request, GRANT, back)
    await record(request, change.op, "rolepermission", change.role_id, {"role": change.role, "path": change.other})
    role, path = change.role, change.other
    text = (messages.say(request, 'Granted {path} to {role}', path=path, role=role) if change.op == "grant"
            else messages.say(request, 'Revoked {path} from {role}', path=path, role=role))
    return messages.back(request, back, text)


def _valid_role_key(key: str) -> bool:
    orgtypeid, name = rbac.split_role_key(key)
    return (bool(key) and len(name) <= 100 and len(orgtypeid) <= 32
            and all(c.isalnum() or c in "._-" for c in key))


@admin_post("/rbac/roles")
async def add_role(request: Request) -> Redirect:
    form = await request.form()
    key = field(form, "key", 200)
    if not _valid_role_key(key):
        raise CrudError(422, Msg('invalid input'), {"key": Msg('a role key is orgtype.name (letters, digits, . _ -)')})
    orgtypeid, name = rbac.split_role_key(key)
    r = rbac.table("role")

    async def write(conn: AsyncConnection) -> Any:
        found = (await conn.execute(select(r.c.id).where(r.c.orgtypeid == orgtypeid, r.c.name == name))).first()
        if found is None:
            await conn.execute(insert(r).values(id=new_id(), orgtypeid=orgtypeid, name=name))
        return found

    exists = await in_transaction(ctx_of(request).rbac_db, write, path="rbac")
    if exists is not None:
        return messages.back(request, "/rbac/grants", messages.say(
            request, 'Role {key} exists already.', key=key), "error")
    await record(request, "role_create", "role", key, {"role": key})
    return messages.back(request, "/rbac/grants?" + urlencode({"role": key}), messages.say(
        request, 'Role {key} created.', key=key))


@admin_post("/rbac/presets")
async def apply_preset(request: Request) -> Redirect:
    """A module's preset on a role: its missing permission rows and grants in one RBAC
    transaction, one audit row listing what it added."""
    form = await request.form()
    role_id, module, preset = field(form, "role_id", 64), field(form, "module", 64), field(form, "preset", 16)
    back = field(form, "back", 2000) or "/rbac/grants"
    if preset not in PRESETS or module not in _module_names(request):
        raise CrudError(422, Msg('invalid input'), {"preset": Msg('one of {presets}', presets=', '.join(PRESETS)),
                                               "module": Msg('a module of the app')})
    async with ctx_of(request).rbac_db.connect() as conn:
        key = await role_key_of(conn, role_id)
    if key is None:
        raise CrudError(404, Msg('no such role'))
    paths = preset_paths(preset, module, served_paths(request))
    require(request, paths, back)
    changes = await rbac.register_paths(ctx_of(request).rbac_db, [], {key: paths}, dry_run=False)
    added = [c.removeprefix("grant ").rsplit(" to ", 1)[0] for c in changes if c.startswith("grant ")]
    await record(request, "preset", "rolepermission", role_id,
                 {"role": key, "preset": preset, "module": module, "added": added})
    return messages.back(request, back, messages.say(request,
        'Preset {preset} of {module} applied to {key}: {added} new grants ({paths} in the preset).',
        preset=PRESETS[preset], module=module, key=key, added=len(added), paths=len(paths)))


handlers = [grants_page, change_grant, add_role, apply_preset]
