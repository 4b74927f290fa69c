"""Every order a list can be shown in is served by an index, and paging and counting do not grow
with the table: the compiled schema has an index (order columns..., pk) for each view's default
sort and each sortable column; MariaDB reads the first page of the pipelines without a sort; a
view whose order no index can hold is refused naming the index; `db sync` adds the indexes to an
existing database; next/previous cursors walk every row once, `page=N` still works, and a list
counted past `list_count_limit` says "more than"."""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from html import unescape

import pytest
from helpers import ROOT, db_inspect, seed, sent_statements
from sqlalchemy import insert, text

from app.cli.db_sync import default_models
from app.core.catalog import load_catalog
from app.core.context import AppContext
from app.core.db import make_engine
from app.crud.query import ListQuery, list_rows
from conftest import app_settings, make_database
from generators.loader import load_specs
from generators.order_indexes import normal, order_key, view_orders
from generators.schema import build_metadata
from generators.sync import apply_sync, plan_sync
from generators.views import check_view

CATALOG = load_catalog(ROOT / "build")


def index_keys(table) -> set[tuple]:
    """Every prefix of every index of `table` (the primary key's too), as normalised order keys,
    read from the index expressions themselves."""
    keys = set()
    for exprs in [list(ix.expressions) for ix in table.indexes] + [list(table.primary_key.columns)]:
        cols = []
        for e in exprs:
            desc = " DESC" in str(e)
            cols.append((str(e).split(".")[-1].replace(" DESC", ""), desc))
            keys.add(normal(tuple(cols)))
    return keys


def test_every_default_order_and_sortable_column_has_an_index_with_the_pk_last():
    missing = []
    for name, tv in CATALOG.tables.items():
        if tv.view["internal"]:
            continue
        served = index_keys(tv.table)
        wanted = [tv.view["sort"]] + [[col] for col in tv.view["sortable"]]
        for sort in wanted:
            key = normal(order_key(tv.spec, sort))
            assert key[-1][0] == tv.pk or tv.pk in {c for c, _ in key}, (name, sort)
            if key not in served:
                missing.append(f"{name}: {sort}")
    assert not missing, "list orders without an index: " + ", ".join(missing)
    # the DDL (and so `db sync`) has the same indexes as the tables the app queries
    ddl = build_metadata(load_specs(default_models()))
    for name, tv in CATALOG.tables.items():
        assert {ix.name for ix in tv.table.indexes} == {ix.name for ix in ddl.tables[name].indexes}, name
    mysql = (ROOT / "build" / "ddl" / "app.mysql.sql").read_text()
    assert "CREATE INDEX pipelines_ord_created_at ON pipelines (created_at, id)" in mysql


