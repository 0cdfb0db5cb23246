"""Response headers (CSP, framing, caching, HSTS, permissions) and private links from PUBLIC_BASE_URL.

Every page and API answer may carry a resident's name or phone, so every dynamic response is sent with
``Cache-Control: no-store``; only files under /static keep the browser's normal caching. Scripts and
styles come from /static only: the CSP has no ``'unsafe-inline'`` for either (templates carry no
``<script>`` bodies, no ``on…=`` handlers and no ``style=`` attributes).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, request, url_for

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
PERMISSIONS_POLICY = "geolocation=(self), camera=(), microphone=(), payment=(), usb=(), interest-cohort=()"
HSTS = "max-age=31536000; includeSubDomains"
DEV_BASE_URL = "http://localhost:5000"


def init_app(app: Flask) -> None:
    """Switch cookies to Secure under FORCE_HTTPS and add the headers to every response."""
    if app.config.get("FORCE_HTTPS"):
        app.config.update(
            SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True, PREFERRED_URL_SCHEME="https"
        )
    app.after_request(security_headers)


def security_headers(response: Response) -> Response:
    """Headers of every response; see the module docstring for the caching rule."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    # No Referer leaves the site (it would carry the status page's private ?k= token); no MIME sniffing.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if current_app.config.get("FORCE_HTTPS"):
        headers.setdefault("Strict-Transport-Security", HSTS)
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
