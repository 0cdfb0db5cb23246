"""Accounts and sessions: server-side revocation, staff session lifetimes, the password policy on every
path, the TOTP second factor, and the admin's user pages (audited)."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditEvent
from core.i18n import DomainError
from core.models import Role, User
from core.passwords import check_password
from tests.conftest import STRONG_PASSWORD, login, new_user


def _copy_session(app: Flask, client: Any) -> Any:
    """A second browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    assert user is not None
    return user


def _actions(session: Session, **where: Any) -> list[str]:
    statement = select(AuditEvent.action).order_by(AuditEvent.id)
    for name, value in where.items():
        statement = statement.where(getattr(AuditEvent, name) == value)
    return list(session.scalars(statement))


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("demo-pass-2026", True),
        ("harbour-kettle-93", True),
        ("short-1", False),
        ("12345678", False),
        ("1234567890", False),
        ("password123", False),
        ("qwertyuiop", False),
        ("zhangsan-2026-x", False),  # contains the username
    ],
)
def test_password_policy(password: str, ok: bool) -> None:
    if ok:
        check_password(password, "zhangsan")
    else:
        with pytest.raises(DomainError):
            check_password(password, "zhangsan")


def test_copied_cookie_stops_working_after_logout(app: Flask, client: Any, session: Session) -> None:
    login(client, "admin")
    thief = _copy_session(app, client)
    assert thief.get("/admin/").status_code == 200
    client.post("/logout")
    assert thief.get("/admin/").status_code == 302
    assert _actions(session, actor_id=_user(session, "admin").id)[-2:] == ["login.success", "logout"]


def test_password_change_ends_other_sessions_and_keeps_this_one(
    app: Flask, client: Any, session: Session
) -> None:
    login(client, "operator")
    other = _copy_session(app, client)
    response = client.post(
        "/account/password",
        data={"current": "demo-pass-2026", "password": "lantern-orchid-77", "confirm": "lantern-orchid-77"},
    )
    assert response.status_code == 302
    assert client.get("/hotline/new").status_code == 200
    assert other.get("/hotline/new").status_code == 302
    assert "password.change" in _actions(session, actor_id=_user(session, "operator").id)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"current": "wrong-password-x", "password": "lantern-orchid-77", "confirm": "lantern-orchid-77"},
            "当前密码不正确",
        ),
        (
            {"current": "demo-pass-2026", "password": "12345678901", "confirm": "12345678901"},
            "密码太容易被猜到",
        ),
        (
            {"current": "demo-pass-2026", "password": "lantern-orchid-77", "confirm": "x"},
            "两次输入的密码不一致",
        ),
    ],
)
def test_password_change_refusals(client: Any, session: Session, data: dict[str, str], message: str) -> None:
    login(client, "operator")
    before = _user(session, "operator").password_hash
    response = client.post("/account/password", data=data)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    session.expire_all()
    assert _user(session, "operator").password_hash == before


def test_role_or_unit_change_by_admin_ends_the_users_sessions(
    app: Flask, client: Any, session: Session
) -> None:
    handler = app.test_client()
    login(handler, "handler-street")
    assert handler.get("/workbench").status_code == 200
    login(client, "admin")
    target = _user(session, "handler-street")
    response = client.post(
        f"/admin/users/{target.id}",
        data={
            "display_name": target.display_name,
            "role": "dispatcher",
            "unit": target.unit.code,
            "active": "y",
        },
    )
    assert response.status_code == 302
    assert handler.get("/workbench").status_code == 302
    session.expire_all()
    assert _user(session, "handler-street").role == Role.dispatcher
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.update")).one()
    assert event.details == {"role": ["handler", "dispatcher"]} and event.object_id == str(target.id)


def test_staff_idle_and_absolute_lifetimes(app: Flask, client: Any, session: Session) -> None:
    login(client, "operator")
    with client.session_transaction() as cookie:
        cookie["_seen_at"] = time.time() - 31 * 60
    assert client.get("/hotline/new").status_code == 302
    login(client, "operator")
    with client.session_transaction() as cookie:
        cookie["_auth_at"] = time.time() - 13 * 3600
    assert client.get("/hotline/new").status_code == 302
    login(client, "operator")
    assert client.get("/hotline/new").status_code == 200


def test_residents_have_no_idle_timeout(client: Any, session: Session) -> None:
    login(client, "resident")
    with client.session_transaction() as cookie:
        cookie["_seen_at"] = cookie["_auth_at"] = time.time() - 24 * 3600
    assert client.get("/my/requests").status_code == 200


