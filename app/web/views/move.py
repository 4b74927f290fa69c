"""Moving a row up or down its group (a step within its pipeline): a button on the parent's
page and a JSON operation, both renumbering in one transaction (app/crud/ordering.py)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Response

from app.core.context import ctx_of
from app.crud.ordering import move_row, position
from app.crud.rows import public
from app.web.notices import notice_redirect
from app.web.ui import lang_of
from app.web.views.common import Route, actor_of, heading_of
from app.web.views.parents import parent_of


def move_page(route: Route) -> list[HTTPRouteHandler]:
    """The form button: back to where the row is shown (its parent's page), with a message."""
    tv = route.table

    async def move(request: Request, id: FromPath[str]) -> Redirect:  # noqa: A002 - the route's name
        form = await request.form()
        row = await move_row(ctx_of(request), tv, id, position(dict(form)), actor_of(request))
        parent = parent_of(request, tv, row)
        back = f"{parent.href}#row-{row[tv.pk]}" if parent else tv.base
        return notice_redirect(request, back, "moved", table=tv.title(lang_of(request)), name=heading_of(tv, row),
                               position=row[tv.view["ordering"]["field"]])

    return [post(route.path, name=f"{tv.name}.move", include_in_schema=False)(move)]


def move_endpoint(route: Route) -> Callable[..., Awaitable[Response]]:
    """JSON: `{"dir": "up"|"down"}` or `{"to": N}` → the moved row (listed in api.OPERATIONS)."""
    tv = route.table

    async def api_move(request: Request, id: FromPath[str], data: JSONBody[dict[str, Any]]) -> Response:  # noqa: A002
        row = await move_row(ctx_of(request), tv, id, position(data), actor_of(request))
        return Response(public(tv, row), status_code=200)

    return api_move
