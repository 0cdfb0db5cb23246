"""Routing services through a real session: hops, every action, permissions, queues, scans, notices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import Role, User, unit_by_code
from routing import jobs, notify, services
from routing.lifecycle import Action, State, TransitionError
from routing.models import Case, DeadlineFlag, Notice, RoutingHop
from routing.rules import Rule
from tests.builders import make_user, new_case, user

COMMUNITY = "420102-S1-C1"


def route(session: Session, case: Case) -> list[str]:
    actions = []
    while True:
        result = services.route_step(session, case.id)
        actions.append(result.action)
        if result.next_hop is None:
            return actions


def routed(session: Session, category: str = "HW-01", **kwargs: Any) -> Case:
    case = new_case(session, category, **kwargs)
    route(session, case)
    return case


@pytest.fixture
def foreign(session: Session) -> dict[str, User]:
    """Staff of other units: a handler of another street, a dispatcher of another district."""
    return {
        "handler": make_user(session, "handler-other-street", Role.handler, "420102-S2"),
        "community": make_user(session, "handler-other-community", Role.handler, "420102-S1-C2"),
        "dispatcher": make_user(session, "dispatcher-other-district", Role.dispatcher, "420103"),
    }


# --- automatic routing -------------------------------------------------------------------------


def test_community_category_hops_down_the_levels(session: Session) -> None:
    case = new_case(session, "HW-01")
    assert route(session, case) == ["route", "route", "dispatch"]
    assert case.state == State.dispatched
    assert case.current_unit.code == COMMUNITY
    assert case.sent_by_unit.code == "420102-S1"  # a return goes back to the street's dispatcher
    assert case.handling_level == "community" and case.rule_set_version is not None
    # HW-01 is 2 working days from intake; the sign-for clock starts at dispatch.
    assert case.deadline is not None and case.deadline > case.created_at + timedelta(days=1)
    assert case.sign_for_deadline is not None and case.sign_for_deadline > utcnow()
    hops = session.scalars(
        select(RoutingHop).where(RoutingHop.case_id == case.id).order_by(RoutingHop.hop_no)
    ).all()
    assert [(h.hop_no, h.action) for h in hops] == [(1, "route"), (2, "route"), (3, "dispatch")]
    assert [e.action for e in case.events] == ["submit", "route", "route", "dispatch"]


def test_routing_twice_changes_nothing(session: Session) -> None:
    case = routed(session)
    version, events = case.version, len(case.events)
    assert services.route_step(session, case.id).action == "noop"
    assert services.route_step(session, case.id, hop_no=2).action == "noop"
    assert (case.version, len(case.events)) == (version, events)


def test_hop_uniqueness_is_a_database_constraint(session: Session) -> None:
    case = routed(session)
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(RoutingHop(case_id=case.id, hop_no=1, action="route"))
        session.flush()


def test_a_stale_hop_number_is_a_noop(session: Session) -> None:
    case = new_case(session)
    assert services.route_step(session, case.id, hop_no=2).action == "noop"
    assert case.state == State.submitted


def test_departmental_category_goes_straight_to_the_department(session: Session) -> None:
    case = routed(session, "SW-01")
    assert case.state == State.dispatched and case.current_unit.code == "D-SWJ"
    assert case.sent_by_unit is None


def test_missing_case_is_a_permanent_failure(session: Session) -> None:
    with pytest.raises(services.RoutingFailed):
        services.route_step(session, 987654)


def test_no_rule_sends_the_case_to_city_triage_and_place_rules_to_the_district(session: Session) -> None:
    services.current_rules(session)
    services.publish_rules(session, [Rule("community", category="HW-02")], None, note="只有一条")
    case = routed(session, "HW-01")
    assert case.state == State.triage and case.current_unit is None
    services.publish_rules(session, [Rule("street", category="HW-02", place="420102")], None)
    case = routed(session, "HW-01")
    assert case.state == State.triage and case.current_unit.code == "420102"


def test_new_rule_version_applies_to_new_cases_only(session: Session) -> None:
    old = routed(session, "HW-01")
    v1 = old.rule_set_version
    rule_set = services.import_rules_csv(
        session, "category,group,place,level,unit,priority\nHW-01,,,street,,0\n", user(session, "admin")
    )
    assert rule_set.version == v1 + 1
    new = routed(session, "HW-01")
    assert new.current_unit.code == "420102-S1" and new.rule_set_version == rule_set.version
    assert old.current_unit.code == COMMUNITY and old.rule_set_version == v1


def test_only_admins_publish_rules_and_bad_rules_are_rejected(session: Session) -> None:
    with pytest.raises(services.RulesForbidden):
        services.import_rules_csv(session, "category,level\n*,street\n", user(session, "dispatcher-city"))
    with pytest.raises(ValueError) as rejected:
        services.publish_rules(session, [Rule("street", category="NOPE-1", unit_code="NOPE")], None)
    assert "NOPE-1" in str(rejected.value) and "NOPE" in str(rejected.value)


# --- actions: the allowed actor succeeds, staff of other units are refused ---------------------


def accepted(session: Session) -> Case:
    case = routed(session)
    services.accept(session, case.id, user(session, "handler-community"))
    return case


def resolved(session: Session) -> Case:
    case = accepted(session)
    services.resolve(
        session, case.id, user(session, "handler-community"), result="已清运", reply="已安排清运"
    )
    return case


def with_extension(session: Session) -> Case:
    case = accepted(session)
    services.request_extension(
        session, case.id, user(session, "handler-community"), reason="需协调", extra_working_days=3
    )
    return case


def escalated(session: Session) -> Case:
    case = accepted(session)
    services.escalate(
        session, case.id, user(session, "handler-community"), note="需要街道协调", to_unit_codes=["420102-S1"]
    )
    return case


def in_triage(session: Session) -> Case:
    services.current_rules(session)
    services.publish_rules(session, [Rule("community", category="HW-02")], None)
    case = routed(session, "HW-01")
    services.publish_rules(session, [Rule("community", category="*")], None)
    return case


def at_street(session: Session) -> Case:
    return routed(session, "ZS-01")  # a street-level category


def mergeable(session: Session) -> Case:
    routed(session)
    return routed(session)


def earlier_case(session: Session, case: Case) -> dict[str, Any]:
    first = session.scalar(
        select(Case).where(Case.id < case.id, Case.state == "dispatched").order_by(Case.id.desc())
    )
    assert first is not None
    return {"into_case_id": first.id, "reason": "重复"}


Setup = Callable[[Session], Case]
ACTIONS: list[tuple[str, Setup, str, dict[str, Any], str, str]] = [
    # action, setup, allowed actor, values, expected state, foreign actor kind
    ("accept", routed, "handler-community", {}, "accepted", "community"),
    ("return_case", routed, "handler-community", {"reason": "wrong_place"}, "dispatching", "community"),
    (
        "escalate",
        accepted,
        "handler-community",
        {"note": "需要协调", "to_unit_codes": ["420102-S1"]},
        "accepted",
        "community",
    ),
    ("respond_escalation", escalated, "handler-street", {"response": "已到场"}, "accepted", "handler"),
    (
        "request_extension",
        accepted,
        "handler-community",
        {"reason": "材料", "extra_working_days": 2},
        "accepted",
        "community",
    ),
    ("approve_extension", with_extension, "dispatcher-street", {}, "accepted", "dispatcher"),
    (
        "refuse_extension",
        with_extension,
        "dispatcher-street",
        {"reason": "理由不足"},
        "accepted",
        "dispatcher",
    ),
    (
        "resolve",
        accepted,
        "handler-community",
        {"result": "已处理", "reply": "已处理完毕"},
        "resolved",
        "community",
    ),
    ("callback", resolved, "operator", {"solved": True, "satisfaction": "satisfied"}, "resolved", "handler"),
    ("reopen", resolved, "dispatcher-street", {"reason": "居民来电反映仍未解决"}, "dispatched", "dispatcher"),
    ("supervise", accepted, "dispatcher-district", {"reason": "群众反映强烈"}, "accepted", "dispatcher"),
    ("merge", mergeable, "dispatcher-city", {}, "merged", "dispatcher"),
    ("close", resolved, "dispatcher-street", {}, "resolved", "handler"),
    ("dispatch", in_triage, "dispatcher-city", {"unit_code": COMMUNITY}, "dispatched", "dispatcher"),
    ("pass_down", at_street, "handler-street", {"unit_code": "420102-S1-C2"}, "dispatched", "handler"),
]


@pytest.mark.parametrize(
    ("action", "setup", "username", "values", "state", "_kind"), ACTIONS, ids=[a[0] for a in ACTIONS]
)
def test_each_action_by_its_actor(
    session: Session, action: str, setup: Setup, username: str, values: dict[str, Any], state: str, _kind: str
) -> None:
    case = setup(session)
    if action == "merge":
        values = earlier_case(session, case)
    if action == "close":
        services.callback(session, case.id, user(session, "operator"), solved=True, satisfaction="satisfied")
        state = "closed"
    actor = user(session, username)
    assert Action(action) in services.allowed_actions(session, case, actor)
    before = len(case.events)
    event = services.perform(session, action, case.id, actor, **values)
    assert case.state == state
    assert event.action == action and event.actor_id == actor.id and event.actor_unit_id == actor.unit_id
    assert len(case.events) == before + 1


@pytest.mark.parametrize(
    ("action", "setup", "username", "values", "state", "kind"), ACTIONS, ids=[a[0] for a in ACTIONS]
)
def test_each_action_refused_to_other_units(
    session: Session,
    foreign: dict[str, User],
    action: str,
    setup: Setup,
    username: str,
    values: dict[str, Any],
    state: str,
    kind: str,
) -> None:
    case = setup(session)
    if action == "merge":
        values = earlier_case(session, case)
    events, snapshot_state = len(case.events), case.state
    for outsider in {foreign["handler"].id: foreign["handler"], foreign[kind].id: foreign[kind]}.values():
        assert services.allowed_actions(session, case, outsider) == []
        with pytest.raises(TransitionError):
            services.perform(session, action, case.id, outsider, **values)
    assert (case.state, len(case.events)) == (snapshot_state, events)


def test_forbidden_transition_says_why_in_chinese(session: Session) -> None:
    case = resolved(session)
    with pytest.raises(TransitionError) as refused:
        services.return_case(session, case.id, user(session, "handler-community"), reason="wrong_place")
    assert refused.value.code == "state_forbidden" and "办结" in refused.value.message


def test_returns_go_back_up_then_to_triage_at_the_limit(session: Session) -> None:
    case = routed(session)
    services.return_case(session, case.id, user(session, "handler-community"), reason="wrong_place")
    assert case.state == State.dispatching and case.current_unit.code == "420102-S1" and not case.auto_routing
    services.dispatch_manually(session, case.id, user(session, "dispatcher-street"), unit_code="420102-S1-C2")
    handler_c2 = make_user(session, "handler-c2", Role.handler, "420102-S1-C2")
    services.return_case(session, case.id, handler_c2, reason="other", note="非本社区")
    assert case.state == State.triage and case.returns_count == 2
    with pytest.raises(TransitionError) as refused:  # no ping-pong back to a unit that returned it
        services.dispatch_manually(session, case.id, user(session, "dispatcher-city"), unit_code=COMMUNITY)
    assert refused.value.code == "ping_pong"
    services.dispatch_manually(
        session,
        case.id,
        user(session, "dispatcher-city"),
        unit_code=COMMUNITY,
        force=True,
        note="核实属本社区",
    )
    assert case.state == State.dispatched


def test_callback_dissatisfied_reopens_with_a_new_deadline(session: Session) -> None:
    case = resolved(session)
    services.callback(
        session, case.id, None, solved=False, satisfaction="dissatisfied", comment="还是没人清运"
    )
    assert case.state == State.dispatched and case.reopen_count == 1 and case.current_unit.code == COMMUNITY


def test_approved_extension_moves_the_deadline(session: Session) -> None:
    case = with_extension(session)
    requested = case.requested_deadline
    services.approve_extension(session, case.id, user(session, "dispatcher-street"))
    assert case.deadline == requested and not case.extension_pending and case.extensions_count == 1


# --- queues ------------------------------------------------------------------------------------


def test_unit_queue_shows_my_units_cases_overdue_and_new_first(
    session: Session, foreign: dict[str, User]
) -> None:
    handler = user(session, "handler-community")
    first, second, third = routed(session), routed(session), routed(session)
    services.accept(session, first.id, handler)
    services.accept(session, third.id, handler)
    third.deadline = utcnow() - timedelta(hours=1)
    session.flush()
    queue = [c.id for c in services.unit_queue(session, handler) if c.id in (first.id, second.id, third.id)]
    assert queue == [third.id, second.id, first.id]
    assert [c.id for c in services.unit_queue(session, handler, overdue=True)] == [third.id]
    assert [c.id for c in services.unit_queue(session, handler, search=second.tracking_number)] == [second.id]
    assert services.unit_queue(session, handler, state="accepted", category="ZZ-99") == []
    assert all(
        c.id not in (first.id, second.id, third.id) for c in services.unit_queue(session, foreign["handler"])
    )


def test_triage_queue_is_the_dispatchers_subtree(session: Session, foreign: dict[str, User]) -> None:
    returned = routed(session)
    services.return_case(session, returned.id, user(session, "handler-community"), reason="wrong_place")
    triaged = in_triage(session)
    extension = with_extension(session)
    city = {c.id for c in services.triage_queue(session, user(session, "dispatcher-city"))}
    assert {returned.id, triaged.id, extension.id} <= city
    district = {c.id for c in services.triage_queue(session, user(session, "dispatcher-district"))}
    assert {returned.id, extension.id} <= district and triaged.id not in district
    assert not {returned.id, triaged.id, extension.id} & {
        c.id for c in services.triage_queue(session, foreign["dispatcher"])
    }
    assert services.triage_queue(session, user(session, "handler-community")) == []


def test_summoned_department_sees_and_answers(session: Session) -> None:
    case = routed(session, "WY-01")  # 物业服务质量: the catalogue names 市房管局
    services.accept(session, case.id, user(session, "handler-community"))
    fgj = user(session, "handler-fgj")
    assert Action.respond_escalation not in services.allowed_actions(session, case, fgj)
    services.escalate(
        session, case.id, user(session, "handler-community"), note="物业问题", to_unit_codes=["D-FGJ"]
    )
    assert case.id in {c.id for c in services.unit_queue(session, fgj)}
    services.respond_escalation(session, case.id, fgj, response="已联系物业")
    assert case.summons[0].response == "已联系物业" and case.summons[0].closed_at is not None


# --- sweeper, deadline scan, notices -----------------------------------------------------------


def test_sweeper_routes_a_case_stuck_in_submitted(session: Session) -> None:
    case = new_case(session)
    session.commit()  # the fixture turns this into a savepoint; the job's own session sees the case
    jobs.sweep(older_than_seconds=60, now=utcnow())
    session.expire_all()
    assert case.state == State.submitted  # younger than the threshold: left to its own job
    assert jobs.sweep(older_than_seconds=60, now=utcnow() + timedelta(minutes=5)) >= 1
    session.expire_all()
    assert case.state == State.dispatched and case.current_unit.code == COMMUNITY


def test_one_job_routes_a_case_down_every_level(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """City → district → street → community in one job and one transaction, a hop row for each hop."""
    from core import jobs as ports

    held: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(ports, "enqueue", lambda task, *args: held.append((task, args)))
    case = new_case(session)
    session.commit()
    held.clear()
    assert jobs.route_case(case.id) == "dispatch"
    session.expire_all()
    assert case.state == State.dispatched and case.current_unit.code == COMMUNITY
    hops = session.scalars(select(RoutingHop.hop_no).where(RoutingHop.case_id == case.id)).all()
    assert sorted(hops) == [1, 2, 3]
    assert [t for t, _ in held if t == jobs.ROUTE_CASE] == []  # no job per hop
    assert jobs.route_case(case.id, 1) == "noop"  # a repeated job changes nothing


def test_a_later_hop_failing_transiently_undoes_the_job_and_the_retry_routes_it_all(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    case = new_case(session)
    session.commit()
    real = services._hop
    calls: list[int | None] = []

    def flaky(db: Any, locked: Any, view: Any, hop_no: int | None, now: Any) -> Any:
        calls.append(hop_no)
        if len(calls) == 2:
            raise OperationalError("SELECT 1", {}, Exception("connection lost"))
        return real(db, locked, view, hop_no, now)

    monkeypatch.setattr(services, "_hop", flaky)
    with pytest.raises(OperationalError):  # RQ retries the job (transient)
        jobs.route_case(case.id)
    session.expire_all()
    # Hop 1 ran, but nothing of the job was kept: no case half-way down, no hop row to skip on retry.
    assert case.state == State.submitted and case.hop_count in (0, None)
    assert session.scalars(select(RoutingHop).where(RoutingHop.case_id == case.id)).all() == []
    monkeypatch.setattr(services, "_hop", real)
    assert jobs.route_case(case.id) == "dispatch"  # the retry
    session.expire_all()
    assert case.state == State.dispatched and case.current_unit.code == COMMUNITY
    hops = session.scalars(select(RoutingHop.hop_no).where(RoutingHop.case_id == case.id)).all()
    assert sorted(hops) == [1, 2, 3]


def test_route_job_records_permanent_failures(session: Session) -> None:
    assert jobs.route_case(987654) == "failed:case_missing"


def test_deadline_scan_warns_then_supervises_once(session: Session) -> None:
    case = accepted(session)
    assert case.deadline is not None
    just_before = case.deadline - timedelta(minutes=5)
    counts = services.scan_deadlines(session, warning_share=0.8, now=just_before)
    assert counts["warning"] >= 1 and not case.supervised
    after = case.deadline + timedelta(hours=1)
    assert services.scan_deadlines(session, now=after)["overdue"] >= 1
    assert case.supervised and case.supervise_count == 1 and case.events[-1].action == "supervise"
    again = services.scan_deadlines(session, now=after + timedelta(hours=1))
    assert case.supervise_count == 1 and again["overdue"] == 0
    kinds = session.scalars(select(DeadlineFlag.kind).where(DeadlineFlag.case_id == case.id)).all()
    assert sorted(kinds) == ["overdue", "warning"]


def test_notices_are_stored_and_delivered_after_commit(session: Session) -> None:
    memory = notify.MemoryNotifier()
    previous = notify.set_notifier(memory)
    try:
        resident = user(session, "resident")
        case = routed(session, resident=resident)
        services.accept(session, case.id, user(session, "handler-community"))
        assert memory.sent == []
        session.commit()
    finally:
        notify.set_notifier(previous)
    community = unit_by_code(session, COMMUNITY)
    assert community is not None
    assert ("unit", community.id) in {(k, i) for k, i, _n, _m in memory.sent}
    assert ("resident", resident.id) in {(k, i) for k, i, _n, _m in memory.sent}
    assert all("13800001234" not in m and "测试" not in m for *_x, m in memory.sent)
    assert notify.notices_for(session, "resident", resident.id)[0].case_id == case.id
    assert session.scalar(select(Notice).where(Notice.case_id == case.id)) is not None


def test_scan_closes_a_resolved_case_once_its_callback_window_passes_unrated(session: Session) -> None:
    resident = user(session, "resident")
    case = routed(session, resident=resident)
    handler = user(session, "handler-community")
    services.accept(session, case.id, handler)
    services.resolve(session, case.id, handler, result="已清运", reply="已安排清运")
    assert case.callback_due is not None
    due = case.callback_due
    assert services.scan_deadlines(session, now=due - timedelta(minutes=1))["closed"] == 0
    assert case.state == State.resolved  # the window is still open: the resident may rate
    counts = services.scan_deadlines(session, now=due + timedelta(hours=1))
    assert counts["closed"] == 1 and case.state == State.closed
    event = case.events[-1]
    assert (event.action, event.from_state, event.to_state) == ("close", "resolved", "closed")
    assert event.actor_role == "system" and event.actor_id is None
    assert event.details["callback_timeout"] is True and event.reason == services.AUTO_CLOSE_NOTE
    assert "已自动归档" in notify.notices_for(session, "resident", resident.id)[0].message
    events = len(case.events)
    assert services.scan_deadlines(session, now=due + timedelta(days=2))["closed"] == 0
    assert len(case.events) == events and case.state == State.closed


def test_scan_leaves_a_rated_case_to_the_dispatcher(session: Session) -> None:
    case = resolved(session)
    services.callback(
        session, case.id, user(session, "operator"), solved=True, satisfaction="satisfied", comment="好"
    )
    assert case.callback_due is not None
    assert services.scan_deadlines(session, now=case.callback_due + timedelta(days=1))["closed"] == 0
    assert case.state == State.resolved and case.satisfaction == "satisfied"


def test_scan_refuses_a_warning_share_outside_zero_to_one(session: Session) -> None:
    for share in (0.0, 1.5):
        with pytest.raises(ValueError) as refused:
            services.scan_deadlines(session, warning_share=share)
        assert getattr(refused.value, "code", None) == "invalid_warning_share"


def test_scan_command_and_beat_read_the_configured_warning_share(
    app: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import RedisError

    from app import redis_conn, routing_cli

    seen: list[float] = []
    zero = {"warning": 0, "overdue": 0, "sign_for_overdue": 0, "closed": 0}

    def scan(warning_share: float) -> dict[str, int]:
        seen.append(warning_share)
        return zero

    monkeypatch.setattr(jobs, "scan_deadlines", scan)
    monkeypatch.setitem(app.config, "DEADLINE_WARNING_SHARE", 0.65)
    result = app.test_cli_runner().invoke(args=["routing", "scan"])
    assert result.exit_code == 0 and "回访超期自动归档 0" in result.output
    assert app.test_cli_runner().invoke(args=["routing", "scan", "--warning-share", "0.9"]).exit_code == 0

    class RedisDown:
        def set(self, *args: Any, **kwargs: Any) -> bool:
            raise RedisError("down")

    monkeypatch.setattr(redis_conn, "redis_for", lambda _app: RedisDown())
    assert routing_cli.run_beat_once(app, 60) is True  # Redis down: the scan still runs
    assert seen == [0.65, 0.9, 0.65]
    monkeypatch.setitem(app.config, "DEADLINE_WARNING_SHARE", 1.5)
    result = app.test_cli_runner().invoke(args=["routing", "scan"])
    assert result.exit_code != 0 and "DEADLINE_WARNING_SHARE" in result.output


def test_warning_share_comes_from_the_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import config

    assert config.load(tmp_path)["DEADLINE_WARNING_SHARE"] == 0.8
    monkeypatch.setenv("DEADLINE_WARNING_SHARE", "0.7")
    assert config.load(tmp_path)["DEADLINE_WARNING_SHARE"] == 0.7
