"""A Kobo-style XLSForm in a real browser: the evaluator uploads it, the resident's page applies `relevant`.

The question 不满意的原因 is relevant only when 环境卫生 is answered 1 or 2: hidden on a phone until then,
shown (and required by the server) after, hidden again when the answer changes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.xlsforms import kobo_form

pytestmark = pytest.mark.e2e

COMMUNITY = "420102-S1-C1"


def test_kobo_form_uploaded_and_its_relevant_applied_on_a_phone(
    live_server: str, browser_page: Any, tmp_path: Path
) -> None:
    page = browser_page
    page.goto(f"{live_server}/login")
    page.fill("input[name=username]", "evaluator")
    page.fill("input[name=password]", "demo-pass-2026")
    page.click("button.primary")
    page.goto(f"{live_server}/surveys")
    form_file = tmp_path / "kobo.xlsx"
    form_file.write_bytes(kobo_form())
    page.fill("input[name=quarter]", "2027Q1")
    page.set_input_files("input[name=xlsform]", str(form_file))
    page.click("form.card button.primary")
    page.wait_for_url(re.compile(r"/surveys/\d+$"))
    assert "元数据字段 deviceid 已接受" in page.content()
    survey_id = page.url.rsplit("/", 1)[1]
    page.click("text=开始收集（此后问卷内容冻结）")
    page.wait_for_load_state()
    page.goto(f"{live_server}/s/{survey_id}/{COMMUNITY}")
    # This form names its don't-know answer 不了解; the default label, the longest, must fit too.
    page.evaluate(
        "document.querySelectorAll('.choices .dk').forEach(l => l.lastChild.textContent = ' 不了解/不适用')"
    )
    for width in (360, 390):  # the form fits the narrowest phones
        page.set_viewport_size({"width": width, "height": 800})
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"问卷在 {width}px 手机上横向溢出（{scroll}px）"
    page.screenshot(path="/tmp/deadends-survey-360.png", full_page=True)
    why = page.locator("#q-q_why")
    assert why.is_hidden()
    page.check("input[name=q_env][value='2']")
    assert why.is_visible()
    page.check("input[name=q_env][value='5']")
    assert why.is_hidden()
    page.check("input[name=q_env][value='1']")
    page.fill("input[name=q_years]", "8")
    page.click("button:has-text('提交问卷')")
    assert "此题为必答题" in page.locator("#q-q_why").inner_text()  # the server asks for it too
    page.fill("#q-q_why textarea", "垃圾清运不及时")
    page.click("button:has-text('提交问卷')")
    assert "提交成功" in page.content()
