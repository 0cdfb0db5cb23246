"""One-time SMS codes (issue 13, must-have 5): a resident verifies the account's phone, which joins the
earlier requests filed with that phone; a resident resets a forgotten password by a code sent to it.

The SMS goes through the delivery log and job to a local fake gateway (tests/message_fakes.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import messaging
from app.accounts import register_resident
from core.audit import AuditEvent
from core.models import Role, User
from routing import messages, phone_codes
from routing.messages import MessageDelivery
from routing.models import Case
from routing.phone_codes import PhoneCode
from tests.builders import make_user, new_case, user
from tests.conftest import STRONG_PASSWORD, login
from tests.message_fakes import Gateway, sms_gateway

PHONE = "13812345678"
NEW_PASSWORD = "lantern-meadow-48"


@pytest.fixture
def gateway(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A local SMS gateway the app posts to."""
    with sms_gateway() as fake:
        monkeypatch.setitem(app.config, "SMS_GATEWAY_URL", fake.url)
        yield fake


@pytest.fixture
def resident(session: Session) -> User:
    """A registered resident (phone not yet verified)."""
    created = register_resident(session, "li_si", STRONG_PASSWORD, "138 1234 5678", "李四")
    session.commit()
    return created


def signed_in(client: Any) -> Any:
    login(client, "li_si", STRONG_PASSWORD)
    return client


def last_code(gateway: Gateway) -> str:
    found = re.search(r"验证码 (\d{6})", gateway.received[-1]["text"])
    assert found, gateway.received[-1]
    return found.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def codes(session: Session, user_id: int) -> list[PhoneCode]:
    session.expire_all()
    return list(session.scalars(select(PhoneCode).where(PhoneCode.user_id == user_id).order_by(PhoneCode.id)))


def age_codes(session: Session, user_id: int, minutes: int) -> None:
    """Move the user's codes back in time (as if sent ``minutes`` earlier)."""
    for row in codes(session, user_id):
        row.created_at -= timedelta(minutes=minutes)
        row.expires_at -= timedelta(minutes=minutes)
    session.commit()


def send(client: Any) -> Any:
    return client.post("/account/phone/code")


def verify(client: Any, code: str) -> Any:
    return client.post("/account/phone/verify", data={"code": code})


# --- 验证手机号 -------------------------------------------------------------------------------------


def test_code_is_sent_and_verifies_the_phone_joining_only_unowned_matching_cases(
    client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    earlier = new_case(session, phone=PHONE)  # filed without an account, same phone
    hotline = new_case(session, phone="+86 138-1234-5678")  # intake normalises the phone too
    other_phone = new_case(session, phone="13899990000")
    someone = make_user(session, "someone_else", Role.resident, None)
    owned = new_case(session, phone=PHONE, resident=someone)
    session.commit()
    signed_in(client)
    page = client.get("/account/").get_data(as_text=True)
    assert "验证手机号" in page and "138****5678" in page and "未验证" in page
    # Nothing is joined or named before the code; 我的诉求 points to the verification.
    mine = client.get("/my/requests").get_data(as_text=True)
    assert earlier.tracking_number not in mine and "verify-phone-hint" in mine

    response = send(client)
    assert response.status_code == 302
    assert len(gateway.received) == 1 and gateway.received[0]["to"] == PHONE
    code = last_code(gateway)
    assert "10 分钟内有效" in gateway.received[0]["text"]
    # The delivery log has the SMS (masked recipient, no case); the code is in no column.
    delivery = session.scalar(select(MessageDelivery).where(MessageDelivery.user_id == resident.id))
    assert delivery is not None and delivery.case_id is None and delivery.event == phone_codes.VERIFY
    assert delivery.status == messages.SENT and delivery.recipient_masked == "138****5678"
    (row,) = codes(session, resident.id)
    assert code not in (row.code_hash, row.nonce) and len(row.code_hash) == 64
    session.expire_all()
    assert session.get(Case, earlier.id).resident_id is None  # type: ignore[union-attr]
    assert "验证码已发送至 138****5678" in client.get("/account/").get_data(as_text=True)

    response = verify(client, f" {code} ")
    assert response.status_code == 302 and response.headers["Location"].endswith("/my/requests")
    session.expire_all()
    assert session.get(User, resident.id).phone_verified_at is not None  # type: ignore[union-attr]
    assert {c.id for c in session.scalars(select(Case).where(Case.resident_id == resident.id))} == {
        earlier.id,
        hotline.id,
    }
    assert session.get(Case, owned.id).resident_id == someone.id  # type: ignore[union-attr]
    assert session.get(Case, other_phone.id).resident_id is None  # type: ignore[union-attr]
    mine = client.get("/my/requests").get_data(as_text=True)
    assert earlier.tracking_number in mine and hotline.tracking_number in mine
    assert "2 件诉求已加入" in mine
    assert owned.tracking_number not in mine
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "phone.verify"))
    assert event is not None and event.actor_id == resident.id
    assert sorted(event.details["joined_cases"]) == sorted([earlier.tracking_number, hotline.tracking_number])
    assert "已验证" in client.get("/account/").get_data(as_text=True)
    assert "verify-phone-hint" not in mine
    # The admins' delivery log lists the code SMS (no case, masked recipient).
    client.post("/logout")
    login(client, "admin")
    log = client.get("/admin/messages").get_data(as_text=True)
    assert "手机验证码" in log and "138****5678" in log


