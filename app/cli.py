"""`pipeline-app`: the project's operations command (build, db sync, rbac, serve, spec, dist)."""
from __future__ import annotations

import argparse
import asyncio
import sys

from generators.spec import SpecError


def _build(args: argparse.Namespace) -> int:
    from generators.build import build

    build()
    return 0


def _db_sync(args: argparse.Namespace) -> int:
    from generators.sync import sync_command

    return asyncio.run(sync_command(args.url, args.models, dry_run=args.dry_run,
                                    allow_destructive=args.allow_destructive))


def _spec_convert(args: argparse.Namespace) -> int:
    from generators.xlsx_spec import convert

    convert(args.src, args.dst)
    print(f"{args.src} → {args.dst}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pipeline-app", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="compile every spec into build/ (DDL, manifest, forms)")
    b.set_defaults(func=_build)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    s = db.add_parser("sync", help="create missing tables, columns and indexes; never drop unless told")
    s.add_argument("--url", required=True, help="database URL, e.g. sqlite:///data/x.db or mysql://root@127.0.0.1/db")
    s.add_argument("--models", nargs="+", default=None, help="spec files or folders (default: the app's models)")
    s.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    s.add_argument("--allow-destructive", action="store_true", help="also drop/narrow/retype columns")
    s.set_defaults(func=_db_sync)

    spec = sub.add_parser("spec", help="table specs").add_subparsers(dest="spec_command", required=True)
    c = spec.add_parser("convert", help="convert a spec JSON ⇄ xlsx (by the files' suffixes)")
    c.add_argument("src")
    c.add_argument("dst")
    c.set_defaults(func=_spec_convert)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


_EXTRA_COMMANDS: list = []


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(f"pipeline-app: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
