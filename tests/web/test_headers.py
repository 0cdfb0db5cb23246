"""Response headers (CSP, framing, caching, HSTS, permissions) and private links from PUBLIC_BASE_URL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask import session as flask_session
from sqlalchemy.orm import Session

from app import security
from app.config import load
from tests.conftest import login
from tests.web.test_api_v1 import create
from tests.web.test_intake_form import post_form
from tests.web.test_surveys import C1, make_survey

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"
PUBLIC = "https://mhwy.example.gov.cn"


@pytest.fixture
def public_base(app: Flask) -> Iterator[str]:
    """PUBLIC_BASE_URL set for one test."""
    previous = app.config.get("PUBLIC_BASE_URL")
    app.config["PUBLIC_BASE_URL"] = PUBLIC + "/"
    try:
        yield PUBLIC
    finally:
        app.config["PUBLIC_BASE_URL"] = previous


def test_every_page_gets_csp_without_inline_script_framing_and_permissions(
    client: Any, session: Session
) -> None:
    for path in ("/", "/requests/new", "/login", "/api/v1/categories", "/no-such-page"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'", csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
        assert headers["X-Frame-Options"] == "DENY"
        assert "geolocation=(self)" in headers["Permissions-Policy"]
        assert "Strict-Transport-Security" not in headers  # plain-http development default


def test_a_views_own_security_header_is_kept_and_not_doubled() -> None:
    from flask import Response

    app = Flask(__name__)
    app.after_request(security.security_headers)

    @app.get("/embed")
    def embed() -> Response:
        return Response("ok", headers={"x-frame-options": "SAMEORIGIN"})

    headers = app.test_client().get("/embed").headers
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers["Referrer-Policy"] == "same-origin" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def test_templates_carry_no_inline_script_handlers_or_styles() -> None:
    handler = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
    found = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        for pattern in (
            r"<script(?![^>]*\bsrc=)[^>]*>",
            r"<style",
            r"\sstyle\s*=",
            r"javascript:",
        ):
            if re.search(pattern, text, re.IGNORECASE):
                found.append(f"{path.name}: {pattern}")
        if handler.search(text):
            found.append(f"{path.name}: on…= handler")
    assert found == []


def test_dynamic_answers_are_not_stored_by_caches_static_files_are(client: Any, session: Session) -> None:
    case = create(client)
    status_page = client.get(f"/status/{case['tracking_number']}", query_string={"k": case["token"]})
    api = client.get(f"/api/v1/requests/{case['tracking_number']}", query_string={"token": case["token"]})
    assert status_page.status_code == 200 and api.status_code == 200
    for response in (status_page, api, client.get("/"), client.get("/api/v1/units")):
        assert response.headers["Cache-Control"] == "no-store"
    login(client, "admin")
    assert client.get("/workbench").headers["Cache-Control"] == "no-store"
    static = client.get("/static/site.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")
    static.close()


def test_force_https_sends_hsts_and_secure_cookies() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="x", FORCE_HTTPS=True)
    security.init_app(app)

    @app.get("/")
    def index() -> str:
        flask_session["seen"] = True
        return "ok"

    response = app.test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "; Secure" in response.headers["Set-Cookie"]
    assert app.config["PREFERRED_URL_SCHEME"] == "https"


def test_force_https_follows_an_https_public_base_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("FORCE_HTTPS", "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert load(tmp_path)["FORCE_HTTPS"] is False
    assert load(tmp_path, {"PUBLIC_BASE_URL": PUBLIC})["FORCE_HTTPS"] is True
    monkeypatch.setenv("FORCE_HTTPS", "0")
    assert load(tmp_path, {"PUBLIC_BASE_URL": PUBLIC})["FORCE_HTTPS"] is False


def test_private_status_link_ignores_a_spoofed_host(client: Any, session: Session, public_base: str) -> None:
    response = post_form(client)
    assert response.status_code == 302
    page = client.get(response.headers["Location"], headers={"Host": "evil.example"})
    html = page.get_data(as_text=True)
    link = re.search(r'id="status-link" class="break" href="([^"]+)"', html)
    assert link is not None and link.group(1).startswith(public_base + "/status/MH"), html[:2000]
    assert "evil.example" not in html


def test_survey_and_qr_links_ignore_a_spoofed_host(client: Any, session: Session, public_base: str) -> None:
    survey = make_survey(session)
    login(client, "evaluator")
    # The browser of someone reaching the site under a forged Host sends its session there too.
    cookie = client.get_cookie("session", domain="localhost")
    assert cookie is not None
    client.set_cookie("session", cookie.value, domain="evil.example")
    html = client.get(f"/surveys/{survey.id}/links/{C1}", headers={"Host": "evil.example"}).get_data(
        as_text=True
    )
    assert f"{public_base}/s/{survey.id}/{C1}" in html, html[:3000]
    assert "evil.example" not in html
