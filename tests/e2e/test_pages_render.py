"""Every role's main pages open in a real browser on a phone: no error status, no console error, no sideways scroll.

Besides the pages listed here, each role's header navigation and the sub-navigation (assessment, surveys)
found on its pages are followed, so a page added to a role's menu is covered without editing this test.
Set E2E_SCREENSHOTS=1 to keep a phone and a desktop screenshot of every page under test-artifacts/pages/.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_path

pytestmark = pytest.mark.e2e

PASSWORD = "demo-pass-2026"
PHONE_WIDTH = 390
SCREENSHOTS = os.environ.get("E2E_SCREENSHOTS") == "1"
# Downloads and actions are not pages to look at.
SKIP = re.compile(r"\.(csv|xlsx|pdf)(\?|$)|/logout")

PAGES: dict[str, list[str]] = {
    "": ["/", "/requests/new", "/login", "/register", "{status}", "/topics"],
    "resident": ["/", "/my/requests", "/requests/new", "/topics", "/topics/new", "/my/home"],
    "operator": ["/hotline/new", "/workbench"],
    "dispatcher-city": ["/workbench", "{case}"],
    "dispatcher-district": ["/workbench", "{case}"],
    "dispatcher-street": ["/workbench", "{case}"],
    "handler-community": ["/workbench", "{case}", "/governance", "/ledgers/meetings", "/ledgers/party_services"],
    "handler-street": ["/workbench"],
    "handler-fgj": ["/workbench"],
    "evaluator": [
        "/surveys",
        "/surveys/results",
        "/assessment/",
        "/assessment/systems",
        "/assessment/entries",
        "/assessment/review",
    ],
    "admin": [
        "/admin/",
        "/admin/rules",
        "/admin/jobs",
        "/workbench",
        "{case}",
        "/hotline/new",
        "/assessment/",
    ],
}


@pytest.fixture(scope="module")
def phone_browser(live_server: str) -> Iterator[Any]:
    """One headless chromium for the whole module (a fresh phone-sized context per role keeps them apart)."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def phone_page(phone_browser: Any) -> Iterator[Any]:
    """A page in its own phone-sized context (own cookies)."""
    context = phone_browser.new_context(
        viewport={"width": PHONE_WIDTH, "height": 844}, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def sample_case(live_server: str) -> dict[str, str]:
    """One request filed over the JSON API at 420102-S1-C1, routed at once to that community."""
    import json
    import urllib.request

    body = {
        "category": "HW-01",
        "community": "420102-S1-C1",
        "address": "幸福小区 9 栋 1 单元门口，靠近快递柜的那一排垃圾桶",
        "description": "垃圾桶满溢，周末无人清运。",
        "contact_name": "王五",
        "contact_phone": "13700002222",
    }
    request = urllib.request.Request(
        f"{live_server}/api/v1/requests",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        created = json.loads(response.read())
    tn = created["tracking_number"]
    return {"case": f"/workbench/cases/{tn}", "status": f"/status/{tn}?k={created['token']}"}


def log_in(page: Any, base: str, username: str) -> None:
    """Sign in through the login form."""
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.locator("form.card button").click()
    page.wait_for_load_state()
    assert page.locator("header .who").count() == 1, f"{username} 登录失败"


def links(page: Any, selector: str) -> list[str]:
    """Same-site paths of the links matched by ``selector`` (downloads and logout left out)."""
    hrefs = page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('href'))")
    paths = []
    for href in hrefs:
        if not href or SKIP.search(href):
            continue
        parts = urlsplit(href)
        if parts.netloc and not parts.netloc.startswith("127.0.0.1"):
            continue
        paths.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return paths


@pytest.mark.parametrize("username", list(PAGES), ids=[name or "anonymous" for name in PAGES])
def test_main_pages_render_cleanly(
    live_server: str, phone_page: Any, sample_case: dict[str, str], username: str
) -> None:
    page = phone_page
    problems: list[str] = []
    current = {"path": ""}

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"{current['path']}: console {message.text}")

    def on_response(response: Any) -> None:
        if response.status >= 400:
            problems.append(f"{current['path']}: {response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{current['path']}: pageerror {error}"))
    page.on("response", on_response)
    if username:
        log_in(page, live_server, username)

    todo = [p.format(**sample_case) for p in PAGES[username]]
    todo += links(page, "header nav a")
    seen: list[str] = []
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.append(path)
        current["path"] = path
        response = page.goto(live_server + path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        assert page.locator("main h1").count() >= 1, f"{path}: 页面没有标题"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_WIDTH, f"{path}: 手机上页面横向溢出（{width}px）"
        todo += [p for p in links(page, ".subnav a") if p not in seen]
        if SCREENSHOTS:
            shoot(page, username or "anonymous", path)
    assert not problems, "\n".join(problems)
    assert len(seen) >= len(PAGES[username])


def shoot(page: Any, who: str, path: str) -> None:
    """A phone screenshot, then a desktop one, of the page (for people to look at)."""
    folder = ARTIFACTS / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    name = who + "-" + (re.sub(r"[^A-Za-z0-9]+", "_", path.split("?k=")[0]).strip("_") or "home")
    page.screenshot(path=str(folder / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.screenshot(path=str(folder / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
