"""Export ⇄ import round trip (issue 15, points 2 and 3): the app's own export of every list imports
back unchanged (0 errors, 0 changes) in both formats; an edited export updates rows by id through
a preview that shows each change before anything is written; code fields travel as names; numbers
and times are typed xlsx cells; formula payloads are neutralised. On SQLite and MariaDB."""
from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import datetime

import openpyxl
from conftest import seed
from test_dist_api import created

from app.core.ids import new_id
from conftest import every_database

pytestmark = every_database

PAYLOADS = ['=HYPERLINK("http://evil.example","click")', "+1+2", "-2+3", "@SUM(A1:A9)", "\tcmd", "\rcmd",
            "'=already quoted", "-", "ok"]


def counts(page: str) -> dict[str, int]:
    return {a: int(n) for a, n in re.findall(r'<strong class="n-(\w+)">(\d+)</strong>', page)}


async def upload(admin, base: str, name: str, content: bytes, mode: str = "preview"):
    token = admin.csrf
    return await admin.client.post(f"{base}/import", data={"mode": mode, "_csrf_token": token},
                                   files={"file": (name, content)})


async def world(admin) -> dict[str, dict]:
    """A row in every writable table, with the values that break naive round trips."""
    p = await created(admin, "/api/pipeline_core/pipelines", {"code": "rt-1", "name": "=cmd|' /C calc'!A0",
                                                              "status": "active", "owner": "-lead"})
    p2 = await created(admin, "/api/pipeline_core/pipelines", {"code": "rt-2", "name": "Round trip 2"})
    steps = [await created(admin, "/api/pipeline_core/pipeline_steps", {
        "pipeline_id": pid, "seq": 1, "name": "ocr", "step_type": "model", "model": "@m", "timeout_s": 30})
        for pid in (p["id"], p2["id"])]  # two steps of one name: the name alone is ambiguous
    price = await created(admin, "/api/pipeline_ops/pipeline_pricing", {
        "pipeline_id": p2["id"], "step_id": steps[1]["id"], "billing_unit": "call", "price_mode": "package",
        "unit_price": "0.008333", "package_units": 1800, "package_price": "1234567890.123456", "currency": "CNY",
        "effective_from": "2026-01-01 08:30:00", "effective_to": "2026-12-31 23:59:59"})
    cap = await created(admin, "/api/pipeline_ops/pipeline_capacity", {"pipeline_id": p["id"], "daily_quota": 10,
                                                                       "monthly_quota": 9007199254740993})
    d = await created(admin, "/api/pipeline_dist/distributors", {"name": "+Dist", "email": "a@b.example"})
    link = await created(admin, "/api/pipeline_dist/distributor_pipeline", {
        "distributor_id": d["id"], "pipeline_id": p["id"], "enabled": "1", "price_mode": "unit",
        "unit_price": "0.5"})
    return {"pipelines": p, "pipeline_steps": steps[0], "pipeline_pricing": price, "pipeline_capacity": cap,
            "distributors": d, "distributor_pipeline": link}


async def test_every_export_imports_back_unchanged(admin):
    await world(admin)
    for tv in admin.ctx.catalog.tables.values():
        if tv.view.get("internal"):
            continue
        for fmt in ("csv", "xlsx"):
            export = await admin.client.get(f"{tv.base}/export.{fmt}")
            assert export.status_code == 200, (tv.name, export.text[:300])
            if tv.view["noedit"]:
                continue
            r = await upload(admin, tv.base, f"{tv.name}.{fmt}", export.content)
            assert r.status_code == 200, (tv.name, fmt, re.findall(r"<tr><td>\d+</td>.*?</tr>", r.text))
            n = (await admin.api("GET", tv.api)).json()["total"]
            assert n and counts(r.text) == {"insert": 0, "update": 0, "skip": n, "error": 0}, (tv.name, fmt)
            assert 'name="token"' not in r.text  # nothing to write, nothing to confirm
            r = await upload(admin, tv.base, f"{tv.name}.{fmt}", export.content, mode="all")
            assert "已导入 0 / " in r.text, (tv.name, fmt)