def test_wrong_code_is_refused_keeps_the_input_and_counts(
    client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    earlier = new_case(session, phone=PHONE)
    session.commit()
    signed_in(client)
    send(client)
    bad = wrong(last_code(gateway))
    response = verify(client, bad)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "验证码不正确或已失效" in page and f'value="{bad}"' in page
    (row,) = codes(session, resident.id)
    assert row.attempts == 1 and row.used_at is None
    assert session.get(Case, earlier.id).resident_id is None  # type: ignore[union-attr]
    assert session.get(User, resident.id).phone_verified_at is None  # type: ignore[union-attr]


def test_five_wrong_tries_kill_the_code(
    client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    signed_in(client)
    send(client)
    code = last_code(gateway)
    for _ in range(phone_codes.MAX_WRONG):
        assert verify(client, wrong(code)).status_code == 422
    assert verify(client, code).status_code == 422  # the right code, too late
    session.expire_all()
    assert session.get(User, resident.id).phone_verified_at is None  # type: ignore[union-attr]


def test_expired_code_is_refused(client: Any, session: Session, gateway: Gateway, resident: User) -> None:
    signed_in(client)
    send(client)
    code = last_code(gateway)
    age_codes(session, resident.id, 11)
    assert verify(client, code).status_code == 422
    session.expire_all()
    assert session.get(User, resident.id).phone_verified_at is None  # type: ignore[union-attr]


def test_code_is_single_use_and_a_new_code_replaces_the_old(
    client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    signed_in(client)
    send(client)
    first = last_code(gateway)
    age_codes(session, resident.id, 2)  # past the one-minute wait
    send(client)
    second = last_code(gateway)
    if first != second:
        assert verify(client, first).status_code == 422  # replaced
    assert verify(client, second).status_code == 302
    later = new_case(session, phone=PHONE)
    session.commit()
    assert verify(client, second).status_code == 422  # used
    session.expire_all()
    assert session.get(Case, later.id).resident_id is None  # type: ignore[union-attr]


def test_new_codes_are_limited_per_minute_by_the_limiter(
    client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    signed_in(client)
    assert send(client).status_code == 302
    response = send(client)
    assert response.status_code == 429 and "尝试过于频繁" in response.get_data(as_text=True)
    assert len(gateway.received) == 1


def test_new_codes_are_limited_in_the_database_too(
    app: Flask,
    client: Any,
    session: Session,
    gateway: Gateway,
    resident: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "PHONE_CODE_LIMIT_TARGET", "100 per minute")
    monkeypatch.setitem(app.config, "PHONE_CODE_MAX_PER_HOUR", 2)
    signed_in(client)
    assert send(client).status_code == 302
    response = send(client)
    assert response.status_code == 422 and "1 分钟后" in response.get_data(as_text=True)
    age_codes(session, resident.id, 2)
    assert send(client).status_code == 302
    age_codes(session, resident.id, 2)
    response = send(client)
    assert response.status_code == 422 and "1 小时后" in response.get_data(as_text=True)
    assert len(gateway.received) == 2


def test_late_retry_does_not_send_a_dead_code(session: Session, resident: User, app: Flask) -> None:
    with sms_gateway(answers=[503]) as fake:
        app.config["SMS_GATEWAY_URL"] = fake.url
        try:
            with app.test_request_context():
                phone_codes.issue_code(session, resident, phone_codes.VERIFY, messaging.phone_code_key())
            session.commit()  # the first attempt (inline) meets a 503: retrying
            delivery = session.scalar(select(MessageDelivery).where(MessageDelivery.user_id == resident.id))
            assert delivery is not None and delivery.status == messages.RETRYING
            age_codes(session, resident.id, 11)
            assert messaging.deliver(delivery.id) == messages.FAILED
            assert len(fake.received) == 1
        finally:
            app.config["SMS_GATEWAY_URL"] = None


def test_codes_and_their_phone_numbers_are_purged_after_a_day(
    session: Session, resident: User, app: Flask
) -> None:
    from routing import jobs

    with app.test_request_context():
        phone_codes.issue_code(session, resident, phone_codes.VERIFY, messaging.phone_code_key())
    session.commit()
    age_codes(session, resident.id, 25 * 60)  # issued 25 hours ago
    with app.test_request_context():
        phone_codes.issue_code(session, resident, phone_codes.RESET, messaging.phone_code_key())
    session.commit()
    assert jobs.purge_phone_codes() == 1
    session.expire_all()
    left = codes(session, resident.id)
    assert [c.purpose for c in left] == [phone_codes.RESET]  # today's code stays
    logged = session.scalars(select(MessageDelivery).where(MessageDelivery.user_id == resident.id)).all()
    assert len(logged) == 2 and sum(d.phone_code_id is None for d in logged) == 1  # the log keeps its row


# --- 忘记密码 --------------------------------------------------------------------------------------


def forgot(client: Any, identifier: str) -> Any:
    return client.post("/login/forgot", data={"identifier": identifier})


def reset(client: Any, code: str, password: str = NEW_PASSWORD, confirm: str | None = None) -> Any:
    return client.post(
        "/login/reset", data={"code": code, "password": password, "confirm": confirm or password}
    )


def test_password_reset_end_to_end(
    app: Flask, client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    other_device = signed_in(app.test_client())
    assert other_device.get("/account/").status_code == 200
    assert 'href="/login/forgot"' in client.get("/login").get_data(as_text=True)
    assert client.get("/login/reset").headers["Location"].endswith("/login/forgot")  # nothing pending

    response = forgot(client, "li_si")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/reset")
    assert gateway.received[-1]["to"] == PHONE and "重置密码" in gateway.received[-1]["text"]
    code = last_code(gateway)
    page = client.get("/login/reset").get_data(as_text=True)
    assert "如果该账号存在并登记了手机号码" in page

    # A weak password is refused; the code is kept (typed and still valid).
    response = reset(client, code, "password123")
    assert response.status_code == 422 and f'value="{code}"' in response.get_data(as_text=True)
    assert reset(client, code, NEW_PASSWORD, "something-else-77").status_code == 422
    response = reset(client, code)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    # Every session of the account ended; the new password signs in, the old one does not.
    assert other_device.get("/account/").status_code == 302
    assert client.post("/login", data={"username": "li_si", "password": STRONG_PASSWORD}).status_code == 200
    login(client, "li_si", NEW_PASSWORD)
    client.post("/logout")
    # The code was used up.
    assert client.get("/login/reset").status_code == 302  # the pending reset ended with it
    with client.session_transaction() as cookie:
        cookie["password_reset"] = {"identifier": "li_si", "at": time.time()}
    assert reset(client, code, "another-harbour-55").status_code == 422
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "password.reset_by_code"))
    assert event is not None and event.object_id == str(resident.id)


def test_reset_by_phone_number(client: Any, session: Session, gateway: Gateway, resident: User) -> None:
    assert forgot(client, "+86 138 1234 5678").status_code == 302
    assert len(gateway.received) == 1
    assert reset(client, last_code(gateway)).status_code == 302
    login(client, "li_si", NEW_PASSWORD)


def test_reset_code_allows_five_wrong_tries(
    client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    forgot(client, "li_si")
    code = last_code(gateway)
    for _ in range(phone_codes.MAX_WRONG):
        assert reset(client, wrong(code)).status_code == 422
    assert reset(client, code).status_code == 422
    client.post("/login", data={"username": "li_si", "password": STRONG_PASSWORD})
    assert client.get("/account/").status_code == 200  # the old password still works


def test_a_verify_code_does_not_reset_the_password(
    client: Any, session: Session, gateway: Gateway, resident: User
) -> None:
    signed_in(client)
    send(client)
    code = last_code(gateway)
    client.post("/logout")
    age_codes(session, resident.id, 2)
    with client.session_transaction() as cookie:
        cookie["password_reset"] = {"identifier": "li_si", "at": time.time()}
    assert reset(client, code).status_code == 422


def test_no_account_enumeration(app: Flask, session: Session, gateway: Gateway, resident: User) -> None:
    admin = user(session, "admin")
    admin.phone = "13700001111"
    session.commit()
    answers = []
    for number, identifier in enumerate(["li_si", "nobody_here", "admin", "13700001111", "13600000000"]):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.8.0.{number + 1}"
        response = forgot(client, identifier)
        page = client.get("/login/reset").get_data(as_text=True)
        wrong_try = reset(client, "123456")
        answers.append(
            (
                response.status_code,
                response.headers["Location"],
                page,
                wrong_try.status_code,
                wrong_try.get_data(as_text=True),
            )
        )
    assert all(answer == answers[0] for answer in answers), "the answers differ between accounts"
    assert len(gateway.received) == 1 and gateway.received[0]["to"] == PHONE  # only the resident's


def test_staff_passwords_are_not_reset_by_sms(
    app: Flask, client: Any, session: Session, gateway: Gateway
) -> None:
    admin = user(session, "admin")
    admin.phone = "13700001111"
    before = admin.password_hash
    session.commit()
    for identifier in ("admin", "13700001111"):
        assert forgot(client, identifier).status_code == 302
    assert gateway.received == []
    assert session.scalars(select(PhoneCode).where(PhoneCode.user_id == admin.id)).all() == []
    # Even with a live reset code of the staff account (issued by hand), the reset finds no account.
    with app.test_request_context():
        row = phone_codes.issue_code(session, admin, phone_codes.RESET, messaging.phone_code_key())
        code = phone_codes.derive_code(messaging.phone_code_key(), row.nonce)
    session.commit()
    assert reset(client, code).status_code == 422
    session.expire_all()
    assert session.get(User, admin.id).password_hash == before  # type: ignore[union-attr]
