"""The Flask application class: Flask, minus per-request work whose answer never changes.

Every request runs about twenty hooks and the view through ``Flask.ensure_sync``, which asks ``inspect``
each time whether the function is a coroutine; and opens the session by building the cookie's signing
serializer before it looks whether the request has a cookie at all (API calls and most first visits have
none). Both answers are the same on every request, so they are remembered or skipped here.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions; a request without the cookie gets an empty session at once."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


class App(Flask):
    """The platform's Flask application."""

    session_interface = CookieSessions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Hooks and views known to be plain functions. Weak: per-request callbacks (after_this_request)
        # must not accumulate here.
        self._sync_functions: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            if func in self._sync_functions:
                return func
        except TypeError:  # neither hashable nor weakly referable: ask Flask every time
            return super().ensure_sync(func)
        result = super().ensure_sync(func)
        if result is func:
            with contextlib.suppress(TypeError):
                self._sync_functions.add(func)
        return result
