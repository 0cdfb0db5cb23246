"""Sign-in and sign-out, the open-redirect guard, roles, and CSRF on a second app with CSRF enabled."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import authenticate, create_user
from core.i18n import DomainError
from core.models import Role, User
from tests.conftest import login


def test_login_and_logout(client: Any, session: Session) -> None:
    login(client, "operator")
    assert client.get("/hotline/new").status_code == 200
    response = client.post("/logout")
    assert response.status_code == 302
    assert "已退出登录" in client.get(response.headers["Location"]).data.decode()
    assert client.get("/hotline/new").status_code == 302


def test_logout_needs_post(client: Any, session: Session) -> None:
    login(client, "operator")
    assert client.get("/logout").status_code == 405
    assert client.get("/hotline/new").status_code == 200


def test_wrong_password_says_so_in_chinese(client: Any, session: Session) -> None:
    response = client.post("/login", data={"username": "operator", "password": "wrong-password"})
    assert response.status_code == 200 and "用户名或密码错误" in response.data.decode()
    response = client.post("/login", data={"username": "nobody", "password": "demo-pass-2026"})
    assert "用户名或密码错误" in response.data.decode()
    assert client.get("/hotline/new").status_code == 302


def test_empty_login_form_names_the_missing_fields(client: Any, session: Session) -> None:
    html = client.post("/login", data={}).data.decode()
    assert "请输入用户名" in html and "请输入密码" in html


def test_inactive_user_cannot_sign_in(client: Any, session: Session) -> None:
    user = session.scalar(select(User).where(User.username == "evaluator"))
    assert user is not None
    user.active = False
    session.commit()
    response = client.post("/login", data={"username": "evaluator", "password": "demo-pass-2026"})
    assert response.status_code == 200 and "用户名或密码错误" in response.data.decode()


@pytest.mark.parametrize("target", ["/hotline/new", "/status/MH1?k=a"])
def test_login_follows_a_local_next(client: Any, session: Session, target: str) -> None:
    response = client.post(
        f"/login?next={target}", data={"username": "operator", "password": "demo-pass-2026"}
    )
    assert response.status_code == 302 and response.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "https://evil.example/", "/\\evil.example", "/\\/evil.example", "javascript:alert(1)"],
)
def test_login_refuses_an_open_redirect(client: Any, session: Session, target: str) -> None:
    response = client.post(
        "/login", query_string={"next": target}, data={"username": "operator", "password": "demo-pass-2026"}
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    # Browsers read a backslash as a slash, so "/\\host" would leave the site; werkzeug percent-encodes it.
    browser_view = urlsplit(location.replace("\\", "/"))
    assert location.startswith("/") and not browser_view.netloc and not browser_view.scheme, location


def test_passwords_are_hashed_and_checked(session: Session) -> None:
    user = create_user(session, "t-hash", "correct horse battery", Role.resident)
    assert "correct horse battery" not in user.password_hash and user.password_hash.startswith(
        ("scrypt:", "pbkdf2:")
    )
    assert authenticate(session, "t-hash", "correct horse battery") is user
    assert authenticate(session, "t-hash", "wrong horse") is None


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("t-u", "short", Role.resident, None), "weak_password"),
        (("t-u", "tide-lantern-2026", Role.handler, None), "unit_required"),
        (("t-u", "tide-lantern-2026", Role.handler, "NOPE"), "unknown_unit"),
        (("operator", "tide-lantern-2026", Role.resident, None), "duplicate"),
    ],
)
def test_create_user_rules(session: Session, args: tuple[Any, ...], code: str) -> None:
    with pytest.raises(DomainError) as caught:
        create_user(session, *args)
    assert caught.value.code == code


# --- CSRF on an app that enforces it -------------------------------------------------------------------


def _csrf_token(client: FlaskClient, path: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(path).data.decode())
    assert match, "the form carries a CSRF token"
    return match.group(1)


def test_post_without_csrf_token_is_refused_in_chinese(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    for path, data in (
        ("/requests/new", {"category": "HW-01", "contact_phone": "13812345678"}),
        ("/login", {"username": "operator", "password": "demo-pass-2026"}),
        ("/lookup", {"tracking_number": "MH1", "contact_phone": "13812345678"}),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "页面已过期或表单凭证无效" in response.data.decode()
    assert client.get("/hotline/new").status_code == 302  # the refused login did not sign in


def test_post_with_a_forged_token_is_refused(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    _csrf_token(client, "/login")
    response = client.post(
        "/login", data={"username": "operator", "password": "demo-pass-2026", "csrf_token": "forged"}
    )
    assert response.status_code == 400


def test_post_with_the_token_passes_csrf(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    token = _csrf_token(client, "/requests/new")
    # An invalid phone: past CSRF into validation, and nothing is written to the shared database.
    response = client.post("/requests/new", data={"csrf_token": token, "contact_phone": "123"})
    assert response.status_code == 200 and "手机号码格式不正确" in response.data.decode()
    token = _csrf_token(client, "/login")
    login_response = client.post(
        "/login", data={"username": "operator", "password": "demo-pass-2026", "csrf_token": token}
    )
    assert login_response.status_code == 302


def test_the_json_api_is_exempt_from_csrf(csrf_app: Flask) -> None:
    response = csrf_app.test_client().post("/api/v1/requests", json={"category": "HW-01"})
    assert response.status_code == 422  # refused for its content, not for a missing form token
    assert {e["field"] for e in response.get_json()["errors"]} >= {"community", "contact_phone"}
