"""An operator's day in a real browser (Debian's headless Chromium driven by Playwright) against the
real server: log in, build and publish a pipeline, price it, key a distributor, export, import,
bulk-edit, and grant a path on the RBAC page. Screenshots of the main pages go to screenshots/."""
from __future__ import annotations

import re

import openpyxl
import pytest
from browser_kit import CHROMIUM, SCREENS, chromium, need_chromium, screenshot
from live_server import LiveServer, prepare, server_env

pytestmark = pytest.mark.browser
__all__ = ["CHROMIUM"]  # re-exported: older browser tests import it from here
PASSWORD = "browser-Passw0rd!"


@pytest.fixture(params=["sqlite", "mariadb"])
def server(request, new_database, tmp_path):
    need_chromium()
    app_url = new_database(request.param)
    env = server_env(app_url, app_url, tmp_path)
    prepare(env, {"olga": (PASSWORD, "pipeline.admin"), "vera": ("vera-Passw0rd!", "ops.viewer")})
    with LiveServer(env) as srv:
        srv.kind = request.param
        yield srv


@pytest.fixture
def page(server):
    with chromium() as browser:
        context = browser.new_context(base_url=server.url, viewport=SCREENS["desktop"], accept_downloads=True)
        pg = context.new_page()
        pg.on("dialog", lambda d: d.accept())
        yield pg


def shot(page, server, name: str) -> None:
    screenshot(page, f"{server.kind}-{name}")


def submit(page) -> None:
    with page.expect_navigation():
        page.click("form.record-form button[type=submit]:not([name])")


def record_id(page) -> str:
    return re.search(r"/([0-9a-f]{32})(?:\?|$)", page.url).group(1)


