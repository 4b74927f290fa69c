"""The pipeline's steps drawn as a flow: one row per `seq`, parallel steps side by side as lanes
under their group's name, so an operator sees what runs together without reading numbers."""
from __future__ import annotations

from itertools import groupby
from typing import Any

from litestar import Request

from app.core.catalog import TableView
from app.core.context import ctx_of
from modules.pipeline_core import publish as svc


def stages_of(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps sorted by seq → [{seq, group, steps}], a stage per seq (its group when parallel)."""
    out = []
    for seq, members in groupby(sorted(steps, key=svc.step_order), key=lambda s: s.get("seq")):
        members = list(members)
        groups = {s.get("parallel_group") for s in members}
        out.append({"seq": seq, "steps": members,
                    "group": next(iter(groups)) if len(members) > 1 and len(groups) == 1 else None})
    return out


async def flow_block(request: Request, tv: TableView, row: dict[str, Any]) -> str:
    ctx = ctx_of(request)
    stv = svc.tables_of(ctx)[1]
    async with ctx.db.connect() as conn:
        steps = await svc.current_steps(ctx, conn, row["id"])
    return request.app.template_engine.get_template("pipeline_flow_block.html").render(
        request=request, stages=stages_of(steps), steps_tv=stv)
