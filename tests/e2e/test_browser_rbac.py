"""The RBAC admin pages as an administrator uses them, in a real browser (Debian's headless Chromium
driven by Playwright) against the real server, on a desktop (1366×900) and a phone (390×844):

- users: create one with an organisation and a role, reset its password (the user then logs in
  with the new one, not the old), disable it (its login is refused) and enable it again;
- the roles × paths grid: a path a role holds through a wildcard grant looks different from a
  direct grant, paths are grouped by module and kind, the search narrows the rows, a preset
  grants a module's pages in one click.

No page is wider than the screen; the grid scrolls inside its own box, so the last role's column
is reachable on a phone. Screenshots of every page at each width go to the test's tmp dir."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from live_server import cli
from browser_kit import chromium, log_in
from test_browser import PASSWORD, server  # noqa: F401 - the live server fixture

pytestmark = pytest.mark.browser
SIZES = {"wide": (1366, 900), "phone": (390, 844)}
ORG = "acme-east"


@pytest.fixture(params=list(SIZES))
def browser(request, server):  # noqa: F811 - the fixture's name
    """A Chromium of one screen size; `browser.new_page()` opens a fresh session (own cookies)."""
    width, height = SIZES[request.param]
    with chromium() as chrome:

        class Screen:
            size = request.param

            @staticmethod
            def new_page():
                context = chrome.new_context(base_url=server.url, viewport={"width": width, "height": height},
                                              is_mobile=width < 500, has_touch=width < 500)
                pg = context.new_page()
                pg.on("dialog", lambda d: d.accept())  # the data-confirm questions
                return pg

        yield Screen


def shot(page, tmp_path: Path, size: str, name: str) -> None:
    """The whole page and what the screen shows, after checking the page is no wider than the screen."""
    page.screenshot(path=str(tmp_path / f"{size}-{name}.png"), full_page=True)
    page.screenshot(path=str(tmp_path / f"{size}-{name}-screen.png"))
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{name} is {width} px wide on a {inner} px screen"


login = log_in


def submit(page, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def signed_in(page) -> str | None:
    """Whose session this page's browser holds (`/me`), or None when it holds none."""
    response = page.goto("/me")
    return response.json()["username"] if response.status == 200 else None


def flash(page) -> str:
    return page.inner_text(".flash")


def test_users_create_reset_disable_enable(browser, server, tmp_path):  # noqa: F811
    cli(server.env, "rbac", "adduser", "erin", "--password-stdin", "--role", "ops.viewer", "--org", ORG,
        stdin="erin-Passw0rd!\n")  # a second organisation to choose from
    admin = browser.new_page()
    assert login(admin, "olga", PASSWORD) == 303
    admin.goto("/rbac/users")
    shot(admin, tmp_path, browser.size, "users")
    admin.click("details.new-user summary")
    admin.fill("#nu-username", "nina")
    admin.fill("#nu-password", "first-Passw0rd")
    admin.fill("#nu-password2", "first-Passw0rd")
    admin.select_option("#nu-org", ORG)
    admin.select_option("#nu-role", label="ops.viewer")
    shot(admin, tmp_path, browser.size, "users-new")
    submit(admin, "details.new-user button[type=submit]")
    assert "nina" in flash(admin)
    row = admin.locator("#users tbody tr", has=admin.locator("th a", has_text="nina"))
    assert row.count() == 1
    assert row.locator("td.org").inner_text().strip() == f"{ORG}"
    assert row.locator("button[aria-label='nina ops.viewer']").get_attribute("aria-pressed") == "true"
    assert row.locator("button[aria-label='nina pipeline.admin']").get_attribute("aria-pressed") == "false"
    shot(admin, tmp_path, browser.size, "users-created")

    nina = browser.new_page()
    assert login(nina, "nina", "first-Passw0rd") == 303
    assert signed_in(nina) == "nina"

    # reset the password: nina's session ends, the old password is refused, the new one works
    with admin.expect_navigation():
        row.locator("th a").click()
    assert admin.url.endswith("/rbac/users/" + re.search(r"[0-9a-f]{32}$", admin.url).group(0))
    shot(admin, tmp_path, browser.size, "user")
    admin.fill("#pw-password", "second-Passw0rd")
    admin.fill("#pw-password2", "second-Passw0rd")
    submit(admin, "form[action$='/password'] button[type=submit]")
    assert "nina" in flash(admin) and "1" in flash(admin)  # one session ended
    assert signed_in(nina) is None
    assert login(nina, "nina", "first-Passw0rd") == 400
    assert "用户名或密码错误" in nina.inner_text(".flash.error")
    assert login(nina, "nina", "second-Passw0rd") == 303

    # disable: the session ends and the login is refused; enable: the login works again
    submit(admin, "form[action$='/status'] button[type=submit]")
    assert admin.locator("h1 .badge.off").count() == 1
    shot(admin, tmp_path, browser.size, "user-disabled")
    assert signed_in(nina) is None
    assert login(nina, "nina", "second-Passw0rd") == 400
    admin.goto("/rbac/users?q=nina")
    assert admin.locator("#users tbody tr .badge.off").count() == 1
    admin.goto(admin.locator("#users tbody th a", has_text="nina").get_attribute("href"))
    submit(admin, "form[action$='/status'] button[type=submit]")
    assert admin.locator("h1 .badge.ok").count() == 1
    assert login(nina, "nina", "second-Passw0rd") == 303
    assert signed_in(nina) == "nina"


