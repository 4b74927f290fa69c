"""On MariaDB a list page's SELECT is sent by the driver itself (`app.core.driver_reads`): every
table's pages read that way are the same rows, values and Python types as through SQLAlchemy's
own execution, on a database the demo filled (every table has rows of every kind of column)."""
from __future__ import annotations

from helpers import ROOT, sent_statements
from sqlalchemy import insert

from app.cli.demo import fill_demo
from app.core import driver_reads
from app.core.catalog import load_catalog
from app.core.context import AppContext
from app.core.db import make_engine
from app.crud.query import ListQuery, list_rows
from conftest import app_settings, make_database


def queries(tv) -> list[ListQuery]:
    """The first page, a small second page, and each sortable column both ways."""
    out = [ListQuery(), ListQuery(page=2, rows=3)]
    for name in tv.view["sortable"]:
        out += [ListQuery(sort=[name], rows=7), ListQuery(sort=["-" + name], rows=7)]
    return out


async def test_every_list_reads_the_same_through_the_driver_as_through_sqlalchemy(tmp_path, monkeypatch):
    url, drop = make_database("mariadb", tmp_path)
    ctx = AppContext(app_settings(url, url, tmp_path), load_catalog(ROOT / "build"), db=make_engine(url))
    try:
        async with ctx.db.begin() as conn:
            await conn.run_sync(ctx.catalog.metadata.create_all)
        await fill_demo(ctx, days=3)
        compared = 0
        for tv in ctx.catalog.tables.values():
            for lq in queries(tv):
                with sent_statements(ctx.db, monkeypatch) as sent:
                    fast = await list_rows(ctx, tv, lq)
                assert [sql for sql, _ in sent], f"{tv.name}: the page did not go through the driver"
                with monkeypatch.context() as m:
                    m.setattr(driver_reads, "_shape", lambda stmt, dialect: None)  # SQLAlchemy's execution
                    plain = await list_rows(ctx, tv, lq)
                    after = await list_rows(ctx, tv, ListQuery(after=plain["next"], rows=lq.rows, sort=lq.sort)) \
                        if plain["next"] else None
                assert repr(fast) == repr(plain), (tv.name, lq)  # repr: 1 is not True, "1.50" is not "1.5"
                if after is not None:
                    assert repr(await list_rows(ctx, tv, ListQuery(after=fast["next"], rows=lq.rows,
                                                                   sort=lq.sort))) == repr(after), (tv.name, lq)
                compared += bool(fast["rows"])
        assert compared > 40  # pages with rows, over every table
    finally:
        await ctx.db.dispose()
        drop()


async def test_a_list_page_on_mariadb_is_one_statement_and_no_rollback(tmp_path, monkeypatch):
    """The page and its count are one SELECT on an autocommit connection (`AppContext.reads`), so
    handing the connection back sends nothing; on the main engine each page also cost a ROLLBACK."""
    from app.core.db import make_read_engine

    url, drop = make_database("mariadb", tmp_path)
    catalog = load_catalog(ROOT / "build")
    db, reads = make_engine(url), make_read_engine(url)
    rollbacks = {"db": 0, "reads": 0}
    for name, engine in (("db", db), ("reads", reads)):
        dialect, plain = engine.sync_engine.dialect, engine.sync_engine.dialect.do_rollback

        def counted(dbapi_conn, name=name, plain=plain) -> None:  # noqa: ANN001
            rollbacks[name] += 1
            plain(dbapi_conn)

        monkeypatch.setattr(dialect, "do_rollback", counted)
    tv = catalog.tables["pipelines"]
    try:
        async with db.begin() as conn:
            await conn.run_sync(catalog.metadata.create_all)
            await conn.execute(insert(tv.table), [{"id": f"p{i:04d}", "code": f"c{i}", "name": f"Pipeline {i}",
                                                   "status": "active"} for i in range(250)])
        for ctx in (AppContext(app_settings(url, url, tmp_path), catalog, db=db, reads=reads),
                    AppContext(app_settings(url, url, tmp_path), catalog, db=db)):
            await list_rows(ctx, tv, ListQuery())  # a new engine's first connection is set up (and rolled back) once
            rollbacks.update(db=0, reads=0)
            with sent_statements(ctx.read_db, monkeypatch, marker="SELECT") as sent:
                for page in range(1, 11):
                    await list_rows(ctx, tv, ListQuery(page=page))
            assert len(sent) == 10  # one statement a page, the count in it
            assert rollbacks == ({"db": 0, "reads": 0} if ctx.reads else {"db": 10, "reads": 0}), rollbacks
    finally:
        await db.dispose()
        await reads.dispose()
        drop()
