"""What the user may use, asked the way the request itself would be: pages show only the links,
buttons and bulk actions that work for this user.

`may(request, "/t/new")` routes the path through the app's own router (the handler and path
template a real request would get), then asks the same grant check the auth middleware does:
the handler's own permission path if it names one (POST /rbac/grants → `/rbac/grants/edit`),
else the path with its template, so a `/t/{id}` grant (view a record) never shows the 新增 of
`/t/new`. Templates call it as `can(path, method)`; views as `can(request, path)`.
"""
from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from litestar import Request
from litestar.exceptions import HTTPException

from app.auth.grants import handler_permission
from app.auth.principal import principal_of


def _route(request: Request, path: str, method: str) -> tuple[Any, str] | None:
    try:
        _, handler, _, _, template = request.app.asgi_router.handle_routing(path=path, method=method)
    except HTTPException:  # 404 / 405: nothing serves it, so no link or button to it
        return None
    return handler, template


def may(request: Request, path: str, method: str | None = None) -> bool:
    """Would `method path` pass the grant check for this request's user? Without a method: the
    page at `path` (GET), or the form that posts to it when it has no page (an action, `bulk`)."""
    path = path.split("?")[0]
    found = None
    for verb in (method.upper(),) if method else ("GET", "POST"):
        found = _route(request, path, verb)
        if found:
            break
    if found is None:
        return False
    handler, template = found
    principal = principal_of(request)
    named = handler_permission(handler)
    return principal.may_write(named) if named else principal.allows(path, template or None)


@pass_context
def can(context: Any, path: str, method: str | None = None) -> bool:
    """`{% if can(tv.base ~ '/new') %}`: the one permission check templates use."""
    request = context.get("request")
    return request is not None and may(request, path, method)
