"""`pipeline-app db sync`: the CLI glue around the compiler's schema sync (generators.sync).

The compiler plans and applies on any engine it is given; this side knows where the project's
models are and how a plain URL becomes an async engine.
"""
from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from app.core.config import ROOT
from app.core.db import make_engine
from generators.build import app_model_dirs
from generators.loader import load_specs
from generators.sync import SyncError, one_line, apply_sync, plan_sync


def default_models(root: Path = ROOT) -> list[Path]:
    """Every module folder under models/ except rbac, whose tables live in the RBAC database."""
    return app_model_dirs(root)


async def sync_command(url: str, models: list[str] | None, dry_run: bool = False,
                       allow_destructive: bool = False) -> int:
    """The CLI's `db sync`: 0 when done (or nothing to do), 1 on a database error.

    A broken spec raises SpecError before any connection is made; the CLI turns it into exit 2.
    """
    specs = load_specs(list(models) if models else default_models())
    engine = make_engine(url)
    try:
        plan = await plan_sync(engine, specs, allow_destructive)
        print(plan.render())
        if dry_run:
            if plan.steps:
                print("Dry run: nothing was changed.")
            return 0
        if plan.steps:
            applied = await apply_sync(engine, plan)
            print(f"Applied {applied} step(s).")
        return 0
    except (SyncError, SQLAlchemyError, OSError) as exc:
        print(f"pipeline-app db sync: {one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
