"""Response headers (CSP, framing, caching, HSTS, permissions) and private links from PUBLIC_BASE_URL.

Every page and API answer may carry a resident's name or phone, so every dynamic response is sent with
``Cache-Control: no-store``; only files under /static keep the browser's normal caching. Scripts and
styles come from /static only: the CSP has no ``'unsafe-inline'`` for either (templates carry no
``<script>`` bodies, no ``on…=`` handlers and no ``style=`` attributes).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from flask import Flask, Response, current_app, render_template, request, url_for
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest

from app.errors import api_error, wants_json
from app.extensions import db
from app.i18n import message_of
from core.inputs import UnsafeValue, forbidden_character, install_flush_guard

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # the favicon is a data: SVG; QR codes are inline <svg> elements
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# The intake form asks the device for its location (optional map point); nothing else is needed.
PERMISSIONS_POLICY = "geolocation=(self), camera=(), microphone=(), payment=(), usb=()"
HSTS = "max-age=31536000; includeSubDomains"
DEV_BASE_URL = "http://localhost:5000"
MAX_JSON_DEPTH = 20  # our bodies are flat objects; deep nesting only exhausts the parser's recursion
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects nest deeper than ``limit`` (strings are skipped; stops at the first excess)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


class DepthLimitedJSON(DefaultJSONProvider):
    """Flask's JSON provider refusing deep nesting before parsing (it raised RecursionError: a 500)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse ``s``; ValueError when it nests deeper than MAX_JSON_DEPTH (request.get_json → 400)."""
        if json_too_deep(s):
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
        return super().loads(s, **kwargs)


def init_app(app: Flask) -> None:
    """Switch cookies to Secure under FORCE_HTTPS and add the headers to every response."""
    if app.config.get("FORCE_HTTPS"):
        app.config.update(
            SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True, PREFERRED_URL_SCHEME="https"
        )
    app.json = DepthLimitedJSON(app)
    install_flush_guard()
    app.before_request(refuse_control_characters)
    app.register_error_handler(UnsafeInput, _unsafe_input)
    app.register_error_handler(UnsafeValue, _unsafe_value)
    app.after_request(security_headers)


# Views whose forms name the offending field themselves (field errors, other input kept).
# Their forms subclass app.web.forms.Form and are validated before any value reaches a query.
FIELD_CHECKED_ENDPOINTS = frozenset(
    {"web.new_request", "web.hotline_request", "surveys.index", "surveys.add_section", "surveys.add_question"}
)


class UnsafeInput(BadRequest):
    """A query string or form value holding NUL or another control character."""

    def __init__(self, field: str) -> None:
        super().__init__(description="control_characters")
        self.field = field


FORM_MIMETYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def refuse_control_characters() -> None:
    """Safety net under every query string and form: NUL and other control characters answer 400.

    Forms built on ``app.web.forms.Form`` (and the intake service) name the field with the rest of the
    input kept; this catches every other view before such a value reaches a query (PostgreSQL refuses
    NUL in any parameter: that was a 500) or the database.
    """
    if request.endpoint == "static":
        return
    sources = [request.args]
    if (
        request.method in ("POST", "PUT", "PATCH")
        and request.mimetype in FORM_MIMETYPES  # other bodies have no form (JSON is checked by its schema)
        and request.endpoint not in FIELD_CHECKED_ENDPOINTS
    ):
        sources.append(request.form)
    for source in sources:
        for name, value in source.items(multi=True):
            if forbidden_character(name) or forbidden_character(value):
                raise UnsafeInput(name)


def _unsafe_input(exc: UnsafeInput) -> Any:
    message = _("提交的内容含有控制字符（如 NUL）或不可见的格式字符，请删除后重新提交")
    if wants_json():
        return api_error(400, [{"field": exc.field, "code": "control_characters", "message": message}])
    return render_template("error.html", status=400, message=message), 400


def _unsafe_value(exc: UnsafeValue) -> Any:
    """The flush guard refused a value no field check caught: nothing is stored, the page says why."""
    db.session.rollback()
    current_app.logger.warning("refused unsafe value for %s.%s (%s)", exc.table, exc.column, exc.problem.code)
    message = _("提交的内容无法保存：%(problem)s", problem=message_of(exc.problem))
    if wants_json():
        return api_error(422, [{"field": exc.column, "code": exc.problem.code, "message": message}])
    return render_template("error.html", status=422, message=message), 422


SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    # No Referer leaves the site (it would carry the status page's private ?k= token); no MIME sniffing.
    ("Referrer-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
)


def security_headers(response: Response) -> Response:
    """Headers of every response (a view's own value of one is kept); see the module docstring for the
    caching rule."""
    headers = response.headers
    present = {name.lower() for name in headers.keys()}  # noqa: SIM118 - Headers iterates (name, value)
    wanted: tuple[tuple[str, str], ...] = SECURITY_HEADERS
    if current_app.config.get("FORCE_HTTPS"):
        wanted = (*wanted, ("Strict-Transport-Security", HSTS))
    headers.extend([(name, value) for name, value in wanted if name.lower() not in present])
    if request.endpoint != "static":
        # Overrides send_file's "no-cache" too: evidence downloads and exports hold personal data.
        headers["Cache-Control"] = "no-store"
        headers.pop("Expires", None)
    return response


def public_base_url() -> str:
    """The configured public origin of the site (PUBLIC_BASE_URL), never the request's Host header."""
    configured = (current_app.config.get("PUBLIC_BASE_URL") or "").strip()
    if configured:
        return configured.rstrip("/")
    server = current_app.config.get("SERVER_NAME")
    if server:
        return f"{current_app.config.get('PREFERRED_URL_SCHEME', 'http')}://{server}"
    return DEV_BASE_URL


def public_url(endpoint: str, **values: Any) -> str:
    """An absolute link for residents (status page, survey and QR links) on PUBLIC_BASE_URL."""
    return public_base_url() + url_for(endpoint, _external=False, **values)


def phone_code_key() -> bytes:
    """The key one-time SMS codes are derived and hashed with (from SECRET_KEY, for this use only)."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, b"minhu-phone-codes", hashlib.sha256).digest()