def _enrol(client: Any) -> str:
    page = client.get("/account/").get_data(as_text=True)
    assert "<svg" in page and 'id="totp-secret"' in page
    with client.session_transaction() as cookie:
        secret = cookie["totp_enrol"]
    assert client.post("/account/totp", data={"code": "000000"}).status_code == 422
    assert client.post("/account/totp", data={"code": pyotp.TOTP(secret).now()}).status_code == 302
    return str(secret)


def test_totp_enrolment_and_sign_in(app: Flask, client: Any, session: Session) -> None:
    login(client, "dispatcher-city")
    secret = _enrol(client)
    assert _user(session, "dispatcher-city").totp_secret == secret
    client.post("/logout")
    response = client.post("/login", data={"username": "dispatcher-city", "password": "demo-pass-2026"})
    assert response.status_code == 302 and "/login/totp" in response.headers["Location"]
    assert client.get("/workbench").status_code == 302  # the password alone does not sign in
    wrong = client.post("/login/totp", data={"code": "123456"})
    assert wrong.status_code == 200 and "验证码不正确" in wrong.get_data(as_text=True)
    code = pyotp.TOTP(secret).at(time.time() + 30)  # the next step: the enrolment used this one
    assert client.post("/login/totp", data={"code": code}).status_code == 302
    assert client.get("/workbench").status_code == 200
    # The same code cannot be replayed by someone who saw it.
    other = app.test_client()
    other.post("/login", data={"username": "dispatcher-city", "password": "demo-pass-2026"})
    assert other.post("/login/totp", data={"code": code}).status_code == 200
    assert other.get("/workbench").status_code == 302
    actions = _actions(session, actor_id=_user(session, "dispatcher-city").id)
    assert "totp.enrol" in actions and "totp.failure" in actions


def test_totp_step_needs_the_password_first(client: Any, session: Session) -> None:
    response = client.post("/login/totp", data={"code": "123456"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_admin_creates_disables_resets_and_moves_users(app: Flask, client: Any, session: Session) -> None:
    login(client, "admin")
    weak = client.post(
        "/admin/users", data={"username": "t-new", "role": "handler", "unit": "D-FGJ", "password": "12345678"}
    )
    assert weak.status_code == 422 and "密码" in weak.get_data(as_text=True)
    assert session.scalar(select(User).where(User.username == "t-new")) is None
    response = client.post(
        "/admin/users",
        data={"username": "t-new", "role": "handler", "unit": "D-FGJ", "password": STRONG_PASSWORD},
    )
    assert response.status_code == 302
    created = _user(session, "t-new")
    assert created.role == Role.handler and created.unit.code == "D-FGJ"
    worker = app.test_client()
    login(worker, "t-new", STRONG_PASSWORD)
    # Disable: the user's session ends and the password no longer works.
    client.post(f"/admin/users/{created.id}", data={"role": "handler", "unit": "D-FGJ"})
    assert worker.get("/workbench").status_code == 302
    refused = worker.post("/login", data={"username": "t-new", "password": STRONG_PASSWORD})
    assert refused.status_code == 200
    # Re-enable and reset the password.
    client.post(f"/admin/users/{created.id}", data={"role": "handler", "unit": "D-FGJ", "active": "y"})
    assert (
        client.post(f"/admin/users/{created.id}/password", data={"password": "t-new-password-9"}).status_code
        == 422
    )
    assert (
        client.post(f"/admin/users/{created.id}/password", data={"password": "meadow-copper-41"}).status_code
        == 302
    )
    login(worker, "t-new", "meadow-copper-41")
    actions = [a for a in _actions(session, object_id=str(created.id)) if a.startswith("user.")]
    assert actions == ["user.create", "user.update", "user.update", "user.password_reset"]
    listing = client.get("/admin/users?q=t-new").get_data(as_text=True)
    assert "t-new" in listing and "handler-street" not in listing


def test_admin_cannot_demote_or_disable_themself(client: Any, session: Session) -> None:
    login(client, "admin")
    admin = _user(session, "admin")
    response = client.post(
        f"/admin/users/{admin.id}", data={"role": "handler", "unit": "420100", "active": "y"}
    )
    assert response.status_code == 422 and "不能停用自己" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "username", ["operator", "dispatcher-city", "handler-street", "evaluator", "resident"]
)
def test_user_pages_are_for_admins_only(client: Any, session: Session, username: str) -> None:
    login(client, username)
    for path in ("/admin/users", "/admin/audit", "/admin/audit.csv"):
        assert client.get(path).status_code == 403


def test_new_user_builder(session: Session) -> None:
    user = new_user(session, "t-builder", "handler", "D-FGJ")
    assert user.id and user.session_token
