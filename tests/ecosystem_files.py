"""The ecosystem's files the compiler tests read (tests/fixtures/ecosystem), and the database
plumbing those tests share: run DDL as printed, reflect columns, run a query."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from app.core.db import make_engine
from generators.sync import Plan, Step, apply_sync

ROOT = Path(__file__).resolve().parent.parent
ECOSYSTEM = ROOT / "tests" / "fixtures" / "ecosystem"
RBAC_MODELS = ECOSYSTEM / "rbac-models"
TEMPLATE = ECOSYSTEM / "model.xltx"
COMPILER = ECOSYSTEM / "compiler"
CRUD_EXAMPLES = COMPILER / "crud-examples"
ACCT_MODELS = COMPILER / "models"
ACCT_VIEWS = COMPILER / "views"
ECOSYSTEM_DDL = COMPILER / "ddl"


async def run_statements(url: str, statements: list[str]) -> None:
    """Each statement as a client would run it, the way `db sync` runs its own."""
    engine = make_engine(url)
    try:
        await apply_sync(engine, Plan(engine.dialect.name, [Step("statements", statements)]))
    finally:
        await engine.dispose()


async def on_engine(url: str, fn) -> Any:
    """`fn(sync connection)` on a fresh engine of `url`, in a transaction that commits."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


async def reflected(url: str, table: str) -> dict[str, dict]:
    """The live columns of `table`, by name."""
    return await on_engine(url, lambda c: {col["name"]: col for col in inspect(c).get_columns(table)})


def sql_file(path: Path) -> list[str]:
    """The statements of an SQL file (`;` at a line's end ends one)."""
    return [s.strip() for s in path.read_text(encoding="utf-8").split(";\n") if s.strip()]
