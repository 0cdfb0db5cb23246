"""The admin's rule upload in a real browser at desktop size: a file with many bad rows lists them all,
a valid one is previewed as a diff against the active rule set and published only on confirmation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_path
from tests.e2e.test_staff_journey import log_in

pytestmark = pytest.mark.e2e

HEADER = "category,group,place,level,unit,priority\n"


@pytest.fixture
def page(live_server: str) -> Iterator[Any]:
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
        opened = context.new_page()
        opened.set_default_timeout(15_000)
        try:
            yield opened
        finally:
            browser.close()


def upload(page: Any, base: str, body: str) -> None:
    page.goto(f"{base}/admin/rules")
    page.set_input_files(
        "input[name=file]", {"name": "rules.csv", "mimeType": "text/csv", "buffer": body.encode("utf-8")}
    )
    page.fill("input[name=note]", "街道统一处理垃圾清运")
    page.locator("form.card button.primary").click()
    page.wait_for_load_state()


def test_rule_upload_lists_every_bad_row_then_previews_and_publishes(live_server: str, page: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    log_in(page, live_server, "admin")
    page.goto(f"{live_server}/admin/rules")
    before = int(page.locator("#current-version").inner_text())
    current = page.request.get(f"{live_server}/admin/rules/current.csv").text().lstrip("\ufeff")

    upload(page, live_server, HEADER + "HW-01,,,planet,,0\nNOPE-9,,,community,,x\n*,,NOWHERE,street,,0\n")
    rows = page.locator("#row-errors tr.row-error")
    assert rows.count() == 4  # line 2 level; line 3 category and priority; line 4 place
    assert "文件有 4 处问题，未发布任何规则" in page.locator("#row-errors").inner_text()
    page.screenshot(path=str(ARTIFACTS / "e2e-desktop-rules-errors.png"), full_page=True)

    lines = current.strip().splitlines()
    changed = [lines[0]]
    for line in lines[1:]:
        category = line.split(",")[0]
        if category == "HW-01":
            changed.append("HW-01,,,street,,2")  # changed
        elif category != "WY-01":  # WY-01 removed
            changed.append(line)
    changed.append("HW-01,,420102-S1,district,,5")  # added
    upload(page, live_server, "\n".join(changed) + "\n")
    assert "/admin/rules/preview/" in page.url
    assert "新增 1 条" in page.locator("#diff-summary").inner_text()
    assert "420102-S1" in page.locator("#diff-added").inner_text()
    assert "WY-01" in page.locator("#diff-removed").inner_text()
    assert "→" in page.locator("#diff-changed").inner_text()
    page.screenshot(path=str(ARTIFACTS / "e2e-desktop-rules-preview.png"), full_page=True)
    page.locator("#confirm-publish").click()
    page.wait_for_load_state()
    assert int(page.locator("#current-version").inner_text()) == before + 1
    assert f"已发布派单规则第 {before + 1} 版" in " ".join(page.locator(".flash").all_inner_texts())
    # The live server is shared by the session's e2e tests: publish the original rules again.
    upload(page, live_server, current)
    page.locator("#confirm-publish").click()
    page.wait_for_load_state()
    assert int(page.locator("#current-version").inner_text()) == before + 2
    restored = page.request.get(f"{live_server}/admin/rules/current.csv").text().lstrip("\ufeff")
    assert restored == current
