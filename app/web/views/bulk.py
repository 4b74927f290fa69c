"""Bulk actions on selected rows of a list: delete, or set a choice field; one transaction each."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody
from litestar.response import Redirect, Response

from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.rows import CrudError
from app.crud.store import change_row, delete_rows
from app.web.views.common import Route, actor_of, error_page

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
        raise CrudError(400, "select at least one row")
    if len(ids) > MAX_SELECTED:
        raise CrudError(400, f"at most {MAX_SELECTED} rows at once")
    actor = actor_of(request)
    if action == "delete":
        return await delete_rows(ctx_of(request), tv, ids, actor)
    name = action.removeprefix("set:")
    if not action.startswith("set:") or name not in bulk_fields(tv):
        raise CrudError(400, "unknown bulk action", {"action": action})
    async with ctx_of(request).db.begin() as conn:
        for row_id in ids:
            await change_row(ctx_of(request), conn, tv, row_id, {name: value}, actor, strict=False)
    return len(ids)


def bulk_page(route: Route) -> list[HTTPRouteHandler]:
    """The list's bulk form: back to the list with the count, or the error as a page."""
    tv = route.table

    async def bulk(request: Request) -> Redirect | Response:
        form = await request.form()
        ids = [str(v) for v in form.getall("ids")] if "ids" in form else []
        action, _, value = str(form.get("op", "")).rpartition(":") if ":" in str(form.get("op", "")) \
            else (str(form.get("op", "")), "", "")
        try:
            count = await apply_bulk(request, tv, ids, action, value)
        except CrudError as exc:
            return error_page(exc)
        return Redirect(path=f"{tv.base}?_done={count}", status_code=303)

    return [post(route.path, name=f"{tv.name}.bulk", include_in_schema=False)(bulk)]


def bulk_endpoint(route: Route) -> Callable[..., Awaitable[Any]]:
    """The JSON form of the same: `{"ids": [...], "action": ..., "value": ...}` → `{"count": n}`."""
    tv = route.table

    async def bulk_api(request: Request, data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        ids = data.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CrudError(422, "invalid input", {"ids": "must be a list of ids"})
        count = await apply_bulk(request, tv, ids, str(data.get("action", "")), str(data.get("value", "")))
        return {"count": count}

    return bulk_api
