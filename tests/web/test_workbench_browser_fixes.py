"""Two workbench faults only a real browser showed (tests/e2e/test_dispatcher_desktop.py drives them):
the 吹哨 checkboxes each carried ``required`` (a browser then insists on ticking every target), a
form re-bound after a refusal rendered no CSRF token (its corrected second try got a 400), the 派单
select preselected its first unit, and a case dispatched twice listed the same notice twice."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any, cast

import pytest
from flask import Flask
from flask import session as flask_session
from sqlalchemy.orm import Session

from app.web import workbench
from tests.conftest import login
from tests.web.test_workbench import accepted, returned


def test_whistle_targets_are_not_each_required(client: Any, session: Session) -> None:
    case = accepted(client, session)
    login(client, "handler-community")
    page = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    boxes = [tag for tag in page.split("<input")[1:] if 'name="escalate-to_unit_codes"' in tag]
    assert len(boxes) >= 2
    assert all("required" not in tag.split(">")[0] for tag in boxes)


def test_a_re_bound_draft_form_renders_a_csrf_token(csrf_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    draft = {"case": "MH-T", "action": "supervise", "form": {"supervise-reason": ["请加快"]}}

    class FakeRedis:
        def getdel(self, key: str) -> str:
            assert key == "workbench_draft:k"
            return json.dumps(draft)

    monkeypatch.setattr(workbench, "current_redis", lambda: FakeRedis())
    with csrf_app.test_request_context("/"):
        flask_session[workbench.DRAFT_KEY] = "workbench_draft:k"
        bound = workbench._draft_form(cast(Any, SimpleNamespace(tracking_number="MH-T")), cast(Any, None))
        assert bound is not None
        _action, form = bound
        token = str(form.csrf_token)
        assert 'name="supervise-csrf_token"' in token and re.search(r'value="[^"]{20,}"', token)
        assert form.errors == {}  # the draft's missing token is not shown as an error
        assert form.reason.data == "请加快"


def test_dispatch_preselects_no_unit_and_a_notice_shows_once(client: Any, session: Session) -> None:
    from routing import services
    from tests.builders import user

    case = returned(client, session)
    login(client, "dispatcher-street")
    page = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    form = page[page.index('id="action-dispatch"') :]
    first = re.search(r"<option[^>]*>", form)
    assert first is not None and 'value=""' in first.group(0)  # 请选择单位, nothing chosen for them
    refused = client.post(
        f"/workbench/cases/{case.tracking_number}/dispatch", data={"dispatch-unit_code": ""}
    )
    assert refused.status_code == 303
    again = client.get(refused.headers["Location"]).get_data(as_text=True)
    assert "请选择单位" in again

    services.dispatch_manually(
        session,
        case.id,
        user(session, "dispatcher-street"),
        unit_code="420102-S1-C1",
        force=True,
        note="核实属本社区",
    )
    session.commit()
    client.post("/logout")
    login(client, "handler-community")
    page = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    notices = page[page.index("本单位收到的通知") :]
    assert notices.count("已派至本单位") == 1
