"""Liveness and readiness (no login needed, cheap, honest about the databases) and the metrics.

`/metrics` is not public: a role must be granted it, or a scraper sends the configured
`metrics_token` as `Authorization: Bearer <token>` (docs/rbac-admin.md).
"""
from __future__ import annotations

import asyncio
import hmac

from litestar import Request, get
from litestar.response import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.core.context import ctx_of
from app.core.db import CLUSTER_STATUS, CLUSTER_VARIABLES, cluster_unready
from app.ops.observability import metrics_text


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    ctx = ctx_of(request)
    checks = {}
    for name, engine in (("database", ctx.db), ("rbac_database", ctx.rbac_db)):
        try:
            async with asyncio.timeout(3):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    checks[name] = await _cluster_check(conn) or "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"down: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return Response({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


async def _cluster_check(conn) -> str | None:  # noqa: ANN001
    """A Galera node that is not Synced is up but not ready (it may refuse queries or lag)."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return None
    variables = dict((await conn.execute(text(CLUSTER_VARIABLES))).all())
    status = dict((await conn.execute(text(CLUSTER_STATUS))).all())
    return cluster_unready(status, variables)


METRICS_PATH = "/metrics"


def scraper_token(authorization: str | None, token: str | None) -> bool | None:
    """A scraper's bearer token against the configured one: None when there is nothing to judge
    (no token configured, or no bearer credentials sent: the grants decide), else whether it is
    the one. Compared in constant time, so response times do not spell the token out."""
    scheme, _, sent = (authorization or "").strip().partition(" ")
    if not token or scheme.lower() != "bearer":
        return None
    return hmac.compare_digest(sent.strip().encode(), token.encode())


@get(METRICS_PATH, include_in_schema=False, sync_to_thread=False)
def metrics() -> Response:
    return Response(metrics_text(), media_type=CONTENT_TYPE_LATEST)


handlers = [healthz, readyz, metrics]
