"""Workbench and the resident's rating: every action by its allowed actor, refused to other units.

Cases are submitted through the JSON API; routing jobs run inline, so a case is at its handling unit
when the API answers. Earlier steps are taken through the services directly (they are not under
test here); the step under test goes through the web form.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Unit, User
from routing import services
from routing.models import Case, CaseEvent, Summons
from tests.conftest import login

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def user(session: Session, username: str) -> User:
    """A demo user by name."""
    found = session.scalar(select(User).where(User.username == username))
    assert found is not None
    return found


def submit(client: Any, session: Session, category: str = "HW-01", community: str = "420102-S1-C1") -> Case:
    """Submit through the API (routed inline) and return the stored case; the token is on ``case.token``."""
    body = {
        "category": category,
        "community": community,
        "address": "幸福小区 3 栋 2 单元",
        "description": "垃圾桶三天没有清运，气味很大。",
        "contact_name": "张三",
        "contact_phone": "13812345678",
    }
    response = client.post("/api/v1/requests", json=body)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    case = session.scalar(select(Case).where(Case.tracking_number == data["tracking_number"]))
    assert case is not None
    case.token = data["token"]  # type: ignore[attr-defined]
    return case


def unit_code(case: Case) -> str | None:
    """Code of the case's current unit."""
    return case.current_unit.code if case.current_unit is not None else None


def accepted(client: Any, session: Session, **kwargs: Any) -> Case:
    """A community case signed for by handler-community."""
    case = submit(client, session, **kwargs)
    services.accept(session, case.id, user(session, "handler-community"))
    return case


def resolved(client: Any, session: Session) -> Case:
    """A community case resolved by handler-community."""
    case = accepted(client, session)
    services.resolve(
        session, case.id, user(session, "handler-community"), result="已清运", reply="已清运完毕"
    )
    return case


def returned(client: Any, session: Session) -> Case:
    """A community case returned by handler-community: back with the street's dispatcher."""
    case = submit(client, session)
    services.return_case(session, case.id, user(session, "handler-community"), reason="wrong_place")
    return case


def extension_pending(client: Any, session: Session) -> Case:
    """An accepted case whose handler asked for more time."""
    case = accepted(client, session)
    assert case.deadline is not None
    services.request_extension(
        session,
        case.id,
        user(session, "handler-community"),
        reason="需协调物业",
        new_deadline=case.deadline + timedelta(days=10),
    )
    return case


def escalated(client: Any, session: Session) -> Case:
    """An accepted case whose community blew the whistle to its street."""
    case = accepted(client, session)
    services.escalate(
        session, case.id, user(session, "handler-community"), note="需要街道协调", to_unit_codes=["420102-S1"]
    )
    return case


def rated(client: Any, session: Session) -> Case:
    """A resolved case the operator has called back (satisfied)."""
    case = resolved(client, session)
    services.callback(session, case.id, user(session, "operator"), solved=True, satisfaction="satisfied")
    return case


def later_duplicate(client: Any, session: Session) -> Case:
    """A second case at the same community (the first is the merge target, on ``case.target``)."""
    first = submit(client, session)
    second = submit(client, session)
    second.created_at = first.created_at + timedelta(minutes=5)
    session.flush()
    second.target = first.tracking_number  # type: ignore[attr-defined]
    return second


def local_date_after(case: Case, days: int) -> str:
    """A date ``days`` after the case's deadline (Beijing time), as the date input sends it."""
    assert case.deadline is not None
    return f"{services.to_local(case.deadline) + timedelta(days=days):%Y-%m-%d}"


@dataclass(frozen=True)
class Scenario:
    """One action: how to get a case ready, who may take it, the form, and what must hold after."""

    action: str
    setup: Callable[[Any, Session], Case]
    actor: str
    form: Callable[[Case], dict[str, Any]]
    check: Callable[[Case], bool]


