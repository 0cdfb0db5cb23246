"""Issue 13 item 5: the workbench and resident dead ends, one test (or a few) per dead end."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from routing import notify, services
from routing.lifecycle import TransitionError
from routing.models import Case
from tests.conftest import STRONG_PASSWORD, login, new_user
from tests.web.test_workbench import accepted, escalated, fingerprint, rated, resolved, returned, submit, user


def page_of(client: Any, case: Case) -> str:
    """The workbench page of ``case`` as text."""
    response = client.get(f"/workbench/cases/{case.tracking_number}")
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


# --- forced dispatch -----------------------------------------------------------------------------


def test_dispatcher_can_force_a_returned_case_back_with_an_audited_reason(
    client: Any, session: Session
) -> None:
    case = returned(client, session)  # handler-community returned it; it is with the street's dispatcher
    login(client, "dispatcher-street")
    page = page_of(client, case)
    assert 'name="dispatch-force"' in page and "曾退回，需强制指派" in page
    url = f"/workbench/cases/{case.tracking_number}/dispatch"
    before = fingerprint(session, case)
    plain = client.post(url, data={"dispatch-unit_code": "420102-S1-C1"})
    assert "除非派单员强制指派" in client.get(plain.headers.get("Location", url)).get_data(as_text=True) or (
        "除非派单员强制指派" in plain.get_data(as_text=True)
    )
    no_reason = client.post(url, data={"dispatch-unit_code": "420102-S1-C1", "dispatch-force": "y"})
    assert "强制指派须填写理由" in client.get(no_reason.headers.get("Location", url)).get_data(
        as_text=True
    ) or ("强制指派须填写理由" in no_reason.get_data(as_text=True))
    assert fingerprint(session, case) == before
    forced = client.post(
        url,
        data={"dispatch-unit_code": "420102-S1-C1", "dispatch-force": "y", "dispatch-note": "核实属本社区"},
    )
    assert forced.status_code == 302
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.state == "dispatched" and fresh.current_unit is not None
    assert fresh.current_unit.code == "420102-S1-C1"
    event = fresh.events[-1]
    assert event.action == "dispatch" and event.reason == "核实属本社区" and event.details["forced"] is True


# --- rated / closed wording ----------------------------------------------------------------------


def test_after_rating_the_status_says_rated_and_shows_no_due_date(client: Any, session: Session) -> None:
    case = resolved(client, session)
    url = f"/status/{case.tracking_number}?k={case.token}"  # type: ignore[attr-defined]
    html = client.get(url).get_data(as_text=True)
    assert "已办结，待评价" in html and 'id="deadline"' not in html
    client.post(
        f"/status/{case.tracking_number}/callback?k={case.token}",
        data={"solved": "yes", "satisfaction": "satisfied"},
    )  # type: ignore[attr-defined]
    html = client.get(url).get_data(as_text=True)
    assert "已办结，已评价" in html and "待评价" not in html and 'id="deadline"' not in html


def test_a_closed_case_says_archived_everywhere(client: Any, session: Session) -> None:
    case = rated(client, session)
    services.close(session, case.id, user(session, "operator"))
    html = client.get(f"/status/{case.tracking_number}?k={case.token}").get_data(as_text=True)  # type: ignore[attr-defined]
    assert '<span class="state state-closed" id="case-state">已归档</span>' in html and "待评价" not in html
    assert 'id="deadline"' not in html


# --- 退单: no preselected reason, a confirmation, a distinct style --------------------------------


def test_return_has_no_preselected_reason_asks_first_and_is_styled_as_danger(
    client: Any, session: Session
) -> None:
    case = submit(client, session)
    login(client, "handler-community")
    page = page_of(client, case)
    start = page.rindex("<form", 0, page.index('id="action-return_case"'))
    form = page[start : page.index("</form>", start)]
    assert "data-confirm=" in form and 'class="danger"' in form and 'class="primary"' not in form
    assert "selected" not in form and '<option value="">请选择退单理由</option>' in form
    before = fingerprint(session, case)
    refused = client.post(
        f"/workbench/cases/{case.tracking_number}/return_case", data={"return_case-note": "x"}
    )
    assert refused.status_code in (303, 422)
    assert fingerprint(session, case) == before


# --- 吹哨: a target is required, the picker has a search, resolve waits for the summoned -----------


def flashed_page(client: Any, response: Any, fallback: str) -> str:
    """The page a refused POST ends on: the redirect's target (PRG) or the re-rendered page."""
    if response.status_code in (302, 303):
        return str(client.get(response.headers["Location"]).get_data(as_text=True))
    return str(response.get_data(as_text=True))


