"""What an admin action says after it: one line in the UI language, carried across the redirect.

Every action answers with a 303 back to its page (so a reload never repeats it) and the line in a
short-lived cookie the next page shows once and drops. The cookie is signed with the installation's
secret, so no other site or script can plant text on these pages.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from litestar import Request
from litestar.response import Redirect, Response

from app.core.context import ctx_of
from app.web.ui import text

FLASH_COOKIE = "pa_flash"
MAX_TEXT = 600


def say(request: Request, msgid: str, **params: Any) -> str:
    """`msgid` from the catalogue in this request's UI language (what `_()` is to templates)."""
    return text(request, msgid, **params)


def _signature(request: Request, body: str) -> str:
    key = hashlib.sha256(("flash:" + ctx_of(request).settings.key_secret).encode()).digest()
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


def back(request: Request, path: str, text: str, kind: str = "ok") -> Redirect:
    """303 to `path` (an admin page), which then shows `text` once (`kind`: ok or error)."""
    body = base64.urlsafe_b64encode(json.dumps([kind, text[:MAX_TEXT]], ensure_ascii=False).encode()).decode()
    response = Redirect(path=path if path.startswith("/rbac/") else "/rbac/grants", status_code=303)
    response.set_cookie(FLASH_COOKIE, f"{body}.{_signature(request, body)}", max_age=60, path="/rbac",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


def taken(request: Request) -> list[dict[str, str]]:
    """The message the last action left (as `base.html`'s `flash` list), if its signature holds."""
    body, _, signature = request.cookies.get(FLASH_COOKIE, "").partition(".")
    if not body or not hmac.compare_digest(signature, _signature(request, body)):
        return []
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (ValueError, TypeError):
        return []
    return [{"kind": "error" if kind == "error" else "ok", "text": str(text)}]


def shown(request: Request, response: Response) -> Any:
    """`response` with the shown message dropped, so it appears once."""
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/rbac")
    return response
