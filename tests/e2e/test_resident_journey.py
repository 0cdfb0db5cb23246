"""A resident on a phone: fills the form, fixes a bad phone number, submits and reaches the status page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def _choose(page: Any, selector: str, value: str) -> None:
    """Pick an option once the dependent select has loaded it over fetch."""
    page.wait_for_selector(f"{selector} option[value='{value}']", state="attached")
    page.select_option(selector, value)


def test_resident_submits_and_follows_a_request(live_server: str, browser_page: Any) -> None:
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{live_server}/requests/new")
    assert page.locator("h1").inner_text() == "我要反映"

    page.select_option("#category", "HW-01")
    _choose(page, "#district", "420102")
    _choose(page, "#street", "420102-S1")
    _choose(page, "#community", "420102-S1-C1")
    page.fill("#address", "幸福小区 3 栋 2 单元")
    page.fill("#description", "垃圾桶三天没有清运，夏天气味很大。")
    page.fill("#contact_name", "张三")
    page.fill("#contact_phone", "12345")
    page.screenshot(path=str(ARTIFACTS / "e2e-intake-filled.png"), full_page=True)
    page.click("button[type=submit]")

    error = page.locator("p.error[data-field=contact_phone]")
    error.wait_for()
    assert "手机号码格式不正确" in error.inner_text()
    assert "提交未成功" in page.locator("p.error.summary").inner_text()
    # Everything else the resident typed or chose is still there.
    assert page.input_value("#address") == "幸福小区 3 栋 2 单元"
    assert page.input_value("#description").strip() == "垃圾桶三天没有清运，夏天气味很大。"
    assert page.input_value("#contact_name") == "张三"
    assert (page.input_value("#category"), page.input_value("#district")) == ("HW-01", "420102")
    assert (page.input_value("#street"), page.input_value("#community")) == ("420102-S1", "420102-S1-C1")
    page.screenshot(path=str(ARTIFACTS / "e2e-intake-error.png"), full_page=True)

    page.fill("#contact_phone", "+86 138 1234 5678")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/requests/MH\d{8}-[A-Z2-9]{5}/submitted"))
    tracking = page.locator("#tracking-number").inner_text()
    assert re.fullmatch(r"MH\d{8}-[A-Z2-9]{5}", tracking)
    assert "诉求已受理" in page.locator("h1").inner_text()
    page.screenshot(path=str(ARTIFACTS / "e2e-submitted.png"), full_page=True)

    page.click("#status-link")
    page.wait_for_url(re.compile(rf"/status/{tracking}\?k="))
    assert "诉求进度" in page.locator("h1").inner_text()
    assert tracking in page.content()
    steps = page.locator("#timeline li")
    assert steps.count() >= 1
    assert page.locator("#case-state").inner_text()
    assert "13812345678" not in page.content()  # the private page still masks the phone number
    page.screenshot(path=str(ARTIFACTS / "e2e-status.png"), full_page=True)
    # Nothing overflows sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
