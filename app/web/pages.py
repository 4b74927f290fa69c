"""Route handlers made from the manifest: one generic handler per route kind, bound to a table.

No table has code of its own here; `handlers(catalog)` turns each manifest route into a Litestar
handler, so the routes the app serves are exactly the routes the manifest (and RBAC) lists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from litestar import Request, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody
from litestar.response import Redirect, Response, Template

from app.core.catalog import Catalog, TableView
from app.core.context import ctx_of
from app.crud.query import code_texts, list_rows, lookup_options, parse_list_query
from app.crud.rows import Actor, CrudError, jsonable, public
from app.crud.store import create_row, delete_rows, get_row, update_row
from app.web.errors import OPERATOR_ERRORS, error_response
from app.web.render import render
from app.web.ui import lang_of


def actor_of(request: Request) -> Actor:
    from app.auth.principal import principal_of

    p = principal_of(request)
    return Actor(p.user_id, p.username, request.client.host if request.client else None)


def display(tv: TableView, texts: dict[str, dict[str, str]], lang: str) -> Callable[[str, dict], str]:
    """How a cell reads: choice titles and lookup text instead of raw values."""

    def show(name: str, row: dict) -> str:
        value = row.get(name)
        if value is None:
            return ""
        f = tv.fields[name]
        if f.choices:
            for c in f.choices:
                if c.value == str(value):
                    return c.label(lang)
        if name in texts:
            return texts[name].get(str(value), str(value))
        if f.type == "decimal" and f.dec is not None:
            return f"{jsonable(value) if not isinstance(value, str) else value}"
        return str(jsonable(value))

    return show


def form_values(tv: TableView, row: dict) -> dict[str, str]:
    """Row → strings the form's inputs show (datetime-local wants a `T`)."""
    out = {}
    for name, value in row.items():
        if value is None or name in tv.view["confidential"]:
            continue
        text = str(jsonable(value))
        if tv.fields[name].is_datetime:
            text = text.replace(" ", "T")
        out[name] = text
    return out


async def code_options(request: Request, tv: TableView, values: dict[str, str]) -> dict[str, list[dict]]:
    """First options of each code field, plus the current value so it stays selected."""
    ctx = ctx_of(request)
    options = {}
    for name in tv.view["lookups"]:
        if name not in tv.view["form_fields"]:
            continue
        opts = await lookup_options(ctx, tv, name, "", limit=50)
        current = values.get(name)
        if current and all(o["value"] != current for o in opts):
            opts = await lookup_options(ctx, tv, name, current, limit=1) + opts
        options[name] = opts
    return options


def _form_data(form: Any, tv: TableView) -> dict[str, Any]:
    return {name: form.get(name) for name in tv.view["form_fields"] if name in form}


def _can(request: Request, path: str) -> bool:
    from app.auth.principal import principal_of

    return principal_of(request).allows(path)


# ---- HTML pages -------------------------------------------------------------------------


def list_page(tv: TableView):
    async def handler(request: Request) -> Template:
        ctx = ctx_of(request)
        params = dict(request.query_params)
        lq = parse_list_query(tv, params)
        result = await list_rows(ctx, tv, lq)
        texts = await code_texts(ctx, tv, result["rows"])
        filter_options = {}
        for name in tv.view["filter_fields"]:
            if name in tv.view["lookups"]:
                opts = await lookup_options(ctx, tv, name, "", limit=100)
                if name in lq.filters and all(o["value"] != lq.filters[name] for o in opts):
                    opts = await lookup_options(ctx, tv, name, str(lq.filters[name]), limit=1) + opts
                filter_options[name] = opts
        sort = ",".join(lq.sort) if lq.sort else tv.view["sort"][0]

        def self_url(**changes: Any) -> str:
            merged = {k: v for k, v in {**params, **{k: str(v) for k, v in changes.items()}}.items() if v != ""}
            return f"{tv.base}?{urlencode(merged)}"

        ranges = {k: v for k, v in params.items() if k.endswith(("__from", "__to"))}
        return render(
            request,
            "list.html",
            tv=tv,
            result=result,
            query={"q": lq.q, "after": lq.after},
            ranges=ranges,
            filters={k: str(v) for k, v in lq.filters.items()},
            filter_options=filter_options,
            sort=sort,
            self_url=self_url,
            show=display(tv, texts, lang_of(request)),
            pages=max(1, math.ceil(result["total"] / lq.rows)),
            can_create=not tv.view["noedit"] and _can(request, f"{tv.base}/new"),
            can_bulk=not tv.view["noedit"] and _can(request, f"{tv.base}/bulk"),
            can_import=not tv.view["noedit"] and _can(request, f"{tv.base}/import"),
            bulk_ops=bulk_ops(tv),
            export_query=urlencode({k: v for k, v in params.items() if k not in ("page", "rows", "after")}),
            bulk_done=request.query_params.get("_done"),
        )

    return get(tv.base, name=f"{tv.name}.list", include_in_schema=False)(handler)


