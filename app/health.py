"""Liveness and readiness: no login needed, cheap, and honest about the databases."""
from __future__ import annotations

import asyncio

from litestar import Request, get
from litestar.response import Response
from sqlalchemy import text

from app.context import ctx_of


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
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"down: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return Response({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


handlers = [healthz, readyz]
