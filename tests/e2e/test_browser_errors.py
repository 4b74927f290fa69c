"""Error pages, the delete confirmation and a UI that follows permissions, in a real browser
(headless Chromium) at 1366 × 900 and 390 × 844 against the real server with the demo catalog:
a pipeline with usage is refused on delete with its dependents by table and the archive offer; a
row with no dependents is deleted with a message; an unknown URL is a 404 page in the layout; a
viewer sees no write button and its 403 page names the missing path and whom to ask.
Screenshots go to screenshots/errors-*.png."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from live_server import Browserless, LiveServer, cli, prepare, server_env
from browser_kit import SCREENS, chromium, log_in, need_chromium, screenshot

pytestmark = pytest.mark.browser
ADMIN, VIEWER = ("olga", "olga-Passw0rd!"), ("vera", "vera-Passw0rd!")


def _viewer_paths() -> list[str]:
    """The read-only preset of every module: its GET-only pages (lists, records, exports, reports)."""
    manifest = json.loads((Path(__file__).resolve().parents[2] / "build" / "manifest.json").read_text())
    return sorted({r["path"] for r in manifest["routes"]
                   if r["methods"] == ["GET"] and not r["path"].startswith("/api/")})


def _grant(url: str, role: str, paths: list[str]) -> None:
    from app.auth import rbac
    from app.core.db import make_engine

    async def run() -> None:
        engine = make_engine(url)
        try:
            await rbac.register_paths(engine, [], {role: paths}, dry_run=False)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", "mariadb"])
def server(request, new_database, tmp_path):
    need_chromium()
    app_url = new_database(request.param)
    env = server_env(app_url, app_url, tmp_path)
    prepare(env, {ADMIN[0]: (ADMIN[1], "pipeline.admin"), VIEWER[0]: (VIEWER[1], "ops.viewer")})
    cli(env, "demo", "--days", "3")
    _grant(app_url, "ops.viewer", _viewer_paths())
    with LiveServer(env) as srv:
        srv.kind = request.param
        yield srv


@pytest.fixture(params=list(SCREENS))
def browser_page(request, server):
    with chromium() as browser:
        context = browser.new_context(base_url=server.url, viewport=SCREENS[request.param])
        pg = context.new_page()
        pg.on("dialog", lambda d: d.accept())
        pg.size_name = request.param
        yield pg


def shot(page, server, name: str) -> None:
    screenshot(page, f"errors-{server.kind}-{page.size_name}-{name}")


def login(page, user: tuple[str, str]) -> None:
    page.context.clear_cookies()
    assert log_in(page, *user) == 303


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_delete_confirmation_errors_and_permissions(browser_page, server):
    page = browser_page
    api = Browserless(server.url)
    assert api.login(*ADMIN).status_code == 303
    billed = api.api("GET", "/api/pipeline_ops/pipeline_usage_log?rows=1").json()["rows"][0]["pipeline_id"]
    used = api.api("GET", f"/api/pipeline_core/pipelines/{billed}").json()

    # a published pipeline with usage: dependents by table with counts, no delete, the archive offer
    login(page, ADMIN)
    page.goto(f"/pipeline_core/pipelines/{used['id']}/delete")
    refused = page.locator("section.delete-refused")
    assert refused.is_visible() and "不能删除" in refused.inner_text()
    assert refused.locator("li").count() >= 1  # the reason
    table = page.locator("section.dependents table")
    names = table.locator("tbody th").all_inner_texts()
    assert "版本" in names and "步骤" in names, names
    kept = table.locator("tbody tr.kept")  # the usage rows: kept, and why the delete is refused
    assert kept.count() >= 1 and "阻止删除" in kept.first.inner_text()
    assert all(c.strip().isdigit() and int(c) > 0 for c in table.locator("tbody td.t-int").all_inner_texts())
    assert page.locator("form button.danger").count() == 0  # no hard delete offered
    assert refused.locator("button.primary").is_visible()  # archive instead
    shot(page, server, "delete-refused")

    # a row nobody refers to: the confirmation says so, the delete says what it did
    made = api.api("POST", "/api/pipeline_core/pipelines", json={"code": f"tmp-{page.size_name}", "name": "Temp",
                                                                 "status": "draft"}).json()
    page.goto(f"/pipeline_core/pipelines/{made['id']}/delete")
    assert "没有其他记录引用它" in page.content()
    shot(page, server, "delete-confirm")
    with page.expect_navigation():
        page.click("form button.danger")
    assert page.url.endswith("/pipeline_core/pipelines")
    assert "已删除 1 条产线记录。" in page.locator("p.flash.ok").inner_text()

    # an unknown URL: a 404 page in the layout, the user's menu still there
    response = page.goto("/pipeline_core/no-such-page")
    assert response.status == 404
    assert "页面不存在" in page.locator("h1").inner_text() and page.locator("header.top a.brand").is_visible()
    assert page.locator("nav.menu details").count() >= 3 and ADMIN[0] in page.locator("header.top").inner_text()
    shot(page, server, "404")
    assert fits(page)

    # a viewer: lists and records without write buttons
    login(page, VIEWER)
    for path in ("/pipeline_core/pipelines", "/pipeline_ops/pipeline_pricing", "/pipeline_dist/distributors"):
        page.goto(path)
        assert page.locator("table.list").is_visible()
        assert page.locator(f"a[href='{path}/new'], a[href='{path}/import'], form#bulk").count() == 0, path
        assert page.locator("a[href*='export.xlsx']").count() == 1
    shot(page, server, "viewer-list")
    page.goto(f"/pipeline_core/pipelines/{used['id']}")
    assert page.locator("dl.record").is_visible()
    assert page.locator("a[href$='/edit'], a[href$='/delete'], form[action$='/publish'], "
                        "form[action$='/rollback']").count() == 0
    shot(page, server, "viewer-record")

    # the viewer opens an edit page anyway: the 403 says what is missing and whom to ask
    response = page.goto(f"/pipeline_core/pipelines/{used['id']}/edit")
    assert response.status == 403
    assert page.locator("#missing-path").inner_text() == "/pipeline_core/pipelines/{id}/edit"
    assert ADMIN[0] in page.locator("ul.admins").inner_text()
    shot(page, server, "403")
    assert fits(page)
    page.goto("/lang/en")
    page.goto(f"/pipeline_core/pipelines/{used['id']}/edit")
    assert "Access denied" in page.locator("h1").inner_text() and "Whom to ask" in page.content()
    shot(page, server, "403-en")