def bulk_ops(tv: TableView) -> list[tuple[str, Any, Any]]:
    """The list's bulk menu: (op, field, choice); op is `delete` or `set:<field>:<value>`."""
    from app.web.bulk import bulk_fields

    ops: list[tuple[str, Any, Any]] = [("delete", None, None)]
    for name in bulk_fields(tv):
        ops += [(f"set:{name}:{c.value}", tv.fields[name], c) for c in tv.fields[name].choices]
    return ops


async def subtable_blocks(request: Request, tv: TableView, row_id: str) -> list[dict]:
    ctx = ctx_of(request)
    blocks = []
    for sub in tv.view["subtables"]:
        stv = ctx.catalog.tables[sub["table"]]
        if not _can(request, stv.base):
            continue
        lq = parse_list_query(stv, {sub["field"]: row_id, "rows": "20"})
        result = await list_rows(ctx, stv, lq)
        texts = await code_texts(ctx, stv, result["rows"])
        columns = [n for n in stv.view["list_fields"] if n != sub["field"]][:8]
        blocks.append(
            {
                **sub,
                "tv": stv,
                "result": result,
                "columns": columns,
                "show": display(stv, texts, lang_of(request)),
                "can_create": not stv.view["noedit"] and _can(request, f"{stv.base}/new"),
            }
        )
    return blocks


def heading_of(tv: TableView, row: dict) -> str:
    for name in ("name", "code", "username", "title"):
        if row.get(name):
            return str(row[name])
    return str(row.get(tv.pk, ""))


async def record_context(request: Request, tv: TableView, row_id: str) -> dict[str, Any]:
    """Everything the record page shows; actions add their own blocks through `record_extras`."""
    from app.core.hooks import record_extras

    ctx = ctx_of(request)
    row = await get_row(ctx, tv, row_id)
    if row is None:
        raise CrudError(404, "not found")
    shown = public(tv, row)
    texts = await code_texts(ctx, tv, [shown])
    actions = [a for a in tv.view["actions"] if _can(request, f"{tv.base}/{row_id}/{a['name']}")]
    return dict(
        tv=tv,
        row=shown,
        row_id=row_id,
        heading=heading_of(tv, shown),
        show=display(tv, texts, lang_of(request)),
        actions=actions,
        subtables=await subtable_blocks(request, tv, row_id),
        can_edit=not tv.view["noedit"] and _can(request, f"{tv.base}/{row_id}/edit"),
        saved=request.query_params.get("saved") == "1",
        extra_blocks=await record_extras(request, tv, row),
        history=await history_of(request, tv, row_id),
    )


async def history_of(request: Request, tv: TableView, row_id: str) -> dict | None:
    """The row's audit trail, newest first, for users who may read the audit log."""
    audit_tv = ctx_of(request).catalog.tables.get("audit_log")
    if audit_tv is None or tv.name == "audit_log" or not _can(request, audit_tv.base):
        return None
    lq = parse_list_query(audit_tv, {"table_name": tv.name, "q": "", "rows": "20"})
    lq.filters["row_id"] = row_id
    result = await list_rows(ctx_of(request), audit_tv, lq)
    return {"tv": audit_tv, "result": result, "link": f"{audit_tv.base}?table_name={tv.name}&q={row_id}"}


def record_page(tv: TableView):
    async def handler(request: Request, id: FromPath[str]) -> Template:  # noqa: A002 - the route's name
        return render(request, "record.html", **await record_context(request, tv, id))

    return get(f"{tv.base}/{{id:str}}", name=f"{tv.name}.record", include_in_schema=False)(handler)


