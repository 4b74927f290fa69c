"""Login, sessions and path authorization for every request.

Who: the `pa_session` cookie → a `sessions` row of the app database (by the SHA-256 of the
token, not expired) → the RBAC `users` row, which must be active (`user_status` "0", the
ecosystem's default; "1" or anything else is disabled) → its roles. Without that, anonymous.

What: the request's permission path must match one the principal's roles hold
(`app.auth.rbac.path_matches`); otherwise it is refused: 401 (a login redirect for a browser page)
when anonymous, 403 when logged in. Nothing is open that no role was granted. The permission path
is the request path, or the one its handler names (`opt["permission"]`): a write that shares its
address with a page (POST /rbac/grants) needs its own grant (`/rbac/grants/edit`). `/metrics` also
opens to the scrapers' bearer token (`metrics_token`), checked before any session.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from litestar import Request, get, post
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import ASGIMiddleware
from litestar.middleware.csrf import generate_csrf_token
from litestar.response import Redirect, Response
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.path import normalize_path

from app.auth import rbac
from app.auth.grants import handler_permission, permission_path
from app.auth.passwords import PasswordScheme
from app.auth.sessions import SESSION_COOKIE, create_session, end_session
from app.auth.throttle import charge_attempt, clear_keys, login_keys
from app.core.clock import utcnow
from app.core.context import ctx_of
from app.auth.principal import PRINCIPAL_KEY, principal_of, resolve_principal
from app.web.error_pages import denied_page, wants_html
from app.web.errors import error_response
from app.web.health import METRICS_PATH, scraper_token
from app.web.render import render
from app.web.ui import text

log = logging.getLogger("pipeline.auth")

PROBES = frozenset({"/healthz", "/readyz"})


def _request_path(scope: Scope) -> str:
    """The app path the router matched (a mounted app's scope only keeps the rest, so take
    the path the client sent)."""
    if getattr(scope.get("route_handler"), "is_mount", False) and scope.get("raw_path"):
        path = unquote(scope["raw_path"].decode("latin-1"))
        root = scope.get("root_path") or ""
        return normalize_path(path[len(root):] if root and path.startswith(root) else path)
    return scope["path"]


def _permission(scope: Scope) -> tuple[str, str | None]:
    """(permission path, its template) a request needs: the one its handler names, else its own."""
    named = handler_permission(scope.get("route_handler"))
    return (named, named) if named else (_request_path(scope), scope.get("path_template"))


def _missing(scope: Scope) -> str:
    """The permission path a refused request lacked, as an admin grants it (`/t/{id}/edit`)."""
    path, template = _permission(scope)
    return permission_path(template) if template else path


class AuthMiddleware(ASGIMiddleware):
    """Resolve the principal of every HTTP request and refuse any path it holds no grant for.

    The refusal is answered here (a login redirect, the denied page or the JSON error), so it
    does not depend on which exception handlers the app installs."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        app = scope["litestar_app"]
        if app.state.ctx.keyed_prefixes and scope["path"].startswith(app.state.ctx.keyed_prefixes):
            # The distributor API is key-authenticated (its own guard): no session cookie to parse
            # here, but the path grant check still runs for the anonymous principal (default deny).
            principal = await resolve_principal(app.state.ctx, None)
            scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
            if principal.allows(scope["path"], scope.get("path_template")):
                await next_app(scope, receive, send)
                return
        request = app.request_class(scope, receive)
        if scope["path"] == METRICS_PATH:
            bearer = scraper_token(request.headers.get("authorization"), app.state.ctx.settings.metrics_token)
            if bearer is not None:  # a scraper: its token decides, no session is looked up
                if bearer:
                    await next_app(scope, receive, send)
                    return
                response = error_response(401, "wrong bearer token", headers={"WWW-Authenticate": "Bearer"},
                                          code="unauthorized")
                await response.to_asgi_response(app, request)(scope, receive, send)
                return
        # probes answer about the process and the databases, never about a (maybe unreachable) session
        token = None if scope["path"] in PROBES else request.cookies.get(SESSION_COOKIE)
        principal = await resolve_principal(app.state.ctx, token)
        scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        if principal.allows(*_permission(scope)):
            await next_app(scope, receive, send)
        elif scope["type"] != ScopeType.HTTP:
            raise NotAuthorizedException() if principal.is_anonymous else PermissionDeniedException()
        else:
            response = refusal(request, anonymous=principal.is_anonymous, missing=_missing(scope))
            await response.to_asgi_response(app, request)(scope, receive, send)


auth_middleware = AuthMiddleware()


# ---------------------------------------------------------------- refusals

def _text(request: Request, msgid: str, **params: Any) -> str:
    return text(request, msgid, **params)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _local_referer(request: Request) -> str:
    """The page a form was sent from, when it is one of ours; else the home page."""
    referer = urlsplit(request.headers.get("referer") or "/")
    if referer.netloc and referer.netloc != request.url.netloc:
        return "/"
    return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""))


