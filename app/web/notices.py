"""The message after an action (as Django admin's messages): set on the redirect, shown once by
the next page, naming what happened ("published version 3", not a generic "saved").

It travels in a short-lived signed cookie rather than in the database or the worker's memory:
whichever worker serves the next page shows it, and a crafted link cannot make the app claim
that something happened (the query string could).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import defaultdict
from typing import Any

from litestar import Request
from litestar.response import Redirect, Response

from app.core.context import ctx_of
from app.core.i18n import Msg, translations
from app.web.ui import lang_of

COOKIE = "notice"
MAX_AGE = 60

# kind → English msgid (Chinese in the catalogue); {placeholders} come from the action's params
# (a missing one reads as empty).
MESSAGES: dict[str, Msg] = {
    "created": Msg("{table} “{name}” created."),
    "updated": Msg("{table} “{name}” saved."),
    "created.unnamed": Msg("{table} row created."),
    "updated.unnamed": Msg("{table} row saved."),
    "deleted": Msg("Deleted {n} {table} row(s)."),
    "retired": Msg("Not deleted: {table} “{name}” set to “{status}”, its history kept."),
    "moved": Msg("Moved {table} “{name}” to position {position}."),
    "imported": Msg("Imported: {inserted} added, {updated} updated, {unchanged} unchanged."),
    "action": Msg("{action} done: {name}."),
    "action.publish": Msg("Published version {version_no} of “{name}”."),
    "action.rollback": Msg("Rolled “{name}” back to version {requested} (new version {version_no})."),
    "action.generate_key": Msg("API key generated for “{name}”."),
    "action.rotate_key": Msg("API key of “{name}” rotated."),
    "action.revoke_key": Msg("API key of “{name}” revoked."),
}


def text_of(kind: str, params: dict[str, Any], lang: str) -> str:
    """The message in the UI language; an unknown action falls back to the generic one."""
    msgid = (MESSAGES.get(kind) or MESSAGES["action"]).msgid
    values: defaultdict[str, str] = defaultdict(str, {k: "" if v is None else str(v) for k, v in params.items()})
    return (msgid if lang == "en" else translations(lang).gettext(msgid)).format_map(values)


def _sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()[:32]


def notice_redirect(request: Request, path: str, kind: str, **params: Any) -> Redirect:
    """303 to `path` with the message of `kind` for the next page."""
    payload = base64.urlsafe_b64encode(json.dumps({"k": kind, "p": params}, default=str).encode()).decode()
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response = Redirect(path=path, status_code=303)
    response.set_cookie(COOKIE, f"{payload}.{_sign(ctx_of(request).settings.key_secret, payload.encode())}",
                        max_age=MAX_AGE, httponly=True, samesite="lax", secure=secure, path="/")
    return response


def pending_notice(request: Request) -> dict[str, str] | None:
    """The message waiting in the request's cookie, if its signature holds."""
    raw = request.cookies.get(COOKIE, "")
    payload, _, signature = raw.rpartition(".")
    if not payload or not hmac.compare_digest(signature, _sign(ctx_of(request).settings.key_secret,
                                                               payload.encode())):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        return {"kind": "ok", "text": text_of(str(data["k"]), dict(data["p"]), lang_of(request))}
    except (ValueError, KeyError, TypeError):
        return None


def with_notice(request: Request, template: Response, context: dict[str, Any]) -> Response:
    """Show the waiting message on this page (first among its flashes) and clear its cookie."""
    if COOKIE in request.cookies:
        notice = pending_notice(request)
        if notice is not None:
            context["flash"] = [notice, *(context.get("flash") or [])]
        template.delete_cookie(COOKIE, path="/")
    return template
