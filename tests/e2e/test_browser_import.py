"""The import's diff preview in a real browser (issue 15, point 2), at 1366x900 and 390x844: export
the pipelines to xlsx from the list, rename one and add one in the file, upload it; the preview
shows 1 new, 1 changed (old → new), 2 unchanged and writes nothing; confirming writes it, says
so, and the list shows the renamed row. Screenshots go to screenshots/ (import-diff-*)."""
from __future__ import annotations

import re

import openpyxl
import pytest
from browser_kit import browser, log_in, need_chromium, screenshot  # noqa: F401 - the browser fixture
from helpers import Browserless
from live_server import LiveServer, prepare, server_env

pytestmark = pytest.mark.browser
PASSWORD = "browser-Passw0rd!"
BASE = "/pipeline_core/pipelines"
VIEWPORTS = {"wide": (1366, 900), "phone": (390, 844)}


@pytest.fixture(params=["sqlite", "mariadb"])
def server(request, new_database, tmp_path):
    need_chromium()
    app_url = new_database(request.param)
    env = server_env(app_url, app_url, tmp_path)
    prepare(env, {"olga": (PASSWORD, "pipeline.admin")})
    with LiveServer(env) as srv:
        srv.kind = request.param
        op = Browserless(srv.url)
        assert op.login("olga", PASSWORD).status_code == 303
        for code, name in (("ingest", "Ingest invoices"), ("ocr", "Scan receipts"), ("sum", "Sum totals")):
            r = op.api("POST", "/api/pipeline_core/pipelines", json={"code": code, "name": name})
            assert r.status_code == 201, r.text
        yield srv


def shot(page, server, name: str) -> None:
    screenshot(page, f"{server.kind}-{name}")


def counts(page) -> dict[str, int]:
    return {a: int(page.locator(f".import-summary .n-{a}").inner_text()) for a in ("insert", "update", "skip", "error")}


@pytest.mark.parametrize("size", VIEWPORTS)
def test_import_diff_preview_then_confirm(server, browser, tmp_path, size):
    width, height = VIEWPORTS[size]
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": height},
                                  accept_downloads=True)
    page = context.new_page()
    assert log_in(page, "olga", PASSWORD) == 303

    page.goto(BASE)
    with page.expect_download() as download:
        page.click("a[href*='export.xlsx']")
    exported = tmp_path / "pipelines.xlsx"
    download.value.save_as(exported)
    wb = openpyxl.load_workbook(exported)
    ws = wb.active
    head = [c.value for c in ws[1]]
    row = next(r for r in ws.iter_rows(min_row=2) if r[head.index("代码")].value == "ocr")
    row[head.index("名称")].value = "Scan receipts and tickets"
    ws.append([{"代码": "export", "名称": "Export ledger", "状态": "draft"}.get(h) for h in head])
    edited = tmp_path / "edited.xlsx"
    wb.save(edited)

    page.goto(f"{BASE}/import")
    page.set_input_files("#import-file", str(edited))
    with page.expect_navigation():
        page.click("form.record-form button[type=submit]")
    assert counts(page) == {"insert": 1, "update": 1, "skip": 2, "error": 0}
    diff = page.locator("table.import-diff")
    changed = diff.locator("tr.update")
    assert changed.locator("del").inner_text() == "Scan receipts"
    assert changed.locator("ins").inner_text() == "Scan receipts and tickets"
    assert "Export ledger" in diff.locator("tr.insert").inner_text()
    assert page.locator("form.confirm-import button").is_visible()
    shot(page, server, f"import-diff-{size}")
    scroll = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert scroll <= 1, f"the preview scrolls sideways by {scroll}px"
    listed = page.request.get(f"/api{BASE}").json()
    assert "Scan receipts" in [p["name"] for p in listed["rows"]]  # the preview wrote nothing

    with page.expect_navigation():
        page.click("form.confirm-import button")
    message = page.locator(".import-report .flash.ok").inner_text()
    assert re.search(r"已导入\s*2\s*/\s*4", message), message
    written = page.locator("table.import-diff tr.update")
    assert written.locator("ins").inner_text() == "Scan receipts and tickets"  # what was written, row by row
    assert page.locator("input[name=mode][value=preview]").is_checked()  # the next file is previewed first
    shot(page, server, f"import-done-{size}")
    with page.expect_navigation():
        page.click(".import-report .flash.ok a")  # back to the list
    body = page.content()
    assert "Scan receipts and tickets" in body and "Export ledger" in body
    context.close()
