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


async def _register(settings, dry_run: bool) -> tuple[list[str], int]:
    """Register every path of the app built from `settings` into its RBAC database."""
    from app.auth import rbac
    from app.core.db import make_engine
    from app.web.app import create_app

    paths = rbac.app_paths(create_app(settings))
    engine = make_engine(settings.rbac_database)
    try:
        if not dry_run:
            await rbac.ensure_rbac_schema(engine)
        return await rbac.register_paths(engine, paths, settings.rbac_defaults, dry_run), len(paths)
    finally:
        await engine.dispose()


def _rbac_register(args: argparse.Namespace) -> int:
    from app.core.config import load_settings

    changes, count = asyncio.run(_register(load_settings(), args.dry_run))
    for change in changes:
        print(("would " if args.dry_run else "") + change)
    if not changes:
        print(f"rbac register: nothing to do ({count} paths registered)")
    return 0


def _rbac_adduser(args: argparse.Namespace) -> int:
    from app.auth import rbac
    from app.core.config import load_settings
    from app.core.db import make_engine

    if not args.password_stdin:
        print("pipeline-app: give the password on stdin with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.read().rstrip("\r\n")
    if not password:
        print("pipeline-app: refusing an empty password", file=sys.stderr)
        return 2

    async def run() -> tuple[str, bool]:
        engine = make_engine(load_settings().rbac_database)
        try:
            await rbac.ensure_rbac_schema(engine)
            return await rbac.add_user(engine, args.username, password, args.role)
        finally:
            await engine.dispose()

    _user_id, created = asyncio.run(run())
    print(f"user {args.username} {'created' if created else 'updated (new password)'}, role {args.role}")
    return 0


def _rbac_bootstrap(args: argparse.Namespace) -> int:
    """Fresh machine: RBAC tables, every path registered, and a demo admin when nobody exists."""
    import secrets

    from app.auth import rbac
    from app.core.config import load_settings
    from app.core.db import make_engine

    settings = load_settings()

    async def run() -> tuple[int, str | None]:
        changes, _count = await _register(settings, dry_run=False)
        engine = make_engine(settings.rbac_database)
        try:
            if await rbac.has_users(engine):
                return len(changes), None
            password = secrets.token_urlsafe(12)
            await rbac.add_user(engine, "admin", password, "pipeline.admin")
            return len(changes), password
        finally:
            await engine.dispose()

    changed, password = asyncio.run(run())
    print(f"rbac bootstrap: {changed} change(s) registered")
    if password:
        print(f"demo admin: admin / {password}")
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

    rbac = sub.add_parser("rbac", help="the shared RBAC database").add_subparsers(dest="rbac_command", required=True)
    r = rbac.add_parser("register", help="register every path the app serves and the default grants")
    r.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    r.set_defaults(func=_rbac_register)
    a = rbac.add_parser("adduser", help="create a user (or set its password) and give it a role")
    a.add_argument("username")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--role", required=True, help="role key orgtypeid.name, e.g. pipeline.admin")
    a.set_defaults(func=_rbac_adduser)
    bs = rbac.add_parser("bootstrap", help="schema, paths and a demo admin on a fresh machine")
    bs.set_defaults(func=_rbac_bootstrap)

    from app.cli import serve
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
