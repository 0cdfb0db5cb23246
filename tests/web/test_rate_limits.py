"""Abuse protection: sign-in lockout per account and per address, /lookup, registration, intake, survey
answers and the API answer 429 with Retry-After once over their (configured) limits."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import accounts
from app.redis_conn import redis_for
from core.audit import AuditEvent
from core.models import User
from routing.models import Case
from tests.conftest import login


def _fail(client: Any, username: str) -> Any:
    return client.post("/login", data={"username": username, "password": "wrong-password-x"})


def test_account_is_locked_after_five_failures_even_with_the_right_password(
    client: Any, session: Session
) -> None:
    for _ in range(5):
        assert _fail(client, "admin").status_code == 200
    response = client.post("/login", data={"username": "admin", "password": "demo-pass-2026"})
    assert response.status_code == 429
    assert "尝试过于频繁" in response.get_data(as_text=True) and "分钟后再试" in response.get_data(
        as_text=True
    )
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/admin/").status_code == 302  # not signed in
    # Another account from the same address is not locked (the address limit is higher).
    login(client, "operator")
    admin = session.scalar(select(User).where(User.username == "admin"))
    actions = [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.actor_id == admin.id))]
    assert actions.count("login.failure") == 5 and "login.rate_limited" in actions


def test_failures_elsewhere_do_not_lock_the_owner_out_but_the_account_ceiling_holds(
    app: Flask, client: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_ACCOUNT_ALL", "8 per hour")
    for _ in range(5):
        assert _fail(client, "operator").status_code == 200
    assert _fail(client, "operator").status_code == 429  # locked at the stranger's address
    owner = app.test_client()
    home = {"REMOTE_ADDR": "203.0.113.20"}
    response = owner.post(
        "/login", data={"username": "operator", "password": "demo-pass-2026"}, environ_base=home
    )
    assert response.status_code == 302  # the owner, elsewhere, still signs in
    for n in range(3):  # guesses spread over addresses add up on the account
        spread = {"REMOTE_ADDR": f"198.51.100.{n + 1}"}
        client.post("/login", data={"username": "operator", "password": "nope-x"}, environ_base=spread)
    blocked = owner.post(
        "/login", data={"username": "operator", "password": "demo-pass-2026"}, environ_base=home
    )
    assert blocked.status_code == 429


def test_account_key_ignores_case_and_spaces(client: Any, session: Session) -> None:
    for name in ("admin", "ADMIN", " admin ", "Admin", "admin"):
        _fail(client, name)
    assert client.post("/login", data={"username": "admin", "password": "demo-pass-2026"}).status_code == 429


def test_successful_sign_ins_do_not_count(client: Any, session: Session) -> None:
    for _ in range(7):
        login(client, "operator")
        client.post("/logout")


def test_address_limit_covers_many_accounts(
    app: Flask, client: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_ADDRESS", "3 per 15 minutes")
    for name in ("nobody-1", "nobody-2", "nobody-3"):
        assert _fail(client, name).status_code == 200
    assert _fail(client, "nobody-4").status_code == 429
    other = app.test_client()
    environ = {"REMOTE_ADDR": "203.0.113.9"}
    response = other.post(
        "/login", data={"username": "operator", "password": "demo-pass-2026"}, environ_base=environ
    )
    assert response.status_code == 302  # another address is not affected


def test_unknown_and_known_users_cost_one_password_hash_check_each(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = accounts.check_password_hash

    def counting(hashed: str, password: str) -> bool:
        calls.append(hashed)
        return real(hashed, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting)
    assert accounts.authenticate(session, "no-such-user", "whatever-password") is None
    assert accounts.authenticate(session, "admin", "wrong-password-x") is None
    assert len(calls) == 2 and calls[0] == accounts.dummy_hash()
    # Same algorithm and cost parameters for both (the work is the hash, not the lookup).
    admin = session.scalar(select(User).where(User.username == "admin"))
    assert calls[0].split("$")[0] == admin.password_hash.split("$")[0]


def test_failure_message_is_the_same_for_unknown_inactive_and_wrong(client: Any, session: Session) -> None:
    evaluator = session.scalar(select(User).where(User.username == "evaluator"))
    evaluator.active = False
    session.commit()
    pages = [
        _fail(client, "no-such-user").get_data(as_text=True),
        _fail(client, "admin").get_data(as_text=True),
        client.post("/login", data={"username": "evaluator", "password": "demo-pass-2026"}).get_data(
            as_text=True
        ),
    ]
    for html in pages:
        assert "用户名或密码错误" in html and "不存在" not in html and "停用" not in html


def test_lookup_limited_per_tracking_number(
    app: Flask, client: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "LOOKUP_LIMIT_NUMBER", "3 per hour")
    case = session.scalars(select(Case).order_by(Case.id)).first()
    assert case is not None
    for guess in range(3):
        data = {"tracking_number": case.tracking_number, "contact_phone": f"1380000{guess:04d}9"[:11]}
        assert client.post("/lookup", data=data).status_code == 302
    # Even the right phone number is refused now: the hidden digits cannot be walked.
    right = {"tracking_number": case.tracking_number, "contact_phone": case.contact_phone}
    response = client.post("/lookup", data=right)
    assert response.status_code == 429 and "Retry-After" in response.headers
    other = session.scalars(select(Case).order_by(Case.id.desc())).first()
    assert (
        client.post(
            "/lookup", data={"tracking_number": other.tracking_number, "contact_phone": "13800000000"}
        ).status_code
        == 302
    )


def test_lookup_limited_per_address(
    app: Flask, client: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "LOOKUP_LIMIT_ADDRESS", "2 per hour")
    for n in range(2):
        client.post("/lookup", data={"tracking_number": f"X{n}", "contact_phone": "13800000000"})
    assert (
        client.post("/lookup", data={"tracking_number": "X9", "contact_phone": "13800000000"}).status_code
        == 429
    )


@pytest.mark.parametrize(
    ("setting", "path", "data"),
    [
        ("REGISTER_LIMIT", "/register", {"username": "ab"}),
        ("INTAKE_LIMIT", "/requests/new", {"description": ""}),
    ],
)
def test_public_forms_are_limited_per_address(
    app: Flask,
    client: Any,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    path: str,
    data: dict[str, str],
) -> None:
    monkeypatch.setitem(app.config, setting, "2 per hour")
    for _ in range(2):
        assert client.post(path, data=data).status_code != 429
    response = client.post(path, data=data)
    assert response.status_code == 429 and "请" in response.get_data(as_text=True)
    assert client.get(path).status_code == 200  # reading the form is not limited


def test_survey_answers_are_limited(
    app: Flask, client: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "SURVEY_ANSWER_LIMIT", "1 per hour")
    client.post("/s/999999/NOPE", data={})
    assert client.post("/s/999999/NOPE", data={}).status_code == 429


def test_api_answers_structured_429_with_retry_after(
    app: Flask, client: Any, session: Session, monkeypatch: pytest.MonkeyPatch, csrf_app: Flask
) -> None:
    """Also after a second app was built in this process (csrf_app): the API's limit counts each call
    once, not once per app (declaring it per app once made the first call of a window a 429)."""
    monkeypatch.setitem(app.config, "API_LIMIT", "2 per minute")
    # An address of its own: the suite's other API calls from 127.0.0.1 count in the same window.
    here = {"REMOTE_ADDR": "198.51.100.77"}
    assert client.get("/api/v1/categories", environ_base=here).status_code == 200
    assert client.get("/api/v1/units", environ_base=here).status_code == 200
    response = client.get("/api/v1/categories", environ_base=here)
    assert response.status_code == 429
    error = response.get_json()["errors"][0]
    assert error["code"] == "rate_limited" and "分钟后再试" in error["message"]
    assert 0 < int(response.headers["Retry-After"]) <= 61  # the window, rounded up


def test_counters_live_in_the_apps_redis(app: Flask, client: Any, session: Session) -> None:
    """The storage is the app's (embedded) Redis, so every web process shares the counts."""
    _fail(client, "admin")
    conn = redis_for(app)
    keys = [k.decode() for k in conn.scan_iter(match="*login-account*")]
    assert keys, "the failed sign-in was counted in Redis"
    assert any("admin" in key for key in keys)


def test_api_limit_counts_in_this_process_while_redis_fails(
    app: Flask,
    client: Any,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis down does not take the API down, nor lift its limit: the count goes on in memory."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from app.api import ADDRESS_LIMIT

    monkeypatch.setitem(app.config, "API_LIMIT", "2 per minute")
    monkeypatch.setattr(ADDRESS_LIMIT, "failing", False)
    with app.app_context():
        shared, _fallback = ADDRESS_LIMIT._limiters()

    def down(*_args: Any) -> Any:
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(shared, "hit", down)
    monkeypatch.setattr(shared, "get_window_stats", down)
    here = {"REMOTE_ADDR": "198.51.100.78"}
    assert client.get("/api/v1/categories", environ_base=here).status_code == 200
    assert client.get("/api/v1/units", environ_base=here).status_code == 200
    response = client.get("/api/v1/categories", environ_base=here)
    assert response.status_code == 429 and response.get_json()["errors"][0]["code"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 61
    # Said once when the storage failed, not once per request.
    assert sum("limit storage unavailable" in r.getMessage() for r in caplog.records) == 1
