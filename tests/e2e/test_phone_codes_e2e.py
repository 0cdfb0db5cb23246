"""On a 390 px phone: a request filed without an account joins the account once its phone is verified by the
SMS code the local gateway receives; then 忘记密码 resets the password by a code to the same phone."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, LIVE_APPS

pytestmark = pytest.mark.e2e
PHONE = "13912340099"
PASSWORD = "harbour-kettle-93"
NEW_PASSWORD = "lantern-meadow-48"


def _choose(page: Any, selector: str, value: str) -> None:
    page.wait_for_selector(f"{selector} option[value='{value}']", state="attached")
    page.select_option(selector, value)


def _code(gateway: Any, purpose: str) -> str:
    texts = [m["text"] for m in gateway.received if m["to"] == PHONE and purpose in m["text"]]
    found = re.search(r"验证码 (\d{6})", texts[-1]) if texts else None
    assert found, texts
    return found.group(1)


def _a_minute_later() -> None:
    """Move the phone's codes back past the one-code-per-minute wait (the test does not sleep 60 s)."""
    from sqlalchemy import update

    from app.extensions import db
    from routing.phone_codes import PhoneCode

    with LIVE_APPS[0].app_context():
        db.session.execute(
            update(PhoneCode)
            .where(PhoneCode.phone == PHONE)
            .values(created_at=PhoneCode.created_at - timedelta(minutes=2))
        )
        db.session.commit()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"phone-codes-{name}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_verify_phone_joins_earlier_request_and_reset_password(
    live_server: str, browser_page: Any, sms_gateway_fake: Any
) -> None:
    page = browser_page
    # 1. A request without an account.
    page.goto(f"{live_server}/requests/new")
    page.select_option("#category", "HW-01")
    _choose(page, "#district", "420102")
    _choose(page, "#street", "420102-S1")
    _choose(page, "#community", "420102-S1-C1")
    page.fill("#address", "和平小区 2 栋")
    page.fill("#description", "小区门口的井盖松动，踩上去会晃。")
    page.fill("#contact_name", "王五")
    page.fill("#contact_phone", PHONE)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/submitted"))
    tracking = page.locator("#tracking-number").inner_text()

    # 2. Register with the same phone: the request is not there yet.
    page.goto(f"{live_server}/register")
    page.fill("#username", "wang_wu")
    page.fill("#phone", PHONE)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.locator("form.card button").click()
    page.wait_for_url(re.compile(r"/my/requests"))
    assert tracking not in page.content()
    _shot(page, "my-requests-before")

    # 3. 验证手机号 on the account page, with the code the gateway received.
    page.locator("#verify-phone-hint a").click()
    page.wait_for_url(re.compile(r"/account/"))
    page.click("#send-phone-code")
    page.wait_for_load_state()
    assert "验证码已发送" in page.content()
    _shot(page, "account-code-sent")
    page.fill("#verify-phone input[name=code]", _code(sms_gateway_fake, "验证手机号"))
    page.locator("#verify-phone button").click()
    page.wait_for_url(re.compile(r"/my/requests"))
    assert tracking in page.content() and "已加入" in page.content()
    _shot(page, "my-requests-after")

    # 4. Sign out; 忘记密码 from the login page.
    page.locator("form[action$='/logout'] button").first.click()
    _a_minute_later()
    page.goto(f"{live_server}/login")
    page.click("#forgot-password")
    page.fill("#identifier", "wang_wu")
    _shot(page, "forgot")
    page.locator("form.card button").click()
    page.wait_for_url(re.compile(r"/login/reset"))
    page.fill("#code", _code(sms_gateway_fake, "重置密码"))
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", NEW_PASSWORD)
    _shot(page, "reset")
    page.locator("#reset-password button").click()
    page.wait_for_url(re.compile(r"/login$"))
    page.fill("#username", "wang_wu")
    page.fill("#password", NEW_PASSWORD)
    page.locator("form.card button").click()
    page.wait_for_url(re.compile(r"/my/requests"))
    assert tracking in page.content()
