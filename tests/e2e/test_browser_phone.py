"""Every page kind on a phone (390×844) and a desktop (1366×900), in a real browser against one real
server with the demo catalog (issue 17, point 5): no page is wider than the screen (wide tables
scroll inside their own box), the header collapses behind a "菜单" toggle on the phone that opens
the menu with its links and the user and language links, and the RBAC grid's last role column is
reached by scrolling the grid's own box. Each page is also read in the language of the pass: no
Chinese on an English page, no English UI text on a Chinese one (tests/language_check.py; data
values excepted). Screenshots go to $PIPELINE_SHOTS (or the test's tmp dir);
the folder is printed."""
from __future__ import annotations

import asyncio
import html
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import SCREENS, chromium, log_in, need_chromium
from conftest import make_database
from language_check import catalogue_phrases, other_language, spec_texts
from live_server import Browserless, LiveServer, cli, create_offer, prepare, server_env

from app.core.catalog import load_catalog

pytestmark = pytest.mark.browser
ADMIN, VIEWER = ("olga", "olga-Passw0rd!"), ("vera", "vera-Passw0rd!")
ROOT = Path(__file__).resolve().parents[2]
# pages whose screenshots are kept (the rest are only measured)
SHOT_PAGES = {"login", "home", "pipelines", "pipeline", "pipeline-edit", "grants", "user", "key-new",
              "usage-daily", "statements", "pricing", "docs", "403"}


def _grant(url: str, grants: dict[str, list[str]]) -> None:
    """Give the viewer every GET page, so its 403 is the one of a write page (a real refusal), and
    make two more roles, so the grid is wider than a phone."""
    from app.auth import rbac
    from app.core.db import make_engine

    async def run() -> None:
        engine = make_engine(url)
        try:
            await rbac.register_paths(engine, [], grants, dry_run=False)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    need_chromium()
    data = tmp_path_factory.mktemp("phone")
    app_url, _ = make_database("sqlite", data)
    env = server_env(app_url, app_url, data)
    prepare(env, {ADMIN[0]: (ADMIN[1], "pipeline.admin"), VIEWER[0]: (VIEWER[1], "ops.viewer")})
    cli(env, "demo", "--days", "2")
    manifest = json.loads((ROOT / "build" / "manifest.json").read_text())
    reads = sorted({r["path"] for r in manifest["routes"]
                    if r["methods"] == ["GET"] and not r["path"].startswith("/api/")})
    _grant(app_url, {"ops.viewer": reads, "finance.auditor": reads[:3], "qa.tester": reads[:1]})
    with LiveServer(env) as srv:
        srv.manifest, srv.db_file = manifest, app_url.removeprefix("sqlite:///")
        yield srv


