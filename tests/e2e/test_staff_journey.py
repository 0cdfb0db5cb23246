"""A request's whole round trip in a real browser: resident → community handler → resident rates 不满意 → back.

The resident is on a phone, the handler at a desktop; each has their own browser context (own cookies).
Jobs run inline in the e2e server, so the request is routed to the community as soon as it is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.e2e

PASSWORD = "demo-pass-2026"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 900}}


@pytest.fixture
def browser(live_server: str) -> Iterator[Any]:
    """A headless Debian chromium (skipped without it, except under CI=true)."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Any, device: dict[str, Any]) -> Any:
    """A page in a fresh context (its own session cookie) for one person."""
    context = browser.new_context(locale="zh-CN", **device)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def _choose(page: Any, selector: str, value: str) -> None:
    """Pick an option once the dependent select has loaded it over fetch."""
    page.wait_for_selector(f"{selector} option[value='{value}']", state="attached")
    page.select_option(selector, value)


def submit_request(page: Any, base: str) -> tuple[str, str]:
    """The resident files an HW-01 request at 420102-S1-C1; returns (tracking number, private status URL)."""
    page.goto(f"{base}/requests/new")
    page.select_option("#category", "HW-01")
    _choose(page, "#district", "420102")
    _choose(page, "#street", "420102-S1")
    _choose(page, "#community", "420102-S1-C1")
    page.fill("#address", "幸福小区 7 栋楼下")
    page.fill("#description", "垃圾桶满了没人清运，招来很多苍蝇。")
    page.fill("#contact_name", "李四")
    page.fill("#contact_phone", "13900001111")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/requests/MH\d{8}-[A-Z2-9]{5}/submitted"))
    tracking = page.locator("#tracking-number").inner_text().strip()
    status_url = page.locator("#status-link").get_attribute("href")
    assert status_url and "k=" in status_url
    return tracking, base + status_url if status_url.startswith("/") else status_url


def log_in(page: Any, base: str, username: str) -> None:
    """Sign in through the login form and land on a signed-in page."""
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator("form.card button").click()
    page.wait_for_load_state()
    assert page.locator("header .who").count() == 1, page.content()


def open_from_queue(page: Any, base: str, tracking: str) -> Any:
    """Find the case in the unit queue, check its state there, and open its page; returns the queue row."""
    page.goto(f"{base}/workbench")
    row = page.locator("#queue tr", has=page.locator(f"a:text-is('{tracking}')"))
    assert row.count() == 1
    state = row.locator(".state").inner_text()
    page.locator(f"#queue a:text-is('{tracking}')").click()
    page.wait_for_url(re.compile(rf"/workbench/cases/{tracking}$"))
    assert tracking in page.locator("h1").inner_text()
    return state


def test_resident_handler_and_a_reopened_case(live_server: str, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    resident = new_page(browser, PHONE)
    tracking, status_url = submit_request(resident, live_server)

    handler = new_page(browser, DESKTOP)
    log_in(handler, live_server, "handler-community")
    assert open_from_queue(handler, live_server, tracking) == "待签收"
    assert "中心幸福社区" in handler.locator("#details").inner_text()
    assert "垃圾桶满了没人清运" in handler.locator("#details").inner_text()
    # A handler may sign for it or send it back, nothing else yet.
    assert handler.locator("#action-accept").is_visible()
    assert handler.locator("#action-resolve").count() == 0

    handler.fill("#accept-note", "已安排保洁员")
    handler.locator("#action-accept button").click()
    handler.wait_for_load_state()
    assert "已完成：签收" in handler.locator(".flash").inner_text()
    assert handler.locator("#case-state").inner_text() == "办理中"

    handler.fill("#resolve-result", "已清运并消杀，增加每日清运一次。")
    handler.fill("#resolve-reply", "您好，垃圾桶已清运并消杀，今后每日清运。")
    handler.screenshot(path=str(ARTIFACTS / "e2e-staff-case-accepted.png"), full_page=True)
    handler.locator("#action-resolve button").click()
    handler.wait_for_load_state()
    assert "已完成：办结" in handler.locator(".flash").inner_text()
    assert "已办结" in handler.locator("#case-state").inner_text()
    timeline = handler.locator("#timeline").inner_text()
    assert "签收" in timeline and "办结" in timeline

    resident.goto(status_url)
    assert "已办结" in resident.locator("#case-state").inner_text()
    assert "垃圾桶已清运并消杀" in resident.content()
    resident.locator("#rate input[name=solved][value=no]").check()
    resident.locator("#rate").get_by_label("不满意", exact=True).check()
    resident.fill("#comment", "第二天又满了。")
    resident.screenshot(path=str(ARTIFACTS / "e2e-staff-rating.png"), full_page=True)
    resident.locator("#rate button").click()
    resident.wait_for_load_state()
    assert "诉求已重新交办承办单位办理" in resident.locator(".flash").inner_text()
    assert resident.locator("#case-state").inner_text() == "待签收"
    assert resident.locator("#rate").count() == 0
    assert resident.evaluate("document.documentElement.scrollWidth") <= 390

    # Back with the community: in its queue again, waiting to be signed for, counted as a 重办.
    assert open_from_queue(handler, live_server, tracking) == "待签收"
    assert handler.locator("#case-state").inner_text() == "待签收"
    assert "中心幸福社区" in handler.locator("#details").inner_text()
    details = handler.locator("#details").inner_text()
    assert "重办 1 次" in details
    assert handler.locator("#action-accept").is_visible()
    assert "不满意" in handler.locator("#timeline").inner_text()
    handler.screenshot(path=str(ARTIFACTS / "e2e-staff-reopened.png"), full_page=True)
