"""Pipeline actions (publish, roll back) and the versions block of the pipeline's record page.

The work is in `publish.py`; this file only adapts it to requests and renders the block.
"""
from __future__ import annotations

import json
from typing import Any

from litestar import Request
from litestar.utils.scope.state import ScopeState
from sqlalchemy import func, select

from app.core.catalog import TableView
from app.core.clock import utcnow
from app.core.context import ctx_of
from app.crud.rows import jsonable
from app.web.ui import localized
from app.web.views.common import actor_of, can
from modules.pipeline_core import publish as svc

VERSIONS_SHOWN = 20
VALUE_CHARS = 120


async def publish_action(request: Request, tv: TableView, row_id: str,
                         data: dict[str, Any]) -> dict[str, Any]:
    """`{"note": "..."}` → the new version."""
    return await svc.publish(ctx_of(request), row_id, actor_of(request), data.get("note"))


async def rollback_action(request: Request, tv: TableView, row_id: str,
                          data: dict[str, Any]) -> dict[str, Any]:
    """`{"version_no": N}` → the new version carrying N's snapshot, steps restored."""
    return await svc.rollback(ctx_of(request), row_id, data.get("version_no"), actor_of(request))


def _short(value: Any) -> str:
    """A diff value as one readable line (escaped by the template, cut so a big config stays legible)."""
    if value is None:
        return "∅"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"


async def _publishers(ctx: Any, conn: Any, version_ids: list[str]) -> dict[str, str]:
    """Who published each version, by name: the audit row written with it has the username
    (published_by holds the user id, which means nothing to a reader)."""
    if not version_ids:
        return {}
    a = ctx.catalog.tables["audit_log"].table
    result = await conn.execute(select(a.c.row_id, a.c.username).where(
        a.c.table_name == "pipeline_versions", a.c.row_id.in_(version_ids),
        a.c.action.in_(("publish", "rollback"))))
    return {row_id: name for row_id, name in result.all() if name}


async def versions_block(request: Request, tv: TableView, row: dict[str, Any]) -> list[str]:
    """The pipeline's latest versions, each with its diff against the one before, rollback buttons
    for the others, and what changed since the last publish (with what would stop a publish)."""
    ctx = ctx_of(request)
    ptv, stv, vtv = svc.tables_of(ctx)
    v = vtv.table
    async with ctx.db.connect() as conn:
        latest = select(v).where(v.c.pipeline_id == row["id"]).order_by(v.c.version_no.desc())
        rows = [dict(r._mapping) for r in await conn.execute(latest.limit(VERSIONS_SHOWN + 1))]
        total = len(rows) if len(rows) <= VERSIONS_SHOWN else (await conn.execute(
            select(func.count()).select_from(v).where(v.c.pipeline_id == row["id"]))).scalar_one()
        steps = await svc.current_steps(ctx, conn, row["id"])
        now = utcnow()
        problems = svc.problems_of(row, steps, await svc.active_prices(ctx, conn, row["id"], now), now)
        names = await _publishers(ctx, conn, [r["id"] for r in rows])
    snaps = [json.loads(r["snapshot"]) for r in rows]
    order = list(ptv.fields), list(stv.fields)
    versions = []
    for i, r in enumerate(rows[:VERSIONS_SHOWN]):
        older = snaps[i + 1] if i + 1 < len(snaps) else None
        versions.append({"row": {k: jsonable(val) for k, val in r.items() if k != "snapshot"},
                         "publisher": names.get(r["id"]) or r["published_by"],
                         "diff": svc.diff_snapshots(older, snaps[i], *order), "first": older is None,
                         "steps": len(snaps[i].get("steps", [])),
                         "current": r["version_no"] == row.get("published_version")})
    pending = svc.diff_snapshots(snaps[0], svc.snapshot_of(row, steps), *order) if snaps else None
    base = f"{tv.base}/{row['id']}"
    token = ScopeState.from_scope(request.scope).csrf_token
    html = request.app.template_engine.get_template("pipeline_versions_block.html").render(
        request=request, versions=versions, total=total, pending=pending,
        pending_changed=bool(pending and any(pending.values())), problems=localized(request, problems),
        base=base,
        list_url=f"{vtv.base}?pipeline_id={row['id']}", steps_tv=stv, pipelines_tv=ptv, versions_tv=vtv,
        short=_short, csrf_token=token if isinstance(token, str) else "",
        can_publish=can(request, f"{base}/publish"), can_rollback=can(request, f"{base}/rollback"))
    return [html]


ACTIONS = {"pipelines": {"publish": publish_action, "rollback": rollback_action}}


async def pipeline_page_blocks(request: Request, tv: TableView, row: dict[str, Any]) -> list[str]:
    """The pipeline's page: its versions, its effective prices, and today's usage against quotas."""
    from modules.pipeline_ops.pricing import prices_block, usage_block
    from modules.pipeline_ops.usage_report import pipeline_chart

    from modules.pipeline_core.lanes import flow_block

    return [await flow_block(request, tv, row), *await versions_block(request, tv, row),
            await prices_block(request, tv, row), await usage_block(request, tv, row),
            await pipeline_chart(request, tv, row)]


EXTRAS = {"pipelines": pipeline_page_blocks}
