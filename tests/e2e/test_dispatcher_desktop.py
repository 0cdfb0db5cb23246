"""Issue 13 at desktop size (1280×800) in a real browser: 退单 without a preselected reason, with a
confirmation and a style of its own; the dispatcher's forced dispatch (强制指派) of the returned case with
an audited reason; and the 吹哨 picker, whose search filters the units and which refuses no target.

Each person has their own browser context. Jobs run inline in the e2e server: the resident's request is
routed to the community (handler-community) as soon as it is stored; a return sends it to the street's
dispatcher (dispatcher-street).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_path
from tests.e2e.test_staff_journey import PHONE, log_in, submit_request

pytestmark = pytest.mark.e2e

DESKTOP = {"viewport": {"width": 1280, "height": 800}}


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
    """A page in a fresh context (its own session cookie), recording JavaScript errors."""
    context = browser.new_context(locale="zh-CN", **device)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


def open_case(page: Any, base: str, tracking: str) -> None:
    page.goto(f"{base}/workbench/cases/{tracking}")
    assert tracking in page.locator("h1").inner_text()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"e2e-desktop-{name}.png"), full_page=True)


def error_text(page: Any) -> str:
    """Flash messages and field errors on the page."""
    return " ".join(page.locator(".flash, .error").all_inner_texts())


def test_return_then_forced_dispatch_then_whistle_at_desktop_size(live_server: str, browser: Any) -> None:
    resident = new_page(browser, PHONE)
    tracking, _status = submit_request(resident, live_server)

    # --- 退单: folded away, no reason preselected, styled as a danger, asks before it acts ------------
    handler = new_page(browser, DESKTOP)
    log_in(handler, live_server, "handler-community")
    open_case(handler, live_server, tracking)
    handler.locator("#more-return_case summary").click()
    form = handler.locator("#action-return_case")
    assert form.is_visible()
    assert form.locator("select").input_value() == ""  # 请选择退单理由
    button = form.locator("button")
    assert "danger" in (button.get_attribute("class") or "")
    accept_button = handler.locator("#action-accept button")
    style = "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color]"
    assert button.evaluate(style) != accept_button.evaluate(style)  # not styled like 签收
    shot(handler, "return-form")
    # Without a reason the browser itself refuses (the select is required); nothing is sent.
    button.click()
    assert form.locator("select").evaluate("s => s.validity.valueMissing") is True
    assert handler.locator("#case-state").inner_text() == "待签收"
    # With a reason, the confirmation comes first; dismissing it sends nothing.
    form.locator("select").select_option("wrong_place")
    form.locator("input[name='return_case-note']").fill("该地址属于隔壁社区")
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    handler.once("dialog", dismiss)
    button.click()
    handler.wait_for_timeout(300)
    assert dialogs and "确定退单吗" in dialogs[0]
    assert handler.url.endswith(f"/workbench/cases/{tracking}")
    assert handler.locator("#case-state").inner_text() == "待签收"
    handler.once("dialog", lambda dialog: dialog.accept())
    button.click()
    handler.wait_for_load_state()
    assert "退单" in handler.locator(".flash").inner_text()

    # --- 强制指派: the street's dispatcher sends it back to the community that returned it ----------
    dispatcher = new_page(browser, DESKTOP)
    log_in(dispatcher, live_server, "dispatcher-street")
    open_case(dispatcher, live_server, tracking)
    dispatch = dispatcher.locator("#action-dispatch")
    option = dispatch.locator("select option[value='420102-S1-C1']")
    assert "曾退回，需强制指派" in option.inner_text()
    dispatch.locator("select").select_option("420102-S1-C1")
    dispatch.locator("button").click()  # not forced: refused, says why
    dispatcher.wait_for_load_state()
    assert "除非派单员强制指派" in error_text(dispatcher)
    dispatch = dispatcher.locator("#action-dispatch")
    dispatch.locator("select").select_option("420102-S1-C1")
    dispatch.locator("input[name='dispatch-force']").check()
    dispatch.locator("button").click()  # forced without a reason: refused
    dispatcher.wait_for_load_state()
    assert "强制指派须填写理由" in error_text(dispatcher), dispatcher.content()[:2000]
    dispatch = dispatcher.locator("#action-dispatch")
    assert dispatch.locator("select").input_value() == "420102-S1-C1"  # what was chosen is kept
    assert dispatch.locator("input[name='dispatch-force']").is_checked()
    shot(dispatcher, "forced-dispatch-needs-reason")
    dispatch.locator("input[name='dispatch-note']").fill("核实地址属本社区，请签收办理")
    dispatch.locator("button").click()
    dispatcher.wait_for_load_state()
    assert "已完成：派单" in dispatcher.locator(".flash").inner_text()
    assert dispatcher.locator("#case-state").inner_text() == "待签收"
    last = dispatcher.locator("#timeline tr").last
    assert "强制指派至 江岸中心幸福社区" in last.inner_text() and "该单位曾退回此工单" in last.inner_text()
    assert "核实地址属本社区，请签收办理" in last.inner_text()
    assert "派单员" in last.inner_text()  # who did it, with their role
    shot(dispatcher, "forced-dispatch-done")

    # --- 吹哨: the community signs for it and summons help through the searchable picker ------------
    open_case(handler, live_server, tracking)
    handler.locator("#action-accept button").click()
    handler.wait_for_load_state()
    assert handler.locator("#case-state").inner_text() == "办理中"
    handler.locator("#more-escalate summary").click()
    whistle = handler.locator("#action-escalate")
    boxes = whistle.locator("input[type=checkbox]")
    total = boxes.count()
    assert total >= 2 and whistle.locator("input[type=checkbox]:checked").count() == 0  # no default
    search = whistle.locator("input.picker-filter")
    search.fill("街道")
    visible = whistle.locator(".picker-options li:visible")
    assert 0 < visible.count() < total
    assert all("街道" in text for text in visible.all_inner_texts())
    search.fill("没有这个单位")
    assert whistle.locator(".picker-options li:visible").count() == 0
    assert whistle.locator(".picker-none").is_visible()
    search.fill("")
    assert whistle.locator(".picker-options li:visible").count() == total
    # No target: refused with the reason; the typed note is kept.
    whistle.locator("textarea[name='escalate-note']").fill("管道破裂需要街道和房管部门协调")
    whistle.locator("button").click()
    handler.wait_for_load_state()
    assert "请至少选择一个吹哨对象" in error_text(handler)
    whistle = handler.locator("#action-escalate")
    assert whistle.is_visible()  # the refused form is unfolded again
    assert whistle.locator("textarea[name='escalate-note']").input_value() == "管道破裂需要街道和房管部门协调"
    shot(handler, "whistle-needs-target")
    whistle.locator("input.picker-filter").fill("街道")
    target = whistle.locator(".picker-options li:visible").first
    name = target.inner_text().strip()
    target.locator("input[type=checkbox]").check()
    shot(handler, "whistle-picked")
    whistle.locator("button").click()
    handler.wait_for_load_state()
    assert (
        "已完成：吹哨" in handler.locator(".flash").inner_text()
        or "已完成" in handler.locator(".flash").inner_text()
    )
    summons = handler.locator("#summons").inner_text()
    assert "待响应" in summons and re.sub(r"（.*?）|\s*\(.*?\)", "", name).split()[0] in summons
    shot(handler, "whistle-sent")

    for page in (resident, handler, dispatcher):
        assert page.js_errors == [], page.js_errors