def form_page(tv: TableView, editing: bool):
    path = f"{tv.base}/{{id:str}}/edit" if editing else f"{tv.base}/new"

    async def show_form(
        request: Request,
        row_id: str | None,
        values: dict[str, str],
        errors: dict[str, str],
        form_error: str = "",
        status: int = 200,
    ) -> Template:
        lang = lang_of(request)
        heading = (
            f"{'Edit' if lang == 'en' else '编辑'} {tv.title(lang)}"
            if editing
            else f"{'Add' if lang == 'en' else '新增'} {tv.title(lang)}"
        )
        action = f"{tv.base}/{row_id}/edit" if editing else f"{tv.base}/new"
        return render(
            request,
            f"{tv.name}.form.html",
            status_code=status,
            tv=tv,
            values=values,
            errors=errors,
            options=await code_options(request, tv, values),
            heading=heading,
            action=action,
            row_id=row_id,
            back=f"{tv.base}/{row_id}" if editing else tv.base,
            lookup_base=f"{tv.api}/_lookup",
            form_error=form_error,
        )

    async def show_blank_or_row(request: Request, id: str | None) -> Template:  # noqa: A002
        if editing:
            row = await get_row(ctx_of(request), tv, id)
            if row is None:
                raise CrudError(404, "not found")
            values = form_values(tv, row)
        else:
            values = {k: v for k, v in request.query_params.items() if k in tv.view["form_fields"]}
            for name in tv.view["form_fields"]:
                f = tv.fields[name]
                if name not in values and f.default is not None and f.default != "CURRENT_TIMESTAMP":
                    values[name] = str(f.default)
        return await show_form(request, id, values, {})

    async def save(request: Request, id: str | None) -> Template | Redirect:  # noqa: A002
        form = await request.form()
        data = _form_data(form, tv)
        try:
            if editing:
                row = await update_row(ctx_of(request), tv, id, data, actor_of(request), strict=False)
            else:
                row = await create_row(ctx_of(request), tv, data, actor_of(request), strict=False)
        except CrudError as exc:
            if exc.status == 404:
                raise
            values = {k: (v if isinstance(v, str) else "") for k, v in data.items()}
            return await show_form(
                request,
                id,
                values,
                exc.errors,
                "" if exc.errors else exc.message,
                status=exc.status if exc.status in (409, 422) else 400,
            )
        return Redirect(path=f"{tv.base}/{row[tv.pk]}?saved=1", status_code=303)

    if editing:

        async def get_handler(request: Request, id: FromPath[str]) -> Template:  # noqa: A002
            return await show_blank_or_row(request, id)

        async def post_handler(request: Request, id: FromPath[str]) -> Template | Redirect:  # noqa: A002
            return await save(request, id)
    else:

        async def get_handler(request: Request) -> Template:
            return await show_blank_or_row(request, None)

        async def post_handler(request: Request) -> Template | Redirect:
            return await save(request, None)

    name = f"{tv.name}.{'edit' if editing else 'new'}"
    return [
        get(path, name=name + ".get", include_in_schema=False)(get_handler),
        post(path, name=name + ".post", include_in_schema=False)(post_handler),
    ]


def delete_page(tv: TableView):
    path = f"{tv.base}/{{id:str}}/delete"

    async def confirm(request: Request, id: FromPath[str]) -> Template:  # noqa: A002
        row = await get_row(ctx_of(request), tv, id)
        if row is None:
            raise CrudError(404, "not found")
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
        get(path, name=f"{tv.name}.delete.get", include_in_schema=False)(confirm),
        post(path, name=f"{tv.name}.delete.post", include_in_schema=False)(do_delete),
    ]


# ---- JSON API ---------------------------------------------------------------------------


