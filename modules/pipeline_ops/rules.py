"""Save rules for pricing and capacity (form, JSON API and import alike).

Each rule gets the row as it will be after the write and answers errors by field. Fields the
write leaves out fall back to the spec's default, as the database would fill them in.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.i18n import Msg


def value(tv: Any, row: Mapping[str, Any], name: str) -> Any:
    """The field's value after the write: given, else the spec default (what the DB will store)."""
    return row[name] if name in row else tv.fields[name].default


def mode_errors(tv: Any, row: Mapping[str, Any]) -> dict[str, str]:
    """A price mode needs its numbers: unit → unit_price; package → package_units and package_price."""
    mode = value(tv, row, "price_mode")
    errors = {}
    if mode == "unit" and row.get("unit_price") is None:
        errors["unit_price"] = Msg('required for unit pricing')
    if mode == "package":
        for name in ("package_units", "package_price"):
            if row.get(name) is None:
                errors[name] = Msg('required for package pricing')
    return errors


def period_errors(row: Mapping[str, Any]) -> dict[str, str]:
    start, end = row.get("effective_from"), row.get("effective_to")
    if start is not None and end is not None and end <= start:
        return {"effective_to": Msg('must be after the effective-from time')}
    return {}


def quota_errors(row: Mapping[str, Any]) -> dict[str, str]:
    """A month holds at least one day: a monthly quota below the daily one is a typo."""
    daily, monthly = row.get("daily_quota"), row.get("monthly_quota")
    if daily is not None and monthly is not None and monthly < daily:
        return {"monthly_quota": Msg('must be at least the daily quota ({daily})', daily=daily)}
    return {}


def _same(col: Any, v: Any) -> Any:
    return col.is_(None) if v is None else col == v


async def _overlap_errors(conn: AsyncConnection, tv: Any, row: Mapping[str, Any], row_id: str | None) -> dict:
    """Two active prices for the same (pipeline, step, model) at the same instant would make the
    charge depend on row order, so the second one is refused.

    The pipeline row is locked first and the check is a locking read, so two operators saving at
    once on MariaDB are serialised and the second sees the first's row (SQLite writes are serial).
    """
    t, pt = tv.table, tv.table.metadata.tables["pipelines"]
    await conn.execute(select(pt.c.id).where(pt.c.id == row["pipeline_id"]).with_for_update())
    start, end = row["effective_from"], row.get("effective_to")
    stmt = select(t.c.effective_from, t.c.effective_to).where(
        t.c.pipeline_id == row["pipeline_id"], _same(t.c.step_id, row.get("step_id")),
        _same(t.c.model, row.get("model")), t.c.status == "active",
        (t.c.effective_to.is_(None)) | (t.c.effective_to > start))
    if end is not None:
        stmt = stmt.where(t.c.effective_from < end)
    if row_id is not None:
        stmt = stmt.where(t.c[tv.pk] != row_id)
    clash = (await conn.execute(stmt.order_by(t.c.effective_from).limit(1).with_for_update())).first()
    if clash is None:
        return {}
    until = clash.effective_to.isoformat(sep=" ") if clash.effective_to else Msg("open end")
    return {"effective_from": Msg("overlaps the active price from {start} to {until} for the same pipeline, "
                                  "step and model; end that one first",
                                  start=clash.effective_from.isoformat(sep=" "), until=until)}


async def pricing_rule(conn: AsyncConnection, tv: Any, row: dict[str, Any],
                       row_id: str | None) -> dict[str, str]:
    errors = mode_errors(tv, row) | period_errors(row)
    if row.get("model") is not None and row.get("step_id") is None:
        # Keeps precedence a simple ladder (step+model > step > pipeline): a model runs in a step.
        errors["model"] = Msg('a model price needs a step')
    if row.get("step_id") is not None:
        st = tv.table.metadata.tables["pipeline_steps"]
        owner = (await conn.execute(select(st.c.pipeline_id).where(st.c.id == row["step_id"]))).scalar()
        if owner is not None and owner != row.get("pipeline_id"):
            errors["step_id"] = Msg('is not a step of this pipeline')
    if not errors and value(tv, row, "status") == "active" and row.get("effective_from") is not None:
        errors |= await _overlap_errors(conn, tv, row, row_id)
    return errors


async def capacity_rule(conn: AsyncConnection, tv: Any, row: dict[str, Any],
                        row_id: str | None) -> dict[str, str]:
    return quota_errors(row)


RULES = {"pipeline_pricing": pricing_rule, "pipeline_capacity": capacity_rule}
