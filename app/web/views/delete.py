"""The delete page of a row (and of a bulk selection): a confirmation that lists every dependent
row by table, then the delete, or why it was refused and what to do instead (archive, close)."""
from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.core.i18n import Msg
from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.dependents import DeletePlan, retire_choice
from app.crud.rows import CrudError
from app.crud.store import delete_rows, plan_delete, update_row
from app.web.notices import notice_redirect
from app.web.render import render
from app.web.ui import lang_of
from app.web.views.common import Route, actor_of, can, heading_of, row_or_404


def retire_offer(request: Request, tv: TableView, rows: list[dict[str, Any]], plan: DeletePlan) -> dict | None:
    """Archive (or close) instead: for kept rows not yet retired, when the user may edit them."""
    choice = retire_choice(tv)
    if choice is None or plan.allowed:
        return None
    name, value = choice
    ids = [str(r[tv.pk]) for r in rows if str(r[tv.pk]) in plan.blocked and r.get(name) != value]
    if not ids or not all(can(request, f"{tv.base}/{i}/edit") for i in ids):
        return None
    title = next(c for c in tv.fields[name].choices if c.value == value).label(lang_of(request))
    return {"field": name, "value": value, "title": title, "ids": ids}


async def confirm_page(request: Request, tv: TableView, rows: list[dict[str, Any]], *, bulk: bool,
                       status_code: int = 200, form_error: str | None = None) -> Template:
    """The confirmation of deleting `rows`: their dependents, or what keeps them."""
    plan = await plan_delete(ctx_of(request), tv, rows)
    dependents = [
        {"tv": d.tv, "count": d.count, "cascade": d.cascade, "more": d.count - len(d.rows),
         "link": can(request, d.tv.base),
         "rows": [{"id": r[d.tv.pk], "heading": heading_of(d.tv, r)} for r in d.rows]}
        for d in plan.dependents
    ]
    shown = [{"id": str(r[tv.pk]), "heading": heading_of(tv, r), "reasons": plan.blocked.get(str(r[tv.pk]), [])}
             for r in rows]
    return render(
        request, "delete.html", status_code=status_code, tv=tv, rows=shown, plan=plan, dependents=dependents,
        bulk=bulk, retire=retire_offer(request, tv, rows, plan), form_error=form_error,
        heading=shown[0]["heading"] if len(shown) == 1 else f"{len(shown)}",
        action=f"{tv.base}/bulk" if bulk else f"{tv.base}/{rows[0][tv.pk]}/delete",
    )


async def confirmed_delete(request: Request, tv: TableView, rows: list[dict[str, Any]], *,
                           bulk: bool) -> Template | Redirect:
    """Delete `rows` and go back to the list with a message, or show the refusal and its reasons."""
    try:
        count = await delete_rows(ctx_of(request), tv, [str(r[tv.pk]) for r in rows], actor_of(request))
    except CrudError as exc:
        if exc.status == 404:
            raise
        return await confirm_page(request, tv, rows, bulk=bulk, status_code=exc.status, form_error=exc.message)
    return notice_redirect(request, tv.base, "deleted", n=count, table=tv.title(lang_of(request)))


def delete_page(route: Route) -> list[HTTPRouteHandler]:
    tv = route.table

    async def confirm(request: Request, id: FromPath[str]) -> Template:  # noqa: A002
        row = await row_or_404(ctx_of(request), tv, id)
        return await confirm_page(request, tv, [row], bulk=False)

    async def do_delete(request: Request, id: FromPath[str]) -> Template | Redirect:  # noqa: A002
        row = await row_or_404(ctx_of(request), tv, id)
        form = await request.form()
        if form.get("retire"):
            return await retire(request, tv, row)
        return await confirmed_delete(request, tv, [row], bulk=False)

    return [
        get(route.path, name=f"{tv.name}.delete.get", include_in_schema=False)(confirm),
        post(route.path, name=f"{tv.name}.delete.post", include_in_schema=False)(do_delete),
    ]


async def retire(request: Request, tv: TableView, row: dict[str, Any]) -> Redirect:
    """The confirmation's "archive instead": the retiring status, through the same checks as an edit."""
    row_id = str(row[tv.pk])
    choice = retire_choice(tv)
    if choice is None:
        raise CrudError(400, Msg('this table has no archived state'))
    if not can(request, f"{tv.base}/{row_id}/edit"):
        raise CrudError(403, Msg('you may not edit this row'))
    await update_row(ctx_of(request), tv, row_id, {choice[0]: choice[1]}, actor_of(request), strict=False)
    status = next((c.label(lang_of(request)) for c in tv.fields[choice[0]].choices if c.value == choice[1]), choice[1])
    return notice_redirect(request, f"{tv.base}/{row_id}", "retired", table=tv.title(lang_of(request)),
                           name=heading_of(tv, row), status=status)
