"""Scope of every action, checked in the services: 吹哨 targets, dispatch and pass-down targets, merge
targets. Each refusal changes nothing, and a unit that was not rightly summoned cannot open the case."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Role
from routing import services
from routing.lifecycle import TransitionError
from routing.models import Case, Summons
from routing.rules import Rule
from tests.builders import accepted, make_user, routed, user
from tests.conftest import login


def summons_of(session: Session, case: Case) -> list[int]:
    """Unit ids summoned to the case."""
    return list(session.scalars(select(Summons.unit_id).where(Summons.case_id == case.id)))


@pytest.mark.parametrize(
    ("target", "outsider_role"),
    [
        ("D-FGJ", Role.handler),  # a department, but not the one of 垃圾清运 (市城管执法委)
        ("420103", Role.dispatcher),  # another district
        ("420102-S2", Role.handler),  # another street of the same district
        ("420102-S1-C2", Role.handler),  # the neighbouring community
    ],
)
def test_escalation_to_a_unit_neither_above_nor_allowed_is_refused(
    session: Session, target: str, outsider_role: Role
) -> None:
    case = accepted(session)  # HW-01 at 420102-S1-C1
    outsider = make_user(session, f"outsider-{target}", outsider_role, target)
    events = len(case.events)
    with pytest.raises(TransitionError) as refused:
        services.escalate(
            session, case.id, user(session, "handler-community"), note="请协助", to_unit_codes=[target]
        )
    assert refused.value.code == "invalid_target"
    assert (summons_of(session, case), len(case.events)) == ([], events)
    with pytest.raises(services.CaseNotFound):
        services.case_for(session, case.id, outsider)


def test_escalation_reaches_every_level_above_and_the_category_department(session: Session) -> None:
    case = accepted(session)
    targets = services.escalation_targets(session, case)
    assert [u.code for u in targets] == ["420102-S1", "420102", "420100", "D-CGW"]
    services.escalate(
        session,
        case.id,
        user(session, "handler-community"),
        note="需要联合执法",
        to_unit_codes=[u.code for u in targets],
    )
    assert sorted(summons_of(session, case)) == sorted(u.id for u in targets)
    cgw = make_user(session, "handler-cgw", Role.handler, "D-CGW")
    assert services.case_for(session, case.id, cgw) is case


def test_a_department_named_by_a_dispatch_rule_may_be_summoned(session: Session) -> None:
    case = accepted(session)
    assert "D-SWJ" not in {u.code for u in services.escalation_targets(session, case)}
    rules = [
        *services.current_rules(session).rules,
        Rule("department", "HW-01", place="420102", unit_code="D-SWJ"),
    ]
    services.publish_rules(session, rules, None)
    assert "D-SWJ" in {u.code for u in services.escalation_targets(session, case)}
    services.escalate(
        session, case.id, user(session, "handler-community"), note="管网", to_unit_codes=["D-SWJ"]
    )
    assert len(summons_of(session, case)) == 1


def test_the_escalation_form_offers_exactly_the_allowed_targets(client: Any, session: Session) -> None:
    case = accepted(session)
    session.commit()  # the view's rollback of the refused action must not undo the setup
    login(client, "handler-community")
    page = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    for code in ("420102-S1", "420102", "D-CGW"):
        assert f'value="{code}"' in page
    for code in ("D-FGJ", "D-SWJ", "420103"):
        assert f'value="{code}"' not in page
    events = len(case.events)
    response = client.post(
        f"/workbench/cases/{case.tracking_number}/escalate",
        data={"escalate-to_unit_codes": ["420102-S1", "D-FGJ"], "escalate-note": "需要协调"},
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "只能向本单位的上级单位或该类诉求的责任部门吹哨" in page
    session.expire_all()
    assert (summons_of(session, case), len(case.events)) == ([], events)


@pytest.mark.parametrize(
    ("action", "setup", "actor", "target"),
    [
        ("dispatch", "triage", "dispatcher-district", "420103-S1-C1"),  # another district's community
        ("dispatch", "triage", "dispatcher-district", "D-FGJ"),  # departments are the city's to use
        ("pass_down", "street", "handler-street", "420102-S2-C1"),  # below another street
        ("pass_down", "street", "handler-street", "420102"),  # up, not down
        ("pass_down", "street", "dispatcher-street", "420103-S1-C1"),
    ],
)
def test_dispatch_and_pass_down_targets_stay_in_the_subtree(
    session: Session, action: str, setup: str, actor: str, target: str
) -> None:
    if setup == "triage":  # a case the rules left to the district's dispatcher
        services.publish_rules(
            session, [Rule("community", "HW-02"), Rule("street", "*", place="420102")], None
        )
        case = routed(session, "HW-01")
        services.return_case(session, case.id, user(session, "handler-street"), reason="wrong_place")
        assert case.current_unit is not None and case.current_unit.code == "420102"
    else:
        case = routed(session, "ZS-01")  # a street-level category, at 420102-S1
    state, unit, events = case.state, case.current_unit_id, len(case.events)
    with pytest.raises(TransitionError) as refused:
        services.perform(session, action, case.id, user(session, actor), unit_code=target)
    assert refused.value.code in {"out_of_scope", "invalid_target"}
    assert (case.state, case.current_unit_id, len(case.events)) == (state, unit, events)


def test_merge_target_outside_the_subtree_is_refused_like_a_missing_one(session: Session) -> None:
    earlier = accepted(session)  # HW-01 at 420102-S1-C1, summons the department below
    services.escalate(
        session, earlier.id, user(session, "handler-community"), note="联合执法", to_unit_codes=["D-CGW"]
    )
    services.publish_rules(session, [Rule("community", "*"), Rule("department", "HW-03")], None)
    own = routed(session, "HW-03")  # at 市城管执法委 itself
    assert own.current_unit is not None and own.current_unit.code == "D-CGW"
    dispatcher = make_user(session, "dispatcher-cgw", Role.dispatcher, "D-CGW")
    assert services.can_view(session, dispatcher, earlier)  # summoned: it may see the case, not annex it
    refusals = []
    for number in (earlier.tracking_number, "MH20000101-XXXXX"):
        with pytest.raises(TransitionError) as refused:
            services.merge(session, own.id, dispatcher, into_tracking_number=number, reason="重复")
        refusals.append((refused.value.code, refused.value.message))
    assert refusals[0] == refusals[1] == ("merge_target", "目标工单不存在或不在本单位管辖范围内")
    assert own.state == "dispatched" and own.merged_into_id is None


def test_a_street_dispatcher_cannot_approve_its_own_streets_extension(session: Session) -> None:
    case = accepted(session, "ZS-01")  # a street-level category: handled at 420102-S1
    assert case.deadline is not None
    services.request_extension(
        session, case.id, user(session, "handler-street"), reason="需协调", extra_working_days=3
    )
    own = user(session, "dispatcher-street")
    assert "approve_extension" not in services.allowed_actions(session, case, own)
    with pytest.raises(TransitionError) as refused:
        services.approve_extension(session, case.id, own)
    assert refused.value.code == "out_of_scope" and case.extension_pending
    services.approve_extension(session, case.id, user(session, "dispatcher-district"))
    assert not case.extension_pending and case.extensions_count == 1
