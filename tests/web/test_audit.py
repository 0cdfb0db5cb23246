"""The audit trail: staff sign-ins, full-contact views (case page, API, the operator's callback reveal),
exports, rule publication; searchable and exportable by admins, with no personal data in the rows."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import AuditEvent
from core.models import User
from core.quarter import beijing_today
from routing.models import Case
from tests.conftest import login


def _events(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def _case(session: Session) -> Case:
    case = session.scalars(select(Case).order_by(Case.id)).first()
    assert case is not None
    return case


def _uid(session: Session, username: str) -> int:
    return session.scalar(select(User.id).where(User.username == username))


def test_staff_sign_in_success_and_failure_are_recorded_without_names(client: Any, session: Session) -> None:
    client.post("/login", data={"username": "admin", "password": "wrong-password-x"})
    client.post("/login", data={"username": "typo-somebody", "password": "wrong-password-x"})
    login(client, "admin")
    failures = _events(session, "login.failure")
    assert [(e.actor_id, e.details["reason"]) for e in failures] == [
        (_uid(session, "admin"), "password"),
        (None, "unknown_account"),
    ]
    assert "typo-somebody" not in json.dumps([e.details for e in failures]) + "".join(
        e.object_id for e in failures
    )
    success = _events(session, "login.success")[-1]
    assert success.actor_id == _uid(session, "admin") and len(success.address_hash) == 32
    assert "127.0.0.1" not in success.address_hash


def test_resident_sign_ins_are_not_staff_activity(client: Any, session: Session) -> None:
    login(client, "resident")
    assert _events(session, "login.success") == []


def test_full_contact_on_the_case_page_is_recorded_and_masked_view_is_not(
    client: Any, session: Session
) -> None:
    case = _case(session)
    login(client, "admin")
    html = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    assert case.contact_phone in html
    views = _events(session, "contact.view")
    assert len(views) == 1 and views[0].object_id == case.tracking_number
    assert case.contact_phone not in json.dumps(views[0].details)
    client.post("/logout")
    login(client, "evaluator")  # evaluators read cases with contacts masked: nothing to record
    html = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    assert case.contact_phone not in html
    assert len(_events(session, "contact.view")) == 1


def test_full_contact_in_the_api_is_recorded(client: Any, session: Session) -> None:
    case = _case(session)
    login(client, "admin")
    body = client.get(f"/api/v1/requests/{case.tracking_number}").get_json()
    assert body["contact_phone"] == case.contact_phone
    assert [e.object_id for e in _events(session, "contact.view")] == [case.tracking_number]


def test_operator_reveals_the_number_for_a_callback(client: Any, session: Session) -> None:
    case = _case(session)
    case.state, case.satisfaction = "resolved", None
    session.commit()
    login(client, "operator")
    page = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    assert case.contact_phone not in page and 'id="reveal-phone"' in page
    assert _events(session, "contact.view") == []
    response = client.post(f"/workbench/cases/{case.tracking_number}/callback-number")
    assert response.status_code == 200 and case.contact_phone in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    (event,) = _events(session, "contact.view")
    assert event.actor_id == _uid(session, "operator") and event.details == {"purpose": "callback"}


def test_callback_reveal_only_for_cases_awaiting_callback_and_operators(
    client: Any, session: Session
) -> None:
    case = _case(session)
    case.state = "accepted"
    session.commit()
    login(client, "operator")
    assert client.post(f"/workbench/cases/{case.tracking_number}/callback-number").status_code == 409
    assert client.post("/workbench/cases/NOPE/callback-number").status_code == 404
    client.post("/logout")
    login(client, "evaluator")
    assert client.post(f"/workbench/cases/{case.tracking_number}/callback-number").status_code == 403
    assert _events(session, "contact.view") == []


def test_exports_and_rule_publication_are_recorded(client: Any, session: Session) -> None:
    login(client, "admin")
    assert client.get("/admin/rules/current.csv").status_code == 200
    (export,) = _events(session, "export")
    assert (
        export.object_id.startswith("dispatch-rules-v")
        and export.details["endpoint"] == "admin.download_rules"
    )
    body = "category,group,place,level,unit,priority\n*,,,community,,0\n"
    data = {"file": (io.BytesIO(body.encode()), "rules.csv"), "note": "x"}
    response = client.post("/admin/rules/upload", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    assert _events(session, "rules.publish") == []  # a preview publishes nothing
    assert client.post(response.headers["Location"] + "/publish").status_code == 302
    (published,) = _events(session, "rules.publish")
    assert published.object_type == "rule_set" and published.actor_id == _uid(session, "admin")


def test_audit_page_searches_by_user_action_and_date_and_exports_csv(client: Any, session: Session) -> None:
    login(client, "operator")
    client.post("/logout")
    login(client, "admin")
    page = client.get("/admin/audit?username=operator").get_data(as_text=True)
    assert "登录成功" in page and "退出登录" in page
    only_logout = client.get("/admin/audit?username=operator&action=logout").get_data(as_text=True)
    assert 'data-action="logout"' in only_logout and 'data-action="login.success"' not in only_logout
    today = beijing_today()
    tomorrow = today + timedelta(days=1)
    assert 'data-action="logout"' in client.get(f"/admin/audit?since={today}&until={today}").get_data(
        as_text=True
    )
    future = client.get(f"/admin/audit?since={tomorrow}").get_data(as_text=True)
    assert "没有符合条件的记录" in future
    assert client.get("/admin/audit?action=bogus").status_code == 422
    csv_response = client.get("/admin/audit.csv?username=operator")
    text = csv_response.get_data(as_text=True)
    assert csv_response.status_code == 200 and text.startswith("\ufeff时间（北京）")
    assert "login.success" in text and "logout" in text
    assert _events(session, "export")[-1].object_id == "audit-trail.csv"  # exporting the trail is audited too
