"""What every RBAC admin action shares: the routes' decorators, the holder check, the audit row,
and the one-click link toggle (a role and a path, a user and a role).

The holder check: nobody hands out what they do not hold. Granting (or revoking) a path needs the
path; giving (or taking) a role needs every path that role gives (with its wildcard forms); acting
on a user (password, status, organisation) needs every path that user holds. It runs inside the
action's RBAC transaction, so what it judged is what is written.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from litestar import Request, get, post
from litestar.response import Response
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg
from app.auth import rbac
from app.auth.principal import principal_of
from app.core.context import ctx_of
from app.core.ids import new_id
from app.core.retry import in_transaction
from app.crud.rows import CrudError
from app.crud.store import audit, write_transaction
from app.web.render import render
from app.web.views.common import actor_of


class Refused(Exception):
    """The actor lacks paths the action would hand out (or hold over someone)."""

    def __init__(self, missing: list[str], back: str):
        super().__init__(", ".join(missing))
        self.missing, self.back = missing, back


def _refused_page(request: Request, exc: Refused) -> Response:
    return render(request, "rbac_refused.html", status_code=403, missing=exc.missing[:50],
                  more=max(0, len(exc.missing) - 50), back=exc.back)


admin_get = partial(get, include_in_schema=False)
admin_post = partial(post, include_in_schema=False, exception_handlers={Refused: _refused_page})
"""Every admin write answers a refusal with the page naming the paths the actor lacks (403)."""


def require(request: Request, needed: list[str] | tuple[str, ...], back: str) -> None:
    """Raise `Refused` unless the actor holds every path of `needed`."""
    missing = principal_of(request).missing(needed)
    if missing:
        raise Refused(missing, back)


async def role_paths(conn: AsyncConnection, key: str) -> tuple[str, ...]:
    """Every path a user gains with role `key` (its wildcard forms `orgtypeid.*`, `*.name` too)."""
    return await rbac.paths_of_roles(conn, rbac.held_keys({key}))


async def role_key_of(conn: AsyncConnection, role_id: str) -> str | None:
    """The key of role row `role_id`, or None when there is no such role."""
    r = rbac.table("role")
    row = (await conn.execute(select(r.c.orgtypeid, r.c.name).where(r.c.id == role_id))).first()
    return None if row is None else rbac.role_key(row.orgtypeid, row.name, role_id)


async def roles(conn: AsyncConnection) -> list[dict[str, str]]:
    """Every role as {id, key}, by key."""
    r = rbac.table("role")
    rows = (await conn.execute(select(r.c.id, r.c.orgtypeid, r.c.name))).all()
    found = [{"id": row.id, "key": rbac.role_key(row.orgtypeid, row.name, row.id)} for row in rows
             if row.name or row.id in rbac.IMPLICIT_ROLES]
    return sorted(found, key=lambda x: x["key"])


async def record(request: Request, action: str, table: str, row_id: str, detail: dict[str, Any]) -> None:
    """The audit row of an admin action (app database), after its RBAC transaction committed."""
    ctx = ctx_of(request)
    await write_transaction(ctx, lambda conn: audit(ctx, conn, actor_of(request), action, table, row_id, None, detail))


def field(form: Any, name: str, limit: int = 255) -> str:
    """A form field as stripped text, at most `limit` characters."""
    return str(form.get(name) or "").strip()[:limit]


@dataclass(frozen=True)
class Link:
    """A link table the pages toggle with one click: a role and one other end (a path or a user).

    `column` is the other end's column in `table`, `field` the form field with its id, `end` its
    table and `shown` the column the audit row names; `ops` are the form's (add, remove) ops;
    `needs` the paths the actor must hold to change the link (given the role key and the end)."""

    table: str
    column: str
    field: str
    end: str
    shown: str
    ops: tuple[str, str]
    missing: str
    needs: Callable[[AsyncConnection, str, str], Awaitable[tuple[str, ...]]]


async def _path_itself(_conn: AsyncConnection, _role: str, path: str) -> tuple[str, ...]:
    return (path,)


async def _paths_of_role(conn: AsyncConnection, role: str, _user: str) -> tuple[str, ...]:
    return await role_paths(conn, role)


GRANT = Link("rolepermission", "permid", "perm_id", "permission", "path", ("grant", "revoke"),
             "no such role or path", _path_itself)
MEMBERSHIP = Link("userrole", "userid", "user_id", "users", "username", ("add", "remove"),
                  "no such user or role", _paths_of_role)


@dataclass(frozen=True)
class Change:
    """A toggle done: the op, the role's id and key, and the other end's id and shown value."""

    op: str
    role_id: str
    role: str
    other_id: str
    other: str


async def toggle(request: Request, link: Link, back: str) -> Change:
    """Add (`ops[0]`) or remove (`ops[1]`) the link the form names, in one RBAC transaction that
    also checks the actor holds what the link hands out, and drop the grant cache."""
    form = await request.form()
    role_id, other_id, op = field(form, "role_id", 64), field(form, link.field, 64), field(form, "op", 16)
    if op not in link.ops:
        raise CrudError(400, Msg('op must be {one} or {other}', one=link.ops[0], other=link.ops[1]))
    lt, end = rbac.table(link.table), rbac.table(link.end)

    async def write(conn: AsyncConnection) -> tuple[Any, str]:
        other = (await conn.execute(select(end.c[link.shown]).where(end.c.id == other_id))).first()
        key = await role_key_of(conn, role_id)
        if other is None or key is None:
            raise CrudError(404, link.missing)
        require(request, await link.needs(conn, key, other[0]), back)
        linked = (lt.c.roleid == role_id, lt.c[link.column] == other_id)
        if op == link.ops[1]:
            await conn.execute(delete(lt).where(*linked))
        elif (await conn.execute(select(func.count()).select_from(lt).where(*linked))).scalar_one() == 0:
            await conn.execute(insert(lt).values(id=new_id(), roleid=role_id, **{link.column: other_id}))
        return other, key

    other, key = await in_transaction(ctx_of(request).rbac_db, write, path="rbac")
    rbac.invalidate()
    return Change(op, role_id, key, other_id, other[0])