SCENARIOS = [
    Scenario(
        "accept",
        submit,
        "handler-community",
        lambda c: {"accept-note": "收到"},
        lambda c: c.state == "accepted",
    ),
    Scenario(
        "return_case",
        submit,
        "handler-community",
        lambda c: {"return_case-reason": "wrong_place", "return_case-note": "不在本社区"},
        lambda c: c.state == "dispatching" and unit_code(c) == "420102-S1" and c.returns_count == 1,
    ),
    Scenario(
        "pass_down",
        lambda cl, s: submit(cl, s, category="ZS-01"),
        "handler-street",
        lambda c: {"pass_down-unit_code": "420102-S1-C2"},
        lambda c: c.state == "dispatched" and unit_code(c) == "420102-S1-C2",
    ),
    Scenario(
        "escalate",
        accepted,
        "handler-community",
        lambda c: {"escalate-to_unit_codes": ["420102-S1", "D-CGW"], "escalate-note": "需要联合执法"},
        lambda c: sorted(s.unit.code for s in c.summons if s.closed_at is None) == ["420102-S1", "D-CGW"],
    ),
    Scenario(
        "respond_escalation",
        escalated,
        "handler-street",
        lambda c: {"respond_escalation-response": "街道已派人到场"},
        lambda c: (
            all(s.closed_at is not None for s in c.summons) and c.summons[0].response == "街道已派人到场"
        ),
    ),
    Scenario(
        "request_extension",
        accepted,
        "handler-community",
        lambda c: {
            "request_extension-new_date": local_date_after(c, 10),
            "request_extension-reason": "需协调物业",
        },
        lambda c: c.extension_pending and c.requested_deadline is not None,
    ),
    Scenario(
        "approve_extension",
        extension_pending,
        "dispatcher-street",
        lambda c: {"approve_extension-note": "同意"},
        lambda c: not c.extension_pending and c.extensions_count == 1,
    ),
    Scenario(
        "refuse_extension",
        extension_pending,
        "dispatcher-street",
        lambda c: {"refuse_extension-reason": "时限内可以完成"},
        lambda c: not c.extension_pending and c.extensions_count == 0,
    ),
    Scenario(
        "resolve",
        accepted,
        "handler-community",
        lambda c: {"resolve-result": "已安排清运", "resolve-reply": "垃圾已清运，感谢反映"},
        lambda c: c.state == "resolved" and c.callback_due is not None,
    ),
    Scenario(
        "dispatch",
        returned,
        "dispatcher-street",
        lambda c: {"dispatch-unit_code": "420102-S1-C2", "dispatch-note": "改派"},
        lambda c: c.state == "dispatched" and unit_code(c) == "420102-S1-C2",
    ),
    Scenario(
        "reopen",
        resolved,
        "dispatcher-street",
        lambda c: {"reopen-reason": "居民反映仍未清运"},
        lambda c: c.state == "dispatched" and c.reopen_count == 1,
    ),
    Scenario(
        "supervise",
        accepted,
        "dispatcher-district",
        lambda c: {"supervise-reason": "群众反映强烈"},
        lambda c: c.supervised and c.supervise_count == 1,
    ),
    Scenario(
        "merge",
        later_duplicate,
        "dispatcher-street",
        lambda c: {"merge-into_tracking_number": c.target, "merge-reason": "重复诉求"},  # type: ignore[attr-defined]
        lambda c: c.state == "merged" and c.merged_into_id is not None,
    ),
    Scenario("close", rated, "operator", lambda c: {"close-note": "回访满意"}, lambda c: c.state == "closed"),
    Scenario(
        "callback",
        resolved,
        "operator",
        lambda c: {
            "callback-solved": "yes",
            "callback-satisfaction": "basically_satisfied",
            "callback-comment": "还行",
        },
        lambda c: c.state == "resolved" and c.satisfaction == "basically_satisfied" and c.solved is True,
    ),
]
IDS = [s.action for s in SCENARIOS]


