"""SMS and e-mail outside the app, against a local HTTP gateway and a local SMTP server (tests/message_fakes)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import messaging
from core.models import Role, User
from routing import messages, services
from routing.intake import case_token
from routing.messages import MessageDelivery
from routing.models import Case
from tests.builders import accepted, make_user, new_case, routed, user
from tests.conftest import login
from tests.message_fakes import Gateway, Mailbox, free_port, sms_gateway, smtp_server

PHONE = "13812345678"
NAME = "张三"
BASE = "https://12345.example.cn"


@pytest.fixture
def gateway(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A local SMS gateway the app posts to, with an auth header and a public base URL."""
    with sms_gateway() as fake:
        monkeypatch.setitem(app.config, "SMS_GATEWAY_URL", fake.url)
        monkeypatch.setitem(app.config, "SMS_GATEWAY_AUTH_HEADER", "X-Api-Key")
        monkeypatch.setitem(app.config, "SMS_GATEWAY_AUTH_VALUE", "gw-secret")
        monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", BASE)
        yield fake


@pytest.fixture
def mailbox(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """A local SMTP server the app sends staff e-mail to (no STARTTLS, no login)."""
    with smtp_server() as fake:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", fake.port)
        monkeypatch.setitem(app.config, "SMTP_STARTTLS", False)
        monkeypatch.setitem(app.config, "SMTP_FROM", "noreply@12345.example.cn")
        monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", BASE)
        yield fake


@pytest.fixture
def token_key(app: Flask) -> Iterator[bytes]:
    """The app's private-link key (intake through the services uses the builders' key)."""
    from app.web.public import token_key as key

    with app.test_request_context():
        yield key()


def deliveries(session: Session, case: Case) -> list[MessageDelivery]:
    """The case's delivery log, oldest first."""
    session.expire_all()
    return list(
        session.scalars(
            select(MessageDelivery).where(MessageDelivery.case_id == case.id).order_by(MessageDelivery.id)
        )
    )


def intake_form(**changes: str) -> dict[str, str]:
    """A valid web intake form."""
    data = {
        "category": "HW-01",
        "district": "420102",
        "street": "420102-S1",
        "community": "420102-S1-C1",
        "address": "幸福小区 3 栋 2 单元",
        "description": "垃圾桶三天没有清运，气味很大。",
        "contact_name": NAME,
        "contact_phone": PHONE,
        "duplicates_seen": "1",  # past the "也许已经有人反映了" hint (issue 13 item 3)
    }
    data.update(changes)
    return data


def test_web_intake_with_opt_in_texts_the_acceptance(
    client: Any, session: Session, gateway: Gateway, token_key: bytes
) -> None:
    response = client.post("/requests/new", data=intake_form(sms_opt_in="y"))
    assert response.status_code == 302
    case = session.scalars(select(Case).order_by(Case.id.desc())).first()
    assert case is not None and case.sms_opt_in and case.resident_id is None
    first = gateway.received[0]
    assert first["to"] == PHONE
    assert case.tracking_number in first["text"] and "已受理" in first["text"]
    link = f"{BASE}/status/{case.tracking_number}?k={case_token(token_key, case.tracking_number)}"
    assert link in first["text"]
    assert NAME not in first["text"]
    assert gateway.headers[0]["X-Api-Key"] == "gw-secret"
    log = deliveries(session, case)
    assert log[0].event == "accepted" and log[0].status == messages.SENT and log[0].attempts == 1
    assert log[0].recipient_masked == "138****5678" and log[0].last_code == 200


def test_no_opt_in_no_sms(client: Any, session: Session, gateway: Gateway) -> None:
    assert client.post("/requests/new", data=intake_form()).status_code == 302
    case = session.scalars(select(Case).order_by(Case.id.desc())).first()
    assert case is not None and not case.sms_opt_in
    assert deliveries(session, case) == [] and gateway.received == []


def test_hotline_form_offers_the_opt_in(client: Any, session: Session, gateway: Gateway) -> None:
    login(client, "operator")
    assert "sms_opt_in" in client.get("/hotline/new").get_data(as_text=True)
    response = client.post("/hotline/new", data=intake_form(sms_opt_in="y", contact_phone="13900002222"))
    assert response.status_code == 302
    case = session.scalars(select(Case).order_by(Case.id.desc())).first()
    assert case is not None and case.channel == "phone" and case.sms_opt_in
    assert [m["to"] for m in gateway.received][:1] == ["13900002222"]


def test_api_stores_the_choice_and_checks_its_type(client: Any, session: Session, gateway: Gateway) -> None:
    body = {k: v for k, v in intake_form().items() if k not in ("district", "street", "duplicates_seen")}
    bad = client.post("/api/v1/requests", json={**body, "sms_opt_in": "yes"})
    assert bad.status_code == 422
    error = bad.get_json()["errors"][0]
    assert (error["field"], error["code"]) == ("sms_opt_in", "invalid") and error["message"]
    assert session.scalar(select(Case).where(Case.contact_phone == PHONE)) is None  # nothing stored
    good = client.post("/api/v1/requests", json={**body, "sms_opt_in": True})
    assert good.status_code == 201, good.get_data(as_text=True)
    case = session.scalar(select(Case).where(Case.tracking_number == good.get_json()["tracking_number"]))
    assert case is not None and case.sms_opt_in
    assert len(gateway.received) >= 1


def test_resident_without_account_hears_each_step(session: Session, gateway: Gateway) -> None:
    case = accepted(session, sms_opt_in=True, phone=PHONE)
    session.commit()
    handler = session.scalar(
        select(User).where(User.role == Role.handler, User.unit_id == case.current_unit_id).order_by(User.id)
    )
    assert handler is not None
    services.resolve(session, case.id, handler, result="已清运", reply="已安排清运并加密频次")
    session.commit()
    services.reopen(session, case.id, user(session, "dispatcher-street"), reason="居民反映仍未清运")
    session.commit()
    events = [d.event for d in deliveries(session, case)]
    assert events == ["accepted", "dispatched", "resolved", "reopened"]
    texts = [m["text"] for m in gateway.received]
    assert len(texts) == 4 and all(case.tracking_number in t for t in texts)
    assert "评价" in texts[2] and f"{BASE}/status/{case.tracking_number}?k=" in texts[2]
    assert all(NAME not in t and PHONE not in t for t in texts)
    assert {d.status for d in deliveries(session, case)} == {messages.SENT}


def test_rolled_back_action_texts_nobody(session: Session, gateway: Gateway) -> None:
    session.commit()
    case = routed(session, sms_opt_in=True)
    case_id = case.id
    session.rollback()
    assert session.get(Case, case_id) is None and gateway.received == []


def test_failing_gateway_is_retried_with_the_attempts_logged(
    session: Session, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.answers[:] = [503, 502]
    caplog.set_level(logging.INFO)
    case = new_case(session, sms_opt_in=True, phone=PHONE)
    session.commit()  # inline (RQ_ASYNC off): the first attempt runs now and fails
    (row,) = deliveries(session, case)
    assert (row.status, row.attempts, row.last_code) == (messages.RETRYING, 1, 503)
    with pytest.raises(messaging.DeliveryRetry):  # what RQ's retry runs next
        messaging.deliver(row.id)
    assert messaging.deliver(row.id) == messages.SENT
    (row,) = deliveries(session, case)
    assert (row.status, row.attempts, row.last_code, row.sent_at is not None) == (messages.SENT, 3, 200, True)
    assert messaging.deliver(row.id) == messages.SENT and len(gateway.received) == 3  # no second SMS
    assert PHONE not in caplog.text and "测试" not in caplog.text and "5678" not in caplog.text
    assert f"message {row.id} retrying" in caplog.text


def test_gateway_that_keeps_failing_ends_failed(session: Session, gateway: Gateway) -> None:
    gateway.answers[:] = [500] * messages.MAX_ATTEMPTS
    case = new_case(session, sms_opt_in=True)
    session.commit()
    (row,) = deliveries(session, case)
    for _ in range(messages.MAX_ATTEMPTS - 2):
        with pytest.raises(messaging.DeliveryRetry):
            messaging.deliver(row.id)
    assert messaging.deliver(row.id) == messages.FAILED
    (row,) = deliveries(session, case)
    assert (row.status, row.attempts) == (messages.FAILED, messages.MAX_ATTEMPTS)


def test_refused_message_is_not_retried(session: Session, gateway: Gateway) -> None:
    gateway.answers[:] = [400]
    case = new_case(session, sms_opt_in=True)
    session.commit()
    (row,) = deliveries(session, case)
    assert (row.status, row.attempts, row.last_code) == (messages.FAILED, 1, 400)


def test_unreachable_gateway_is_transient(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        app.config, "SMS_GATEWAY_URL", f"http://127.0.0.1:{free_port()}/sms"
    )  # nothing listens
    case = new_case(session, sms_opt_in=True)
    session.commit()
    (row,) = deliveries(session, case)
    assert row.status == messages.RETRYING and row.last_code is None and row.last_error


def test_unconfigured_channel_is_skipped(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "SMS_GATEWAY_URL", None)
    case = new_case(session, sms_opt_in=True)
    session.commit()
    (row,) = deliveries(session, case)
    assert row.status == messages.SKIPPED and row.attempts == 0


def test_configured_template_replaces_the_default(
    app: Flask, session: Session, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "SMS_TEMPLATES", '{"accepted": "【测试】{tracking_number} 受理 {link}"}')
    case = new_case(session, sms_opt_in=True)
    session.commit()
    assert gateway.received[0]["text"].startswith(f"【测试】{case.tracking_number} 受理 {BASE}/status/")


def _staff_with_email(session: Session, unit_code: str) -> User:
    staff = make_user(session, f"mail-{unit_code}", Role.handler, unit_code)
    staff.email = "handler.one@12345.example.cn"
    session.flush()
    return staff


def test_staff_get_new_case_and_overdue_email(session: Session, mailbox: Mailbox) -> None:
    first = routed(session)
    assert first.current_unit is not None
    unit_code = first.current_unit.code
    _staff_with_email(session, unit_code)
    make_user(session, f"nomail-{unit_code}", Role.handler, unit_code)  # no address: no e-mail
    session.commit()
    case = routed(session, phone=PHONE)
    session.commit()
    (new,) = [d for d in deliveries(session, case) if d.channel == messages.EMAIL]
    assert (
        new.event == "new_case"
        and new.status == messages.SENT
        and new.recipient_masked == "h****@12345.example.cn"
    )
    assert len(mailbox.messages) == 1
    mail = mailbox.messages[0]
    assert mail["To"] == "handler.one@12345.example.cn" and case.tracking_number in mail["Subject"]
    body = mail.get_content()
    assert f"{BASE}/workbench/cases/{case.tracking_number}" in body
    assert PHONE not in body and "测试" not in body
    assert case.deadline is not None
    services.scan_deadlines(session, now=case.deadline + timedelta(hours=1))
    session.commit()
    events = [d.event for d in deliveries(session, case) if d.channel == messages.EMAIL]
    assert events == ["new_case", "overdue"]
    assert any(
        "超过办理时限" in str(m["Subject"]) and case.tracking_number in str(m["Subject"])
        for m in mailbox.messages
    )


def test_smtp_down_is_retried(app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(app.config, "SMTP_PORT", free_port())
    monkeypatch.setitem(app.config, "SMTP_STARTTLS", False)
    first = routed(session)
    assert first.current_unit is not None
    _staff_with_email(session, first.current_unit.code)
    session.commit()
    case = routed(session)
    session.commit()
    (row,) = [d for d in deliveries(session, case) if d.channel == messages.EMAIL]
    assert row.status == messages.RETRYING and row.attempts == 1


def test_admin_sees_the_delivery_log_masked(client: Any, session: Session, gateway: Gateway) -> None:
    case = new_case(session, sms_opt_in=True, phone=PHONE)
    session.commit()
    login(client, "admin")
    page = client.get("/admin/messages").get_data(as_text=True)
    assert case.tracking_number in page and "138****5678" in page and "已发送" in page
    assert PHONE not in page and "测试" not in page
    assert client.get("/admin/messages?status=failed").status_code == 200
    assert case.tracking_number not in client.get("/admin/messages?status=failed").get_data(as_text=True)


@pytest.mark.parametrize("username", ["handler-community", "dispatcher-street", "resident"])
def test_delivery_log_is_for_admins_only(client: Any, username: str) -> None:
    login(client, username)
    assert client.get("/admin/messages").status_code == 403


def test_sweeper_re_sends_what_a_lost_job_left(
    app: Flask, session: Session, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from routing import notify

    previous = notify.set_delivery_channel(
        lambda delivery_id: None
    )  # the job is lost (Redis down, worker died)
    try:
        case = new_case(session, sms_opt_in=True)
        session.commit()
    finally:
        notify.set_delivery_channel(previous)
    (row,) = deliveries(session, case)
    assert row.status == messages.QUEUED and gateway.received == []
    assert messaging.sweep(older_than_seconds=3600) == 0  # not stuck yet
    assert messaging.sweep(older_than_seconds=0) == 1
    (row,) = deliveries(session, case)
    assert row.status == messages.SENT and len(gateway.received) == 1


def test_cli_sets_and_clears_a_staff_email(app: Flask, session: Session) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["messages", "email", "handler-community", "wang@12345.example.cn"])
    assert result.exit_code == 0, result.output
    assert user(session, "handler-community").email == "wang@12345.example.cn"
    bad = runner.invoke(args=["messages", "email", "handler-community", "not an address"])
    assert bad.exit_code != 0 and "邮箱地址格式不正确" in bad.output
    assert runner.invoke(args=["messages", "email", "resident", "r@example.cn"]).exit_code != 0  # staff only
    assert runner.invoke(args=["messages", "email", "handler-community"]).exit_code == 0
    session.expire_all()
    assert user(session, "handler-community").email is None


def test_unsatisfied_rating_reopens_and_texts_the_resident(session: Session, gateway: Gateway) -> None:
    case = accepted(session, sms_opt_in=True)
    handler = session.scalar(
        select(User).where(User.role == Role.handler, User.unit_id == case.current_unit_id).order_by(User.id)
    )
    assert handler is not None
    services.resolve(session, case.id, handler, result="已处理", reply="已处理")
    session.commit()
    services.callback(session, case.id, None, solved=False, satisfaction="dissatisfied")
    session.commit()
    assert [d.event for d in deliveries(session, case)][-1] == "reopened"
    assert "已重新办理" in gateway.received[-1]["text"]


def test_staff_recipients_are_read_once_per_unit_and_forgotten_when_a_user_changes(session: Session) -> None:
    from sqlalchemy import event

    from core.models import unit_by_code
    from tests.builders import COMMUNITY

    unit = unit_by_code(session, COMMUNITY)
    assert unit is not None
    staff = _staff_with_email(session, COMMUNITY)
    session.commit()
    first = messages.staff_recipients.get(session, unit.id)
    assert (staff.id, "h****@12345.example.cn") in first
    sent: list[str] = []
    connection = session.connection()
    event.listen(connection, "before_cursor_execute", lambda *a: sent.append(a[2]))
    assert messages.staff_recipients.get(session, unit.id) == first and sent == []  # from the cache
    staff.active = False
    session.flush()  # a user changed in this process: the cache is emptied at once
    assert staff.id not in [user_id for user_id, _ in messages.staff_recipients.get(session, unit.id)]
    assert sent  # read again