@pytest.fixture(scope="module")
def chrome(server) -> Iterator[Any]:
    """One Chromium for the module, started after the server (whose setup runs its own event loop)."""
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("PIPELINE_SHOTS") or tmp_path_factory.mktemp("phone-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


def _pages(server: LiveServer) -> dict[str, str]:
    """One URL of every page kind an operator opens: home, every table's list, each form kind, a
    record of every table, the RBAC pages, the module pages, the distributor docs."""
    api = Browserless(server.url)
    assert api.login(*ADMIN).status_code == 303
    routes = server.manifest["routes"]
    lists = [r["path"] for r in routes if r.get("kind") == "list"]
    pages = {"home": "/"}
    for path in lists:
        name = path.rsplit("/", 1)[1]
        pages[name] = path
        record = re.search(rf'href="({re.escape(path)}/(?!new|import|export)[^"/?#]+)"', api.http.get(path).text)
        if record:
            pages[f"{name}-record"] = html.unescape(record.group(1))
    billed = api.api("GET", "/api/pipeline_ops/pipeline_usage_log?rows=1").json()["rows"][0]
    pipeline = f"/pipeline_core/pipelines/{billed['pipeline_id']}"
    _, _, distributor = create_offer(api, "phone-offer")
    users = api.http.get("/rbac/users").text
    user_id = users.split('href="/rbac/users/', 1)[1].split('"', 1)[0]
    pages.update({
        "pipeline": pipeline, "pipeline-edit": f"{pipeline}/edit", "pipeline-delete": f"{pipeline}/delete",
        "pipeline-new": "/pipeline_core/pipelines/new", "step-new": "/pipeline_core/pipeline_steps/new",
        "pricing-new": "/pipeline_ops/pipeline_pricing/new", "pricing": "/pipeline_ops/pipeline_pricing",
        "import": "/pipeline_ops/pipeline_pricing/import", "key": f"/pipeline_dist/distributors/{distributor}",
        "users": "/rbac/users", "user": f"/rbac/users/{user_id}", "grants": "/rbac/grants",
        "usage-daily": "/pipeline_ops/usage_daily", "statements-all": "/pipeline_dist/statements",
        "statements": f"/pipeline_dist/statements?distributor_id={billed['distributor_id']}",
        "docs": "/api/dist/v1/docs", "404": "/pipeline_core/no-such-page"})
    return pages


@pytest.fixture(scope="module")
def pages(server) -> dict[str, str]:
    return _pages(server)


def _context(chrome: Any, server: LiveServer, screen: str) -> Any:
    phone = screen == "phone"
    context = chrome.new_context(base_url=server.url, viewport=SCREENS[screen], is_mobile=phone, has_touch=phone)
    context.on("page", lambda pg: pg.on("dialog", lambda d: d.accept()))
    return context


def _overflow(page: Any) -> str | None:
    """None when the page is no wider than the screen; else its width and the widest elements."""
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if width <= inner + 1:
        return None
    wide = page.evaluate(f"""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > {inner + 1} && !e.closest('.table-wrap, .grid-wrap'))
        .map(e => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string'
             ? '.' + e.className.trim().replace(/ +/g, '.') : '')).slice(0, 5)""")
    return f"{width} px on {inner}: {', '.join(wide)}"


def _look(page: Any, shots: Path, name: str) -> str | None:
    """Screenshot a key page (the rest are only measured); why the page is too wide, or None."""
    if name in SHOT_PAGES:
        page.screenshot(path=str(shots / f"{page.shot_prefix}-{name}.png"), full_page=name != "docs")
    return _overflow(page)


PASSES = [("phone", "zh"), ("phone", "en"), ("desktop", "zh"), ("desktop", "en")]


@pytest.fixture(scope="module")
def data_values(server) -> list[str]:
    """What reads the same in both languages: spec titles and every text value of the demo rows
    (longest first, so a value inside another is taken out after it)."""
    catalog = load_catalog(ROOT / "build")
    values = spec_texts(catalog)
    with sqlite3.connect(server.db_file) as db:  # the RBAC tables: role keys and user names are data too
        values.update(f"{org}.{name}" for org, name in db.execute("SELECT orgtypeid, name FROM role"))
        values.update(name for (name,) in db.execute("SELECT name FROM role"))
        values.update(name for (name,) in db.execute("SELECT username FROM users"))
    api = Browserless(server.url)
    assert api.login(*ADMIN).status_code == 303
    for route in catalog.routes:
        if route["kind"] == "api_list":
            for row in api.api("GET", route["path"] + "?rows=200").json()["rows"]:
                values.update(v for v in row.values() if isinstance(v, str) and v.strip())
    return sorted(values, key=len, reverse=True)


@pytest.mark.parametrize(("screen", "lang"), PASSES, ids=[f"{s}-{lang}" for s, lang in PASSES])
def test_no_page_is_wider_than_the_screen(chrome, server, pages, shots, data_values, screen, lang):
    context = _context(chrome, server, screen)
    page = context.new_page()
    page.shot_prefix = f"{screen}-{lang}"
    wide: dict[str, str] = {}
    english, mixed = catalogue_phrases(), []
    page.goto(f"/lang/{lang}")
    page.goto("/login")
    if (why := _look(page, shots, "login")) is not None:
        wide["login"] = why
    assert log_in(page, *ADMIN) == 303
    for name, path in pages.items():
        status = page.goto(path).status
        assert status == (404 if name == "404" else 200), (name, path, status)  # the page itself, not an error
        if name == "docs":
            page.wait_for_selector("#swagger-ui .opblock", timeout=20000)
        if (why := _look(page, shots, name)) is not None:
            wide[name] = why
        if name != "docs":  # the distributor API's documentation is English for everyone
            mixed += [f"{name} ({path}): {t}" for t in other_language(page.content(), lang, data_values, english)]

    # a new key is shown once with its curl command: the key page at its widest
    page.goto(pages["key"])
    with page.expect_navigation():
        page.click("form.rotate button[type=submit]")  # the offer's distributor has a key: rotate it
    assert page.locator("#secret-value").is_visible(), page.inner_text("main")[:500]
    if (why := _look(page, shots, "key-new")) is not None:
        wide["key-new"] = why
    mixed += [f"key-new: {t}" for t in other_language(page.content(), lang, data_values, english)]

    # a viewer opening an edit page: the 403 page
    page.context.clear_cookies()
    page.goto(f"/lang/{lang}")
    assert log_in(page, *VIEWER) == 303
    assert page.goto(pages["pipeline-edit"]).status == 403
    if (why := _look(page, shots, "403")) is not None:
        wide["403"] = why
    mixed += [f"403: {t}" for t in other_language(page.content(), lang, data_values, english)]
    context.close()
    assert not mixed, f"{len(mixed)} texts of the other language on {lang} pages:\n" + "\n".join(mixed[:40])
    assert not wide, f"{len(wide)} of {len(pages) + 3} pages are wider than the {screen} screen ({lang}):\n" + \
        "\n".join(f"  {name} ({pages.get(name, '')}): {why}" for name, why in wide.items())


def test_phone_menu_toggle_and_grid(chrome, server, pages, shots):
    context = _context(chrome, server, "phone")
    page = context.new_page()
    assert log_in(page, *ADMIN) == 303
    page.goto("/")

    # the header collapsed: a menu toggle, the menu and the user links hidden until it is opened
    toggle = page.locator("header.top label.menu-toggle")
    assert toggle.is_visible() and toggle.inner_text().strip() == "菜单"
    assert not page.locator("nav.menu").is_visible()
    assert not page.locator("header.top a[href='/lang/en']").is_visible()
    page.keyboard.press("Tab")  # the toggle is reached from the keyboard, after the brand
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "menu-open"
    page.keyboard.press("Space")
    assert page.locator("nav.menu").is_visible()
    assert page.locator("header.top a[href='/lang/en']").is_visible()
    assert page.locator("header.top .user").inner_text() == ADMIN[0]
    page.locator("nav.menu summary").first.click()
    first = page.locator("nav.menu details[open] li a").first
    assert first.is_visible()
    page.screenshot(path=str(shots / "phone-menu-open.png"), full_page=True)
    box = first.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 391, box
    assert _overflow(page) is None
    href = first.get_attribute("href")
    with page.expect_navigation():
        first.click()
    assert page.url == server.url + href

    # the grid: the last role column is reached by scrolling the grid's own box, not the page
    page.goto(pages["grants"])
    last = page.locator("#grid thead th.role-col").last
    box = last.bounding_box()
    assert box["x"] + box["width"] > 391  # off-screen at first, in the grid's box
    page.locator(".grid-wrap").evaluate("e => e.scrollLeft = e.scrollWidth")
    box = last.bounding_box()
    assert 0 <= box["x"] and box["x"] + box["width"] <= 391, box
    assert page.evaluate("window.scrollX") == 0 and _overflow(page) is None
    path_cell = page.locator("#grid tbody tr.path-row th").first.bounding_box()
    wrap = page.locator(".grid-wrap").bounding_box()
    assert path_cell["x"] <= wrap["x"] + 1  # the path column stays in view (sticky)
    page.screenshot(path=str(shots / "phone-grants-scrolled.png"))
    context.close()


@pytest.mark.parametrize(("width", "folded"), [(768, True), (1366, False)])
def test_header_folds_below_900_px(chrome, server, shots, width, folded):
    """A tablet gets the toggle too (the bar would squeeze the English labels a letter a line); a
    desktop keeps every menu and link in one bar line."""
    context = chrome.new_context(base_url=server.url, viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto("/lang/en")
    assert log_in(page, *ADMIN) == 303
    page.goto("/")
    page.screenshot(path=str(shots / f"header-{width}-en.png"))
    assert page.locator("header.top label.menu-toggle").is_visible() is folded
    assert page.locator("nav.menu").is_visible() is not folded
    if not folded:
        heights = [b["height"] for b in (s.bounding_box() for s in page.locator("nav.menu summary").all())]
        assert len(heights) >= 3 and max(heights) < 40, heights  # one line each
        assert page.locator("header.top a[href='/lang/zh']").is_visible()
    assert _overflow(page) is None
    context.close()