def fingerprint(session: Session, case: Case) -> tuple[Any, ...]:
    """What must not change when an action is refused (the setup is committed first: a refused action
    rolls the request's transaction back, and in tests that is the test's savepoint)."""
    session.commit()
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None
    events = session.scalar(select(func.count(CaseEvent.id)).where(CaseEvent.case_id == case.id))
    summons = session.scalar(select(func.count(Summons.id)).where(Summons.case_id == case.id))
    return (fresh.state, fresh.current_unit_id, fresh.version, events, summons)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_allowed_actor_sees_the_form_and_succeeds(client: Any, session: Session, scenario: Scenario) -> None:
    case = scenario.setup(client, session)
    login(client, scenario.actor)
    page = client.get(f"/workbench/cases/{case.tracking_number}")
    assert page.status_code == 200
    assert f'id="action-{scenario.action}"' in page.get_data(as_text=True)
    events_before = len(case.events)
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/{scenario.action}", data=scenario.form(case)
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and scenario.check(fresh)
    assert len(fresh.events) == events_before + 1
    assert fresh.events[-1].action == scenario.action
    assert fresh.events[-1].actor_id == user(session, scenario.actor).id


@pytest.mark.parametrize("outsider", ["handler-fgj", "handler-street-of-another-street"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_handler_of_another_unit_is_refused_on_get_and_post(
    client: Any, session: Session, scenario: Scenario, outsider: str
) -> None:
    case = scenario.setup(client, session)
    if outsider == "handler-street-of-another-street":
        # handler-street works at 420102-S1: move the whole case to the other street's community.
        other = session.scalar(select(Unit).where(Unit.code == "420102-S2-C1"))
        assert other is not None and other.parent is not None
        case.community, case.street = other, other.parent
        if case.current_unit is not None:
            case.current_unit = other if case.current_unit.level.value == "community" else other.parent
        for summons in case.summons:
            summons.closed_at = summons.closed_at or case.created_at
        session.flush()
        outsider = "handler-street"
    before = fingerprint(session, case)
    login(client, outsider)
    assert client.get(f"/workbench/cases/{case.tracking_number}").status_code == 404
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/{scenario.action}", data=scenario.form(case)
    )
    assert response.status_code == 404
    assert fingerprint(session, case) == before


def test_a_handler_who_can_see_a_case_but_not_act_gets_403_and_no_form(client: Any, session: Session) -> None:
    case = submit(client, session)  # at the community below handler-street's street
    before = fingerprint(session, case)
    login(client, "handler-street")
    page = client.get(f"/workbench/cases/{case.tracking_number}")
    assert page.status_code == 200 and 'id="action-accept"' not in page.get_data(as_text=True)
    assert client.post(f"/workbench/cases/{case.tracking_number}/accept", data={}).status_code == 403
    assert fingerprint(session, case) == before


def test_a_refused_transition_shows_its_chinese_reason_and_changes_nothing(
    client: Any, session: Session
) -> None:
    case = submit(client, session)  # dispatched, not yet signed for: resolving is not possible
    before = fingerprint(session, case)
    login(client, "handler-community")
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/resolve", data={"resolve-result": "x", "resolve-reply": "y"}
    )
    assert response.status_code == 303  # post-redirect-get: back on the case page, with the reason
    assert "工单尚未签收，不能办结" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert fingerprint(session, case) == before


def test_an_invalid_payload_is_422_with_the_reason(client: Any, session: Session) -> None:
    case = accepted(client, session)
    before = fingerprint(session, case)
    login(client, "handler-community")
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/request_extension",
        data={"request_extension-new_date": "2000-01-01", "request_extension-reason": "晚一点"},
    )
    assert response.status_code == 303
    assert "申请的新时限必须晚于当前时限" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert fingerprint(session, case) == before


def test_unknown_action_is_404(client: Any, session: Session) -> None:
    case = submit(client, session)
    login(client, "handler-community")
    assert client.post(f"/workbench/cases/{case.tracking_number}/route", data={}).status_code == 404


