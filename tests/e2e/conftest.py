"""End-to-end fixtures: the real app served by waitress on a free localhost port, and Debian's chromium.

The server runs in a background thread of the test process with its own SQLite database, the demo data,
CSRF on and jobs run inline (RQ_ASYNC off), so a browser sees exactly what a resident would.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CI = os.environ.get("CI", "").lower() == "true"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LIVE_APPS: list[Any] = []  # the served app, for tests that set up data the pages need (e.g. boundaries)


def chromium_path() -> str:
    """Debian's chromium; skipped when missing, except in CI where a missing browser is a failure."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "chromium 未安装（apt-get install chromium），跳过端到端浏览器测试"
        if CI:
            pytest.fail(reason + "；CI=true 时必须运行")
        pytest.skip(reason)
    if importlib.util.find_spec("playwright") is None:
        reason = "Python 包 playwright 未安装（pip install -e .[test]）"
        if CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the real app served by waitress in a background thread."""
    from waitress.server import create_server

    from app import create_app
    from app.extensions import db
    from core import jobs

    instance = tmp_path_factory.mktemp("e2e-instance")
    with pytest.MonkeyPatch.context() as patch:
        # create_app rewires the global job ports; the other tiers get theirs back afterwards.
        patch.setattr(jobs, "_session_factory", jobs._session_factory)
        patch.setattr(jobs, "_enqueuer", jobs._enqueuer)
        app = create_app(
            {
                "INSTANCE_PATH": str(instance),
                "DATABASE_URL": f"sqlite:///{instance / 'e2e.sqlite3'}",
                "RQ_ASYNC": False,
                "WTF_CSRF_ENABLED": True,
            }
        )
        if importlib.util.find_spec("routing.jobs") is None:
            # The routing engine is not there yet: the case stays "submitted", which is what intake promises.
            patch.setattr(jobs, "_enqueuer", lambda task, args: None)
        with app.app_context():
            db.create_all()
            from app.demo import load_demo
            from app.web.public import token_key

            with app.test_request_context():
                load_demo(db.session, token_key())
            db.session.commit()
            db.session.remove()
        server: Any = create_server(app, host="127.0.0.1", port=0, threads=4)
        app.config["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{server.effective_port}"  # private links
        LIVE_APPS[:] = [app]
        thread = threading.Thread(target=server.run, name="e2e-waitress", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.effective_port}"
        finally:
            server.close()
            thread.join(timeout=10)
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def browser_page(live_server: str) -> Iterator[Any]:
    """A headless chromium page on a phone-sized viewport."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="zh-CN",
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
