"""Change counters for groups of tables that a hot path caches (`table_versions`).

Why: the distributor admission keeps its context (distributor, link, pipeline, capacity, list
prices) per worker instead of re-reading five tables on every call, and checks one counter in its
own transaction instead. Every INSERT/UPDATE/DELETE the app runs on a watched table bumps the
group's counter in the same transaction (an engine event, so CRUD, imports, business actions and
CLI commands all count without knowing about it), when the written table's schema has
`table_versions` (models/system). A write made outside the app (plain SQL, `text()`) is not seen;
the caches also expire after a few seconds, which bounds that case.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.sql.dml import UpdateBase

from app.core.clock import utcnow
from app.core.dialects import upsert

# group → the tables whose rows it caches
GROUPS: dict[str, tuple[str, ...]] = {
    "dist_context": ("pipelines", "distributors", "distributor_pipeline", "pipeline_capacity", "pipeline_pricing"),
}
WATCHED: dict[str, str] = {table: group for group, tables in GROUPS.items() for table in tables}

def watch(engine: Any) -> None:
    """Bump the group counter of every watched table this engine writes, in the same transaction."""
    event.listen(engine.sync_engine, "after_execute", _after_execute)


def _after_execute(conn: Any, clause: Any, _multi: Any, _params: Any, _options: Any, _result: Any) -> None:
    if not isinstance(clause, UpdateBase):
        return
    table = clause.table
    group = WATCHED.get(getattr(table, "name", ""))
    versions = getattr(table, "metadata", None) and table.metadata.tables.get("table_versions")
    if group is not None and versions is not None:  # a schema without the table (a partial one) has no cache
        conn.execute(bump_statement(conn.dialect.name, versions, group))


def bump_statement(dialect: str, versions: Table, group: str) -> Any:
    """An upsert that makes the row on first use and adds one otherwise."""
    values = {"name": group, "version": 1, "updated_at": utcnow()}
    return upsert(dialect, versions, values, ["name"],
                  lambda new: {"version": versions.c.version + 1, "updated_at": new.updated_at})
