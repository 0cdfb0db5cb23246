"""A resident's typed request survives a lost session: the page expired (CSRF) on submit, the form comes
back with what was typed, and once the request is accepted the draft is gone."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def _choose(page: Any, selector: str, value: str) -> None:
    page.wait_for_selector(f"{selector} option[value='{value}']", state="attached")
    page.select_option(selector, value)


def test_typed_request_survives_a_lost_session(live_server: str, browser_page: Any) -> None:
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{live_server}/requests/new")
    page.select_option("#category", "HW-01")
    _choose(page, "#district", "420102")
    _choose(page, "#street", "420102-S1")
    _choose(page, "#community", "420102-S1-C1")
    page.fill("#address", "幸福小区 5 栋")
    page.fill("#description", "楼道灯坏了一个星期，晚上很黑。")
    page.fill("#contact_name", "李四")
    page.fill("#contact_phone", "13812345678")
    page.context.clear_cookies()  # the session is lost: the form's CSRF token no longer matches
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "页面已过期" in page.content()

    page.goto(f"{live_server}/requests/new")
    page.locator("#draft-restored").wait_for()
    page.wait_for_function("document.querySelector('#community').value === '420102-S1-C1'")
    assert page.input_value("#description") == "楼道灯坏了一个星期，晚上很黑。"
    assert page.input_value("#address") == "幸福小区 5 栋"
    assert (page.input_value("#contact_name"), page.input_value("#contact_phone")) == ("李四", "13812345678")
    assert (page.input_value("#category"), page.input_value("#street")) == ("HW-01", "420102-S1")
    page.screenshot(path=str(ARTIFACTS / "e2e-intake-draft-restored.png"), full_page=True)

    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/requests/MH\d{8}-[A-Z2-9]{5}/submitted"))
    page.goto(f"{live_server}/requests/new")
    assert page.locator("#draft-restored").is_hidden()
    assert page.input_value("#description") == ""
