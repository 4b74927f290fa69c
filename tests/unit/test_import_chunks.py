"""Imports checked and written 500 rows at a time (issue 15, points 2 and 4) answer what the form
answers, row for row, across chunk boundaries: a code already stored, the same code twice in the
file (rows far apart), names of a code field; an edited export of a table with code fields
(prices, by pipeline and step names) updates through the preview; every written row is audited.
On SQLite and MariaDB (whose collation makes "STORED ONE" the same name as "Stored one", as the
form says).
"""
from __future__ import annotations

import csv
import io
import re

from dist_world import created
from sqlalchemy import func, select
from test_round_trip import counts, upload, world

from app.core.db import make_engine

BASE = "/pipeline_core/pipelines"


async def audit_count(admin, table: str, action: str) -> int:
    engine = make_engine(admin.ctx.settings.database)  # this test's loop: the app's engine is on another
    t = admin.ctx.catalog.tables["audit_log"].table
    try:
        async with engine.connect() as conn:
            return (await conn.execute(select(func.count()).where(t.c.table_name == table, t.c.action == action))
                    ).scalar_one()
    finally:
        await engine.dispose()


async def test_a_file_of_many_chunks_gets_the_forms_answers(admin):
    await created(admin, "/api/pipeline_core/pipelines", {"code": "alpha", "name": "Stored one"})
    form = await admin.api("POST", "/api/pipeline_core/pipelines", json={"code": "case", "name": "STORED ONE"})
    case_clash = form.status_code == 422  # MariaDB's collation: the same name; SQLite: another one
    if not case_clash:
        assert (await admin.api("DELETE", f"/api/pipeline_core/pipelines/{form.json()['id']}")).status_code == 204
    rows = [f"c{i},Pipeline {i},draft" for i in range(1300)]
    rows[10] = "twice,Twice first,draft"
    rows[1100] = "twice,Twice again,draft"  # two chunks later
    rows[700] = "alpha,New name,draft"  # a stored code
    rows[701] = "c701,STORED ONE,draft"
    rows[1299] = "c1299,Stored one,draft"  # a stored name, in the last chunk
    sheet = "代码,名称,状态\n" + "\n".join(rows) + "\n"
    r = await upload(admin, BASE, "many.csv", sheet.encode())
    got = counts(r.text)
    errors = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", r.text)
    want = {("702", "代码", "已存在"), ("1102", "代码", "与文件第 12 行重复"),
            ("1301", "名称", "已存在")} | ({("703", "名称", "已存在")} if case_clash else set())
    assert set(errors) == want, errors
    assert got == {"insert": 1300 - len(want), "update": 0, "skip": 0, "error": len(want)}

    before = await audit_count(admin, "pipelines", "create")
    r = await upload(admin, BASE, "many.csv", sheet.encode(), mode="valid")
    written = 1300 - len(want)
    assert f"已导入 {written} / 1300" in r.text, r.text[-2000:]
    listed = (await admin.api("GET", "/api/pipeline_core/pipelines")).json()["total"]
    assert listed == 1 + written
    assert await audit_count(admin, "pipelines", "create") - before == written

    r = await upload(admin, BASE, "many.csv", sheet.encode(), mode="all")  # now every row clashes
    assert "未写入任何数据" in r.text and counts(r.text)["error"] == 1300, r.text[-1500:]


async def test_an_edited_pricing_export_updates_through_the_preview(admin):
    rows = await world(admin)
    base = "/pipeline_ops/pipeline_pricing"
    text = (await admin.client.get(f"{base}/export.csv")).content.decode("utf-8-sig")
    cells = list(csv.reader(io.StringIO(text)))
    head = cells[0]
    cells[1][head.index("单价")] = "0.009"
    cells[1][head.index("生效时间")] = "2026-02-01 00:00:00"
    out = io.StringIO()
    csv.writer(out).writerows(cells)

    r = await upload(admin, base, "pricing.csv", out.getvalue().encode())
    assert counts(r.text) == {"insert": 0, "update": 1, "skip": 0, "error": 0}, r.text[-2000:]
    assert "<del>0.008333</del> → <ins>0.009</ins>" in r.text
    assert "<del>2026-01-01 08:30:00</del> → <ins>2026-02-01 00:00:00</ins>" in r.text
    token = re.search(r'name="token" value="([^"]+)"', r.text).group(1)
    done = await admin.form(f"{base}/import", {"token": token, "mode": "all"})
    assert "已导入 1 / 1" in done.text, done.text[-2000:]
    price = (await admin.api("GET", f"/api/pipeline_ops/pipeline_pricing/{rows['pipeline_pricing']['id']}")).json()
    assert price["unit_price"].rstrip("0") == "0.009" and price["effective_from"].startswith("2026-02-01")
    assert price["pipeline_id"] == rows["pipeline_pricing"]["pipeline_id"]  # names went back to the ids
    assert price["step_id"] == rows["pipeline_pricing"]["step_id"]
    assert await audit_count(admin, "pipeline_pricing", "update") == 1

    again = await upload(admin, base, "pricing.csv", out.getvalue().encode())
    assert counts(again.text) == {"insert": 0, "update": 0, "skip": 1, "error": 0}  # written: unchanged now
