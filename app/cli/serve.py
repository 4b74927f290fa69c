"""`pipeline-app serve`: uvicorn with N workers; SIGTERM drains in-flight requests before exit."""
from __future__ import annotations

import argparse
import os
import shutil

import uvicorn

from app.core.config import load_settings


def serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    metrics_dir = settings.data_dir / "metrics" / str(args.port or settings.port)
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "app.web.asgi:app",
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=args.drain_seconds,
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the web app (uvicorn)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: settings.workers)")
    p.add_argument("--drain-seconds", type=int, default=30, help="how long SIGTERM waits for requests")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted for X-Forwarded-For")
    p.set_defaults(func=serve)
