"""The lookup picker in a real browser, with 2,000 pipelines: a pipeline picked by its code on
the step form and in the steps list's filter, Enter never submitting, Escape closing, "more
results" paging, a step naming its pipeline; on a desktop and a phone screen. Screenshots go to
screenshots/picker-*.png."""
from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from browser_kit import SCREENS, browser, log_in, need_chromium, screenshot  # noqa: F401 - the browser fixture
from live_server import LiveServer, prepare, server_env

pytestmark = pytest.mark.browser
PASSWORD = "picker-Passw0rd!"
COUNT = 2000
VIEWPORTS = SCREENS


async def _fill(url: str) -> None:
    """2,000 pipelines in a few multi-row INSERTs, as an import of a big catalog would leave them."""
    from sqlalchemy import insert

    from app.core.catalog import current_catalog
    from app.core.db import make_engine

    table = current_catalog().tables["pipelines"].table
    now = datetime(2026, 11, 1)
    rows = [{"id": f"{i:032x}", "code": f"flow-{i}", "name": f"产线 Flow {i}", "status": "active",
             "created_at": now, "updated_at": now} for i in range(COUNT)]
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(table), rows)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def server(request, new_database, tmp_path):
    need_chromium()
    app_url = new_database(request.param)
    env = server_env(app_url, app_url, tmp_path)
    prepare(env, {"pia": (PASSWORD, "pipeline.admin")})
    asyncio.run(_fill(app_url))
    with LiveServer(env) as srv:
        srv.kind = request.param
        yield srv


def shot(page, server, name: str) -> None:
    screenshot(page, f"picker-{server.kind}-{name}")


def no_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page is {width}px wide on a {page.viewport_size['width']}px screen"


def type_and_wait(page, box: str, text: str) -> None:
    """Type `text` over what the box shows (as a person does: select it, type) and wait for the
    list of the last keystroke."""
    page.click(box)
    page.keyboard.press("Control+A")
    page.keyboard.type(text, delay=15)
    page.wait_for_function(
        """([sel, text]) => { const b = document.querySelector(sel);
             const l = document.getElementById(b.getAttribute('aria-controls'));
             return b.value === text && !l.hidden && l.querySelector('li'); }""", arg=[box, text])
    page.wait_for_timeout(400)  # the last keystroke's answer


@pytest.mark.parametrize("screen", list(VIEWPORTS))
def test_pick_a_pipeline_by_its_code(server, browser, screen):
    context = browser.new_context(base_url=server.url, viewport=VIEWPORTS[screen])
    page = context.new_page()
    assert log_in(page, "pia", PASSWORD) == 303
    wanted = f"{1234:032x}"

    # the step form: the picker finds pipeline flow-1234 by its code, ranked first
    page.goto("/pipeline_core/pipeline_steps/new")
    page.fill("#f-name", "ocr")
    box = "#f-pipeline_id-pick"
    type_and_wait(page, box, "flow-1234")
    options = page.locator(".picker-list li[role=option]:not(.picker-more)")
    assert options.first.inner_text().startswith("产线 Flow 1234"), options.first.inner_text()
    assert "flow-1234" in options.first.inner_text()
    shot(page, server, f"{screen}-form-typed")
    no_overflow(page)
    page.keyboard.press("Enter")  # picks; never submits
    page.wait_for_timeout(300)
    assert page.url.endswith("/pipeline_core/pipeline_steps/new"), "Enter submitted the form"
    assert page.locator("#f-pipeline_id").input_value() == wanted
    assert page.locator(box).input_value() == "产线 Flow 1234 (flow-1234)"
    assert page.locator(".picker-list").first.is_hidden()
    page.keyboard.press("Enter")  # a closed picker does not submit either
    page.wait_for_timeout(300)
    assert page.url.endswith("/new") and page.locator("#f-name").input_value() == "ocr"
    shot(page, server, f"{screen}-form-picked")

    # Escape closes the list and keeps the pick; "more results" loads the next page
    type_and_wait(page, box, "flow-1")
    assert options.count() == 20 and page.locator(".picker-more").is_visible()
    page.keyboard.press("Escape")
    assert page.locator(".picker-list").first.is_hidden()
    page.locator(box).blur()
    page.wait_for_timeout(300)
    assert page.locator(box).input_value() == "产线 Flow 1234 (flow-1234)"
    assert page.locator("#f-pipeline_id").input_value() == wanted
    type_and_wait(page, box, "flow-1")
    first_page = options.all_inner_texts()
    page.locator(".picker-more").click()
    page.wait_for_function("() => document.querySelectorAll('.picker-list li.picker-text, "
                           ".picker-list li[role=option]:not(.picker-more)').length > 20")
    more = options.all_inner_texts()
    assert more[:20] == first_page and len(set(more)) == len(more) == 40
    shot(page, server, f"{screen}-form-more")
    page.keyboard.press("Escape")
    page.locator(box).blur()
    with page.expect_navigation():
        page.click("form.record-form button.primary")
    assert "已新增步骤「" in page.content() and "产线 Flow 1234" in page.content()  # back on the chosen pipeline

    # the steps list's filter: the same picker, by code, then Apply
    page.goto("/pipeline_core/pipeline_steps")
    fbox = "#flt-pipeline_id-pick"
    type_and_wait(page, fbox, "flow-1234")
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert "pipeline_id=" not in page.url, "Enter in the filter's picker submitted the filter"
    shot(page, server, f"{screen}-filter-picked")
    no_overflow(page)
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert f"pipeline_id={wanted}" in page.url
    assert page.locator(fbox).input_value() == "产线 Flow 1234 (flow-1234)"
    assert page.locator("table.list tbody tr").count() == 1
    assert "ocr" in page.locator("table.list tbody").inner_text()
    shot(page, server, f"{screen}-filter-applied")

    # the price form's step picker says whose step each option is
    page.goto("/pipeline_ops/pipeline_pricing/new")
    type_and_wait(page, "#f-step_id-pick", "ocr")
    assert "flow-1234 · 产线 Flow 1234" in page.locator(".picker-list li .picker-belongs").first.inner_text()
    shot(page, server, f"{screen}-step-owner")
    no_overflow(page)
    context.close()
