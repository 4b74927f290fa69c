"""`pipeline-app dist genkey --distributor NAME [--rotate] [--grace-hours H]`: a key from the shell.

Registered through the `cli` hook (`COMMANDS`, shape in app.core.hooks). The key goes to stdout
alone (so it can be piped into a secret store); everything else goes to stderr. Same service as
the record-page buttons, so the same rules and the same audit row.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys


async def _genkey_async(args: argparse.Namespace) -> int:
    from app.core.catalog import load_catalog
    from app.core.config import load_settings
    from app.core.context import AppContext
    from app.crud.rows import Actor, CrudError
    from modules.pipeline_dist.keys import distributor_id_by_name, issue_key

    settings = load_settings()
    ctx = AppContext(settings, load_catalog(settings.build_dir))
    await ctx.start()
    try:
        distributor_id = await distributor_id_by_name(ctx, args.distributor)
        if distributor_id is None:
            print(f"pipeline-app: no distributor named {args.distributor!r}", file=sys.stderr)
            return 1
        actor = Actor(None, f"cli:{getpass.getuser()}", None)
        try:
            key, row = await issue_key(ctx, actor, distributor_id, rotate=args.rotate,
                                       grace_hours=args.grace_hours)
        except CrudError as exc:
            hint = " (use --rotate)" if exc.status == 409 and not args.rotate else \
                " (run without --rotate)" if exc.status == 409 else ""
            detail = "".join(f"; {k}: {v}" for k, v in exc.errors.items())
            print(f"pipeline-app: {args.distributor}: {exc.message}{detail}{hint}", file=sys.stderr)
            return 1
    finally:
        await ctx.stop()
    print(key)
    until = row["prev_key_expires_at"]
    note = f"; the previous key works until {until} UTC" if until else ""
    print(f"pipeline-app: new key for {args.distributor} (prefix {row['api_key_prefix']}){note}. "
          "It is shown only now: store it safely.", file=sys.stderr)
    return 0


def _genkey(args: argparse.Namespace) -> int:
    return asyncio.run(_genkey_async(args))


def configure(dist: argparse.ArgumentParser) -> None:
    """`pipeline-app dist ...`: its subcommands."""
    commands = dist.add_subparsers(dest="dist_command", required=True)
    g = commands.add_parser("genkey", help="generate (or --rotate) a distributor's API key; prints it once")
    g.add_argument("--distributor", required=True, metavar="NAME", help="the distributor's name")
    g.add_argument("--rotate", action="store_true", help="replace an existing key (the old one gets a grace)")
    g.add_argument("--grace-hours", type=float, default=None,
                   help="with --rotate: hours the old key keeps working (default: key_grace_hours; 0 = now)")
    g.set_defaults(func=_genkey)


COMMANDS = {"dist": ("distributors", configure)}
