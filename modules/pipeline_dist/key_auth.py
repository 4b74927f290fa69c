"""The distributor API's key check: who calls, before anything else about the request.

The key comes in `Authorization: Bearer` (or `X-API-Key`), never the query string; the check
runs as the router's middleware, before the body is even parsed, so every key problem is the
same 401 whatever else is wrong with the request. Verified keys are cached per worker for
`key_cache_seconds` (`DistState.keys`: revocation takes effect within that on every worker) and
a malformed key is refused without a query. Each accepted key's use (time, client IP) is noted
in memory (`activity`) and written in the background, never on the request.
"""
from __future__ import annotations

import logging
from typing import Any

from litestar.connection import ASGIConnection

from app.core.context import AppContext
from modules.pipeline_dist.key_format import well_formed
from modules.pipeline_dist.limits import DistError, tally
from modules.pipeline_dist.state import STATE_KEY, DistState

log = logging.getLogger("pipeline.dist")

_UNKNOWN = object()  # a key the cache does not know (None is a cached refusal)
DISTRIBUTOR = "dist_distributor"  # scope["state"] key the guard fills
QUERY_KEY_NAMES = frozenset({b"api_key", b"apikey", b"api-key", b"key", b"access_token", b"token"})


def distributor_of(request: ASGIConnection) -> str:
    """The caller's distributor id (the guard put it there)."""
    return request.scope["state"][DISTRIBUTOR]["id"]


def presented_key(scope: Any) -> str | None:
    """`Authorization: Bearer <key>`, else `X-API-Key`, from the raw ASGI headers (no Headers object:
    this runs on every call)."""
    api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").strip().partition(" ")
            return rest.strip() if scheme.lower() == "bearer" else None
        if name == b"x-api-key":
            api_key = value.decode("latin-1").strip()
    return api_key


def key_middleware(app: Any) -> Any:
    """The key check as the API router's middleware: like a guard it runs before the body is parsed
    (a bad key is a 401 whatever the body), but without the copy of the route handler Litestar
    makes for every guard call (3 % of a call's CPU)."""

    async def middleware(scope: dict, receive: Any, send: Any) -> None:
        await require_key(scope)
        await app(scope, receive, send)

    return middleware


async def require_key(scope: dict) -> None:
    """Resolve the caller's distributor into the scope state (`distributor_of`) or refuse with 401.
    A cached key costs a dict lookup; a malformed one is refused before any query. A key in the
    query string is refused outright: URLs end up in logs."""
    query = scope.get("query_string")
    if query and any(part.partition(b"=")[0].lower() in QUERY_KEY_NAMES for part in query.split(b"&")):
        tally("rejected", "unauthorized")
        raise DistError(401, "send the key in the Authorization header, never in the URL")
    key = presented_key(scope)
    ctx: AppContext = scope["litestar_app"].state.ctx
    state: DistState = ctx.extras[STATE_KEY]
    distributor = state.keys.peek(key, _UNKNOWN) if key else None
    if not key:
        reason = "missing"
    elif distributor is not _UNKNOWN:
        reason = "unknown, revoked or expired key, or distributor not active (cached)"
    elif not well_formed(key):
        distributor, reason = None, "malformed"
    else:
        async def load() -> dict | None:
            from modules.pipeline_dist.keys import verify_key

            async with ctx.db.connect() as conn:
                row = await verify_key(conn, ctx.settings, key)
            return None if row is None else {"id": row["id"], "name": row["name"], "slot": row["key_slot"]}

        distributor = await state.keys.get(key, load)
        reason = "unknown, revoked or expired key, or distributor not active"
    if distributor is not None:
        scope.setdefault("state", {})[DISTRIBUTOR] = distributor
        client = scope.get("client")
        state.activity.key_used(distributor["id"], distributor["slot"], client[0] if client else None)
        return
    log.info("distributor API refused %s %s: %s key", scope.get("method"), scope["path"], reason)
    tally("rejected", "unauthorized")
    raise DistError(401, "invalid or missing API key")
