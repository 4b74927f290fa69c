"""The JSON API of a table: one table of operations and one loop that turns a manifest route into
a handler per method. The manifest gives the path; the table gives what is said about it."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from litestar import Request, route
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.response import Response

from app.core.context import ctx_of
from app.crud.lookups import MAX_DEPTH, MAX_PAGE, PAGE, lookup_options, lookup_target
from app.crud.query import list_rows, parse_list_query
from app.crud.rows import CrudError, public
from app.crud.store import create_row, delete_rows, update_row
from app.web.errors import OPERATOR_ERRORS
from app.web.ui import lang_of
from app.web.views.actions import action_endpoint
from app.web.views.bulk import bulk_endpoint
from app.web.views.common import Route, actor_of, can, row_or_404
from app.web.views.move import move_endpoint

Endpoint = Callable[..., Awaitable[Any]]


def list_endpoint(r: Route) -> Endpoint:
    tv = r.table

    async def api_list(request: Request) -> dict[str, Any]:
        lq = parse_list_query(tv, dict(request.query_params))
        return await list_rows(ctx_of(request), tv, lq)

    return api_list


def get_endpoint(r: Route) -> Endpoint:
    tv = r.table

    async def api_get(request: Request, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002 - the route's name
        return public(tv, await row_or_404(ctx_of(request), tv, id))

    return api_get


def _bounded(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    try:
        value = default if raw in (None, "") else int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise CrudError(400, "bad lookup parameters", {name: f"a whole number from {low} to {high}"})
    return value


def lookup_endpoint(r: Route) -> Endpoint:
    """A picker's search. The route's own grant opens it, and it answers only a user who may also
    read the table it reads from (its list page or JSON list): a grant on the steps' API must not
    list every distributor."""
    tv = r.table

    async def api_lookup(request: Request, field: FromPath[str]) -> dict[str, Any]:
        ctx = ctx_of(request)
        code, target = lookup_target(ctx, tv, field)
        if not (can(request, target.api) or can(request, target.base)):
            raise CrudError(403, f"reading {target.api} is not granted", {"path": target.api})
        limit = _bounded(request, "limit", PAGE, 1, MAX_PAGE)
        offset = _bounded(request, "offset", 0, 0, MAX_DEPTH)
        result = await lookup_options(ctx, tv, field, request.query_params.get("q", "")[:100], limit, offset)
        owner = target.fields[code.owner].label(lang_of(request)) if code.owner else ""
        return {**result, "offset": offset, "owner_title": owner}

    return api_lookup


def create_endpoint(r: Route) -> Endpoint:
    tv = r.table

    async def api_create(request: Request, data: JSONBody[dict[str, Any]]) -> Response:
        row = await create_row(ctx_of(request), tv, data, actor_of(request), strict=True)
        return Response(public(tv, row), status_code=201)

    return api_create


def update_endpoint(r: Route) -> Endpoint:
    tv = r.table

    async def api_update(request: Request, id: FromPath[str], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:  # noqa: A002
        return public(tv, await update_row(ctx_of(request), tv, id, data, actor_of(request), strict=True))

    return api_update


def delete_endpoint(r: Route) -> Endpoint:
    tv = r.table

    async def api_delete(request: Request, id: FromPath[str]) -> None:  # noqa: A002
        await delete_rows(ctx_of(request), tv, [id], actor_of(request))

    return api_delete


class Operation(NamedTuple):
    """One JSON operation: ids and summaries name `{table}`, its English `{title}`, the `{action}`."""

    kind: str
    method: str
    operation_id: str
    summary: str
    status: int
    endpoint: Callable[[Route], Endpoint]


OPERATIONS = (
    Operation("api_list", "GET", "list_{table}", "List {title}", 200, list_endpoint),
    Operation("api_get", "GET", "get_{table}", "Get one of {title}", 200, get_endpoint),
    Operation("lookup", "GET", "lookup_{table}", "Search a lookup of {title}, ranked and paged", 200, lookup_endpoint),
    Operation("api_create", "POST", "create_{table}", "Create one of {title}", 201, create_endpoint),
    Operation("api_write", "PUT", "replace_{table}", "Update one of {title}", 200, update_endpoint),
    Operation("api_write", "PATCH", "patch_{table}", "Update some fields of one of {title}", 200, update_endpoint),
    Operation("api_write", "DELETE", "delete_{table}", "Delete one of {title}", 204, delete_endpoint),
    Operation("api_bulk", "POST", "bulk_{table}", "Delete or set a field on many rows of {table}", 201, bulk_endpoint),
    Operation("api_move", "POST", "move_{table}", "Move one of {title} up or down its group", 200, move_endpoint),
    Operation("api_action", "POST", "{action}_{table}", "{action} ({table})", 201, action_endpoint),
)
API_KINDS = tuple(dict.fromkeys(op.kind for op in OPERATIONS))


def api_routes(r: Route) -> list[HTTPRouteHandler]:
    """A handler for each of the route's methods, as `OPERATIONS` describes it."""
    tv = r.table
    names = {"table": tv.name, "title": tv.view["titles"].get("en", tv.name), "action": r.action}
    return [
        route(
            r.path,
            http_method=op.method,
            operation_id=op.operation_id.format(**names),
            summary=op.summary.format(**names),
            status_code=op.status,
            responses=OPERATOR_ERRORS,
            tags=[tv.module],
        )(op.endpoint(r))
        for op in OPERATIONS
        if op.kind == r.kind and op.method in r.methods
    ]
