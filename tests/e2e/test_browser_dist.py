"""A distributor's key in a minute, in a real browser (headless Chromium, Playwright) against the
real server: the operator rotates the key with a chosen grace, copies the new key with the copy
button, the test runs the curl command the page shows, and the page then shows the key's last
use. Then the distributor docs (and the operators' /schema) render with no request leaving this
server and no CSP violation. Screenshots go to screenshots/."""
from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest
from live_server import Browserless, create_offer
from browser_kit import log_in
from test_browser import PASSWORD, page, server, shot  # noqa: F401 - the live server and browser fixtures

pytestmark = pytest.mark.browser


def login(page) -> None:  # noqa: F811 - the fixture's name
    assert log_in(page, "olga", PASSWORD) == 303


def run_curl(command: str) -> subprocess.CompletedProcess:
    return subprocess.run([*shlex.split(command), "-w", "\n%{http_code}"], capture_output=True, text=True,
                          timeout=30)


def test_key_page_copy_curl_and_last_used(page, server):  # noqa: F811
    op = Browserless(server.url)
    assert op.login("olga", PASSWORD).status_code == 303
    old_key, _, did = create_offer(op, "keyed")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    login(page)
    page.goto(f"/pipeline_dist/distributors/{did}")
    assert "从未使用" in page.inner_text("section.dist-keys")  # never used yet
    shot(page, server, "dist-key-page")

    page.select_option("#grace_hours", "1")
    with page.expect_navigation():
        page.click("form.rotate button[type=submit]")
    key = page.inner_text("#secret-value").strip()
    assert key.startswith("pdk_") and key != old_key
    page.click("button[data-copy=secret-value]")
    assert page.evaluate("navigator.clipboard.readText()") == key
    command = page.inner_text("#secret-example").strip()
    assert server.url in command and key in command
    shot(page, server, "dist-key-new")

    result = run_curl(command)  # what an operator pastes into a terminal
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", result
    assert [p["code"] for p in json.loads(body)] == ["keyed"]
    old = run_curl(command.replace(key, old_key))  # the old key works during its grace hour
    assert old.stdout.rsplit("\n", 1)[1] == "200", old

    deadline = time.time() + 20  # uses are written every few seconds, in the background
    while True:
        page.goto(f"/pipeline_dist/distributors/{did}")
        keys = page.inner_text("section.dist-keys")
        if keys.count("127.0.0.1") == 2:
            break
        assert time.time() < deadline, keys
        time.sleep(1)
    assert key not in page.content()
    shot(page, server, "dist-key-last-used")


def test_docs_render_offline(page, server):  # noqa: F811
    outside, violations = [], []
    page.on("request", lambda r: None if r.url.startswith((server.url, "data:")) else outside.append(r.url))
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    logs = []
    page.on("console", lambda m: logs.append(m.text))
    page.on("pageerror", lambda e: logs.append(str(e)))
    page.goto("/api/dist/v1/docs")
    try:
        page.wait_for_selector("#swagger-ui .opblock", timeout=20000)
    except Exception as exc:
        raise AssertionError(f"Swagger UI did not render: {logs}") from exc
    assert page.locator("#swagger-ui .opblock").count() == 7
    assert "Idempotency" in page.inner_text("#idempotency")
    page.click("button[data-copy=c-list]")
    shot(page, server, "dist-docs")

    login(page)
    page.goto("/schema")
    page.wait_for_selector("#swagger-ui .opblock", timeout=20000)
    shot(page, server, "operator-schema")
    page.goto("/pipeline_ops/usage_daily")
    shot(page, server, "usage-daily")
    page.goto("/pipeline_dist/statements")
    shot(page, server, "statements")
    assert outside == [] and violations == [], (outside, violations)