def api_handlers(tv: TableView, writable: bool) -> list:
    tag = [f"{tv.module}"]
    title = tv.view["titles"].get("en", tv.name)

    async def api_list(request: Request) -> dict[str, Any]:
        lq = parse_list_query(tv, dict(request.query_params))
        return await list_rows(ctx_of(request), tv, lq)

    async def api_get(request: Request, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
        row = await get_row(ctx_of(request), tv, id)
        if row is None:
            raise CrudError(404, "not found")
        return public(tv, row)

    async def api_lookup(request: Request, field: FromPath[str]) -> list[dict[str, str]]:
        if field not in tv.view["lookups"]:
            raise CrudError(404, "no lookup for this field")
        return await lookup_options(ctx_of(request), tv, field, request.query_params.get("q", "")[:100])

    handlers = [
        get(tv.api, operation_id=f"list_{tv.name}", responses=OPERATOR_ERRORS, tags=tag, summary=f"List {title}")(
            api_list
        ),
        get(
            f"{tv.api}/{{id:str}}",
            operation_id=f"get_{tv.name}",
            responses=OPERATOR_ERRORS,
            tags=tag,
            summary=f"Get one of {title}",
        )(api_get),
    ]
    if tv.view["lookups"]:
        handlers.append(
            get(
                f"{tv.api}/_lookup/{{field:str}}",
                operation_id=f"lookup_{tv.name}",
                responses=OPERATOR_ERRORS,
                tags=tag,
                summary=f"Search dropdown options of {title}",
            )(api_lookup)
        )
    if not writable:
        return handlers

    async def api_create(request: Request, data: JSONBody[dict[str, Any]]) -> Response:
        row = await create_row(ctx_of(request), tv, data, actor_of(request), strict=True)
        return Response(public(tv, row), status_code=201)

    async def api_update(request: Request, id: FromPath[str], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:  # noqa: A002
        return public(tv, await update_row(ctx_of(request), tv, id, data, actor_of(request), strict=True))

    async def api_delete(request: Request, id: FromPath[str]) -> None:  # noqa: A002
        await delete_rows(ctx_of(request), tv, [id], actor_of(request))

    return handlers + [
        post(
            tv.api,
            operation_id=f"create_{tv.name}",
            responses=OPERATOR_ERRORS,
            tags=tag,
            summary=f"Create one of {title}",
        )(api_create),
        put(
            f"{tv.api}/{{id:str}}",
            operation_id=f"replace_{tv.name}",
            responses=OPERATOR_ERRORS,
            tags=tag,
            summary=f"Update one of {title}",
        )(api_update),
        patch(
            f"{tv.api}/{{id:str}}",
            operation_id=f"patch_{tv.name}",
            responses=OPERATOR_ERRORS,
            tags=tag,
            summary=f"Update some fields of one of {title}",
        )(api_update),
        delete(
            f"{tv.api}/{{id:str}}",
            operation_id=f"delete_{tv.name}",
            responses=OPERATOR_ERRORS,
            tags=tag,
            status_code=204,
            summary=f"Delete one of {title}",
        )(api_delete),
    ]


def handlers(catalog: Catalog) -> list:
    """All CRUD handlers of the catalog, plus the business actions the modules register."""
    from app.core.hooks import hook
    from app.web.actions import make_action_handlers
    from app.web.bulk import bulk_handlers
    from app.web.export import export_handlers
    from app.web.importer import import_handlers

    out: list = []
    for tv in catalog.tables.values():
        if tv.view["internal"]:
            continue
        writable = not tv.view["noedit"]
        out += [list_page(tv), record_page(tv), *api_handlers(tv, writable), *export_handlers(tv)]
        if writable:
            out += [
                *form_page(tv, editing=False),
                *form_page(tv, editing=True),
                *delete_page(tv),
                *import_handlers(tv),
                *bulk_handlers(tv),
            ]
        out += make_action_handlers(tv, hook(tv.module, "actions").get(tv.name, {}))
    for module in catalog.modules:
        out += hook(module["name"], "pages")
    return out


def crud_error_handler(request: Request, exc: CrudError) -> Response:
    """JSON for the API; for pages, the same error as a small HTML page."""
    if request.url.path.startswith("/api/") or "json" in request.headers.get("accept", ""):
        return error_response(exc.status, exc.message, exc.errors)
    return Response(content=_error_html(exc), status_code=exc.status, media_type="text/html")


def _error_html(exc: CrudError) -> str:
    from html import escape

    items = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in exc.errors.items())
    return (
        f"<!doctype html><meta charset=utf-8><link rel=stylesheet href=/static/app.css><title>{exc.status}</title>"
        f"<main><h1>{exc.status}</h1><p>{escape(exc.message)}</p><ul>{items}</ul>"
        f"<p><a href='javascript:history.back()'>←</a> <a href='/'>Home</a></p></main>"
    )