def refusal(request: Request, *, anonymous: bool, detail: str | None = None, missing: str | None = None) -> Response:
    """Anonymous: a browser GET goes to the login page (and comes back after), anything else
    gets 401. Logged in: 403, the denied page for a browser (naming the `missing` permission
    path and whom to ask), JSON otherwise."""
    if anonymous:
        if request.scope["path"] == "/login":  # never a redirect loop when nobody may log in
            return error_response(401, "nobody may open the login page: run `pipeline-app rbac register`",
                                  code="unauthorized")
        if request.method in ("GET", "HEAD") and wants_html(request):
            target = request.scope["path"]
            if request.scope.get("query_string"):
                target += "?" + request.scope["query_string"].decode("latin-1")
            return Redirect(path="/login?next=" + quote(target, safe="/"), status_code=303)
        if wants_html(request) and request.headers.get("content-type", "").startswith(FORM_TYPES):
            # a form sent after the session ended: log in again and come back to the page it was on
            return Redirect(path="/login?next=" + quote(_local_referer(request), safe="/"), status_code=303)
        return error_response(401, detail or "login required", code="unauthorized")
    if wants_html(request):
        return denied_page(request, missing=missing, detail=detail or "", csrf_failed="CSRF" in (detail or ""))
    message = f"permission denied: this needs the path {missing}" if missing else detail or "permission denied"
    return error_response(403, message, code="forbidden")


def _unauthorized(request: Request, exc: NotAuthorizedException) -> Response:
    return refusal(request, anonymous=True, detail=exc.detail)


def _forbidden(request: Request, exc: PermissionDeniedException) -> Response:
    return refusal(request, anonymous=False, detail=exc.detail)


exception_handlers = {NotAuthorizedException: _unauthorized, PermissionDeniedException: _forbidden}
"""Optional for the app: the same answers for these exceptions raised elsewhere (e.g. the CSRF
check's 403 as the denied page for a browser form, instead of JSON)."""


# ---------------------------------------------------------------- handlers

def safe_next(value: Any) -> str:
    """Where to go after login: a local path only (no scheme, no host, no `//`), else `/`."""
    value = str(value or "")
    parts = urlsplit(value)
    if (not value.startswith("/") or value.startswith(("//", "/\\")) or parts.scheme or parts.netloc
            or any(ord(c) < 32 for c in value)):
        return "/"
    return value


def _login_form(request: Request, *, status: int = 200, error: str | None = None, username: str = "",
                next_: str = "/") -> Response:
    return render(request, "login.html", status_code=status, error=error, username=username, next=next_)


def _set_session_cookie(request: Request, response: Response, token: str, hours: float) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(hours * 3600), path="/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")


def _rotate_csrf(request: Request, response: Response) -> None:
    """A session starts or ends with a new CSRF token, so a token seen before login (or planted
    in the browser) is worth nothing after it."""
    csrf = request.app.csrf_config
    if csrf is not None:
        response.set_cookie(csrf.cookie_name, generate_csrf_token(secret=csrf.secret), path=csrf.cookie_path,
                            secure=csrf.cookie_secure, httponly=csrf.cookie_httponly, samesite=csrf.cookie_samesite,
                            domain=csrf.cookie_domain)


@get("/login", include_in_schema=False)
async def login_page(request: Request) -> Response:
    return _login_form(request, next_=safe_next(request.query_params.get("next")))


@post("/login", include_in_schema=False)
async def login_submit(request: Request) -> Response:
    """Check the throttle, then the password; a success opens a new session."""
    ctx = ctx_of(request)
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    next_ = safe_next(form.get("next"))
    client_ip = request.client.host if request.client else "unknown"
    now = utcnow()
    record = await rbac.login_record(ctx.rbac_db, username) if username else None
    # Never the typed name in a log: it may be a password typed into the wrong box.
    who = record.username if record else "(unknown user)"
    keys = login_keys(record.user_id if record else None, client_ip)

    wait = await charge_attempt(ctx.db, keys, now)
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        log.warning("login throttled: user=%s ip=%s wait=%ss", who, client_ip, seconds)
        response = _login_form(request, status=429, username=username, next_=next_, error=_text(
            request, 'Too many failed logins: try again in {seconds} s.', seconds=seconds))
        response.headers["Retry-After"] = str(seconds)
        return response

    scheme = PasswordScheme.of(ctx.settings)
    if record is not None and scheme.name == "ecosystem" and record.locked_by_platform(now):
        log.info("login refused: user=%s ip=%s reason=locked by the platform", who, client_ip)
        return _login_form(request, status=429, username=username, next_=next_, error=_text(
            request, 'This account is locked by the platform after failed logins: try again in 5 minutes.'))
    # ~50 ms of argon2: off the event loop, so other requests of this worker keep flowing
    password_ok = await asyncio.to_thread(scheme.verify, password, record.password_hash if record else None)
    if record is None or not password_ok or not record.active:
        log.info("login failed: user=%s ip=%s reason=%s", who, client_ip,
                 "unknown user" if record is None else "wrong password" if not password_ok else "disabled")
        if record is not None and scheme.name != "ecosystem":  # a shared database's counter is theirs
            await rbac.record_login(ctx.rbac_db, record.user_id, False, now)
        return _login_form(request, status=400, username=username, next_=next_, error=_text(
            request, 'Wrong username or password.'))

    await clear_keys(ctx.db, keys)
    await rbac.record_login(ctx.rbac_db, record.user_id, True, now)
    hours = ctx.settings.session_hours
    token = await create_session(ctx.db, record.user_id, record.username, now, hours,
                                 replaces=request.cookies.get(SESSION_COOKIE))
    response = Redirect(path=next_, status_code=303)
    _set_session_cookie(request, response, token, hours)
    _rotate_csrf(request, response)
    return response


@post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """End the session on the server (the cookie is worthless from now on) and forget it."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await end_session(ctx_of(request).db, token)
    response = Redirect(path="/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    _rotate_csrf(request, response)
    return response


@get("/me", sync_to_thread=False)
def me(request: Request) -> dict[str, Any]:
    """The logged-in user: id, name and role keys (no secrets)."""
    principal = principal_of(request)
    return {"user_id": principal.user_id, "username": principal.username, "roles": sorted(principal.roles)}


handlers = [login_page, login_submit, logout, me]