def test_whistle_without_a_target_is_refused_and_does_not_default_to_the_street(
    client: Any, session: Session
) -> None:
    case = accepted(client, session)
    login(client, "handler-community")
    page = page_of(client, case)
    assert 'data-filter="escalate-to_unit_codes"' in page and 'type="checkbox"' in page
    assert 'type="checkbox" value="420102-S1" checked' not in page
    before = fingerprint(session, case)
    url = f"/workbench/cases/{case.tracking_number}/escalate"
    response = client.post(url, data={"escalate-note": "需要协调"})
    assert "请至少选择一个吹哨对象" in flashed_page(client, response, url)
    assert fingerprint(session, case) == before
    with pytest.raises(TransitionError):
        services.escalate(session, case.id, user(session, "handler-community"), note="需要协调")


def test_resolve_is_blocked_while_summoned_units_have_not_answered_unless_confirmed(
    client: Any, session: Session
) -> None:
    case = escalated(client, session)  # the street was summoned and has not reported in
    login(client, "handler-community")
    assert 'name="resolve-despite_unanswered"' in page_of(client, case)
    before = fingerprint(session, case)
    url = f"/workbench/cases/{case.tracking_number}/resolve"
    form = {"resolve-result": "已清运", "resolve-reply": "已清运完毕"}
    response = client.post(url, data=form)
    assert "仍有被吹哨的单位尚未报到" in flashed_page(client, response, url)
    assert fingerprint(session, case) == before
    confirmed = client.post(url, data={**form, "resolve-despite_unanswered": "y"})
    assert confirmed.status_code == 302
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.state == "resolved"
    assert fresh.events[-1].details["unanswered_escalation"]


def test_resolve_offers_no_confirmation_without_a_pending_whistle(client: Any, session: Session) -> None:
    case = accepted(client, session)
    login(client, "handler-community")
    assert "despite_unanswered" not in page_of(client, case)


def test_dispatcher_sees_pending_whistles_of_the_subtree_on_the_queue(client: Any, session: Session) -> None:
    case = escalated(client, session)
    login(client, "dispatcher-street")
    html = client.get("/workbench").get_data(as_text=True)
    assert 'id="whistles"' in html and case.tracking_number in html[html.index('id="whistles"') :]
    services.respond_escalation(session, case.id, user(session, "handler-street"), response="已到场")
    session.commit()
    html = client.get("/workbench").get_data(as_text=True)
    assert 'id="whistles"' not in html


# --- landing after sign-in -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "landing"),
    [
        ("handler-community", "/workbench"),
        ("dispatcher-street", "/workbench"),
        ("operator", "/workbench"),
        ("admin", "/workbench"),
    ],
)
def test_staff_land_on_their_workbench(client: Any, username: str, landing: str) -> None:
    response = client.post("/login", data={"username": username, "password": "demo-pass-2026"})
    assert response.status_code == 302 and response.headers["Location"] == landing


def test_residents_land_on_their_requests_and_next_still_wins(client: Any, session: Session) -> None:
    new_user(session, "resident-landing", "resident")
    session.commit()
    response = client.post("/login", data={"username": "resident-landing", "password": STRONG_PASSWORD})
    assert response.headers["Location"] == "/my/requests"
    client.post("/logout", data={})
    response = client.post(
        "/login?next=/lookup", data={"username": "handler-community", "password": "demo-pass-2026"}
    )
    assert response.headers["Location"] == "/lookup"


# --- hotline: landlines, no "use my location", 再受理一件; tap-to-call and copy-link ------------------


def hotline_form(session: Session, client: Any, phone: str) -> Any:
    """Post the hotline form for a caller with ``phone``."""
    page = client.get("/hotline/new")
    assert page.status_code == 200
    key = page.get_data(as_text=True).split('name="idempotency_key" type="hidden" value="')[1].split('"')[0]
    return client.post(
        "/hotline/new",
        data={
            "idempotency_key": key,
            "category": "HW-01",
            "district": "420102",
            "street": "420102-S1",
            "community": "420102-S1-C1",
            "address": "幸福小区 3 栋",
            "description": "楼下垃圾桶三天没有清运，气味很大。",
            "contact_name": "李四",
            "contact_phone": phone,
        },
    )


