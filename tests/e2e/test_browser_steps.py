"""Step editing in a real browser at desktop and phone widths: save and add another, back on the
pipeline with a message, reorder with the ↑ button and by dragging, the flow's lanes, and the
message after publish. Screenshots go to screenshots/ (look at them after a change to the page)."""
from __future__ import annotations

import re

import pytest
from browser_kit import SCREENS, chromium, log_in, screenshot
from test_browser import PASSWORD, server  # noqa: F401 - the server fixture

pytestmark = pytest.mark.browser


NAMES = ("ingest", "ocr", "translate", "deliver")


def order(page) -> list[str]:
    """Step names in the order the pipeline page's steps table lists them."""
    rows = page.locator("#sub-pipeline_steps tbody tr").all_inner_texts()
    return [next(n for n in NAMES if re.search(rf"\b{n}\b", row)) for row in rows]


def test_steps_are_edited_fast(server):  # noqa: F811 - the fixture imported above
    with chromium() as browser:
        for width_name, screen in SCREENS.items():
            width = screen["width"]
            page = browser.new_context(base_url=server.url, viewport=screen).new_page()
            page.on("dialog", lambda d: d.accept())
            assert log_in(page, "olga", PASSWORD) == 303
            code = f"flow-{width_name}"
            page.goto("/pipeline_core/pipelines/new")
            page.fill("#f-code", code)
            page.fill("#f-name", f"Flow {width_name}")
            page.select_option("#f-status", "active")
            with page.expect_navigation():
                page.click("form.record-form button.primary")
            pid = re.search(r"/([0-9a-f]{32})", page.url).group(1)

            # three steps through "save and add another", the last two in parallel
            page.click("#sub-pipeline_steps a[href*='/pipeline_steps/new']")
            for seq, name, group in ((1, "ingest", ""), (2, "ocr", "g1"), (2, "translate", "g1")):
                assert page.locator("#f-pipeline_id").input_value() == pid
                page.fill("#f-seq", str(seq))
                page.fill("#f-name", name)
                page.fill("#f-parallel_group", group)
                with page.expect_navigation():
                    page.click("button[name=_next][value=add]")
                assert f"已新增步骤「{name}」。" in page.content()
            crumbs = page.locator("nav.crumbs a").all_inner_texts()
            assert crumbs == ["产线", f"Flow {width_name}", "步骤"]
            page.fill("#f-seq", "3")
            page.fill("#f-name", "deliver")
            with page.expect_navigation():
                page.click("form.record-form button.primary")
            assert re.search(rf"/pipeline_core/pipelines/{pid}#row-[0-9a-f]{{32}}$", page.url)
            assert "已新增步骤「deliver」。" in page.content()
            assert order(page) == ["ingest", "ocr", "translate", "deliver"]
            assert page.locator(".flow .stage.parallel .lane").count() == 2

            # ↑ on deliver swaps it with the parallel stage; then drag ingest onto deliver's place
            with page.expect_navigation():
                page.click("button[aria-label='上移 deliver']")
            assert "已将步骤「deliver」移到第 2 位。" in page.content()
            assert order(page) == ["ingest", "deliver", "ocr", "translate"]
            if width_name == "desktop":
                with page.expect_navigation():
                    page.drag_and_drop("#sub-pipeline_steps tr:has-text('ingest')",
                                       "#sub-pipeline_steps tr:has-text('deliver')")
                assert order(page) == ["deliver", "ingest", "ocr", "translate"]
            screenshot(page, f"{server.kind}-steps-{width_name}")
            wide = page.evaluate(f"""() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > {width + 1})
                .map(e => e.tagName + '.' + e.className + ' in '
                     + (e.closest('table,section') || {{}}).className).slice(0, 8)""")
            assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, wide

            # a price, then publish: the message names the version
            page.goto(f"/pipeline_ops/pipeline_pricing/new?pipeline_id={pid}")
            page.fill("#f-unit_price", "0.1")
            page.fill("#f-effective_from", "2026-01-01T00:00:00")
            with page.expect_navigation():
                page.click("form.record-form button.primary")
            with page.expect_navigation():
                page.click("form.pipeline-publish button[type=submit]")
            assert f"已发布「Flow {width_name}」的版本 1。" in page.content(), page.content()[:2000]