async def test_readable_codes_and_typed_cells(admin):
    rows = await world(admin)
    xlsx = await admin.client.get("/pipeline_ops/pipeline_pricing/export.xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    head = [c.value for c in ws[1]]
    row = {h: c for h, c in zip(head, ws[2], strict=True)}
    assert row["编号"].value == rows["pipeline_pricing"]["id"]
    assert (row["产线"].value, row["步骤"].value) == ("Round trip 2", "ocr")
    assert row["单价"].data_type == "n" and row["单价"].value == 0.008333
    assert row["套餐单位数"].value == 1800
    assert row["套餐价"].data_type == "s" and row["套餐价"].value == "1234567890.123456"  # 16 digits: exact text
    assert row["生效时间"].is_date and row["生效时间"].value == datetime(2026, 1, 1, 8, 30)
    cap = openpyxl.load_workbook(io.BytesIO((await admin.client.get(
        "/pipeline_ops/pipeline_capacity/export.xlsx")).content)).active
    assert [c.value for c in cap[2]][1:4] == ["=cmd|' /C calc'!A0", 10, "9007199254740993"]
    text = (await admin.client.get("/pipeline_ops/pipeline_pricing/export.csv")).content.decode("utf-8-sig")
    line = list(csv.reader(io.StringIO(text)))[1]
    assert line[1:3] == ["Round trip 2", "ocr"] and "0.008333" in line and "1234567890.123456" in line


async def test_formula_payloads_are_neutralised(admin):
    p = await created(admin, "/api/pipeline_core/pipelines", {"code": "evil", "name": PAYLOADS[0]})
    now = datetime(2026, 3, 1, 12, 0)
    await seed(admin.ctx, pipeline_usage_log=[
        {"id": new_id(), "pipeline_id": p["id"], "request_id": text, "units": -1 if i == 0 else i, "amount": "-0.5",
         "currency": "CNY", "status": "succeeded", "started_at": now} for i, text in enumerate(PAYLOADS)])
    base = "/pipeline_ops/pipeline_usage_log"
    text = (await admin.client.get(f"{base}/export.csv")).content.decode("utf-8-sig")
    cells = list(csv.reader(io.StringIO(text, newline="")))
    got = sorted(r[cells[0].index("请求编号")] for r in cells[1:])
    want = sorted("'" + v if v[0] in "=+-@\t\r" or v.startswith("'=") else v for v in PAYLOADS)
    assert got == want
    assert {r[1] for r in cells[1:]} == {"'" + PAYLOADS[0]}  # the pipeline's name too
    assert sorted(int(r[cells[0].index("用量")]) for r in cells[1:]) == [-1, *range(1, 9)]  # no quote on -1
    assert {r[cells[0].index("金额")] for r in cells[1:]} == {"-0.500000"}
    xlsx = (await admin.client.get(f"{base}/export.xlsx")).content
    sheet = zipfile.ZipFile(io.BytesIO(xlsx)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet
    ws = openpyxl.load_workbook(io.BytesIO(xlsx)).active
    texts = [c for row in ws.iter_rows(min_row=2) for c in row if isinstance(c.value, str)]
    assert sorted(c.value for c in texts if c.value in PAYLOADS or c.value.strip() in PAYLOADS) \
        and all(c.data_type == "s" for c in texts)
    numbers = [c for row in ws.iter_rows(min_row=2) for c in row if isinstance(c.value, (int, float))]
    assert -1 in [c.value for c in numbers] and all(c.data_type == "n" for c in numbers)
    # and the CSV of a neutralised name imports back to the name itself
    export = await admin.client.get("/pipeline_core/pipelines/export.csv")
    r = await upload(admin, "/pipeline_core/pipelines", "p.csv", export.content)
    assert counts(r.text) == {"insert": 0, "update": 0, "skip": 1, "error": 0}


async def test_edited_export_updates_rows_through_the_preview(admin):
    rows = await world(admin)
    base = "/pipeline_core/pipelines"
    wb = openpyxl.load_workbook(io.BytesIO((await admin.client.get(f"{base}/export.xlsx")).content))
    ws = wb.active
    head = [c.value for c in ws[1]]
    by_code = {r[head.index("代码")].value: r for r in ws.iter_rows(min_row=2)}
    by_code["rt-1"][head.index("名称")].value = "Renamed one"
    by_code["rt-2"][head.index("状态")].value = "disabled"
    ws.append([None, "rt-3", "Brand new", "draft", "me", None, None])
    out = io.BytesIO()
    wb.save(out)

    r = await upload(admin, base, "edited.xlsx", out.getvalue())
    assert r.status_code == 200, r.text[-2000:]
    assert counts(r.text) == {"insert": 1, "update": 2, "skip": 0, "error": 0}
    assert "<del>=cmd|&#39; /C calc&#39;!A0</del> → <ins>Renamed one</ins>" in r.text
    assert "<del>draft</del> → <ins>disabled</ins>" in r.text and "<ins>Brand new</ins>" in r.text
    assert "已发布版本" in r.text and "创建时间" in r.text  # read-only columns: named as ignored
    got = (await admin.api("GET", f"/api/pipeline_core/pipelines/{rows['pipelines']['id']}")).json()
    assert got["name"] == "=cmd|' /C calc'!A0"  # a preview writes nothing
    token = re.search(r'name="token" value="([^"]+)"', r.text).group(1)

    done = await admin.form(f"{base}/import", {"token": token, "mode": "all"})
    assert done.status_code == 200 and "已导入 3 / 3" in done.text, done.text[-2000:]
    listed = {p["code"]: p for p in (await admin.api("GET", "/api/pipeline_core/pipelines")).json()["rows"]}
    assert (listed["rt-1"]["name"], listed["rt-2"]["status"], listed["rt-3"]["name"]) == (
        "Renamed one", "disabled", "Brand new")
    again = await admin.form(f"{base}/import", {"token": token, "mode": "all"})
    assert again.status_code == 400 and "请重新上传" in again.text  # used once

    # an id the table does not have, a duplicate id, an ambiguous step name: errors, not guesses
    price = rows["pipeline_pricing"]["id"]
    sheet = "编号,产线,步骤,计费单位,计价方式,单价,币种,生效时间\n" \
            f"{price},Round trip 2,ocr,call,package,0.008333,CNY,2026-01-01 08:30:00\n" \
            f"{price},Round trip 2,ocr,call,package,0.008333,CNY,2026-01-01 08:30:00\n" \
            "nosuchid,Round trip 2,ocr,call,unit,1,CNY,2027-01-01 00:00:00\n" \
            ",,ocr,call,unit,1,CNY,2027-01-01 00:00:00\n"
    r = await upload(admin, "/pipeline_ops/pipeline_pricing", "p.csv", sheet.encode())
    assert counts(r.text)["error"] == 3 and counts(r.text)["skip"] == 1, r.text[-3000:]
    assert "该编号也出现在文件第 2 行" in r.text and "没有该编号的记录" in r.text
    assert re.search(r"<td>5</td><td>步骤</td><td>有 2 条步骤记录都叫 &#39;ocr&#39;", r.text), r.text[-3000:]
