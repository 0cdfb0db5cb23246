"""The admin's partner pages in a real browser, at desktop and phone size: an api_key is created and
shown once, a webhook endpoint on a private address is refused with the reason, and nothing overflows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ARTIFACTS, CHROMIUM_ARGS, chromium_path
from tests.e2e.test_staff_journey import PHONE, log_in

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


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_admin_creates_a_key_and_is_refused_a_private_webhook(
    live_server: str, browser: Any, size: str
) -> None:
    context = browser.new_context(locale="zh-CN", **(DESKTOP if size == "desktop" else PHONE))
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        log_in(page, live_server, "admin")
        page.goto(f"{live_server}/admin/partners/keys")
        page.fill("#name", f"区级系统-{size}")
        page.locator("input[name=scopes][value=read]").check()
        page.fill("#rate_limit", "60/minute")
        page.locator("form.card button.primary").click()
        key = page.locator("#issued-key").inner_text()
        assert key.startswith("mh_")
        assert f"区级系统-{size}" in page.locator("#api-keys").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"e2e-partners-keys-{size}.png"), full_page=True)

        page.goto(f"{live_server}/admin/partners/webhooks")
        page.fill("#name", "内网系统")
        page.fill("#url", "http://10.0.0.8/hook")
        page.locator("input[name=events][value=submitted]").check()
        page.locator("form.card button.primary").click()
        page.wait_for_load_state()
        assert "内网或本机地址（10.0.0.8）" in page.content()
        assert page.input_value("#name") == "内网系统"  # what was typed is kept
        page.screenshot(path=str(ARTIFACTS / f"e2e-partners-webhook-refused-{size}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        assert errors == []
    finally:
        context.close()
