"""What every browser test shares: Debian's Chromium (a test is skipped without it; ./test.sh
installs it), the two screen sizes the pages are checked at, and logging in through the form."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SCREENS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (./test.sh installs it)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium for the block, closed after it."""
    from playwright.sync_api import sync_playwright

    need_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Any, username: str, password: str) -> int:
    """Submit the login form as a person does; the status of the answer (303 then 200 when it
    let them in, 400 or 429 when it did not)."""
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation() as nav:
        page.click("form.record-form button[type=submit]")
    response = nav.value
    redirected = response.request.redirected_from
    return redirected.response().status if redirected else response.status


SHOTS = Path(__file__).resolve().parents[1] / "screenshots"


def screenshot(page: Any, name: str) -> None:
    """The whole page as screenshots/<name>.png, to look at after a change to it. Taken from the
    top: scrolled, the sticky header would be drawn in the middle of the picture."""
    SHOTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def browser() -> Iterator[Any]:
    """One Chromium for the test; each `browser.new_context(...)` is a fresh session."""
    with chromium() as b:
        yield b