async def test_mariadb_reads_the_first_pages_of_pipelines_by_index_without_a_sort(tmp_path, monkeypatch):
    """The statements `list_rows` really sends, EXPLAINed: the page's keys come from the order's
    index (no filesort of the table), for the default order, a sortable column, a cursor page
    and a numbered page; the capped count rides in the same statement, reading an index only."""
    url, drop = make_database("mariadb", tmp_path)
    ctx = AppContext(app_settings(url, url, tmp_path), CATALOG, db=make_engine(url))
    tv = CATALOG.tables["pipelines"]
    try:
        async with ctx.db.begin() as conn:
            await conn.run_sync(CATALOG.metadata.create_all)
            t0 = datetime(2026, 1, 1)
            await conn.execute(insert(tv.table), [
                {"id": f"p{i:05d}", "code": f"c{i}", "name": f"Pipeline {i}", "status": "draft",
                 "created_at": t0 + timedelta(minutes=i % 500), "updated_at": t0} for i in range(3000)])
            await conn.execute(text("ANALYZE TABLE pipelines"))
        with sent_statements(ctx.db, monkeypatch) as sent:
            first = await list_rows(ctx, tv, ListQuery())
            await list_rows(ctx, tv, ListQuery(sort=["name"]))
            await list_rows(ctx, tv, ListQuery(after=first["next"]))
            await list_rows(ctx, tv, ListQuery(page=150))
        wanted = ["pipelines_ord_created_at", "pipelines_ord_name"] + ["pipelines_ord_created_at"] * 2
        captured = list(sent)
        assert len(captured) == len(wanted)
        async with ctx.db.connect() as conn:
            for (sql, params), index in zip(captured, wanted, strict=True):
                plan = (await conn.exec_driver_sql("EXPLAIN " + sql, params)).mappings().all()
                ours = [p for p in plan if p["table"] == "pipelines"]
                page = next(p["table"] for p in plan if p["select_type"] == "PRIMARY" and p["table"] != "pipelines")
                keys = [p for p in ours if p["id"] == int(page.removeprefix("<derived").removesuffix(">"))]
                # the capped count, in the same statement, reads an index only
                counted = [p for p in ours if p["select_type"] == "DERIVED" and p not in keys]
                assert len(counted) == 1 and "Using index" in counted[0]["Extra"], plan
                assert len(keys) == 1 and keys[0]["key"] == index, (sql, plan)
                assert keys[0]["type"] in ("index", "range") and "filesort" not in (keys[0]["Extra"] or ""), plan
                assert "Using index" in keys[0]["Extra"], plan  # the keys alone: no row read to skip one
                rows = [p for p in plan if p["table"] == "pipelines" and p["select_type"] == "PRIMARY"]
                assert [r["type"] for r in rows] == ["eq_ref"], plan  # then the page's rows, by primary key
    finally:
        await ctx.db.dispose()
        drop()


def test_a_view_sorted_by_what_no_index_can_hold_is_refused_naming_the_index():
    spec = CATALOG.tables["pipelines"].spec
    check = check_view(spec, {"params": {"sortable": ["name", "description"]}}, "views/pipelines.json")
    assert [str(e) for e in check.errors] == [
        "views/pipelines.json: pipelines.description: list order (description, id) needs index "
        "pipelines_ord_description, which cannot be built: description is text, which no index can order "
        "(fix: sort by another field, or leave this one out of sortable)"]
    by_default = check_view(spec, {"params": {"sortby": "-description"}}, "views/pipelines.json")
    assert "pipelines_ord_description" in str(by_default.errors[0])
    # sortable by default (every list column): a text column just is not sortable, nothing refused
    plain = check_view(spec, None, "views/pipelines.json")
    assert not plain.errors and "description" not in plain.options["sortable"] and "name" in plain.options["sortable"]
    assert normal(order_key(spec, ["-created_at"])) in view_orders(spec, plain.options)


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
async def test_db_sync_adds_the_missing_order_indexes(kind, tmp_path):
    url, drop = make_database(kind, tmp_path)
    specs = load_specs(default_models())
    try:
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(build_metadata(specs, views={}).create_all)  # a database from before
        plan = await plan_sync(engine, specs)
        wanted = {ix.name for t in build_metadata(specs).tables.values() for ix in t.indexes if "_ord_" in ix.name}
        shown = plan.render()
        assert wanted and all(f"create index {name} " in shown for name in wanted), shown
        await apply_sync(engine, plan)
        assert not (await plan_sync(engine, specs)).steps
        await engine.dispose()
        have = await db_inspect(url, lambda i: {ix["name"] for ix in i.get_indexes("pipelines")})
        assert {"pipelines_ord_created_at", "pipelines_ord_name"} <= have
    finally:
        drop()


def rows_of(n: int) -> list[dict]:
    """n pipelines, created in 7 distinct minutes (ties the pk breaks), every third with no owner."""
    t0 = datetime(2026, 3, 1)
    return [{"id": f"p{i:03d}", "code": f"c{i:03d}", "name": f"Pipeline {i:03d}", "status": "draft",
             "owner": None if i % 3 == 0 else f"u{i % 5}", "created_at": t0 + timedelta(minutes=i % 7),
             "updated_at": t0} for i in range(n)]


