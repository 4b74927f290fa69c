"""Business actions (publish, generate key, ...): a record-toolbar button and a JSON operation per
action, both calling the implementation the table's module registers (its `actions` hook)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Response, Template

from app.core.catalog import TableView
from app.core.hooks import hook
from app.crud.rows import CrudError
from app.web.notices import notice_redirect, text_of
from app.web.render import render
from app.core.i18n import Msg, joined
from app.web.ui import lang_of, localized
from app.web.views.common import Route
from app.web.views.record import record_context

Action = Callable[[Request, TableView, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def action_of(route: Route) -> Action:
    """The module's implementation of the route's action; a toolbar action without one fails startup."""
    tv = route.table
    impl = hook(tv.module, "actions").get(tv.name, {}).get(route.action)
    if impl is None:
        raise RuntimeError(f"{tv.module}.{tv.name}: action {route.action!r} has no implementation")
    return impl


def route_action(tv: TableView, name: str) -> dict[str, Any]:
    """The view's declaration of action `name` (its label and labels)."""
    return next(a for a in tv.view["actions"] if a["name"] == name)


def label_of(act: dict[str, Any], lang: str) -> str:
    return (act.get("labels") or {}).get(lang) or act.get("label") or act["name"]


def action_endpoint(route: Route) -> Callable[..., Awaitable[Any]]:
    """JSON: the action's result, without the secret a page shows once."""
    tv, impl = route.table, action_of(route)

    async def api(request: Request, id: FromPath[str], data: JSONBody[dict[str, Any] | None] = None) -> Response:  # noqa: A002
        result = await impl(request, tv, id, data or {})
        if isinstance(result, dict):
            result.pop("_secret", None)
        return Response(result, status_code=200)

    return api


def refusal(exc: CrudError) -> str:
    """What a refused action says on the page: its reasons (the problem keys are for API clients)."""
    if not exc.errors:
        return exc.message
    return Msg("Not done: {reasons}", reasons=joined("; ", exc.errors.values()))


def action_page(route: Route) -> list[HTTPRouteHandler]:
    """The toolbar button: back to the record, with the error, or with a secret shown once."""
    tv, impl = route.table, action_of(route)

    async def page(request: Request, id: FromPath[str]) -> Template | Redirect:  # noqa: A002
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
                flash=[{"kind": "error", "text": localized(request, refusal(exc))}],
            )
        secret = result.pop("_secret", None) if isinstance(result, dict) else None
        context = await record_context(request, tv, id)
        params = {**{k: v for k, v in (result or {}).items() if isinstance(v, (str, int, float))},
                  "requested": data.get("version_no"), "name": context["heading"],
                  "action": label_of(route_action(tv, route.action), lang_of(request))}
        if secret:
            note = {"kind": "ok", "text": text_of(f"action.{route.action}", params, lang_of(request))}
            return render(request, "record.html", **context, secret=secret, flash=[note])
        return notice_redirect(request, f"{tv.base}/{id}", f"action.{route.action}", **params)

    return [post(route.path, name=f"{tv.name}.{route.action}", include_in_schema=False)(page)]
