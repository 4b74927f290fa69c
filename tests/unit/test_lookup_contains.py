"""A picker finds a row by a fragment from the middle of its code or name through the trigram side
table (`idxtype: "contains"` on pipelines), which the database's triggers keep right on every
write, and which `db sync` adds to a database made without it."""
from __future__ import annotations

import dataclasses

from helpers import ROOT, on_engine
from sqlalchemy import delete, func, insert, select, text, update

from app.core.db import dialect_name, make_engine
from app.crud.lookups import lookup_options
from generators.ddl import ddl_statements
from generators.loader import load_specs
from generators.lookup_grams import gram_sql
from generators.schema import build_metadata
from generators.sync import apply_sync, plan_sync

FIELD = "pipeline_id"  # the pipeline picker of a step: it searches code and name


def _rows() -> list[dict]:
    rows = [{"id": f"p{i:03d}", "code": f"flow-{i}", "name": f"Flow number {i}", "status": "active"}
            for i in range(30)]
    return rows + [{"id": "pk1", "code": "alpha-7311-x", "name": "Pipeline of Kestrel", "status": "active"},
                   {"id": "pcn", "code": "east-7", "name": "华东产线七号", "status": "active"}]


async def _found(ctx, q: str) -> list[str]:
    body = await lookup_options(ctx, ctx.catalog.tables["pipeline_steps"], FIELD, q)
    return [o["value"] for o in body["options"]]


async def _write(ctx, stmt) -> None:
    async with ctx.db.begin() as conn:
        await conn.execute(stmt)


async def test_a_middle_fragment_finds_the_row_as_it_is_written(ctx):
    pipelines = ctx.catalog.tables["pipelines"].table
    await _write(ctx, insert(pipelines).values(_rows()))
    assert await _found(ctx, "pha-73") == ["pk1"]  # the middle of a code
    assert await _found(ctx, "F KESTR") == ["pk1"]  # the middle of a name, whatever the case
    assert await _found(ctx, "产线七") == ["pcn"]  # Chinese: grams of characters
    assert await _found(ctx, "东产") == ["pcn"]  # two characters: no gram, the scan
    assert await _found(ctx, "ber 2") == sorted(["p002", *[f"p{i:03d}" for i in range(20, 30)]])
    assert await _found(ctx, "kestrex") == []

    await _write(ctx, update(pipelines).where(pipelines.c.id == "pk1").values(name="Renamed Osprey"))
    assert await _found(ctx, "kestr") == []  # the old name no longer finds it
    assert await _found(ctx, "med osp") == ["pk1"]
    await _write(ctx, update(pipelines).where(pipelines.c.id == "pk1").values(status="draft"))
    assert await _found(ctx, "med osp") == ["pk1"]  # an update of another field keeps its grams

    await _write(ctx, delete(pipelines).where(pipelines.c.id.in_(["pk1", "pcn"])))
    assert await _found(ctx, "med osp") == [] and await _found(ctx, "产线七") == []
    grams = ctx.catalog.metadata.tables["pipelines_lk_contains"]
    async with ctx.db.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(grams)
                                   .where(grams.c.row_id.in_(["pk1", "pcn"])))).scalar()
    assert left == 0


async def test_db_sync_adds_and_fills_the_side_table(db_url, tmp_path):
    """A database made before pipelines had its contains index: sync creates the side table and
    its triggers, fills it from the rows, and the second sync has nothing to do."""
    specs = load_specs([p for p in sorted((ROOT / "models").iterdir()) if p.is_dir() and p.name != "rbac"])
    older = [dataclasses.replace(s, indexes=tuple(i for i in s.indexes if not i.contains)) for s in specs]
    metadata = build_metadata(older)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(metadata.tables["pipelines"]).values(_rows()))
        plan = await plan_sync(engine, specs)
        assert "create table pipelines_lk_contains" in plan.render()
        assert "CREATE TRIGGER" in plan.render()
        await apply_sync(engine, plan)
        assert (await plan_sync(engine, specs)).empty

        # Triggers lost (a restore without them): sync makes them again and refills.
        sql = gram_sql(engine.dialect)
        grams = build_metadata(specs).tables["pipelines_lk_contains"]
        async with engine.begin() as conn:
            for name in sql.trigger_names(grams):
                await conn.execute(text(sql.drop_trigger(grams, name)))
            await conn.execute(insert(metadata.tables["pipelines"]).values(
                id="late", code="late-one", name="Added while unwatched", status="active"))
        plan = await plan_sync(engine, specs)
        assert [s.description for s in plan.steps] == [
            "create the triggers of pipelines_lk_contains and fill it from the rows of pipelines"]
        await apply_sync(engine, plan)
        assert (await plan_sync(engine, specs)).empty
    finally:
        await engine.dispose()

    from conftest import app_settings

    from app.core.catalog import load_catalog
    from app.core.context import AppContext

    ctx = AppContext(app_settings(db_url, db_url, tmp_path), load_catalog(ROOT / "build"), db=make_engine(db_url))
    try:
        assert await _found(ctx, "of kestr") == ["pk1"]  # filled from the rows there before
        assert await _found(ctx, "ed while unw") == ["late"]  # and from those written without triggers
    finally:
        await ctx.db.dispose()


async def test_the_printed_ddl_keeps_grams_on_every_database(any_db_url):
    """json2ddl's statements, run as printed on MariaDB, SQLite and PostgreSQL: the triggers fill,
    update and empty the side table."""
    specs = load_specs([ROOT / "models" / "pipeline_core"])
    engine = make_engine(any_db_url)
    double = engine.dialect.paramstyle in ("format", "pyformat")
    await engine.dispose()

    async def run(conn):
        for sql in ddl_statements(specs, dialect_name(any_db_url)):
            await conn.exec_driver_sql(sql.replace("%", "%%") if double else sql)
        await conn.execute(text("INSERT INTO pipelines (id, code, name) VALUES ('p1', 'ab-Cdef', '华东产线')"))
        await conn.execute(text("UPDATE pipelines SET name = 'Nord' WHERE id = 'p1'"))
        rows = await conn.execute(text("SELECT field, gram FROM pipelines_lk_contains ORDER BY field, gram"))
        after_update = [tuple(r) for r in rows]
        await conn.execute(text("DELETE FROM pipelines WHERE id = 'p1'"))
        left = (await conn.execute(text("SELECT COUNT(*) FROM pipelines_lk_contains"))).scalar()
        return after_update, left

    async def in_transaction(conn):
        async with conn.begin():
            return await run(conn)

    after_update, left = await on_engine(any_db_url, in_transaction)
    assert after_update == [("code", g) for g in sorted(["ab-", "b-c", "-cd", "cde", "def"])] + [
        ("name", "nor"), ("name", "ord")]
    assert left == 0
