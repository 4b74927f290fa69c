"""Applying a sync plan, step by step, each in its own transaction."""
from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from generators.sync.model import Plan, SyncError


def one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


async def apply_sync(engine: AsyncEngine, plan: Plan) -> int:
    """Run the steps in order, each in its own transaction, stopping at the first failure.

    MySQL commits every DDL statement on its own, so a failed sync cannot be rolled back as a whole:
    the error says which step failed and how many ran before it; re-running sync plans the rest.
    """
    double = engine.dialect.identifier_preparer._double_percents
    async with engine.connect() as conn:
        for n, step in enumerate(plan.steps, 1):
            try:
                async with conn.begin():
                    if step.insert is not None:  # row by row: seed rows may name different columns
                        for row in step.insert[1]:
                            await conn.execute(step.insert[0].insert(), row)
                    else:
                        for sql in step.statements:
                            await conn.exec_driver_sql(sql.replace("%", "%%") if double else sql)
            except SQLAlchemyError as exc:
                raise SyncError(f"step {n} ({step.description}) failed: {one_line(exc)} "
                                f"[{n - 1} step(s) before it were applied]") from exc
    return len(plan.steps)
