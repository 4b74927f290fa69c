"""Error pages for people: 400–503 (and the 403 refusal) in the app's layout and language.

A browser asking for a page gets these; an API client gets the JSON shape (`app.web.errors`).
The router's 404 and 405 are answered before any middleware ran, so the page resolves the user
itself (their menu and name in the header) when it is sent: that needs the database, hence an
ASGI response that does its awaiting when called rather than a handler's return value.
"""
from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.utils.scope.state import ScopeState

from app.auth.grantors import MAX_SHOWN, grant_admins
from app.auth.principal import PRINCIPAL_KEY, resolve_principal
from app.auth.sessions import SESSION_COOKIE
from app.core.context import ctx_of
from app.ops.observability import REQUEST_ID

log = logging.getLogger("pipeline.error")


def wants_html(request: Request) -> bool:
    """A browser page: not under /api/, a handler that does not answer JSON (such as /me), and an
    Accept that prefers HTML over JSON (`*/*` counts as HTML; a script asks for JSON)."""
    if request.scope["path"].startswith("/api/"):
        return False
    if getattr(request.scope.get("route_handler"), "media_type", None) == MediaType.JSON:
        return False
    accept = request.headers.get("accept", "")
    if "json" not in accept:
        return True
    return request.accept.best_match(["text/html", "application/json"], default="text/html") == "text/html"


class ErrorPage(Response):
    """`template` rendered with the page's usual context (user, menu, language) at `status`."""

    def __init__(self, status: int, template: str = "error.html", headers: dict[str, str] | None = None,
                 **context: Any) -> None:
        super().__init__(content=b"", status_code=status, headers=headers, media_type=MediaType.HTML)
        self.template, self.context = template, context

    def to_asgi_response(self, app: Any, request: Request, **kwargs: Any) -> Any:
        page = self

        async def send_page(scope: Any, receive: Any, send: Any) -> None:
            from app.web.errors import error_response
            from app.web.render import render

            await page.fill(request)
            try:
                response = render(request, page.template, status_code=page.status_code, status=page.status_code,
                                  **page.context)
                response.headers.update(page.headers)
                asgi = response.to_asgi_response(app=None, request=request)
            except Exception:  # noqa: BLE001 - a page that cannot render still answers, in the JSON shape
                log.exception("the %s page did not render", page.status_code)
                asgi = error_response(page.status_code, page.context.get("message") or "error",
                                      headers=dict(page.headers)).to_asgi_response(app=None, request=request)
            await asgi(scope, receive, send)

        return send_page

    async def fill(self, request: Request) -> None:
        """What the page needs that takes the database: the user (when no middleware resolved
        one), and for a refusal the users who may grant the missing path."""
        ctx = ctx_of(request)
        state = request.scope.setdefault("state", {})
        try:
            if PRINCIPAL_KEY not in state:
                state[PRINCIPAL_KEY] = await resolve_principal(ctx, request.cookies.get(SESSION_COOKIE))
            if self.context.get("missing"):
                admins = await grant_admins(ctx.rbac_db, max(ctx.settings.rbac_cache_seconds, 30))
                self.context.update(admins=admins[:MAX_SHOWN], more_admins=max(0, len(admins) - MAX_SHOWN))
        except Exception:  # noqa: BLE001 - the databases may be why we are here: the page still shows
            log.warning("error page without the user or the grant admins", exc_info=True)
        self.context.setdefault("contact", ctx.settings.access_contact)
        csrf = request.app.csrf_config
        scope_state = ScopeState.from_scope(request.scope)
        if not isinstance(scope_state.csrf_token, str) and csrf and request.cookies.get(csrf.cookie_name):
            # answered before the CSRF middleware ran: the header's logout form still needs the token
            scope_state.csrf_token = request.cookies[csrf.cookie_name]


def error_page(request: Request, status: int, message: str = "", fields: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> ErrorPage:
    """The page of an error status; 403 is the refusal page."""
    if status == 403:
        return denied_page(request, detail=message)
    return ErrorPage(status, headers=headers, message=message, fields=fields or {}, path=request.scope["path"],
                     method=request.method, request_id=REQUEST_ID.get())


def denied_page(request: Request, *, missing: str | None = None, detail: str = "",
                csrf_failed: bool = False) -> ErrorPage:
    """403 for a logged-in user: which permission path is missing, and whom to ask for it."""
    return ErrorPage(403, "denied.html", missing=missing, detail=detail, csrf_failed=csrf_failed,
                     method=request.method, path=request.scope["path"], request_id=REQUEST_ID.get())
