"""`db sync` for contains side tables (`generators.lookup_grams`) whose triggers are missing or old.

A side table the plan creates comes with its triggers and its fill (`table_statements`). One that
exists but whose triggers are missing (a restore that skipped triggers) may have missed writes,
and one whose triggers fill other fields (the spec's contains index changed) holds the wrong
grams: its old triggers are dropped, the new ones created, and it is refilled from the rows of
its table. Trigger names carry the fields they fill, so a second sync plans nothing. The step is
safe, so it runs before the plan's destructive steps (a dropped column no trigger names any more).
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
        wanted = sql.trigger_names(table)
        if set(wanted) <= have:
            continue
        old = sorted(n for n in have if n.startswith(f"{table.name}_") and n not in wanted)
        source = table.info["grams_of"]
        plan.steps.append(Step(f"create the triggers of {table.name} and fill it from the rows of {source}",
                               [sql.drop_trigger(table, n) for n in old] + sql.triggers(table) + sql.fill(table),
                               why="a side table of grams only: its content is made again from the rows"))
