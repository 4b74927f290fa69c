"""Bulk actions on selected rows of a list: delete, or set a choice field; one transaction each."""
from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.params import JSONBody
from litestar.response import Redirect, Response

from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.store import CrudError, change_row, delete_rows
from app.web.errors import OPERATOR_ERRORS
from app.web.pages import _error_html, actor_of

MAX_SELECTED = 1000


def bulk_fields(tv: TableView) -> list[str]:
    """Fields a bulk "set" may change: the writable choice fields."""
    return [n for n in tv.view["form_fields"] if tv.fields[n].choices]


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


def bulk_handlers(tv: TableView) -> list:
    async def bulk(request: Request) -> Redirect | Response:
        form = await request.form()
        ids = [str(v) for v in form.getall("ids")] if "ids" in form else []
        action, _, value = str(form.get("op", "")).rpartition(":") if ":" in str(form.get("op", "")) \
            else (str(form.get("op", "")), "", "")
        try:
            count = await apply_bulk(request, tv, ids, action, value)
        except CrudError as exc:
            return Response(_error_html(exc), status_code=exc.status, media_type="text/html")
        return Redirect(path=f"{tv.base}?_done={count}", status_code=303)

    async def bulk_api(request: Request, data: JSONBody[dict[str, Any]]) -> dict[str, int]:
        ids = data.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CrudError(422, "invalid input", {"ids": "must be a list of ids"})
        count = await apply_bulk(request, tv, ids, str(data.get("action", "")), str(data.get("value", "")))
        return {"count": count}

    return [post(f"{tv.base}/bulk", name=f"{tv.name}.bulk", include_in_schema=False)(bulk),
            post(f"{tv.api}/bulk", operation_id=f"bulk_{tv.name}", responses=OPERATOR_ERRORS, tags=[tv.module],
                 summary=f"Delete or set a field on many rows of {tv.name}")(bulk_api)]