async def walk(ctx, tv, sort: list[str]) -> tuple[list[str], list[str], dict]:
    """Every row by next cursors, then back from the last page by prev cursors."""
    forward, pages, lq = [], [], ListQuery(rows=20, sort=sort)
    while True:
        page = await list_rows(ctx, tv, lq)
        pages.append(page)
        forward += [r["id"] for r in page["rows"]]
        if not page["next"]:
            break
        lq = ListQuery(rows=20, sort=sort, after=page["next"])
    backward = [r["id"] for r in pages[-1]["rows"]][::-1]
    page = pages[-1]
    while page["prev"]:
        page = await list_rows(ctx, tv, ListQuery(rows=20, sort=sort, before=page["prev"]))
        backward += [r["id"] for r in page["rows"]][::-1]
    return forward, backward[::-1], pages[0]


async def test_cursors_walk_every_row_once_in_order_and_page_numbers_still_work(ctx):
    tv = ctx.catalog.tables["pipelines"]
    rows = rows_of(61)
    await seed(ctx, pipelines=rows)
    by_created = [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]
    forward, backward, first = await walk(ctx, tv, [])
    assert forward == by_created and backward == by_created
    assert first["total"] == 61 and first["total_is_estimate"] is False and first["prev"] is None
    page2 = await list_rows(ctx, tv, ListQuery(rows=20, page=2))
    assert [r["id"] for r in page2["rows"]] == by_created[20:40] and page2["prev"] and page2["next"]
    # a nullable column: NULLs where this database sorts them, each row still once
    nulls_low = ctx.db.dialect.name != "postgresql"
    by_owner = sorted(rows, key=lambda r: ((r["owner"] is not None) == nulls_low, r["owner"] or "", r["id"]))
    forward, backward, _ = await walk(ctx, tv, ["owner"])
    assert forward == [r["id"] for r in by_owner] and backward == forward
    # counted only up to the limit: the limit, said to be an estimate
    ctx.settings = dataclasses.replace(ctx.settings, list_count_limit=50)
    capped = await list_rows(ctx, tv, ListQuery(rows=20))
    assert capped["total"] == 50 and capped["total_is_estimate"] is True


async def test_list_page_says_more_than_and_links_pages_by_cursor(admin):
    await seed(admin.ctx, pipelines=rows_of(61))
    admin.ctx.settings = dataclasses.replace(admin.ctx.settings, list_count_limit=50)
    first = await admin.client.get("/pipeline_core/pipelines", params={"rows": "20"})
    assert first.status_code == 200
    assert re.search(r"超过 50\s*条", first.text) and "第 1 / 3+" in " ".join(first.text.split())
    nxt = unescape(re.search(r'<a href="([^"]+)" rel="next"', first.text).group(1))
    assert "after=" in nxt and "page=2" in nxt
    second = await admin.client.get(nxt)
    assert second.status_code == 200 and "第 2 / 3+" in " ".join(second.text.split())
    prev = unescape(re.search(r'<a href="([^"]+)" rel="prev"', second.text).group(1))
    assert "after=" not in prev and "before=" not in prev  # back to page 1 is the plain first page
    third = await admin.client.get(unescape(re.search(r'<a href="([^"]+)" rel="next"', second.text).group(1)))
    prev3 = unescape(re.search(r'<a href="([^"]+)" rel="prev"', third.text).group(1))
    assert "before=" in prev3 and "page=2" in prev3
    again = await admin.client.get(prev3)
    ids = re.findall(r'/pipeline_core/pipelines/(p\d+)"', again.text)
    assert ids == re.findall(r'/pipeline_core/pipelines/(p\d+)"', second.text) and len(ids) == 20
    numbered = await admin.client.get("/pipeline_core/pipelines", params={"rows": "20", "page": "2"})
    assert re.findall(r'/pipeline_core/pipelines/(p\d+)"', numbered.text) == ids
    api = (await admin.client.get("/api/pipeline_core/pipelines", params={"rows": "20"})).json()
    assert {"total", "rows", "page", "rows_per_page", "next", "prev", "total_is_estimate"} <= set(api)
    assert api["total"] == 50 and api["total_is_estimate"] is True and api["prev"] is None
    bad = await admin.client.get("/api/pipeline_core/pipelines", params={"after": "not-a-cursor"})
    assert bad.status_code == 400