def test_hotline_accepts_a_landline_and_offers_another_intake(client: Any, session: Session) -> None:
    login(client, "operator")
    page = client.get("/hotline/new").get_data(as_text=True)
    assert 'id="locate"' not in page and "027-88886666" in page
    response = hotline_form(session, client, "027-88886666")
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    done = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="another"' in done and "再受理一件" in done and "/hotline/new" in done
    assert "data-copy=" in done
    case = session.scalar(select(Case).order_by(Case.id.desc()))
    assert case is not None and case.contact_phone == "02788886666" and case.channel == "phone"
    bad = hotline_form(session, client, "12345")
    assert bad.status_code == 200 and "带区号的固话" in bad.get_data(as_text=True)


def test_online_intake_still_needs_a_mobile_and_keeps_use_my_location(client: Any, session: Session) -> None:
    page = client.get("/requests/new").get_data(as_text=True)
    assert 'id="locate"' in page
    body = {
        "category": "HW-01",
        "community": "420102-S1-C1",
        "address": "幸福小区",
        "description": "垃圾桶三天没有清运，气味很大。",
        "contact_name": "张三",
        "contact_phone": "027-88886666",
    }
    response = client.post("/api/v1/requests", json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "contact_phone"


def test_staff_who_may_see_the_phone_can_tap_to_call(client: Any, session: Session) -> None:
    case = submit(client, session)
    login(client, "handler-community")
    assert 'href="tel:13812345678"' in page_of(client, case)


# --- notices: links, once, cleared when moot -----------------------------------------------------


def notices_section(client: Any) -> str:
    """The queue's notices section ('' when there is none)."""
    html = str(client.get("/workbench").get_data(as_text=True))
    if 'id="notices"' not in html:
        return ""
    start = html.index('id="notices"')
    return html[start : html.index("</section>", start)]


def test_notices_link_to_their_case_show_once_and_go_when_the_case_is_opened(
    client: Any, session: Session
) -> None:
    case = submit(client, session)
    community = user(session, "handler-community").unit_id
    assert community is not None
    notify.send(session, "unit", community, case, "工单催办，请尽快签收")
    notify.send(session, "unit", community, case, "工单催办，请尽快签收")  # the same notice again
    session.commit()
    login(client, "handler-community")
    section = notices_section(client)
    assert f'href="/workbench/cases/{case.tracking_number}"' in section
    assert section.count("工单催办，请尽快签收") == 1
    page_of(client, case)  # opening the case reads its notices
    assert case.tracking_number not in notices_section(client)


def test_notices_about_closed_cases_are_not_shown(client: Any, session: Session) -> None:
    case = rated(client, session)
    community = user(session, "handler-community").unit_id
    assert community is not None
    notify.send(session, "unit", community, case, "工单待归档提醒")
    session.commit()
    login(client, "handler-community")
    assert "工单待归档提醒" in notices_section(client)
    services.close(session, case.id, user(session, "operator"))
    session.commit()
    assert "工单待归档提醒" not in notices_section(client)


# --- post-redirect-get that keeps what was typed -------------------------------------------------


def test_a_refused_action_redirects_to_the_case_and_keeps_what_was_typed(
    client: Any, session: Session
) -> None:
    case = escalated(client, session)  # resolving is refused until the street reports in
    login(client, "handler-community")
    long_reply = "已安排环卫车辆清运并消杀，今后每日清运一次。" * 60  # far over a cookie's 4 KB
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/resolve",
        data={"resolve-result": "已清运", "resolve-reply": long_reply},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/workbench/cases/{case.tracking_number}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "仍有被吹哨的单位尚未报到" in page and long_reply in page and "已清运</textarea>" in page
    again = client.get(response.headers["Location"]).get_data(as_text=True)  # shown once
    assert long_reply not in again


def test_field_errors_come_back_beside_the_fields_after_the_redirect(client: Any, session: Session) -> None:
    case = accepted(client, session)
    login(client, "handler-community")
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/request_extension",
        data={"request_extension-reason": "需协调物业，材料未齐"},
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "请选择延期后的日期" in page and "需协调物业，材料未齐" in page
    assert 'id="more-request_extension" open' in page


def test_after_a_return_the_handler_lands_on_a_page_they_can_open(client: Any, session: Session) -> None:
    case = submit(client, session)
    login(client, "handler-community")
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/return_case", data={"return_case-reason": "wrong_place"}
    )
    assert response.status_code == 302
    assert client.get(response.headers["Location"]).status_code == 200  # never a 404 after success
