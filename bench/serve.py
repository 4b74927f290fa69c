"""`python -m bench.serve [serve's options]` (from the project folder): `pipeline-app serve`,
serving the benchmark app (`bench.asgi`: the production app plus the floor route).

The same command and options as production (metrics folder, workers, graceful drain, uvicorn
settings), so the benchmark measures the server users run; only the ASGI app uvicorn imports in
each worker differs. `app.cli.serve` names its app itself, so this points uvicorn's `run` at the
benchmark app for this process and runs `serve` as it is.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn

from app.cli import serve

APP = "bench.asgi:app"


def main(argv: list[str] | None = None) -> int:
    run = uvicorn.run

    def run_bench_app(_app: Any, **options: Any) -> None:
        run(APP, **options)

    uvicorn.run = run_bench_app
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    serve.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
