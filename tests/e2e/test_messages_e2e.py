"""A resident on a phone asks for SMS updates and the local gateway receives the 受理 text; admins read the log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.e2e
PHONE = "13912348765"


def _choose(page: Any, selector: str, value: str) -> None:
    page.wait_for_selector(f"{selector} option[value='{value}']", state="attached")
    page.select_option(selector, value)


def test_opt_in_sends_the_acceptance_sms(live_server: str, browser_page: Any, sms_gateway_fake: Any) -> None:
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{live_server}/requests/new")
    page.select_option("#category", "HW-01")
    _choose(page, "#district", "420102")
    _choose(page, "#street", "420102-S1")
    _choose(page, "#community", "420102-S1-C1")
    page.fill("#address", "幸福小区 5 栋")
    page.fill("#description", "楼道灯坏了一周，晚上看不见路。")
    page.fill("#contact_name", "李四")
    page.fill("#contact_phone", PHONE)
    page.check("#sms_opt_in")
    page.screenshot(path="/tmp/messages-intake-390.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/requests/MH\d{8}-[A-Z2-9]{5}/submitted"))
    tracking = page.locator("#tracking-number").inner_text()
    texts = [m["text"] for m in sms_gateway_fake.received if m["to"] == PHONE]
    assert texts and tracking in texts[0] and "已受理" in texts[0] and "李四" not in texts[0]
    link = re.search(r"https?://\S+", texts[0])
    assert link is not None
    page.goto(link.group(0))  # the link in the SMS opens the private status page
    assert "诉求进度" in page.locator("h1").inner_text() and tracking in page.content()


@pytest.mark.parametrize("width", [390, 1280])
def test_admin_reads_the_delivery_log(live_server: str, width: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900}, locale="zh-CN")
        page.goto(f"{live_server}/login")
        page.fill("#username", "admin")
        page.fill("#password", "demo-pass-2026")
        page.locator("form.card button").click()
        page.wait_for_load_state()
        page.goto(f"{live_server}/admin/messages")
        assert "短信与邮件发送记录" in page.locator("h1").inner_text()
        assert page.locator("#deliveries tr").count() >= 1
        assert PHONE not in page.content()
        page.screenshot(path=f"/tmp/messages-log-{width}.png", full_page=True)
        browser.close()