def test_only_allowed_actions_are_offered(client: Any, session: Session) -> None:
    case = submit(client, session)
    login(client, "handler-community")
    html = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    offered = set(re.findall(r'id="action-([a-z_]+)"', html))
    assert offered == {"accept", "return_case"}


def test_case_page_shows_masked_contact_to_viewers_without_rights_and_the_timeline(
    client: Any, session: Session
) -> None:
    case = submit(client, session)
    login(client, "handler-community")
    html = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    assert "13812345678" in html and 'id="timeline"' in html and "按派单规则" in html
    client.post("/logout")
    login(client, "handler-street")  # sees the case of its community, but it is not at its unit
    html = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    assert "13812345678" not in html and "138****5678" in html


def test_anonymous_users_are_sent_to_login(client: Any, session: Session) -> None:
    case = submit(client, session)
    response = client.get(f"/workbench/cases/{case.tracking_number}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/workbench").status_code == 302


def test_residents_and_evaluators_may_not_use_the_workbench(client: Any, session: Session) -> None:
    case = submit(client, session)
    for name in ("resident", "evaluator"):
        login(client, name)
        assert client.get("/workbench").status_code == 403
        assert client.get(f"/workbench/cases/{case.tracking_number}").status_code == 403
        client.post("/logout")


# --- queues ----------------------------------------------------------------------------------------


def queue_page(client: Any, url: str = "/workbench") -> str:
    """The workbench page without its notices section (notices name tracking numbers too)."""
    response = client.get(url)
    assert response.status_code == 200
    html: str = response.get_data(as_text=True)
    return re.sub(r'<section class="card" id="notices">.*?</section>', "", html, flags=re.S)


def test_queue_shows_only_my_units_cases(client: Any, session: Session) -> None:
    mine = submit(client, session)
    elsewhere = submit(client, session, community="420102-S2-C1")
    street = submit(client, session, category="ZS-01")  # at the street, not the community
    login(client, "handler-community")
    html = queue_page(client, "/workbench")
    assert mine.tracking_number in html
    assert elsewhere.tracking_number not in html and street.tracking_number not in html
    assert "待签收" in html


def test_queue_filters_search_and_overdue(client: Any, session: Session) -> None:
    first = submit(client, session)
    second = accepted(client, session)
    login(client, "handler-community")
    html = queue_page(client, "/workbench?state=accepted")
    assert second.tracking_number in html and first.tracking_number not in html
    html = queue_page(client, f"/workbench?q={first.tracking_number[-5:]}")
    assert first.tracking_number in html and second.tracking_number not in html
    assert first.tracking_number not in queue_page(client, "/workbench?overdue=y")
    first.deadline = first.created_at - timedelta(hours=1)
    session.flush()
    html = queue_page(client, "/workbench?overdue=y")
    assert first.tracking_number in html and second.tracking_number not in html
    assert "已超时" in html


