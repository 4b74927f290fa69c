"""Save rules of pipeline_core, run by the CRUD runtime inside every write's transaction.

Only rules that hold for a single row belong here: seq gaps and parallel groups are checked at
publish time, because an operator re-arranging steps passes through invalid states one save
at a time.
"""
from __future__ import annotations

from typing import Any

from app.core.i18n import Msg
from app.core.catalog import TableView


async def step_rule(conn: Any, tv: TableView, row: dict[str, Any], row_id: str | None) -> dict[str, str]:
    """A step stays in its pipeline: its prices (pipeline_pricing.step_id) and the version history
    refer to it by id, so moving it would silently re-price or rewrite another pipeline."""
    if row_id is None:
        return {}
    from sqlalchemy import select

    t = tv.table
    owner = (await conn.execute(select(t.c.pipeline_id).where(t.c.id == row_id))).scalar_one_or_none()
    if owner is not None and owner != row.get("pipeline_id"):
        return {"pipeline_id": Msg('a step cannot move to another pipeline; add a new step there instead')}
    return {}


async def version_rule(conn: Any, tv: TableView, row: dict[str, Any], row_id: str | None) -> dict[str, str]:
    """Versions are written only by publish and roll back (modules/pipeline_core/publish.py),
    never through the generic create/update/import paths."""
    return {"version_no": Msg('versions are created by publishing a pipeline and are never edited')}


async def published_rule(conn: Any, tv: TableView, row: dict[str, Any]) -> list[str]:
    """A pipeline that was ever published has served distributors: its versions are what each
    call ran, so it is archived (or disabled), never deleted."""
    from sqlalchemy import func, select

    vt = tv.table.metadata.tables["pipeline_versions"]
    n = (await conn.execute(select(func.count()).select_from(vt).where(vt.c.pipeline_id == row["id"]))).scalar_one()
    return [Msg("it has {n} published versions; archive it instead", n=n)] if n else []


RULES = {"pipeline_steps": step_rule, "pipeline_versions": version_rule}
DELETE_RULES = {"pipelines": published_rule}
