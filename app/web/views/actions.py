"""Routes for business actions (publish, generate key, ...): HTML button and JSON, one handler each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, post
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Response, Template

from app.core.catalog import TableView
from app.crud.store import CrudError
from app.web.errors import OPERATOR_ERRORS

Action = Callable[[Request, TableView, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def make_action_handlers(tv: TableView, impls: dict[str, Action]) -> list:
    """For each action in the view's toolbar: POST page route and POST JSON route."""
    out = []
    for act in tv.view["actions"]:
        impl = impls.get(act["name"])
        if impl is None:
            raise RuntimeError(f"{tv.module}.{tv.name}: action {act['name']!r} has no implementation")
        out += _pair(tv, act["name"], impl)
    return out


def _pair(tv: TableView, name: str, impl: Action) -> list:
    async def api(request: Request, id: FromPath[str], data: JSONBody[dict[str, Any] | None] = None) -> Response:  # noqa: A002
        result = await impl(request, tv, id, data or {})
        if isinstance(result, dict):
            result.pop("_secret", None)
        return Response(result, status_code=200)

    async def page(request: Request, id: FromPath[str]) -> Template | Redirect:  # noqa: A002
        from app.web.pages import record_context
        from app.web.render import render

        form = await request.form()
        data = {k: v for k, v in form.items() if not k.startswith("_")}
        try:
            result = await impl(request, tv, id, data)
        except CrudError as exc:
            context = await record_context(request, tv, id)
            return render(
                request,
                "record.html",
                status_code=exc.status,
                **context,
                flash=[{"kind": "error", "text": exc.message + "".join(f"; {k}: {v}" for k, v in exc.errors.items())}],
            )
        secret = result.pop("_secret", None) if isinstance(result, dict) else None
        if secret:
            context = await record_context(request, tv, id)
            return render(request, "record.html", **context, secret=secret)
        return Redirect(path=f"{tv.base}/{id}?saved=1", status_code=303)

    return [
        post(
            f"{tv.api}/{{id:str}}/{name}",
            operation_id=f"{name}_{tv.name}",
            responses=OPERATOR_ERRORS,
            tags=[tv.module],
            summary=f"{name} ({tv.name})",
        )(api),
        post(f"{tv.base}/{{id:str}}/{name}", name=f"{tv.name}.{name}", include_in_schema=False)(page),
    ]