def test_queue_pages(client: Any, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.web import workbench

    monkeypatch.setattr(workbench, "PER_PAGE", 2)
    numbers = {submit(client, session).tracking_number for _ in range(3)}
    login(client, "handler-community")
    page1 = queue_page(client, "/workbench")
    page2 = queue_page(client, "/workbench?page=2")
    shown1 = {n for n in numbers if n in page1}
    shown2 = {n for n in numbers if n in page2}
    assert len(shown1) == 2 and len(shown2) == 1 and shown1 | shown2 == numbers
    assert "下一页" in page1 and "上一页" in page2


def test_street_dispatcher_does_not_see_another_streets_waiting_cases(client: Any, session: Session) -> None:
    ours = returned(client, session)
    theirs = submit(client, session, community="420102-S2-C1")
    # Nobody at 420102-S2-C1 has a demo login: a handler is created there to return the case.
    from app.auth import create_user

    other = create_user(session, "handler-s2c1", "demo-pass-2026", "handler", "420102-S2-C1")
    services.return_case(session, theirs.id, other, reason="wrong_place")
    assert unit_code(theirs) == "420102-S2"
    login(client, "dispatcher-street")
    html = queue_page(client, "/workbench")
    assert ours.tracking_number in html and theirs.tracking_number not in html
    assert client.get(f"/workbench/cases/{theirs.tracking_number}").status_code == 404
    client.post("/logout")
    for above in ("dispatcher-district", "dispatcher-city"):
        login(client, above)
        html = queue_page(client, "/workbench")
        assert ours.tracking_number in html and theirs.tracking_number in html, above
        client.post("/logout")


def test_dispatcher_sees_extension_requests_of_the_subtree(client: Any, session: Session) -> None:
    case = extension_pending(client, session)
    login(client, "dispatcher-street")
    html = queue_page(client, "/workbench")
    assert case.tracking_number in html and "延期申请" in html


# --- the resident's side ---------------------------------------------------------------------------


def test_status_page_offers_rating_after_resolution(client: Any, session: Session) -> None:
    case = submit(client, session)
    html = client.get(f"/status/{case.tracking_number}?k={case.token}").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'id="rate"' not in html and "等待签收" in html and "预计" in html
    services.accept(session, case.id, user(session, "handler-community"))
    services.resolve(
        session, case.id, user(session, "handler-community"), result="已清运", reply="已清运完毕"
    )
    html = client.get(f"/status/{case.tracking_number}?k={case.token}").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'id="rate"' in html and "不满意" in html and "已清运完毕" in html


def _rate(client: Any, case: Case, token: str, **form: str) -> Any:
    return client.post(f"/status/{case.tracking_number}/callback?k={token}", data=form)


def test_resident_dissatisfied_reopens_the_case(client: Any, session: Session) -> None:
    case = resolved(client, session)
    response = _rate(client, case, case.token, solved="no", satisfaction="dissatisfied", comment="还是没清")  # type: ignore[attr-defined]
    assert response.status_code == 302
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.state == "dispatched" and fresh.reopen_count == 1
    assert unit_code(fresh) == "420102-S1-C1"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "重新交办" in html and "回访评价：问题未解决，不满意" in html


def test_resident_satisfied_keeps_it_resolved_and_cannot_rate_twice(client: Any, session: Session) -> None:
    case = resolved(client, session)
    _rate(client, case, case.token, solved="yes", satisfaction="satisfied")  # type: ignore[attr-defined]
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.state == "resolved" and fresh.satisfaction == "satisfied"
    before = fingerprint(session, case)
    response = _rate(client, case, case.token, solved="no", satisfaction="dissatisfied")  # type: ignore[attr-defined]
    assert "该工单已回访" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert fingerprint(session, case) == before


def test_resident_callback_needs_the_token_and_a_rating(client: Any, session: Session) -> None:
    case = resolved(client, session)
    before = fingerprint(session, case)
    assert _rate(client, case, "wrong-token", solved="no", satisfaction="dissatisfied").status_code == 404
    response = _rate(client, case, case.token, solved="no")  # type: ignore[attr-defined]
    assert response.status_code == 302
    assert "请选择满意程度" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert fingerprint(session, case) == before


def test_resident_callback_is_csrf_protected(app: Flask, client: Any, session: Session) -> None:
    case = resolved(client, session)
    before = fingerprint(session, case)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = _rate(client, case, case.token, solved="no", satisfaction="dissatisfied")  # type: ignore[attr-defined]
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert response.status_code in (302, 400)
    assert fingerprint(session, case) == before


def test_resident_sees_their_notices(client: Any, session: Session) -> None:
    resident = user(session, "resident")
    case = submit(client, session)
    case.resident_id = resident.id
    session.flush()
    services.accept(session, case.id, user(session, "handler-community"))
    html = client.get(f"/status/{case.tracking_number}?k={case.token}").get_data(as_text=True)  # type: ignore[attr-defined]
    assert 'id="resident-notices"' in html and "已由" in html and CHINESE.search(html)
