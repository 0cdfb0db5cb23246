"""app.application: Flask's answers remembered (plain hooks) or skipped (no session cookie), same behaviour."""

from __future__ import annotations

import gc
from typing import Any

from flask import after_this_request, session

from app.application import App


def _app() -> App:
    app = App(__name__)
    app.secret_key = "test"
    return app


def test_plain_functions_are_asked_about_once_and_per_request_callbacks_are_not_kept() -> None:
    app = _app()
    asked: list[Any] = []
    original = App.__mro__[1].ensure_sync

    def counting(self: Any, func: Any) -> Any:
        asked.append(func)
        return original(self, func)

    App.__mro__[1].ensure_sync = counting  # type: ignore[method-assign]
    try:

        @app.get("/")
        def index() -> str:
            @after_this_request
            def stamp(response: Any) -> Any:
                response.headers["X-Stamp"] = "1"
                return response

            return "ok"

        client = app.test_client()
        for _ in range(3):
            assert client.get("/").headers["X-Stamp"] == "1"
    finally:
        App.__mro__[1].ensure_sync = original  # type: ignore[method-assign]
    assert asked.count(index) == 1  # the view: asked once, then remembered
    assert sum(getattr(f, "__name__", "") == "stamp" for f in asked) == 3  # a new callback each request
    asked.clear()
    gc.collect()
    # They do not pile up: at most the last one, which the test client's last response still reaches.
    assert sum(getattr(f, "__name__", "") == "stamp" for f in app._sync_functions) <= 1


def test_a_request_without_the_cookie_gets_an_empty_session_and_a_signed_one_is_read() -> None:
    app = _app()

    @app.get("/set")
    def set_value() -> str:
        session["n"] = 7
        return "set"

    @app.get("/get")
    def get_value() -> str:
        return str(session.get("n"))

    client = app.test_client()
    assert client.get("/get").get_data(as_text=True) == "None"
    client.get("/set")
    assert client.get("/get").get_data(as_text=True) == "7"
    client.set_cookie("session", "forged.value.sig")
    assert client.get("/get").get_data(as_text=True) == "None"  # a bad signature: an empty session
