"""Where a list request's time goes: cProfile over N in-process requests of a list page.

    py3/bin/python bench/list_profile.py [--pipelines 10000] [--requests 300] [--top 30] [--generic]

Fills a fresh MariaDB database (`$PIPELINE_TEST_MARIADB`) with N pipelines, builds the real app
(`create_app()`, its lifespan run in this event loop), logs in, then calls the ASGI app directly
(no HTTP client in the profile) for the pipelines' first list page, the JSON list of the same
page and /healthz, and prints, per case, the mean time and CPU time per request (without and with
the profiler) and the top entries by cumulative time and by own time. `--generic` adds the first
page once more with its rows rendered the old way (a loop over the columns, one `show()` a cell:
tests/generic_rows.py), to compare with the rows compiled at build time in the same run. The database and the temp
folder are dropped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness import scratch  # noqa: E402
from list_pages import fill  # noqa: E402

PASSWORD = "bench-Passw0rd!"
SITE = str(Path(pstats.__file__).parent) + "/"  # shortened in the listing, as the project's root
CASES = (("HTML first page", "/pipeline_core/pipelines", b"text/html", False),
         ("HTML first page, generic rows", "/pipeline_core/pipelines", b"text/html", True),
         ("JSON list API", "/api/pipeline_core/pipelines", b"application/json", False),
         ("/healthz (the stack alone)", "/healthz", b"application/json", False))


def scope_of(path: str, accept: bytes, cookie: bytes) -> dict[str, Any]:
    """An HTTP scope as uvicorn builds it for a keep-alive GET."""
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"127.0.0.1"), (b"accept", accept), (b"cookie", cookie)],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 9090), "state": {}}


async def call(app: Any, scope: dict[str, Any]) -> int:
    """One request through the ASGI app; its status (the body is read and dropped)."""
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(dict(scope), receive, send)
    return status


async def measure(app: Any, scope: dict[str, Any], requests: int) -> tuple[float, float, float, cProfile.Profile]:
    """Mean ms per request and CPU ms per request of `requests` calls, then ms under cProfile."""
    for _ in range(20):  # warm: pools, caches, compiled statements and templates
        assert await call(app, scope) == 200
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        await call(app, scope)
    plain = (time.perf_counter() - started) / requests * 1000
    cpu = (time.process_time() - cpu) / requests * 1000
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    for _ in range(requests):
        await call(app, scope)
    prof.disable()
    return plain, cpu, (time.perf_counter() - started) / requests * 1000, prof


async def profile(env: dict[str, str], requests: int, top: int, generic: bool) -> None:
    import httpx
    from generic_rows import generic_rows

    from app.core.config import load_settings
    from app.web.app import create_app
    from helpers import Operator

    os.environ.update(env)
    app = create_app(load_settings())
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                base_url="http://127.0.0.1") as client:
        assert (await Operator(client).login("admin", PASSWORD)).status_code == 303
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items()).encode()
        for name, path, accept, old_rows in CASES:
            if old_rows and not generic:
                continue
            scope = scope_of(path, accept, cookie)
            with generic_rows(app) if old_rows else contextlib.nullcontext():
                plain, cpu, per_request, prof = await measure(app, scope, requests)
            print(f"\n=== {name} ({path}), {requests} requests: {plain:.2f} ms per request "
                  f"({cpu:.2f} ms CPU), {per_request:.2f} ms under cProfile")
            for order, count in (("cumulative", top), ("tottime", top // 2)):
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats(order).print_stats(count)
                print(f"--- by {order}")
                print("\n".join(line.replace(str(ROOT) + "/", "").replace(SITE, "")
                                for line in out.getvalue().splitlines()[6:] if line.strip()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipelines", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--generic", action="store_true", help="the first page with the old per-cell rows too")
    args = ap.parse_args()
    mariadb = os.environ.get("PIPELINE_TEST_MARIADB", "mysql://root@127.0.0.1:3306")
    with scratch(mariadb, "lprof", PASSWORD) as run:
        asyncio.run(fill(run.url, args.pipelines, 0))
        asyncio.run(profile(run.env, args.requests, args.top, args.generic))


if __name__ == "__main__":
    main()
