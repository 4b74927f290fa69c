"""`db sync` for contains side tables (`generators.lookup_grams`) that exist without their triggers.

A side table the plan creates comes with its triggers and its fill (`table_statements`). One that
exists but whose triggers are missing (a database made by an older build, a restore that skipped
triggers) may have missed writes: its triggers are created again and it is refilled from the
rows of its table. Triggers are found by name, so a second sync plans nothing.
"""
from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from generators.lookup_grams import gram_sql
from generators.sync.model import Plan, Step


def plan_gram_triggers(conn: Connection, metadata: MetaData, existing: set[str], plan: Plan) -> None:
    """Add a step per existing side table with a trigger missing."""
    tables = [t for t in metadata.sorted_tables if t.info.get("grams_of") and t.name in existing]
    if not tables:
        return
    sql = gram_sql(conn.dialect)
    have = {row[0] for row in conn.exec_driver_sql(sql.existing_triggers)}
    for table in tables:
        if set(sql.trigger_names(table)) <= have:
            continue
        source = table.info["grams_of"]
        plan.steps.append(Step(f"create the triggers of {table.name} and fill it from the rows of {source}",
                               sql.triggers(table) + sql.fill(table),
                               why="a side table of grams only: its content is made again from the rows"))
