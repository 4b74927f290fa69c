"""`pipeline-app`: the project's operations command (build, db sync, rbac, serve, spec, and the
modules' own commands, e.g. dist)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from generators.spec import SpecError


def _build(args: argparse.Namespace) -> int:
    from app.core.config import ROOT
    from generators.build import build

    build(ROOT)
    return 0


def _db_sync(args: argparse.Namespace) -> int:
    from app.core.config import load_settings
    from app.cli.db_sync import sync_command

    return asyncio.run(
        sync_command(
            args.url or load_settings().database,
            args.models,
            dry_run=args.dry_run,
            allow_destructive=args.allow_destructive,
        )
    )


def _spec_convert(args: argparse.Namespace) -> int:
    from generators.loader import convert

    convert(args.src, args.dst, template=args.template)
    print(f"{args.src} → {args.dst}")
    return 0


def parser(modules: bool = True) -> argparse.ArgumentParser:
    """Every command; `modules`: with the modules' own (read from the build's manifest)."""
    p = argparse.ArgumentParser(prog="pipeline-app", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="compile every spec into build/ (DDL, manifest, forms)")
    b.set_defaults(func=_build)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    s = db.add_parser("sync", help="create missing tables, columns and indexes; never drop unless told")
    s.add_argument(
        "--url",
        default=None,
        help="(default: the app database of the settings) database URL, e.g. sqlite:///data/x.db or mysql://root@127.0.0.1/db",
    )
    s.add_argument("--models", nargs="+", default=None, help="spec files or folders (default: the app's models)")
    s.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    s.add_argument("--allow-destructive", action="store_true", help="also drop/narrow/retype columns")
    s.set_defaults(func=_db_sync)

    spec = sub.add_parser("spec", help="table specs").add_subparsers(dest="spec_command", required=True)
    from app.cli.spec_check import add_check
    add_check(spec)
    c = spec.add_parser("convert", help="convert a spec JSON ⇄ xlsx (by the files' suffixes)")
    c.add_argument("--template", default=None,
                   help="a workbook (the ecosystem's model.xltx) whose extra sheets (coding, help) a new .xlsx gets")
    c.add_argument("src")
    c.add_argument("dst")
    c.set_defaults(func=_spec_convert)

    from app.cli import demo, rbac_cmds, serve
    rbac_cmds.add_parser(sub)
    demo.add_parser(sub)
    serve.add_parser(sub)
    if modules:
        for name, (help_text, configure) in module_commands().items():
            configure(sub.add_parser(name, help=help_text))
    return p


def module_commands() -> dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]]:
    """The commands of the manifest's modules (their `cli` hook, shape in app.core.hooks); none
    before the first build."""
    from app.core.catalog import load_catalog
    from app.core.config import ROOT
    from app.core.hooks import hook

    build_dir = ROOT / "build"
    if not (build_dir / "manifest.json").exists():
        return {}
    return {name: command for module in load_catalog(build_dir).modules
            for name, command in hook(module["name"], "cli").items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `build` never reads the manifest it is about to replace (it may be missing or stale)
    args = parser(modules=argv[:1] != ["build"]).parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(f"pipeline-app: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
