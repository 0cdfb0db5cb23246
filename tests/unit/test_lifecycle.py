"""The case lifecycle state machine: every state × action, limits, and who may do what."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from core.models import Role
from routing.lifecycle import (
    SYSTEM_ACTOR,
    Accept,
    Action,
    Actor,
    ApproveExtension,
    Callback,
    CaseSnapshot,
    Close,
    Command,
    Dispatch,
    Escalate,
    Merge,
    PassDown,
    Policy,
    RefuseExtension,
    Reopen,
    RequestExtension,
    Resolve,
    RespondEscalation,
    ReturnCase,
    ReturnReason,
    Route,
    Satisfaction,
    State,
    Supervise,
    Transition,
    TransitionError,
    Triage,
    UnitRef,
    allowed_actions,
    check_action,
    decide,
)

# A small unit tree: city 1 → district 2 → streets 3, 6 → communities 4, 5 (under 3) and 7 (under 6);
# department 8 (市水务局) sits beside the tree under the city.
CITY = UnitRef(1, "city", ())
DISTRICT = UnitRef(2, "district", (1,))
STREET = UnitRef(3, "street", (1, 2))
OTHER_STREET = UnitRef(6, "street", (1, 2))
COMMUNITY = UnitRef(4, "community", (1, 2, 3))
NEIGHBOUR = UnitRef(5, "community", (1, 2, 3))
FAR_COMMUNITY = UnitRef(7, "community", (1, 2, 6))
DEPT = UnitRef(8, "city", (1,))

CITY_DISPATCHER = Actor(10, Role.dispatcher, 1, ())
DISTRICT_DISPATCHER = Actor(13, Role.dispatcher, 2, (1,))
STREET_DISPATCHER = Actor(11, Role.dispatcher, 3, (1, 2))
OTHER_STREET_DISPATCHER = Actor(12, Role.dispatcher, 6, (1, 2))
HANDLER = Actor(20, Role.handler, 4, (1, 2, 3))
STREET_HANDLER = Actor(21, Role.handler, 3, (1, 2))
OTHER_HANDLER = Actor(22, Role.handler, 5, (1, 2, 3))
DEPT_HANDLER = Actor(23, Role.handler, 8, (1,))
RESIDENT = Actor(7, Role.resident)
OTHER_RESIDENT = Actor(9, Role.resident)
OPERATOR = Actor(30, Role.operator)
EVALUATOR = Actor(40, Role.evaluator)
ADMIN = Actor(50, Role.admin)

NOW = datetime(2025, 11, 17, 10, 0)
DEADLINE = datetime(2025, 11, 26, 17, 30)
RECEIVED = datetime(2025, 11, 10, 9, 0)


def case(state: State, **changes: Any) -> CaseSnapshot:
    """A case in ``state`` at the unit where that state normally finds it."""
    if state in (State.submitted, State.triage):
        unit, sent_by = None, None
    elif state is State.dispatching:
        unit, sent_by = STREET, None
    else:
        unit, sent_by = COMMUNITY, STREET
    snap = CaseSnapshot(
        state=state,
        case_id=100,
        received_at=RECEIVED,
        resident_id=7,
        unit=unit,
        sent_by=sent_by,
        deadline=DEADLINE,
    )
    return replace(snap, **changes)


# For every action: snapshot tweaks that satisfy its preconditions, a permitted actor, a valid command.
Ready = tuple[dict[str, Any], Actor, Command]
READY: dict[Action, Ready] = {
    Action.dispatch: ({}, CITY_DISPATCHER, Dispatch(COMMUNITY, deadline=DEADLINE)),
    Action.route: ({}, CITY_DISPATCHER, Route(STREET)),
    Action.triage: ({}, CITY_DISPATCHER, Triage(None, "规则未匹配")),
    Action.pass_down: ({"unit": STREET, "sent_by": DISTRICT}, STREET_HANDLER, PassDown(COMMUNITY)),
    Action.accept: ({}, HANDLER, Accept()),
    Action.return_case: ({}, HANDLER, ReturnCase(ReturnReason.not_our_jurisdiction)),
    Action.escalate: (
        {},
        HANDLER,
        Escalate((STREET, DEPT), "管网破裂，需水务部门联合处置", frozenset({DEPT.id})),
    ),
    Action.respond_escalation: (
        {"escalation_open": True, "escalation_pending": frozenset({8})},
        DEPT_HANDLER,
        RespondEscalation("已派员到场"),
    ),
    Action.request_extension: ({}, HANDLER, RequestExtension(DEADLINE + timedelta(days=5), "需协调产权单位")),
    Action.approve_extension: (
        {"extension_pending": True, "requested_deadline": DEADLINE + timedelta(days=5)},
        STREET_DISPATCHER,
        ApproveExtension(),
    ),
    Action.refuse_extension: (
        {"extension_pending": True, "requested_deadline": DEADLINE + timedelta(days=5)},
        STREET_DISPATCHER,
        RefuseExtension("理由不充分"),
    ),
    Action.resolve: ({}, HANDLER, Resolve("已更换路灯", "您反映的路灯已修复，感谢监督")),
    Action.callback: ({}, RESIDENT, Callback(True, Satisfaction.satisfied)),
    Action.reopen: ({}, CITY_DISPATCHER, Reopen("居民再次来电反映未修好")),
    Action.supervise: ({}, CITY_DISPATCHER, Supervise("临近超期")),
    Action.merge: ({}, CITY_DISPATCHER, Merge(50, datetime(2025, 11, 1, 8, 0), State.accepted)),
    Action.close: ({"solved": True, "satisfaction": Satisfaction.satisfied}, OPERATOR, Close()),
}

ALL_BUT_TERMINAL: set[State] = {s for s in State if s not in (State.closed, State.merged)}
# The lifecycle table of PRODUCT.md "A case's life", written out by hand.
ALLOWED: dict[Action, set[State]] = {
    Action.dispatch: {State.submitted, State.dispatching, State.triage},
    Action.route: {State.submitted, State.dispatching, State.triage},
    Action.triage: {State.submitted, State.dispatching},
    Action.pass_down: {State.dispatched},
    Action.accept: {State.dispatched},
    Action.return_case: {State.dispatched, State.accepted},
    Action.escalate: {State.accepted},
    Action.respond_escalation: {State.accepted},
    Action.request_extension: {State.accepted},
    Action.approve_extension: {State.accepted},
    Action.refuse_extension: {State.accepted},
    Action.resolve: {State.accepted},
    Action.callback: {State.resolved},
    Action.reopen: {State.resolved, State.closed},
    Action.supervise: ALL_BUT_TERMINAL,
    Action.merge: {State.submitted, State.triage, State.dispatched, State.accepted},
    Action.close: {State.resolved},
}
# Where a successful action leaves the case (None: the state does not change).
LEADS_TO: dict[Action, State | None] = {
    Action.dispatch: State.dispatched,
    Action.route: State.dispatching,
    Action.triage: State.triage,
    Action.pass_down: State.dispatched,
    Action.accept: State.accepted,
    Action.return_case: State.dispatching,  # first return, sent by a unit: back to that level
    Action.escalate: None,
    Action.respond_escalation: None,
    Action.request_extension: None,
    Action.approve_extension: None,
    Action.refuse_extension: None,
    Action.resolve: State.resolved,
    Action.callback: None,  # a good rating leaves it resolved, waiting to be archived
    Action.reopen: State.dispatched,
    Action.supervise: None,
    Action.merge: State.merged,
    Action.close: State.closed,
}


def test_tables_cover_every_action() -> None:
    assert set(READY) == set(Action) == set(ALLOWED) == set(LEADS_TO)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
def test_state_action_table(state: State, action: Action) -> None:
    tweaks, actor, command = READY[action]
    snap = case(state, **tweaks)
    assert command.action is action
    if state in ALLOWED[action]:
        transition = decide(snap, command, actor, NOW)
        expected = LEADS_TO[action] or state
        assert transition.after.state is expected
        assert transition.event.action is action
        assert transition.event.from_state is state
        assert transition.event.to_state is expected
        assert action in allowed_actions(snap, actor, NOW)
    else:
        with pytest.raises(TransitionError) as info:
            decide(snap, command, actor, NOW)
        assert info.value.code == "state_forbidden"
        assert action not in allowed_actions(snap, actor, NOW)


def test_refusal_messages_are_chinese_and_specific() -> None:
    with pytest.raises(TransitionError) as info:
        decide(case(State.resolved), ReturnCase(ReturnReason.duplicate), HANDLER, NOW)
    assert str(info.value) == "工单已办结，不能退单"
    assert info.value.message_zh == "工单已办结，不能退单"
    assert isinstance(info.value, ValueError)


# --- dispatch, pass down, triage ---------------------------------------------------------------


def test_dispatch_records_units_and_deadline() -> None:
    t = decide(case(State.dispatching), Dispatch(COMMUNITY, deadline=DEADLINE), STREET_DISPATCHER, NOW)
    assert t.after.unit == COMMUNITY
    assert t.after.sent_by == STREET
    assert t.event.from_unit_id == 3
    assert t.event.to_unit_id == 4
    assert t.event.actor_id == 11
    assert t.event.actor_unit_id == 3
    assert t.event.actor_role == "dispatcher"
    assert t.event.at == NOW
    assert t.event.details == {"forced": False, "deadline": "2025-11-26T17:30:00"}
    assert t.changes() == {"state": State.dispatched, "unit": COMMUNITY, "sent_by": STREET}


def test_rules_dispatch_as_system_actor() -> None:
    t = decide(
        case(State.submitted, deadline=None), Dispatch(COMMUNITY, deadline=DEADLINE), SYSTEM_ACTOR, NOW
    )
    assert t.after.state is State.dispatched
    assert t.after.deadline == DEADLINE
    assert t.after.sent_by is None
    assert t.event.actor_id is None


def test_dispatcher_cannot_dispatch_outside_its_subtree() -> None:
    with pytest.raises(TransitionError) as info:
        decide(case(State.dispatching), Dispatch(FAR_COMMUNITY), STREET_DISPATCHER, NOW)
    assert info.value.code == "out_of_scope"
    # A case at another street is not this street dispatcher's at all.
    with pytest.raises(TransitionError) as info:
        decide(case(State.dispatching, unit=OTHER_STREET), Dispatch(FAR_COMMUNITY), STREET_DISPATCHER, NOW)
    assert info.value.code == "out_of_scope"
    # The district above both may.
    t = decide(case(State.dispatching, unit=OTHER_STREET), Dispatch(FAR_COMMUNITY), DISTRICT_DISPATCHER, NOW)
    assert t.after.unit == FAR_COMMUNITY


def test_city_wide_queue_belongs_to_top_level_dispatchers() -> None:
    snap = case(State.submitted)
    with pytest.raises(TransitionError) as info:
        decide(snap, Dispatch(COMMUNITY), DISTRICT_DISPATCHER, NOW)
    assert info.value.code == "out_of_scope"
    assert decide(snap, Dispatch(COMMUNITY), CITY_DISPATCHER, NOW).after.state is State.dispatched
    assert decide(snap, Dispatch(COMMUNITY), ADMIN, NOW).after.state is State.dispatched


def test_pass_down_only_to_units_below() -> None:
    snap = case(State.dispatched, unit=STREET, sent_by=DISTRICT)
    t = decide(snap, PassDown(COMMUNITY), STREET_HANDLER, NOW)
    assert (t.after.unit, t.after.sent_by) == (COMMUNITY, STREET)
    for target in (FAR_COMMUNITY, DISTRICT, STREET):
        with pytest.raises(TransitionError) as info:
            decide(snap, PassDown(target), STREET_HANDLER, NOW)
        assert info.value.code == "invalid_target"
    # A community is the bottom of the tree.
    with pytest.raises(TransitionError) as info:
        decide(case(State.dispatched), PassDown(NEIGHBOUR), HANDLER, NOW)
    assert info.value.code == "invalid_target"


def test_triage_queue_must_be_own_unit_or_above() -> None:
    snap = case(State.dispatching)
    assert decide(snap, Triage(DISTRICT), STREET_DISPATCHER, NOW).after.unit == DISTRICT
    assert decide(snap, Triage(STREET), STREET_DISPATCHER, NOW).after.unit == STREET
    with pytest.raises(TransitionError) as info:
        decide(snap, Triage(OTHER_STREET), STREET_DISPATCHER, NOW)
    assert info.value.code == "out_of_scope"


# --- returns -----------------------------------------------------------------------------------


def test_return_goes_back_to_the_sending_level_then_to_triage_then_refused() -> None:
    snap = case(State.dispatched)
    first = decide(snap, ReturnCase(ReturnReason.not_our_jurisdiction), HANDLER, NOW)
    assert first.after.state is State.dispatching
    assert first.after.unit == STREET
    assert first.after.returns_count == 1
    assert first.after.returned_by == {4}
    assert first.event.reason == "非本单位职责"
    assert first.event.details == {
        "return_reason": "not_our_jurisdiction",
        "returns_count": 1,
        "limit_reached": False,
    }

    # The street re-dispatches to the neighbouring community, which returns it too: limit reached.
    second_hop = decide(first.after, Dispatch(NEIGHBOUR), STREET_DISPATCHER, NOW).after
    second = decide(second_hop, ReturnCase(ReturnReason.wrong_place), OTHER_HANDLER, NOW)
    assert second.after.state is State.triage
    assert second.after.unit == STREET
    assert second.after.returns_count == 2
    assert second.after.returned_by == {4, 5}
    assert second.event.details["limit_reached"] is True

    # A dispatcher decides in triage; the unit it picks can no longer return it.
    third_hop = decide(
        second.after, Dispatch(COMMUNITY, force=True, note="改回本社区"), STREET_DISPATCHER, NOW
    ).after
    assert Action.return_case not in allowed_actions(third_hop, HANDLER, NOW)
    with pytest.raises(TransitionError) as info:
        decide(third_hop, ReturnCase(ReturnReason.duplicate), HANDLER, NOW)
    assert info.value.code == "return_limit"
    assert "2次" in info.value.message_zh


def test_return_limit_is_configurable() -> None:
    strict = Policy(max_returns=1)
    t = decide(case(State.dispatched), ReturnCase(ReturnReason.duplicate), HANDLER, NOW, strict)
    assert t.after.state is State.triage


def test_return_of_a_case_placed_by_rules_goes_to_triage() -> None:
    snap = case(State.dispatched, sent_by=None)
    t = decide(snap, ReturnCase(ReturnReason.insufficient_info), HANDLER, NOW)
    assert t.after.state is State.triage
    assert t.after.unit is None


def test_return_reason_other_needs_a_note() -> None:
    with pytest.raises(TransitionError) as info:
        decide(case(State.dispatched), ReturnCase(ReturnReason.other, "  "), HANDLER, NOW)
    assert info.value.code == "missing_text"
    t = decide(case(State.dispatched), ReturnCase(ReturnReason.other, "属物业合同纠纷"), HANDLER, NOW)
    assert t.event.reason == "属物业合同纠纷"


def test_no_ping_pong_unless_a_dispatcher_forces_it() -> None:
    returned = decide(case(State.dispatched), ReturnCase(ReturnReason.wrong_place), HANDLER, NOW).after
    with pytest.raises(TransitionError) as info:
        decide(returned, Dispatch(COMMUNITY), STREET_DISPATCHER, NOW)
    assert info.value.code == "ping_pong"
    with pytest.raises(TransitionError) as info:
        decide(returned, Route(COMMUNITY), STREET_DISPATCHER, NOW)
    assert info.value.code == "ping_pong"
    # Rules (the system) may not force; a dispatcher may.
    with pytest.raises(TransitionError) as info:
        decide(replace(returned, unit=None, state=State.triage), Dispatch(COMMUNITY), SYSTEM_ACTOR, NOW)
    assert info.value.code == "ping_pong"
    with pytest.raises(TransitionError) as info:  # forcing is audited: it needs a reason
        decide(returned, Dispatch(COMMUNITY, force=True, note=" "), STREET_DISPATCHER, NOW)
    assert info.value.code == "missing_text"
    forced = decide(
        returned, Dispatch(COMMUNITY, force=True, note="街道核实属本社区"), STREET_DISPATCHER, NOW
    )
    assert forced.after.unit == COMMUNITY
    assert forced.event.details["forced"] is True and forced.event.reason == "街道核实属本社区"
    # Other units are fine.
    assert decide(returned, Dispatch(NEIGHBOUR), STREET_DISPATCHER, NOW).after.unit == NEIGHBOUR


def test_pass_down_respects_ping_pong_and_handlers_cannot_force() -> None:
    snap = case(State.dispatched, unit=STREET, sent_by=DISTRICT, returned_by=frozenset({4}))
    with pytest.raises(TransitionError) as info:
        decide(snap, PassDown(COMMUNITY), STREET_HANDLER, NOW)
    assert info.value.code == "ping_pong"
    with pytest.raises(TransitionError) as info:
        decide(snap, PassDown(COMMUNITY, force=True), STREET_HANDLER, NOW)
    assert info.value.code == "role_forbidden"
    assert decide(snap, PassDown(COMMUNITY, force=True), STREET_DISPATCHER, NOW).after.unit == COMMUNITY


# --- escalation (吹哨报到) ---------------------------------------------------------------------


def test_escalation_summons_units_and_each_responds() -> None:
    snap = case(State.accepted)
    escalated = decide(snap, Escalate((STREET, DEPT), "管网破裂", frozenset({DEPT.id})), HANDLER, NOW)
    assert escalated.after.state is State.accepted
    assert escalated.after.unit == COMMUNITY
    assert escalated.after.escalation_open
    assert escalated.after.escalation_pending == {3, 8}
    assert escalated.event.details == {"summoned": [3, 8]}
    # A second escalation waits for the first.
    assert Action.escalate not in allowed_actions(escalated.after, HANDLER, NOW)

    # A unit that was not summoned cannot respond.
    with pytest.raises(TransitionError) as info:
        decide(escalated.after, RespondEscalation("收到"), OTHER_HANDLER, NOW)
    assert info.value.code == "not_summoned"
    assert allowed_actions(escalated.after, DEPT_HANDLER, NOW) == [Action.respond_escalation]

    after_dept = decide(escalated.after, RespondEscalation("已派员"), DEPT_HANDLER, NOW).after
    assert after_dept.escalation_pending == {3}
    assert after_dept.escalation_open
    # The department cannot answer twice.
    with pytest.raises(TransitionError):
        decide(after_dept, RespondEscalation("再次"), DEPT_HANDLER, NOW)
    done = decide(after_dept, RespondEscalation("街道已协调"), STREET_DISPATCHER, NOW).after
    assert not done.escalation_open
    assert done.escalation_pending == frozenset()
    assert Action.escalate in allowed_actions(done, HANDLER, NOW)


def test_escalation_needs_targets_other_than_itself() -> None:
    snap = case(State.accepted)
    with pytest.raises(TransitionError) as info:
        decide(snap, Escalate((), "需要支援"), HANDLER, NOW)
    assert info.value.code == "invalid_target"
    with pytest.raises(TransitionError) as info:
        decide(snap, Escalate((COMMUNITY,), "需要支援"), HANDLER, NOW)
    assert info.value.code == "invalid_target"


@pytest.mark.parametrize(
    "target",
    [NEIGHBOUR, OTHER_STREET, FAR_COMMUNITY, DEPT],
    ids=["neighbour community", "other street", "community of another street", "department not allowed"],
)
def test_escalation_only_to_the_levels_above_and_the_allowed_departments(target: UnitRef) -> None:
    snap = case(State.accepted)
    with pytest.raises(TransitionError) as info:
        decide(snap, Escalate((STREET, target), "需要支援"), HANDLER, NOW)
    assert info.value.code == "invalid_target"
    above = decide(snap, Escalate((STREET, DISTRICT, CITY), "需要支援"), HANDLER, NOW)
    assert above.after.escalation_pending == {1, 2, 3}
    allowed = decide(snap, Escalate((DEPT,), "需要支援", frozenset({DEPT.id})), HANDLER, NOW)
    assert allowed.after.escalation_pending == {DEPT.id}


def test_resolving_with_open_escalation_records_who_did_not_answer() -> None:
    snap = case(State.accepted, escalation_open=True, escalation_pending=frozenset({8}))
    with pytest.raises(TransitionError) as info:  # blocked unless the handler confirms
        decide(snap, Resolve("已处理", "已处理完毕"), HANDLER, NOW)
    assert info.value.code == "escalation_unanswered"
    t = decide(snap, Resolve("已处理", "已处理完毕", despite_unanswered=True), HANDLER, NOW)
    assert t.event.details["unanswered_escalation"] == [8]
    assert not t.after.escalation_open


# --- extensions --------------------------------------------------------------------------------


def test_extension_request_approve_moves_the_deadline() -> None:
    new_date = DEADLINE + timedelta(days=5)
    requested = decide(case(State.accepted), RequestExtension(new_date, "需协调产权单位"), HANDLER, NOW)
    assert requested.after.extension_pending
    assert requested.after.deadline == DEADLINE
    assert Action.request_extension not in allowed_actions(requested.after, HANDLER, NOW)
    approved = decide(requested.after, ApproveExtension(), STREET_DISPATCHER, NOW)
    assert approved.after.deadline == new_date
    assert not approved.after.extension_pending
    assert approved.after.extensions_count == 1
    assert approved.event.details == {
        "old_deadline": "2025-11-26T17:30:00",
        "new_deadline": "2025-12-01T17:30:00",
    }


def test_extension_refusal_keeps_the_deadline_and_needs_a_reason() -> None:
    snap = case(State.accepted, extension_pending=True, requested_deadline=DEADLINE + timedelta(days=3))
    with pytest.raises(TransitionError) as info:
        decide(snap, RefuseExtension(""), STREET_DISPATCHER, NOW)
    assert info.value.code == "missing_text"
    refused = decide(snap, RefuseExtension("可按期办结"), STREET_DISPATCHER, NOW)
    assert refused.after.deadline == DEADLINE
    assert not refused.after.extension_pending
    assert refused.after.requested_deadline is None


def test_extension_after_or_at_the_deadline_refused() -> None:
    snap = case(State.accepted)
    request = RequestExtension(DEADLINE + timedelta(days=5), "需协调")
    for late in (DEADLINE, DEADLINE + timedelta(minutes=1)):
        with pytest.raises(TransitionError) as info:
            decide(snap, request, HANDLER, late)
        assert info.value.code == "deadline_passed"
        assert Action.request_extension not in allowed_actions(snap, HANDLER, late)
    assert decide(snap, request, HANDLER, DEADLINE - timedelta(minutes=1)).after.extension_pending


def test_extension_must_move_the_deadline_later_and_needs_a_deadline() -> None:
    with pytest.raises(TransitionError) as info:
        decide(case(State.accepted), RequestExtension(DEADLINE, "需协调"), HANDLER, NOW)
    assert info.value.code == "invalid_deadline"
    with pytest.raises(TransitionError) as info:
        decide(case(State.accepted, deadline=None), RequestExtension(DEADLINE, "需协调"), HANDLER, NOW)
    assert info.value.code == "no_deadline"


def test_approval_without_a_pending_request_refused() -> None:
    with pytest.raises(TransitionError) as info:
        decide(case(State.accepted), ApproveExtension(), STREET_DISPATCHER, NOW)
    assert info.value.code == "no_extension_pending"


# --- resolve, callback, reopen, close ----------------------------------------------------------


def test_resolve_needs_result_and_reply() -> None:
    for command in (Resolve("", "已答复"), Resolve("已处理", " ")):
        with pytest.raises(TransitionError) as info:
            decide(case(State.accepted), command, HANDLER, NOW)
        assert info.value.code == "missing_text"


def test_resolve_records_overdue() -> None:
    t = decide(case(State.accepted), Resolve("已处理", "已答复"), HANDLER, DEADLINE + timedelta(hours=1))
    assert t.event.details["overdue"] is True
    t = decide(case(State.accepted), Resolve("已处理", "已答复"), HANDLER, NOW)
    assert t.event.details["overdue"] is False


@pytest.mark.parametrize(
    ("solved", "rating"),
    [(True, Satisfaction.satisfied), (True, Satisfaction.basically_satisfied)],
)
def test_good_callback_leaves_case_resolved_ready_to_close(solved: bool, rating: Satisfaction) -> None:
    t = decide(case(State.resolved), Callback(solved, rating, "谢谢"), RESIDENT, NOW)
    assert t.after.state is State.resolved
    assert (t.after.solved, t.after.satisfaction) == (solved, rating)
    assert t.event.details["outcome"] == "accepted"
    assert Action.callback not in allowed_actions(t.after, RESIDENT, NOW)
    closed = decide(t.after, Close(), OPERATOR, NOW)
    assert closed.after.state is State.closed
    assert closed.event.details == {"callback_timeout": False}


@pytest.mark.parametrize(
    ("solved", "rating"),
    [(False, Satisfaction.satisfied), (True, Satisfaction.dissatisfied), (False, Satisfaction.dissatisfied)],
)
def test_bad_callback_reopens_automatically(solved: bool, rating: Satisfaction) -> None:
    new_deadline = DEADLINE + timedelta(days=7)
    snap = case(State.resolved, reopen_count=1)
    t = decide(snap, Callback(solved, rating, reopen_deadline=new_deadline), OPERATOR, NOW)
    assert t.after.state is State.dispatched
    assert t.after.unit == COMMUNITY
    assert t.after.reopen_count == 2
    assert t.after.deadline == new_deadline
    assert t.after.satisfaction is None  # the new round has not been rated yet
    assert t.event.details["outcome"] == "reopened"
    assert t.event.details["satisfaction"] == rating.value


def test_bad_callback_at_reopen_limit_closes_with_a_flag() -> None:
    snap = case(State.resolved, reopen_count=2)
    t = decide(snap, Callback(False, Satisfaction.dissatisfied, "还是没修"), RESIDENT, NOW)
    assert t.after.state is State.closed
    assert t.after.flagged
    assert t.after.satisfaction is Satisfaction.dissatisfied
    assert t.after.solved is False
    assert t.event.details["outcome"] == "closed_unresolved"
    assert t.event.reason == "还是没修"


def test_reopen_limit_is_configurable() -> None:
    snap = case(State.resolved, reopen_count=0)
    t = decide(snap, Callback(False, Satisfaction.dissatisfied), RESIDENT, NOW, Policy(max_reopens=0))
    assert t.after.state is State.closed


def test_explicit_reopen_and_its_limit() -> None:
    t = decide(case(State.closed, reopen_count=1), Reopen("居民投诉未解决"), STREET_DISPATCHER, NOW)
    assert t.after.state is State.dispatched
    assert t.after.reopen_count == 2
    limited = case(State.resolved, reopen_count=2)
    assert Action.reopen not in allowed_actions(limited, STREET_DISPATCHER, NOW)
    with pytest.raises(TransitionError) as info:
        decide(limited, Reopen("再次重办"), STREET_DISPATCHER, NOW)
    assert info.value.code == "reopen_limit"
    with pytest.raises(TransitionError) as info:
        decide(case(State.resolved), Reopen(""), STREET_DISPATCHER, NOW)
    assert info.value.code == "missing_text"


def test_close_waits_for_callback_or_its_timeout() -> None:
    due = datetime(2025, 11, 20, 17, 30)
    snap = case(State.resolved, callback_due=due)
    with pytest.raises(TransitionError) as info:
        decide(snap, Close(), SYSTEM_ACTOR, NOW)
    assert info.value.code == "callback_pending"
    assert Action.close not in allowed_actions(snap, SYSTEM_ACTOR, NOW)
    t = decide(snap, Close(), SYSTEM_ACTOR, due)
    assert t.after.state is State.closed
    assert t.event.details == {"callback_timeout": True}
    # Without a callback window the case waits for the callback.
    with pytest.raises(TransitionError):
        decide(case(State.resolved), Close(), SYSTEM_ACTOR, NOW + timedelta(days=365))


# --- supervise and merge -----------------------------------------------------------------------


def test_supervise_flags_without_changing_state() -> None:
    snap = case(State.accepted, supervise_count=1)
    t = decide(snap, Supervise("已超期"), STREET_DISPATCHER, DEADLINE + timedelta(days=1))
    assert t.after.state is State.accepted
    assert t.after.supervised
    assert t.after.supervise_count == 2
    assert t.event.details == {"supervise_count": 2, "overdue": True}
    assert t.changes() == {"supervised": True, "supervise_count": 2}
    with pytest.raises(TransitionError) as info:
        decide(snap, Supervise(""), STREET_DISPATCHER, NOW)
    assert info.value.code == "missing_text"


def test_merge_into_an_earlier_open_case_only() -> None:
    snap = case(State.accepted)
    earlier = datetime(2025, 11, 1, 8, 0)
    t = decide(snap, Merge(50, earlier, State.accepted, "同一井盖"), STREET_DISPATCHER, NOW)
    assert t.after.state is State.merged
    assert t.after.merged_into == 50
    assert t.event.details == {"into_case_id": 50}
    bad = [
        Merge(100, earlier, State.accepted),  # itself
        Merge(51, RECEIVED + timedelta(days=1), State.accepted),  # a later case
        Merge(52, earlier, State.closed),  # an archived case
        Merge(53, earlier, State.merged),  # a case that is itself merged
    ]
    for command in bad:
        with pytest.raises(TransitionError) as info:
            decide(snap, command, STREET_DISPATCHER, NOW)
        assert info.value.code == "merge_target"


# --- permissions -------------------------------------------------------------------------------

HANDLER_ACTIONS = [
    Action.accept,
    Action.return_case,
    Action.escalate,
    Action.request_extension,
    Action.resolve,
]


@pytest.mark.parametrize("action", HANDLER_ACTIONS)
def test_handler_of_another_unit_refused(action: Action) -> None:
    tweaks, _, command = READY[action]
    state = State.dispatched if action is Action.accept else State.accepted
    snap = case(state, **tweaks)
    for outsider in (OTHER_HANDLER, STREET_HANDLER, DEPT_HANDLER):
        with pytest.raises(TransitionError) as info:
            decide(snap, command, outsider, NOW)
        assert info.value.code == "out_of_scope"
    assert decide(snap, command, HANDLER, NOW).event.actor_id == HANDLER.user_id


@pytest.mark.parametrize("action", HANDLER_ACTIONS)
def test_handler_actions_are_not_for_dispatchers_or_residents(action: Action) -> None:
    tweaks, _, command = READY[action]
    state = State.dispatched if action is Action.accept else State.accepted
    for actor in (STREET_DISPATCHER, ADMIN, RESIDENT, OPERATOR, EVALUATOR):
        with pytest.raises(TransitionError) as info:
            decide(case(state, **tweaks), command, actor, NOW)
        assert info.value.code == "role_forbidden"


DISPATCHER_ACTIONS: list[tuple[State, Action]] = [
    (State.dispatching, Action.dispatch),
    (State.dispatching, Action.route),
    (State.dispatching, Action.triage),
    (State.accepted, Action.approve_extension),
    (State.accepted, Action.refuse_extension),
    (State.resolved, Action.reopen),
    (State.accepted, Action.merge),
    (State.accepted, Action.supervise),
]


@pytest.mark.parametrize(("state", "action"), DISPATCHER_ACTIONS)
def test_dispatcher_actions_by_subtree(state: State, action: Action) -> None:
    tweaks, _, command = READY[action]
    if action is Action.route:
        command = Route(COMMUNITY)
    snap = case(state, **tweaks)
    # The case is at street 3 (dispatching) or community 4 (others): street 3, district and city oversee it.
    for actor in (STREET_DISPATCHER, DISTRICT_DISPATCHER, CITY_DISPATCHER, ADMIN):
        decide(snap, command, actor, NOW)
        assert action in allowed_actions(snap, actor, NOW)
    with pytest.raises(TransitionError) as info:
        decide(snap, command, OTHER_STREET_DISPATCHER, NOW)
    assert info.value.code == "out_of_scope"
    for actor in (HANDLER, RESIDENT, OPERATOR, EVALUATOR):
        with pytest.raises(TransitionError) as info:
            decide(snap, command, actor, NOW)
        assert info.value.code == "role_forbidden"


def test_callback_by_the_resident_or_an_operator_only() -> None:
    snap = case(State.resolved)
    command = Callback(True, Satisfaction.basically_satisfied)
    assert decide(snap, command, RESIDENT, NOW).after.satisfaction is Satisfaction.basically_satisfied
    assert decide(snap, command, OPERATOR, NOW).after.satisfaction is Satisfaction.basically_satisfied
    with pytest.raises(TransitionError) as info:
        decide(snap, command, OTHER_RESIDENT, NOW)
    assert info.value.code == "out_of_scope"
    for actor in (HANDLER, STREET_DISPATCHER, ADMIN, EVALUATOR):
        with pytest.raises(TransitionError) as info:
            decide(snap, command, actor, NOW)
        assert info.value.code == "role_forbidden"


def test_pass_down_by_the_unit_or_its_dispatchers() -> None:
    snap = case(State.dispatched, unit=STREET, sent_by=DISTRICT)
    for actor in (STREET_HANDLER, STREET_DISPATCHER, DISTRICT_DISPATCHER, ADMIN):
        assert decide(snap, PassDown(COMMUNITY), actor, NOW).after.unit == COMMUNITY
    for actor in (HANDLER, OTHER_STREET_DISPATCHER):
        with pytest.raises(TransitionError) as info:
            decide(snap, PassDown(COMMUNITY), actor, NOW)
        assert info.value.code == "out_of_scope"


# --- allowed_actions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snap", "actor", "expected"),
    [
        (case(State.dispatched), HANDLER, [Action.accept, Action.return_case]),
        (
            case(State.dispatched, unit=STREET, sent_by=DISTRICT),
            STREET_HANDLER,
            [Action.pass_down, Action.accept, Action.return_case],
        ),
        (
            case(State.accepted),
            HANDLER,
            [Action.return_case, Action.escalate, Action.request_extension, Action.resolve],
        ),
        (case(State.accepted), STREET_DISPATCHER, [Action.supervise, Action.merge]),
        (case(State.accepted), OTHER_HANDLER, []),
        (case(State.accepted), EVALUATOR, []),
        (case(State.resolved), RESIDENT, [Action.callback]),
        (case(State.resolved, satisfaction=Satisfaction.satisfied), OPERATOR, [Action.close]),
        (
            case(State.triage),
            CITY_DISPATCHER,
            [Action.dispatch, Action.route, Action.supervise, Action.merge],
        ),
        (case(State.merged), ADMIN, []),
    ],
)
def test_allowed_actions(snap: CaseSnapshot, actor: Actor, expected: list[Action]) -> None:
    assert allowed_actions(snap, actor, NOW) == expected


def test_check_action_agrees_with_allowed_actions() -> None:
    snap = case(State.accepted)
    check_action(snap, Action.resolve, HANDLER, NOW)
    with pytest.raises(TransitionError):
        check_action(snap, Action.resolve, OTHER_HANDLER, NOW)


# --- a whole life ------------------------------------------------------------------------------


def test_a_whole_life_produces_an_audit_trail() -> None:
    steps: list[tuple[Actor, Command, datetime]] = [
        (SYSTEM_ACTOR, Route(STREET), NOW),
        (STREET_DISPATCHER, Dispatch(COMMUNITY, deadline=DEADLINE), NOW + timedelta(minutes=5)),
        (HANDLER, Accept(), NOW + timedelta(hours=1)),
        (HANDLER, Resolve("已清理楼道杂物", "楼道杂物已清理"), NOW + timedelta(days=1)),
        (RESIDENT, Callback(True, Satisfaction.satisfied), NOW + timedelta(days=2)),
        (OPERATOR, Close(), NOW + timedelta(days=2, hours=1)),
    ]
    snap = case(State.submitted)
    trail: list[Transition] = []
    for actor, command, at in steps:
        transition = decide(snap, command, actor, at)
        trail.append(transition)
        snap = transition.after
    assert [(t.event.from_state, t.event.to_state) for t in trail] == [
        (State.submitted, State.dispatching),
        (State.dispatching, State.dispatched),
        (State.dispatched, State.accepted),
        (State.accepted, State.resolved),
        (State.resolved, State.resolved),
        (State.resolved, State.closed),
    ]
    assert [t.event.to_unit_id for t in trail] == [3, 4, 4, 4, 4, 4]
    assert snap.state is State.closed
    assert not snap.is_open
    assert snap.level == "community"


def test_labels() -> None:
    assert State.resolved.label == "已办结"
    assert Action.return_case.label == "退单"
    assert ReturnReason.wrong_place.label == "地址不属本辖区"
    assert Satisfaction.basically_satisfied.label == "基本满意"
    assert all(s.label for s in State) and all(a.label for a in Action)


@pytest.mark.parametrize(
    "command", [ApproveExtension(), RefuseExtension("理由不足")], ids=["approve", "refuse"]
)
def test_a_units_own_dispatcher_cannot_decide_its_extension(command: Command) -> None:
    at_street = case(
        State.accepted, unit=STREET, sent_by=DISTRICT, extension_pending=True, requested_deadline=DEADLINE
    )
    with pytest.raises(TransitionError) as info:
        decide(at_street, command, STREET_DISPATCHER, NOW)
    assert info.value.code == "out_of_scope"
    assert command.action not in allowed_actions(at_street, STREET_DISPATCHER, NOW)
    assert decide(at_street, command, DISTRICT_DISPATCHER, NOW).after.extension_pending is False
