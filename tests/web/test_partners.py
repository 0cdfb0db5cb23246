"""Admin pages for partner keys and webhooks, and partner keys on the JSON API v1."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.models import ApiKey, Webhook
from tests.builders import api_key, routed
from tests.conftest import login
from tests.web.test_api_v1 import VALID


def test_admin_creates_a_key_shown_once_and_revokes_it(client: Any, session: Session) -> None:
    login(client, "admin")
    response = client.post(
        "/admin/partners/keys", data={"name": "区级系统", "scopes": ["read"], "rate_limit": "100/minute"}
    )
    assert response.status_code == 201
    text = re.search(r'id="issued-key">(mh_[^<]+)<', response.get_data(as_text=True))
    assert text is not None
    key = session.scalar(select(ApiKey).where(ApiKey.name == "区级系统"))
    assert key is not None and key.scopes == ["read"] and key.rate_limit == "100/minute"
    assert text.group(1).split("_", 2)[2] not in key.key_hash
    page = client.get("/admin/partners/keys").get_data(as_text=True)
    assert text.group(1) not in page  # shown once only
    assert client.post(f"/admin/partners/keys/{key.id}/revoke").status_code == 302
    assert session.get(ApiKey, key.id).revoked_at is not None  # type: ignore[union-attr]


def test_bad_key_form_is_422_in_chinese_and_stores_nothing(client: Any, session: Session) -> None:
    login(client, "admin")
    before = len(session.scalars(select(ApiKey)).all())
    response = client.post("/admin/partners/keys", data={"name": "x", "scopes": [], "rate_limit": "lots"})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "请至少选择一项权限" in body and "频率限制格式" in body
    assert len(session.scalars(select(ApiKey)).all()) == before


def test_admin_registers_toggles_and_sees_a_webhook(client: Any, session: Session) -> None:
    login(client, "admin")
    response = client.post(
        "/admin/partners/webhooks",
        data={"name": "区平台", "url": "http://127.0.0.1:9/hook", "events": ["submitted", "resolved"]},
    )
    assert response.status_code == 302
    hook = session.scalar(select(Webhook).where(Webhook.name == "区平台"))
    assert hook is not None and hook.events == ["submitted", "resolved"] and len(hook.secret) >= 32
    assert hook.secret in client.get(f"/admin/partners/webhooks/{hook.id}").get_data(as_text=True)
    client.post(f"/admin/partners/webhooks/{hook.id}/toggle")
    session.refresh(hook)
    assert hook.active is False
    bad = client.post("/admin/partners/webhooks", data={"name": "x", "url": "ftp://x", "events": ["closed"]})
    assert bad.status_code == 422


def test_pages_are_for_admins_only(client: Any) -> None:
    login(client, "dispatcher-city")
    assert client.get("/admin/partners/keys").status_code == 403
    assert client.get("/admin/partners/webhooks").status_code == 403


def test_api_v1_accepts_partner_keys(client: Any, session: Session, monkeypatch: Any) -> None:
    from core import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda *a: None)
    reader, submitter = api_key(session, ("read",)), api_key(session, ("submit",))
    case = routed(session)
    session.commit()
    seen = client.get(f"/api/v1/requests/{case.tracking_number}", headers={"X-Api-Key": reader})
    assert seen.status_code == 200 and seen.get_json()["contact_phone"] != case.contact_phone  # masked
    assert (
        client.get(f"/api/v1/requests/{case.tracking_number}", headers={"X-Api-Key": submitter}).status_code
        == 403
    )
    assert (
        client.get(f"/api/v1/requests/{case.tracking_number}", headers={"X-Api-Key": "mh_x_y"}).status_code
        == 403
    )
    assert client.post("/api/v1/requests", json=VALID, headers={"X-Api-Key": reader}).status_code == 403
    created = client.post("/api/v1/requests", json=VALID, headers={"X-Api-Key": submitter})
    assert created.status_code == 201
