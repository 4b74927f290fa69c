"""The add and edit forms of a table (templates compiled from the spec into build/forms/)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Request, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.core.catalog import TableView
from app.core.context import ctx_of
from app.crud.rows import CrudError
from app.crud.store import create_row, update_row
from app.web.notices import notice_redirect
from app.web.render import render
from app.web.ui import lang_of, text, zone_of
from app.web.views.common import (
    Route,
    actor_of,
    form_values,
    heading_of,
    picked_options,
    row_or_404,
    typed_values,
)
from app.web.views.parents import Parent, crumbs_of, parent_of


def create_page(route: Route) -> list[HTTPRouteHandler]:
    form = RowForm(route.table, editing=False)

    async def show(request: Request) -> Template:
        return await form.show_blank_or_row(request, None)

    async def save(request: Request) -> Template | Redirect:
        return await form.save(request, None)

    return form.handlers(route, show, save)


def edit_page(route: Route) -> list[HTTPRouteHandler]:
    form = RowForm(route.table, editing=True)

    async def show(request: Request, id: FromPath[str]) -> Template:  # noqa: A002 - the route's name
        return await form.show_blank_or_row(request, id)

    async def save(request: Request, id: FromPath[str]) -> Template | Redirect:  # noqa: A002
        return await form.save(request, id)

    return form.handlers(route, show, save)


class RowForm:
    """One table's add (`editing=False`) or edit form: show it, save it, show it again with errors."""

    def __init__(self, tv: TableView, editing: bool):
        self.tv, self.editing = tv, editing

    def handlers(self, route: Route, show: Callable[..., Awaitable[Template]],
                 save: Callable[..., Awaitable[Template | Redirect]]) -> list[HTTPRouteHandler]:
        """GET shows the form, POST saves it; `show` and `save` take the route's path parameters."""
        name = f"{self.tv.name}.{'edit' if self.editing else 'new'}"
        return [
            get(route.path, name=name + ".get", include_in_schema=False)(show),
            post(route.path, name=name + ".post", include_in_schema=False)(save),
        ]

    async def show_form(
        self,
        request: Request,
        row_id: str | None,
        values: dict[str, str],
        errors: dict[str, str],
        form_error: str = "",
        status: int = 200,
    ) -> Template:
        tv, lang = self.tv, lang_of(request)
        parent = parent_of(request, tv, values, prefer=str(request.query_params.get("_parent", "")))
        crumbs = await crumbs_of(request, tv, values, parent)
        if self.editing:
            crumbs.append({"href": f"{tv.base}/{row_id}", "text": heading_of(tv, {**values, tv.pk: row_id})})
        heading = (text(request, "Edit {table}", table=tv.title(lang)) if self.editing
                   else text(request, "Add {table}", table=tv.title(lang)))
        return render(
            request,
            f"{tv.name}.form.html",
            status_code=status,
            tv=tv,
            values=values,
            errors=errors,
            picked=await picked_options(request, tv, tv.view["form_fields"], values),
            heading=heading,
            action=f"{tv.base}/{row_id}/edit" if self.editing else f"{tv.base}/new",
            row_id=row_id,
            back=f"{tv.base}/{row_id}" if self.editing else (parent.href if parent else tv.base),
            crumbs=crumbs,
            parent_field=parent.field if parent and not self.editing else "",
            lookup_base=f"{tv.api}/_lookup",
            form_error=form_error,
        )

    async def show_blank_or_row(self, request: Request, row_id: str | None) -> Template:
        """The row's values to edit; for a new row the query's values, then the spec's defaults."""
        tv = self.tv
        if self.editing:
            values = form_values(tv, await row_or_404(ctx_of(request), tv, row_id), zone_of(request))
        else:
            values = {k: v for k, v in request.query_params.items() if k in tv.view["form_fields"]}
            for name in tv.view["form_fields"]:
                f = tv.fields[name]
                if name not in values and f.default is not None and f.default != "CURRENT_TIMESTAMP":
                    values[name] = str(f.default)
        return await self.show_form(request, row_id, values, {})

    async def save(self, request: Request, row_id: str | None) -> Template | Redirect:
        tv = self.tv
        form = await request.form()
        data = {name: form.get(name) for name in tv.view["form_fields"] if name in form}
        stored = typed_values(tv, data, zone_of(request))
        try:
            if self.editing:
                row = await update_row(ctx_of(request), tv, row_id, stored, actor_of(request), strict=False)
            else:
                row = await create_row(ctx_of(request), tv, stored, actor_of(request), strict=False)
        except CrudError as exc:
            if exc.status == 404:
                raise
            values = {k: (v if isinstance(v, str) else "") for k, v in data.items()}
            return await self.show_form(
                request,
                row_id,
                values,
                exc.errors,
                "" if exc.errors else exc.message,
                status=exc.status if exc.status in (409, 422) else 400,
            )
        parent = parent_of(request, tv, row, prefer=str(form.get("_parent") or ""))
        name = heading_of(tv, row)
        kind = ("updated" if self.editing else "created") + (".unnamed" if name == str(row[tv.pk]) else "")
        return notice_redirect(request, self.next_path(row, parent, str(form.get("_next") or "")), kind,
                               table=tv.title(lang_of(request)), name=name)

    def next_path(self, row: dict, parent: Parent | None, wanted: str) -> str:
        """Where a saved form goes: another blank form (under the same parent), the same form
        again, the parent record the row belongs to, or the row's own page."""
        tv = self.tv
        if wanted == "add":
            return f"{tv.base}/new" + (f"?{parent.field}={parent.row_id}&_parent={parent.field}" if parent else "")
        if wanted == "continue":
            return f"{tv.base}/{row[tv.pk]}/edit"
        if parent is not None:
            return f"{parent.href}#row-{row[tv.pk]}"
        return f"{tv.base}/{row[tv.pk]}"