def visible_paths(page) -> list[str]:
    return page.locator("#grid tbody tr.path-row:visible th").all_inner_texts()


def cell(page, role: str, path: str):
    return page.locator(f"#grid button[aria-label^='{role} {path}:']")


def test_grid_wildcards_groups_search_preset(browser, server, tmp_path):  # noqa: F811
    admin = browser.new_page()
    assert login(admin, "olga", PASSWORD) == 303
    admin.goto("/rbac/grants")
    shot(admin, tmp_path, browser.size, "grants")

    # grouped by module, then kind: each group's rows belong to its module
    groups = admin.locator("#grid tr.group th").all_inner_texts()
    for title in ("pipeline_core · 页面", "pipeline_core · 操作", "pipeline_core · JSON 接口",
                  "pipeline_core · 通配授权"):
        assert any(g.startswith(title) for g in groups), groups
    current = None
    for row in admin.locator("#grid tbody tr").all():
        if "group" in (row.get_attribute("class") or ""):
            current = row.inner_text().split(" · ")[0]
        elif current in ("pipeline_core", "pipeline_ops", "pipeline_dist"):
            assert current in row.locator("th").inner_text()

    # pipeline.admin holds /pipeline_core/** directly, and the pages under it through that grant
    wildcard = cell(admin, "pipeline.admin", "/pipeline_core/**")
    assert wildcard.get_attribute("aria-pressed") == "true" and wildcard.inner_text() == "✓"
    via = cell(admin, "pipeline.admin", "/pipeline_core/pipelines")
    assert via.get_attribute("aria-pressed") == "false" and via.inner_text() == "(✓)"
    assert via.get_attribute("title") == "/pipeline_core/**"
    assert "via" in via.get_attribute("class")
    styles = [b.evaluate("e => getComputedStyle(e).borderStyle + ' ' + getComputedStyle(e).backgroundColor")
              for b in (wildcard, via, cell(admin, "ops.viewer", "/pipeline_core/pipelines"))]
    assert len(set(styles)) == 3, styles  # direct, through a wildcard, not held: three looks

    # the last role's column is reachable: the grid scrolls in its own box, not the page
    last_role = admin.locator("#grid thead th.role-col").last
    last_role.scroll_into_view_if_needed()
    box, screen = last_role.bounding_box(), admin.viewport_size
    assert 0 <= box["x"] and box["x"] + box["width"] <= screen["width"] + 1, (box, screen)
    assert admin.evaluate("window.scrollX") == 0
    shot(admin, tmp_path, browser.size, "grants-scrolled")

    # the search box narrows the rows at once, and the same filter on the server
    admin.fill("#q", "distributors")
    shown = visible_paths(admin)
    assert shown and all("distributors" in p for p in shown), shown
    assert admin.locator("#grid tr.group:visible").count() < len(groups)
    submit(admin, "form.filters button[type=submit]")
    assert visible_paths(admin) == shown
    assert admin.inner_text(".count").startswith(f"{len(shown)} ")
    shot(admin, tmp_path, browser.size, "grants-search")

    # a new role, then the viewer preset of pipeline_core in one click: its pages, directly
    admin.goto("/rbac/grants")
    admin.fill("#new-role", "qa.tester")
    submit(admin, "form[action='/rbac/roles'] button[type=submit]")
    assert "qa.tester" in flash(admin)
    admin.select_option("#preset-role", label="qa.tester")
    admin.select_option("form.preset-form select[name=preset]", "viewer")
    admin.select_option("form.preset-form select[name=module]", "pipeline_core")
    submit(admin, "form.preset-form button[type=submit]")
    assert "qa.tester" in flash(admin) and "pipeline_core" in flash(admin)
    shot(admin, tmp_path, browser.size, "grants-preset")
    admin.goto("/rbac/grants?module=pipeline_core&role=qa.tester")
    pages = admin.locator("#grid button[aria-label^='qa.tester /pipeline_core/'][aria-pressed=true]")
    assert pages.count() >= 2
    assert cell(admin, "qa.tester", "/pipeline_core/pipelines").get_attribute("aria-pressed") == "true"
    assert cell(admin, "qa.tester", "/pipeline_core/pipelines/{id}/delete").get_attribute("aria-pressed") == "false"

    # granting the module's wildcard turns the rest into holdings through it
    with admin.expect_navigation():
        cell(admin, "qa.tester", "/pipeline_core/**").click()
    assert cell(admin, "qa.tester", "/pipeline_core/**").get_attribute("aria-pressed") == "true"
    deleting = cell(admin, "qa.tester", "/pipeline_core/pipelines/{id}/delete")
    assert deleting.inner_text() == "(✓)" and deleting.get_attribute("title") == "/pipeline_core/**"
    assert cell(admin, "qa.tester", "/pipeline_core/pipelines").inner_text() == "✓"
    shot(admin, tmp_path, browser.size, "grants-wildcard")
