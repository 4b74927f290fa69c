"""Bulk actions on selected rows of a list: delete (after the same confirmation and under the same
rules as one row's delete), or set a choice field; one transaction each."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody
from litestar.response import Redirect, Response, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg
from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.rows import CrudError
from app.crud.store import change_row, delete_rows, write_transaction
from app.web.error_pages import denied_page
from app.web.errors import error_reply
from app.web.views.common import Route, actor_of, can
from app.web.views.delete import confirm_page, confirmed_delete

MAX_SELECTED = 1000


def bulk_fields(tv: TableView) -> list[str]:
    """Fields a bulk "set" may change: the writable choice fields."""
    return [n for n in tv.view["form_fields"] if tv.fields[n].choices]


def bulk_ops(tv: TableView) -> list[tuple[str, Any, Any]]:
    """The list's bulk menu: (op, field, choice); op is `delete` or `set:<field>:<value>`."""
    ops: list[tuple[str, Any, Any]] = [("delete", None, None)]
    for name in bulk_fields(tv):
        ops += [(f"set:{name}:{c.value}", tv.fields[name], c) for c in tv.fields[name].choices]
    return ops


async def apply_bulk(request: Request, tv: TableView, ids: list[str], action: str, value: str) -> int:
    """`delete`, or `set:<field>` to `value`, on every id or on none."""
    if not ids:
        raise CrudError(400, Msg('select at least one row'))
    if len(ids) > MAX_SELECTED:
        raise CrudError(400, Msg('at most {max_selected} rows at once', max_selected=MAX_SELECTED))
    actor = actor_of(request)
    if action == "delete":
        return await delete_rows(ctx_of(request), tv, ids, actor)
    name = action.removeprefix("set:")
    if not action.startswith("set:") or name not in bulk_fields(tv):
        raise CrudError(400, Msg('unknown bulk action'), {"action": action})
    async def work(conn: AsyncConnection) -> int:
        for row_id in ids:
            await change_row(ctx_of(request), conn, tv, row_id, {name: value}, actor, strict=False)
        return len(ids)

    return await write_transaction(ctx_of(request), work)


async def selected_rows(request: Request, tv: TableView, ids: list[str]) -> list[dict[str, Any]]:
    """The selected rows in the order chosen; an empty, oversized or stale selection is an error."""
    if not ids:
        raise CrudError(400, Msg('select at least one row'))
    if len(ids) > MAX_SELECTED:
        raise CrudError(400, Msg('at most {max_selected} rows at once', max_selected=MAX_SELECTED))
    async with ctx_of(request).db.connect() as conn:
        result = await conn.execute(select(tv.table).where(tv.table.c[tv.pk].in_(ids)))
        found = {str(row[tv.pk]): row for row in (dict(r._mapping) for r in result)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise CrudError(404, Msg('not found: {row_id}', row_id=missing[0]))
    return [found[i] for i in dict.fromkeys(ids)]


def bulk_page(route: Route) -> list[HTTPRouteHandler]:
    """The list's bulk form: a delete goes through its confirmation page first; the rest go back
    to the list with the count, or show the error as a page."""
    tv = route.table

    async def bulk(request: Request) -> Redirect | Response | Template:
        form = await request.form()
        ids = [str(v) for v in form.getall("ids")] if "ids" in form else []
        action, _, value = str(form.get("op", "")).rpartition(":") if ":" in str(form.get("op", "")) \
            else (str(form.get("op", "")), "", "")
        try:
            if action == "delete":
                if not can(request, f"{tv.base}/{{id}}/delete"):  # the bulk form is no way around a delete grant
                    return denied_page(request, missing=f"{tv.base}/{{id}}/delete")
                rows = await selected_rows(request, tv, ids)
                if form.get("confirm") != "1":
                    return await confirm_page(request, tv, rows, bulk=True)
                return await confirmed_delete(request, tv, rows, bulk=True)
            count = await apply_bulk(request, tv, ids, action, value)
        except CrudError as exc:
            return error_reply(request, exc.status, exc.message, exc.errors)
        return Redirect(path=f"{tv.base}?_done={count}", status_code=303)

    return [post(route.path, name=f"{tv.name}.bulk", include_in_schema=False)(bulk)]


def bulk_endpoint(route: Route) -> Callable[..., Awaitable[Any]]:
    """The JSON form of the same: `{"ids": [...], "action": ..., "value": ...}` → `{"count": n}`."""
    tv = route.table

    async def bulk_api(request: Request, data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        ids = data.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CrudError(422, Msg('invalid input'), {"ids": Msg('must be a list of ids')})
        count = await apply_bulk(request, tv, ids, str(data.get("action", "")), str(data.get("value", "")))
        return {"count": count}

    return bulk_api
