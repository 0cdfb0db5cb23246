"""The footer's language switch in a real browser: English pages, back to Chinese (screenshots kept)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"i18n-{name}.png"), full_page=True)


def test_switch_to_english_and_back(browser_page: Any, live_server: str) -> None:
    page = browser_page
    page.goto(f"{live_server}/requests/new")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    with page.expect_navigation():
        page.click("#language-switch button[value=en]")
    assert page.url.endswith("/requests/new")  # back where the visitor was
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("button", name="Submit request").is_visible()
    shot(page, "intake-en")
    page.goto(f"{live_server}/")
    assert page.get_by_text("Check progress").is_visible()
    shot(page, "home-en")
    page.goto(f"{live_server}/login")
    page.fill("#username", "evaluator")
    page.fill("#password", "demo-pass-2026")
    with page.expect_navigation():
        page.locator("form.card button").click()
    page.goto(f"{live_server}/assessment/")
    shot(page, "assessment-en")
    with page.expect_navigation():
        page.click("#language-switch button[value=zh_CN]")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
