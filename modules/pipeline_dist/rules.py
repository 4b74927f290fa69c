"""Save rules for distributors and their pipeline links (form, JSON API and import alike)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from modules.pipeline_ops.rules import mode_errors, period_errors, quota_errors


async def distributor_rule(conn: AsyncConnection, tv: Any, row: dict[str, Any],
                           row_id: str | None) -> dict[str, str]:
    return quota_errors(row)


async def link_rule(conn: AsyncConnection, tv: Any, row: dict[str, Any],
                    row_id: str | None) -> dict[str, str]:
    """An own price is optional (empty mode = list price), but a chosen mode needs its numbers.

    One link per distributor and pipeline (unique index), so its period cannot overlap another's.
    """
    return mode_errors(tv, row) | period_errors(row) | quota_errors(row)


RULES = {"distributors": distributor_rule, "distributor_pipeline": link_rule}
