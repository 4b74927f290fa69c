"""The delete page of a row: a confirmation, then the delete (or the reason it was refused)."""
from __future__ import annotations

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.core.context import ctx_of
from app.crud.rows import CrudError
from app.crud.store import delete_rows
from app.web.render import render
from app.web.views.common import Route, actor_of, heading_of, row_or_404


def delete_page(route: Route) -> list[HTTPRouteHandler]:
    tv = route.table

    async def confirm(request: Request, id: FromPath[str]) -> Template:  # noqa: A002
        row = await row_or_404(ctx_of(request), tv, id)
        return render(request, "delete.html", tv=tv, row_id=id, heading=heading_of(tv, row))

    async def do_delete(request: Request, id: FromPath[str]) -> Template | Redirect:  # noqa: A002
        try:
            await delete_rows(ctx_of(request), tv, [id], actor_of(request))
        except CrudError as exc:
            if exc.status == 404:
                raise
            return render(
                request, "delete.html", status_code=exc.status, tv=tv, row_id=id, heading=id, form_error=exc.message
            )
        return Redirect(path=tv.base, status_code=303)

    return [
        get(route.path, name=f"{tv.name}.delete.get", include_in_schema=False)(confirm),
        post(route.path, name=f"{tv.name}.delete.post", include_in_schema=False)(do_delete),
    ]