def test_operator_day(page, server, tmp_path):
    # log in through the form (Chinese UI by default)
    page.goto("/pipeline_core/pipelines")
    assert "/login" in page.url
    page.fill("#username", "olga")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("form.record-form button[type=submit]")
    page.goto("/")
    assert "产线" in page.content()
    shot(page, server, "home")

    # three pipelines (two will be bulk-disabled), the first with three steps
    ids = []
    for n in range(3):
        page.goto("/pipeline_core/pipelines/new")
        page.fill("#f-code", f"flow-{n}")
        page.fill("#f-name", f"Flow {n}")
        page.select_option("#f-status", "active")
        submit(page)
        assert f"已新增产线「Flow {n}」。" in page.content()
        ids.append(record_id(page))
    pid = ids[0]
    for seq, (name, group) in enumerate([("ingest", ""), ("ocr", "g1"), ("translate", "g1")], start=1):
        page.goto(f"/pipeline_core/pipeline_steps/new?pipeline_id={pid}")
        assert page.locator("#f-pipeline_id").input_value() == pid
        page.fill("#f-seq", "1" if seq == 1 else "2")
        page.fill("#f-name", name)
        page.fill("#f-parallel_group", group)
        page.fill("#f-config", '{"lang": "zh"}')
        submit(page)
        assert f"已新增步骤「{name}」。" in page.content(), page.content()[:3000]
        assert f"/pipeline_core/pipelines/{pid}#row-" in page.url  # back on its pipeline, at the new step

    # a list price for the whole pipeline, then publish
    page.goto(f"/pipeline_ops/pipeline_pricing/new?pipeline_id={pid}")
    page.fill("#f-unit_price", "0.120000")
    page.fill("#f-effective_from", "2026-01-01T00:00:00")
    submit(page)
    assert "已新增一条定价记录。" in page.content(), page.content()[:3000]
    page.goto(f"/pipeline_core/pipelines/{pid}")
    page.fill("form.pipeline-publish input[name=note]", "first release")
    with page.expect_navigation():
        page.click("form.pipeline-publish button[type=submit]")
    page.goto(f"/pipeline_core/pipelines/{pid}")
    assert "first release" in page.content()
    assert page.locator("dl.record").inner_text().count("1") >= 1
    shot(page, server, "pipeline")

    # a distributor and its key, shown once
    page.goto("/pipeline_dist/distributors/new")
    page.fill("#f-name", "Acme Resale")
    page.fill("#f-email", "ops@acme.example")
    submit(page)
    did = record_id(page)
    with page.expect_navigation():
        page.click("form[action$='/generate_key'] button")
    key = page.inner_text("#secret-value").strip()
    assert key.startswith("pdk_") and len(key) == 42
    shot(page, server, "distributor-key")
    page.goto(f"/pipeline_dist/distributors/{did}")
    assert key not in page.content()

    # export the distributor list to xlsx and read it back
    page.goto("/pipeline_dist/distributors")
    shot(page, server, "distributors")
    with page.expect_download() as dl:
        page.click("a[href*='export.xlsx']")
    path = tmp_path / "distributors.xlsx"
    dl.value.save_as(path)
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert rows[0][0] == "编号" and any(r[0] == did and "Acme Resale" in r for r in rows[1:])
    assert key not in repr(rows)

    # import a price sheet with one bad row: errors shown, nothing written; fix it and import
    page.goto("/pipeline_ops/pipeline_pricing")
    before = page.inner_text(".count")
    sheet = tmp_path / "prices.xlsx"

    def write_sheet(bad_price: str) -> None:
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(["产线", "计价方式", "单价", "币种", "生效时间"])
        ws.append([ids[1], "unit", "1.500000", "CNY", "2026-02-01 00:00:00"])
        ws.append([ids[2], "unit", bad_price, "CNY", "2026-02-01 00:00:00"])
        wb.save(sheet)

    write_sheet("-3")
    page.goto("/pipeline_ops/pipeline_pricing/import")
    page.set_input_files("#import-file", str(sheet))
    page.check("input[name=mode][value=all]")
    with page.expect_navigation():
        page.click("form.record-form button[type=submit]:not([name])")
    assert "未写入" in page.content()
    assert re.search(r"<td>3</td><td>单价</td>", page.content())
    shot(page, server, "import-errors")
    page.goto("/pipeline_ops/pipeline_pricing")
    assert page.inner_text(".count") == before
    write_sheet("2.250000")
    page.goto("/pipeline_ops/pipeline_pricing/import")
    page.set_input_files("#import-file", str(sheet))
    page.check("input[name=mode][value=all]")
    with page.expect_navigation():
        page.click("form.record-form button[type=submit]:not([name])")
    assert "已导入 2 / 2" in page.content(), page.content()[:3000]
    page.goto("/pipeline_ops/pipeline_pricing")
    assert ">2.25</td>" in page.content()  # a unit price, trailing zeros trimmed to the 2 places of CNY

    # bulk-disable two pipelines
    page.goto("/pipeline_core/pipelines")
    page.check(f"input[name=ids][value='{ids[1]}']")
    page.check(f"input[name=ids][value='{ids[2]}']")
    page.select_option("#bulk-op", "set:status:disabled")
    with page.expect_navigation():
        page.click("form#bulk button[type=submit]")
    assert "已处理 2" in page.content()
    shot(page, server, "pipelines")
    page.goto("/pipeline_core/pipelines?status=disabled")
    assert page.locator("table.list tbody tr").count() == 2

    # grant and revoke a path on the RBAC page
    page.goto("/rbac/grants?q=/pipeline_core/pipelines&module=pipeline_core")
    button = page.locator("button[aria-label^='ops.viewer /pipeline_core/pipelines:']").first
    assert button.get_attribute("aria-pressed") == "false"
    with page.expect_navigation():
        button.click()
    button = page.locator("button[aria-label^='ops.viewer /pipeline_core/pipelines:']").first
    assert button.get_attribute("aria-pressed") == "true"
    shot(page, server, "rbac-grants")
    with page.expect_navigation():
        button.click()
    assert page.locator("button[aria-label^='ops.viewer /pipeline_core/pipelines:']").first \
        .get_attribute("aria-pressed") == "false"

    # the English switch is remembered
    page.goto("/lang/en")
    page.goto("/pipeline_core/pipelines")
    assert "Pipelines" in page.content() and "Export xlsx" in page.content()
    page.goto(f"/pipeline_core/pipeline_steps/new?pipeline_id={pid}")
    shot(page, server, "step-form-en")
    assert page.locator("label[for=f-seq]").inner_text().startswith("Sequence")
