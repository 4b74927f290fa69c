"""The benchmark server's app: the production app plus the floor route, and nothing else.

`bench_floor` is the least a request of this app that writes can cost: the same app, middleware
and worker, one indexed SELECT and one INSERT in a transaction on the distributor store's raw
aiomysql pool, no key, no body. It lives here so that production never has it: only the
benchmarks serve this module (`bench/serve.py`). It sits under the keyed prefix `/api/dist/`, so
it passes the same middleware (no session, no CSRF) as the distributor API. See bench/README.md.
"""
from __future__ import annotations

from litestar import Request, Response, post
from litestar.params import FromPath

from app.core.clock import utcnow
from app.core.ids import new_id
from app.web.app import create_app
from app.web.errors import error_response
from modules.pipeline_dist.mariadb_store import RawStore
from modules.pipeline_dist.state import state_of


@post("/api/dist/bench/floor/{code:str}", include_in_schema=False, status_code=200)
async def bench_floor(request: Request, code: FromPath[str]) -> Response:
    """One indexed SELECT and one INSERT, with the pool discipline of the real path."""
    store = state_of(request).store
    if not isinstance(store, RawStore):
        return error_response(404, "the benchmark floor needs MariaDB")
    call_id, now = new_id(), utcnow()
    async with store.gate, store.pool.acquire() as conn:  # the same pool discipline as the real path
        async with conn.cursor() as cur:
            await cur.execute("SELECT id FROM pipelines WHERE code = %s", (code,))
            row = await cur.fetchone()
            if row is None:
                await conn.rollback()
                return error_response(404, "pipeline not found")
            await cur.execute("INSERT INTO pipeline_usage_log (id, pipeline_id, units, currency, status, started_at, "
                              "created_at, updated_at) VALUES (%s, %s, 1, 'CNY', 'succeeded', %s, %s, %s)",
                              (call_id, row[0], now, now, now))
        await conn.commit()
    return Response({"id": call_id})


app = create_app()
app.register(bench_floor)
