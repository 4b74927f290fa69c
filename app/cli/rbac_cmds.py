"""`pipeline-app rbac …`: register the app's paths, add users, bootstrap a fresh machine, and check
a (shared) RBAC database without changing it."""
from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections import Counter
from typing import Any

from sqlalchemy import select

from app.auth import rbac
from app.auth.grants import covers
from app.auth.passwords import PasswordScheme, password_format
from app.auth.sessions import end_user_sessions
from app.core.config import Settings, load_settings
from app.core.db import make_engine

PUBLIC_ROLES = ("any", "anonymous")  # what everybody holds, logged in or not
METRICS = "/metrics"


async def _register(settings: Settings, dry_run: bool) -> tuple[list[str], int]:
    """Register every path of the app built from `settings` into its RBAC database."""
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
    changes, count = asyncio.run(_register(load_settings(), args.dry_run))
    for change in changes:
        print(("would " if args.dry_run else "") + change)
    if not changes:
        print(f"rbac register: nothing to do ({count} paths registered)")
    return 0


def _org(settings: Settings, orgid: str | None) -> tuple[str, str]:
    return (orgid, orgid) if orgid else (settings.rbac_default_orgid, settings.rbac_default_orgname)


def _rbac_adduser(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        print("pipeline-app: give the password on stdin with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.read().rstrip("\r\n")
    if not password:
        print("pipeline-app: refusing an empty password", file=sys.stderr)
        return 2
    settings = load_settings()

    async def run() -> tuple[str, bool]:
        engine, app_db = make_engine(settings.rbac_database), make_engine(settings.database)
        try:
            await rbac.ensure_rbac_schema(engine)
            user_id, created = await rbac.add_user(engine, args.username, password, args.role,
                                                   scheme=PasswordScheme.of(settings), org=_org(settings, args.org))
            if not created:  # a new password ends the sessions the old one opened
                await end_user_sessions(app_db, user_id)
            return user_id, created
        finally:
            await engine.dispose()
            await app_db.dispose()

    _user_id, created = asyncio.run(run())
    print(f"user {args.username} {'created' if created else 'updated (new password)'}, role {args.role}")
    return 0


def _rbac_bootstrap(args: argparse.Namespace) -> int:
    """Fresh machine: RBAC tables, every path registered, and a demo admin when nobody exists."""
    settings = load_settings()

    async def run() -> tuple[int, str | None]:
        changes, _count = await _register(settings, dry_run=False)
        engine = make_engine(settings.rbac_database)
        try:
            if await rbac.has_users(engine):
                return len(changes), None
            password = secrets.token_urlsafe(12)
            await rbac.add_user(engine, "admin", password, "pipeline.admin", scheme=PasswordScheme.of(settings),
                                org=_org(settings, None))
            return len(changes), password
        finally:
            await engine.dispose()

    changed, password = asyncio.run(run())
    print(f"rbac bootstrap: {changed} change(s) registered")
    if password:
        print(f"demo admin: admin / {password}")
    return 0


async def check_report(settings: Settings) -> dict[str, Any]:
    """What `rbac check` prints: read-only, on the configured RBAC database."""
    engine = make_engine(settings.rbac_database)
    u, r, ur, p = rbac.table("users"), rbac.table("role"), rbac.table("userrole"), rbac.table("permission")
    try:
        async with engine.connect() as conn:
            passwords = (await conn.execute(select(u.c.password))).scalars().all()
            roles = (await conn.execute(select(r.c.id, r.c.orgtypeid, r.c.name))).all()
            role_ids = {row.id for row in roles}
            dangling = (await conn.execute(select(ur.c.id).where(ur.c.roleid.not_in(role_ids or {""})))).all()
            pathless = (await conn.execute(select(p.c.id).where((p.c.path.is_(None)) | (p.c.path == "")))).all()
            public = {key: await rbac.paths_of_roles(conn, frozenset({key})) for key in PUBLIC_ROLES}
    finally:
        await engine.dispose()
    return {
        "scheme": settings.rbac_password_scheme,
        "users by password format": dict(Counter(password_format(pw) for pw in passwords)),
        "built-in roles found": sorted(role_ids & set(rbac.IMPLICIT_ROLES)),
        "built-in roles missing": sorted(set(rbac.IMPLICIT_ROLES) - role_ids),
        "rows not understood": {
            "roles without a name": sum(1 for row in roles if not row.name and row.id not in rbac.IMPLICIT_ROLES),
            "user roles naming no role": len(dangling),
            "permissions without a path": len(pathless),
        },
        "public grants of /metrics": sorted(f"{key}: {grant}" for key, grants in public.items()
                                            for grant in grants if covers(grant, METRICS)),
    }


def _rbac_check(args: argparse.Namespace) -> int:
    report = asyncio.run(check_report(load_settings()))
    for key, value in report.items():
        print(f"{key}: {value}")
    unreadable = report["users by password format"].get("unknown", 0)
    if report["scheme"] == "argon2" and report["users by password format"].get("ecosystem"):
        print("note: users in the ecosystem's format cannot log in under the argon2 scheme; "
              "set rbac_password_scheme: ecosystem for a database shared with the platform")
    for grant in report["public grants of /metrics"]:  # left by an older `rbac register`; not revoked here
        print(f"warning: /metrics is public ({grant}); revoke it on /rbac/grants and let Prometheus "
              "scrape with the PIPELINE_METRICS_TOKEN bearer token (docs/rbac-admin.md)")
    return 1 if unreadable else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    rbac_cmd = sub.add_parser("rbac", help="the shared RBAC database").add_subparsers(dest="rbac_command",
                                                                                      required=True)
    r = rbac_cmd.add_parser("register", help="register every path the app serves and the default grants")
    r.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    r.set_defaults(func=_rbac_register)
    a = rbac_cmd.add_parser("adduser", help="create a user (or set its password) and give it a role")
    a.add_argument("username")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--role", required=True, help="role key orgtypeid.name, e.g. pipeline.admin")
    a.add_argument("--org", default=None, help="organisation id (default: rbac_default_orgid)")
    a.set_defaults(func=_rbac_adduser)
    bs = rbac_cmd.add_parser("bootstrap", help="schema, paths and a demo admin on a fresh machine")
    bs.set_defaults(func=_rbac_bootstrap)
    c = rbac_cmd.add_parser("check", help="report password formats, built-in roles and odd rows; change nothing")
    c.set_defaults(func=_rbac_check)
