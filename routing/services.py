"""Routing use cases: automatic hops, every lifecycle action, deadline scans, queues (rule sets: routing.rulesets).

Every action is ``fn(session, case_id, actor, **plain values, now=None) -> CaseEvent``: it loads the
case, refuses it if ``actor`` may not see it, asks :func:`routing.lifecycle.decide` (which raises
:class:`~routing.lifecycle.TransitionError` with a Chinese reason), applies the transition to the
case, writes the audit :class:`~routing.models.CaseEvent`, records notices and flushes. The caller
commits (and enqueues follow-up jobs after the commit).

Times: every stored timestamp is naive UTC (``core.db.utcnow``); deadlines are computed on the
working-day calendar in Beijing time (UTC+8, no daylight saving since 1991) and stored back as UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from core.db import DbSession, utcnow
from core.i18n import N_, DomainError
from core.models import Category, Level, LimitUnit, Role, Unit, UnitKind, User, city_root, unit_by_code
from core.quarter import BEIJING_OFFSET
from routing import access, notify
from routing.access import acts_for_city
from routing.calendar import Limit, WorkCalendar, is_provisional
from routing.calendar import deadline as calendar_deadline
from routing.calendar_store import working_calendar
from routing.lifecycle import (
    DEFAULT_POLICY,
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
    decide,
)
from routing.lifecycle import allowed_actions as lifecycle_allowed_actions
from routing.models import (
    Case,
    CaseEvent,
    DeadlineFlag,
    RoutingFailure,
    RoutingHop,
    RuleSet,
    Summons,
)
from routing.rules import (
    HOTLINE_CENTRE_CODE,
    PlaceUnit,
    escalation_departments,
    triage_place,
)
from routing.rules import (
    resolve as resolve_placement,
)

# The rule-set section moved to routing.rulesets; these names stay importable from here.
from routing.rulesets import (  # noqa: F401 (re-exports)
    _RULES_CACHE,
    RoutingFailed,
    RuleDiff,
    RuleSetView,
    RulesForbidden,
    StaleRuleSet,
    _cached_view,
    category_ref,
    check_rules_csv,
    current_rules,
    diff_rules,
    import_rules_csv,
    known_codes,
    publish_rules,
    rule_set_versions,
    rules_of_version,
    validate_rules,
)

log = logging.getLogger(__name__)

# Beijing time is UTC+8 all year round (no daylight saving since 1991): the one offset lives in core.quarter.
LOCAL_OFFSET = BEIJING_OFFSET
CALLBACK_WORKING_DAYS = 3
DEFAULT_WARNING_SHARE = 0.8
POLICY: Policy = DEFAULT_POLICY
HANDLING_STATES = (State.dispatched.value, State.accepted.value)
OPEN_STATE_VALUES = tuple(s.value for s in State if s not in (State.closed, State.merged))


class CaseNotFound(TransitionError):
    """No case with that id, or one the actor may not see (existence is not leaked)."""

    status = 404

    def __init__(self) -> None:
        super().__init__("not_found", N_("工单不存在或无权查看"))


# --- time and deadlines -------------------------------------------------------------------------


def to_local(moment: datetime) -> datetime:
    """Naive UTC → naive Beijing time."""
    return moment + LOCAL_OFFSET


def to_utc(moment: datetime) -> datetime:
    """Naive Beijing time → naive UTC."""
    return moment - LOCAL_OFFSET


def resolution_limit(category: Category) -> Limit:
    """The category's resolution limit."""
    return Limit(category.resolution_limit, LimitUnit(category.resolution_unit))


def sign_for_limit(category: Category) -> Limit:
    """The sign-for limit: office hours, except clock hours for categories that run on clock time."""
    clock = LimitUnit(category.resolution_unit) == LimitUnit.calendar_hours
    return Limit(category.sign_for_hours, LimitUnit.calendar_hours if clock else LimitUnit.working_hours)


def calendar(session: Session) -> WorkCalendar:
    """The stored working calendar (cached per process; see routing.calendar_store)."""
    return working_calendar(session)


def limit_deadline(session: Session, start: datetime, limit: Limit) -> datetime:
    """When ``limit`` runs out for a clock started at ``start`` (both naive UTC)."""
    return to_utc(calendar_deadline(calendar(session), to_local(start), limit))


def resolution_deadline(session: Session, category: Category, start: datetime) -> datetime:
    """The handling deadline of a case of ``category`` whose clock starts at ``start``."""
    return limit_deadline(session, start, resolution_limit(category))


def sign_for_deadline(session: Session, category: Category, start: datetime) -> datetime:
    """The sign-for deadline of a case of ``category`` dispatched at ``start``."""
    return limit_deadline(session, start, sign_for_limit(category))


def deadline_basis(start: datetime, limit: Limit) -> dict[str, Any]:
    """How a deadline was counted, as stored on the case: clock start (ISO UTC), amount and unit."""
    return {"start": start.isoformat(), "amount": limit.amount, "unit": LimitUnit(limit.unit).value}


def basis_limit(basis: dict[str, Any]) -> tuple[datetime, Limit]:
    """The clock start and limit of a stored ``deadline_basis``."""
    return datetime.fromisoformat(basis["start"]), Limit(float(basis["amount"]), LimitUnit(basis["unit"]))


def note_deadline(session: Session, case: Case, basis: dict[str, Any] | None) -> None:
    """Record how ``case.deadline`` was counted and mark it 暂定 when it touches a year without notice."""
    case.deadline_basis = basis
    if basis is None or case.deadline is None:
        case.deadline_provisional = False
        return
    start, limit = basis_limit(basis)
    case.deadline_provisional = is_provisional(
        calendar(session), to_local(start), to_local(case.deadline), limit
    )


def format_local(moment: datetime | None) -> str:
    """A UTC moment as Beijing time for messages, e.g. "2026-10-09 17:30"."""
    return f"{to_local(moment):%Y-%m-%d %H:%M}" if moment is not None else ""


# --- mapping between rows and the lifecycle ------------------------------------------------------


def unit_ref(unit: Unit | None) -> UnitRef | None:
    """The lifecycle's view of a unit: id, level, ancestors (root first)."""
    if unit is None:
        return None
    return UnitRef(unit.id, unit.level.value, tuple(unit.ancestor_ids()[:-1]))


def actor_for(session: Session, user: User | None) -> Actor:
    """The lifecycle actor of a user; ``None`` is the resident holding the case's private link."""
    if user is None:
        return Actor(user_id=None, role=Role.resident)
    if acts_for_city(user):
        root = city_root(session)
        return Actor(user.id, Role(user.role), root.id if root else user.unit_id, ())
    unit = user.unit
    path = tuple(unit.ancestor_ids()[:-1]) if unit is not None else ()
    return Actor(user.id, Role(user.role), user.unit_id, path)


def snapshot(case: Case, *, summons: bool = True) -> CaseSnapshot:
    """The lifecycle's view of a case; ``summons=False`` leaves out the escalation (one query less)
    for commands that neither read nor change it (route, dispatch, triage, close)."""
    pending = frozenset(s.unit_id for s in case.summons if s.closed_at is None) if summons else frozenset()
    return CaseSnapshot(
        state=State(case.state),
        case_id=case.id,
        received_at=case.created_at,
        resident_id=case.resident_id,
        unit=unit_ref(case.current_unit),
        sent_by=unit_ref(case.sent_by_unit),
        deadline=case.deadline,
        returns_count=case.returns_count or 0,
        returned_by=frozenset(case.returned_by or ()),
        reopen_count=case.reopen_count or 0,
        extension_pending=bool(case.extension_pending),
        requested_deadline=case.requested_deadline,
        extensions_count=case.extensions_count or 0,
        escalation_open=bool(pending),
        escalation_pending=pending,
        supervised=bool(case.supervised),
        supervise_count=case.supervise_count or 0,
        solved=case.solved,
        satisfaction=Satisfaction(case.satisfaction) if case.satisfaction else None,
        callback_due=case.callback_due,
        flagged=bool(case.flagged),
        merged_into=case.merged_into_id,
    )


_PLAIN_FIELDS = (
    "deadline",
    "returns_count",
    "reopen_count",
    "extension_pending",
    "requested_deadline",
    "extensions_count",
    "supervised",
    "supervise_count",
    "solved",
    "callback_due",
    "flagged",
)


def _apply(
    session: Session,
    case: Case,
    transition: Transition,
    user: User | None,
    now: datetime,
    response: str | None = None,
) -> CaseEvent:
    """Write the transition onto the case and append its audit event."""
    after, changes = transition.after, transition.changes()
    case.state = after.state.value
    # Foreign keys are set with the relationships so that callers may read them before the flush.
    if "unit" in changes:
        case.current_unit = session.get(Unit, after.unit.id) if after.unit is not None else None
        case.current_unit_id = after.unit.id if after.unit is not None else None
        case.handling_level = after.unit.level if after.unit is not None else None
    if "sent_by" in changes:
        case.sent_by_unit = session.get(Unit, after.sent_by.id) if after.sent_by is not None else None
        case.sent_by_unit_id = after.sent_by.id if after.sent_by is not None else None
    for name in _PLAIN_FIELDS:
        if name in changes:
            setattr(case, name, changes[name])
    if "returned_by" in changes:
        case.returned_by = sorted(after.returned_by)
    if "satisfaction" in changes:
        case.satisfaction = after.satisfaction.value if after.satisfaction is not None else None
    if "merged_into" in changes:
        case.merged_into_id = after.merged_into
    if "escalation_pending" in changes:
        for summons in case.summons:
            if summons.closed_at is None and summons.unit_id not in after.escalation_pending:
                summons.closed_at = now
                if response is not None and user is not None and summons.unit_id == user.unit_id:
                    summons.response = response
        for unit_id in sorted(after.escalation_pending - transition.before.escalation_pending):
            case.summons.append(Summons(unit_id=unit_id, requested_at=now))
    event = transition.event
    row = CaseEvent(
        action=event.action.value,
        from_state=event.from_state.value,
        to_state=event.to_state.value,
        from_unit_id=event.from_unit_id,
        to_unit_id=event.to_unit_id,
        # The person's real unit (a hotline dispatcher acts for the city but sits at the hotline centre).
        actor_id=user.id if user is not None else None,
        actor_unit_id=user.unit_id if user is not None else None,
        actor_role=_role_label(user, event.actor_id, event.actor_role),
        reason=event.reason,
        details=dict(event.details),
        created_at=now,
    )
    # Through the many-to-one side: the backref queues the row on an unloaded ``case.events`` instead
    # of loading the whole timeline (a query per action), and a loaded one still sees it.
    session.add(row)
    row.case = case
    return row


def _role_label(user: User | None, actor_id: int | None, actor_role: str) -> str:
    if user is not None:
        return user.role.value
    # The lifecycle's SYSTEM_ACTOR is an admin without a user: record it as the system, not as an admin.
    return "system" if actor_id is None and actor_role == Role.admin.value else actor_role


# --- loading and visibility --------------------------------------------------------------------


def can_view(session: Session, user: User | None, case: Case) -> bool:
    """Whether ``user`` may see the case (the rules live in routing.access)."""
    return access.can_view(user, case)


def case_for(session: Session, case_id: int, user: User | None) -> Case:
    """The case if ``user`` may see it; :class:`CaseNotFound` otherwise (existence is not leaked)."""
    case = session.get(Case, case_id)
    if case is None or not can_view(session, user, case):
        raise CaseNotFound()
    return case


def _act(
    session: Session,
    case_id: int,
    user: User | None,
    command: Command,
    now: datetime | None,
    *,
    visible: bool = True,
    response: str | None = None,
) -> tuple[Case, Transition, CaseEvent, datetime]:
    now = now or utcnow()
    case = case_for(session, case_id, user) if visible else session.get(Case, case_id)
    if case is None:
        raise CaseNotFound()
    transition = decide(snapshot(case), command, actor_for(session, user), now, POLICY)
    event = _apply(session, case, transition, user, now, response)
    session.flush()
    return case, transition, event, now


def _unit(session: Session, code: str) -> Unit:
    unit = unit_by_code(session, (code or "").strip())
    if unit is None or not unit.active:
        raise TransitionError("invalid_target", N_("所选单位不存在或已停用"))
    return unit


def _tell_resident(session: Session, case: Case, message: str, *, event: str | None = None) -> None:
    # An ``event`` also texts a resident without an account who opted in (routing.messages).
    notify.send(session, "resident", case.resident_id, case, message, event=event)


def _tell_unit(
    session: Session, unit_id: int | None, case: Case, message: str, *, event: str | None = None
) -> None:
    if unit_id is None:
        hotline = unit_by_code(session, HOTLINE_CENTRE_CODE)
        unit_id = hotline.id if hotline is not None else None
    notify.send(session, "unit", unit_id, case, message, event=event)


def _start_handling_clock(session: Session, case: Case, now: datetime) -> None:
    case.sign_for_deadline = sign_for_deadline(session, case.category, now)


def _first_deadline(session: Session, case: Case) -> tuple[datetime, dict[str, Any] | None]:
    """The case's deadline for a dispatch: kept when it has one, else counted from intake."""
    if case.deadline is not None:
        return case.deadline, case.deadline_basis
    limit = resolution_limit(case.category)
    return limit_deadline(session, case.created_at, limit), deadline_basis(case.created_at, limit)


# --- lifecycle actions -------------------------------------------------------------------------


def dispatch_manually(
    session: Session,
    case_id: int,
    actor: User,
    *,
    unit_code: str,
    force: bool = False,
    note: str = "",
    now: datetime | None = None,
) -> CaseEvent:
    """A dispatcher places a case from triage or a return (派单) at a handling unit."""
    now = now or utcnow()
    case = case_for(session, case_id, actor)
    target = _unit(session, unit_code)
    deadline, basis = _first_deadline(session, case)
    command = Dispatch(unit_ref(target), deadline=deadline, force=force, note=note)  # type: ignore[arg-type]
    case, _t, event, now = _act(session, case_id, actor, command, now)
    case.auto_routing = False
    note_deadline(session, case, basis)
    _start_handling_clock(session, case, now)
    _tell_unit(
        session, target.id, case, f"新工单 {case.tracking_number} 已派至本单位，请及时签收", event="new_case"
    )
    notify.announce(session, case, "dispatched")
    return event


def pass_down(
    session: Session,
    case_id: int,
    actor: User,
    *,
    unit_code: str,
    note: str = "",
    now: datetime | None = None,
) -> CaseEvent:
    """The receiving level passes a case to a unit below it instead of handling it (下派)."""
    target = _unit(session, unit_code)
    case, _t, event, now = _act(session, case_id, actor, PassDown(unit_ref(target), note=note), now)  # type: ignore[arg-type]
    _start_handling_clock(session, case, now)
    _tell_unit(
        session, target.id, case, f"工单 {case.tracking_number} 已下派至本单位，请及时签收", event="new_case"
    )
    return event


def accept(
    session: Session, case_id: int, actor: User, *, note: str = "", now: datetime | None = None
) -> CaseEvent:
    """Sign for a case at the actor's unit (签收)."""
    case, _t, event, now = _act(session, case_id, actor, Accept(note=note), now)
    case.accepted_at = now
    unit_name = case.current_unit.name if case.current_unit else ""
    _tell_resident(session, case, f"您的诉求 {case.tracking_number} 已由{unit_name}签收，正在办理")
    return event


def return_case(
    session: Session, case_id: int, actor: User, *, reason: str, note: str = "", now: datetime | None = None
) -> CaseEvent:
    """Return a case as not this unit's (退单) with one of :class:`ReturnReason`."""
    try:
        why = ReturnReason(reason)
    except ValueError:
        raise TransitionError("invalid_reason", N_("请选择有效的退单理由")) from None
    case, transition, event, now = _act(session, case_id, actor, ReturnCase(why, note=note), now)
    case.auto_routing = False
    case.sign_for_deadline = None
    after = transition.after
    what = "请重新分派" if after.state is State.dispatching else "退单次数已达上限，请人工分派"
    _tell_unit(session, after.unit_id, case, f"工单 {case.tracking_number} 被退回（{why.label}），{what}")
    return event


def escalation_targets(session: Session, case: Case) -> list[Unit]:
    """Whom the case's unit may summon (吹哨): the levels above it, nearest first, then the departments
    its category allows (the catalogue's and those the current dispatch rules send it to)."""
    unit = case.current_unit
    if unit is None:
        return []
    above = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(unit.ancestor_ids()[:-1])))}
    chain = [above[i] for i in reversed(unit.ancestor_ids()[:-1]) if i in above and above[i].active]
    codes = escalation_departments(
        current_rules(session).rules, category_ref(case.category), place_units(case)
    )
    depts = session.scalars(
        select(Unit)
        .where(Unit.code.in_(codes), Unit.kind.in_([UnitKind.department, UnitKind.utility]))
        .where(Unit.active.is_(True), Unit.id != unit.id)
        .order_by(Unit.code)
    )
    return [*chain, *depts]


def escalate(
    session: Session,
    case_id: int,
    actor: User,
    *,
    note: str,
    to_unit_codes: Sequence[str] = (),
    now: datetime | None = None,
) -> CaseEvent:
    """Call the levels above or the departments the case's category allows in to act jointly (上报 /
    吹哨); any other target is refused (the lifecycle checks, see :func:`escalation_targets`)."""
    case = case_for(session, case_id, actor)
    # No silent default (it used to be the level above): the whistle names whom it calls.
    if not to_unit_codes:
        raise TransitionError("invalid_target", N_("请至少选择一个上级单位或部门"))
    targets = [_unit(session, code) for code in to_unit_codes]
    refs = tuple(ref for ref in (unit_ref(u) for u in targets) if ref is not None)
    allowed = frozenset(u.id for u in escalation_targets(session, case) if u.is_department)
    command = Escalate(refs, note=note, departments=allowed)
    case, _t, event, now = _act(session, case_id, actor, command, now)
    for unit in targets:
        _tell_unit(session, unit.id, case, f"工单 {case.tracking_number} 吹哨上报，请本单位报到响应")
    return event


def respond_escalation(
    session: Session, case_id: int, actor: User, *, response: str, now: datetime | None = None
) -> CaseEvent:
    """A summoned unit reports in (部门报到) with its response."""
    command = RespondEscalation(response)
    case, _t, event, now = _act(session, case_id, actor, command, now, response=response.strip())
    _tell_unit(session, case.current_unit_id, case, f"工单 {case.tracking_number} 的吹哨已有单位响应")
    return event


def request_extension(
    session: Session,
    case_id: int,
    actor: User,
    *,
    reason: str,
    new_deadline: datetime | None = None,
    extra_working_days: int | None = None,
    now: datetime | None = None,
) -> CaseEvent:
    """Ask for a later deadline (延期): an explicit UTC moment, or a number of extra working days."""
    case = case_for(session, case_id, actor)
    basis = None
    if new_deadline is None:
        if not extra_working_days or extra_working_days < 1 or case.deadline is None:
            raise TransitionError("invalid_deadline", N_("请填写延期后的时限或延长的工作日数"))
        extra = Limit(extra_working_days, LimitUnit.working_days)
        new_deadline = limit_deadline(session, case.deadline, extra)
        basis = _extended_basis(case, extra)
    case, _t, event, now = _act(session, case_id, actor, RequestExtension(new_deadline, reason), now)
    if basis is not None:
        event.details = {**event.details, "deadline_basis": basis}
    approver = case.sent_by_unit_id or (case.current_unit.parent_id if case.current_unit else None)
    _tell_unit(
        session,
        approver,
        case,
        f"工单 {case.tracking_number} 申请延期至 {format_local(new_deadline)}，请审批",
    )
    return event


def _extended_basis(case: Case, extra: Limit) -> dict[str, Any]:
    """The basis of the deadline moved by ``extra`` working days: one count from the original start."""
    basis = case.deadline_basis
    if basis is not None and basis.get("unit") == LimitUnit.working_days.value:
        # N working days and then M more are N + M working days from the same start.
        return {**basis, "amount": float(basis["amount"]) + extra.amount}
    assert case.deadline is not None
    return deadline_basis(case.deadline, extra)


def approve_extension(
    session: Session, case_id: int, actor: User, *, note: str = "", now: datetime | None = None
) -> CaseEvent:
    """Grant the pending extension: the requested date becomes the deadline."""
    requested = session.scalar(
        select(CaseEvent.details)
        .where(CaseEvent.case_id == case_id, CaseEvent.action == Action.request_extension.value)
        .order_by(CaseEvent.id.desc())
        .limit(1)
    )
    case, _t, event, now = _act(session, case_id, actor, ApproveExtension(note=note), now)
    # Extra working days are recounted with the calendar; a date a person chose stays as chosen.
    note_deadline(session, case, (requested or {}).get("deadline_basis"))
    when = format_local(case.deadline)
    event.details = {**event.details, "new_deadline_local": when}
    _tell_unit(session, case.current_unit_id, case, f"工单 {case.tracking_number} 延期已批准，新时限 {when}")
    _tell_resident(session, case, f"您的诉求 {case.tracking_number} 办理时限延至 {when}")
    return event


def refuse_extension(
    session: Session, case_id: int, actor: User, *, reason: str, now: datetime | None = None
) -> CaseEvent:
    """Refuse the pending extension."""
    case, _t, event, now = _act(session, case_id, actor, RefuseExtension(reason), now)
    _tell_unit(session, case.current_unit_id, case, f"工单 {case.tracking_number} 延期申请未获批准")
    return event


def resolve(
    session: Session,
    case_id: int,
    actor: User,
    *,
    result: str,
    reply: str,
    despite_unanswered: bool = False,
    now: datetime | None = None,
) -> CaseEvent:
    """Record what was done and the reply to the resident (办结); opens the callback window. Summoned
    units that have not reported in block it unless ``despite_unanswered`` (the handler confirmed)."""
    now = now or utcnow()
    due = limit_deadline(session, now, Limit(CALLBACK_WORKING_DAYS, LimitUnit.working_days))
    command = Resolve(result, reply, callback_due=due, despite_unanswered=despite_unanswered)
    case, _t, event, now = _act(session, case_id, actor, command, now)
    case.resolved_at = now
    case.sign_for_deadline = None
    _tell_resident(
        session, case, f"您的诉求 {case.tracking_number} 已办结，请查看答复并评价", event="resolved"
    )
    return event


def callback(
    session: Session,
    case_id: int,
    actor: User | None,
    *,
    solved: bool,
    satisfaction: str,
    comment: str = "",
    now: datetime | None = None,
) -> CaseEvent:
    """The resident's verdict (回访): online (``actor`` the resident, or ``None`` for the holder of the
    case's private link, checked by the caller) or by an operator's phone call."""
    try:
        rating = Satisfaction(satisfaction)
    except ValueError:
        raise TransitionError("invalid_satisfaction", N_("请选择满意、基本满意或不满意")) from None
    now = now or utcnow()
    case = session.get(Case, case_id) if actor is None else case_for(session, case_id, actor)
    if case is None:
        raise CaseNotFound()
    limit = resolution_limit(case.category)
    command = Callback(solved, rating, comment, reopen_deadline=limit_deadline(session, now, limit))
    case, transition, event, now = _act(session, case_id, actor, command, now, visible=actor is not None)
    if transition.after.state is State.dispatched:
        note_deadline(session, case, deadline_basis(now, limit))
        _start_handling_clock(session, case, now)
        _tell_unit(
            session, case.current_unit_id, case, f"工单 {case.tracking_number} 居民评价未解决或不满意，已重办"
        )
        notify.announce(session, case, "reopened")
    return event


def reopen(
    session: Session, case_id: int, actor: User, *, reason: str, now: datetime | None = None
) -> CaseEvent:
    """Send a resolved or closed case back to its handling unit (重办)."""
    now = now or utcnow()
    case = case_for(session, case_id, actor)
    limit = resolution_limit(case.category)
    command = Reopen(reason, new_deadline=limit_deadline(session, now, limit))
    case, _t, event, now = _act(session, case_id, actor, command, now)
    note_deadline(session, case, deadline_basis(now, limit))
    _start_handling_clock(session, case, now)
    _tell_unit(session, case.current_unit_id, case, f"工单 {case.tracking_number} 已重办，请重新办理")
    notify.announce(session, case, "reopened")
    return event


def _supervise(session: Session, case: Case, user: User | None, reason: str, now: datetime) -> CaseEvent:
    actor = actor_for(session, user) if user is not None else SYSTEM_ACTOR
    transition = decide(snapshot(case), Supervise(reason), actor, now, POLICY)
    event = _apply(session, case, transition, user, now)
    unit = case.current_unit
    _tell_unit(session, unit.id if unit else None, case, f"工单 {case.tracking_number} 被督办：{reason}")
    if unit is not None and unit.parent_id is not None:
        _tell_unit(session, unit.parent_id, case, f"下级工单 {case.tracking_number} 被督办，请跟进")
    session.flush()
    return event


def supervise(
    session: Session, case_id: int, actor: User, *, reason: str, now: datetime | None = None
) -> CaseEvent:
    """Flag a case for supervision (督办) by a dispatcher over it."""
    case = case_for(session, case_id, actor)
    return _supervise(session, case, actor, reason, now or utcnow())


def merge(
    session: Session,
    case_id: int,
    actor: User,
    *,
    into_tracking_number: str | None = None,
    into_case_id: int | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> CaseEvent:
    """Join a duplicate to an earlier case (合并) in the actor's subtree; its resident then follows it.

    A target that does not exist and one outside the actor's subtree get the same refusal."""
    if into_case_id is None:
        number = (into_tracking_number or "").strip().upper()
        target = session.scalar(select(Case).where(Case.tracking_number == number))
    else:
        target = session.get(Case, into_case_id)
    if target is None or not access.in_scope(actor, target):
        raise TransitionError("merge_target", N_("目标工单不存在或不在本单位管辖范围内"))
    command = Merge(target.id, target.created_at, State(target.state), reason)
    case, _t, event, now = _act(session, case_id, actor, command, now)
    _tell_resident(
        session, case, f"您的诉求 {case.tracking_number} 已合并到 {target.tracking_number} 一并办理"
    )
    return event


def close(
    session: Session, case_id: int, actor: User, *, note: str = "", now: datetime | None = None
) -> CaseEvent:
    """Archive a resolved case after its callback or once the callback window has passed (归档)."""
    case, _t, event, now = _act(session, case_id, actor, Close(note), now)
    _tell_resident(session, case, f"您的诉求 {case.tracking_number} 已归档")
    return event


# The service behind each action the workbench can offer (route/triage are the routing job's).
SERVICES: dict[Action, Callable[..., CaseEvent]] = {
    Action.dispatch: dispatch_manually,
    Action.pass_down: pass_down,
    Action.accept: accept,
    Action.return_case: return_case,
    Action.escalate: escalate,
    Action.respond_escalation: respond_escalation,
    Action.request_extension: request_extension,
    Action.approve_extension: approve_extension,
    Action.refuse_extension: refuse_extension,
    Action.resolve: resolve,
    Action.callback: callback,
    Action.reopen: reopen,
    Action.supervise: supervise,
    Action.merge: merge,
    Action.close: close,
}


def perform(session: Session, action: str, case_id: int, actor: User, **values: Any) -> CaseEvent:
    """Run the service of ``action`` (e.g. from a workbench form) with its plain values."""
    try:
        fn = SERVICES[Action(action)]
    except (ValueError, KeyError):
        raise TransitionError("unknown_action", N_("未知的操作")) from None
    return fn(session, case_id, actor, **values)


def allowed_actions(
    session: Session, case: Case, user: User | None, now: datetime | None = None
) -> list[Action]:
    """Exactly the actions ``user`` may take on ``case`` now (those with a service), for the UI."""
    if user is None or not can_view(session, user, case):
        return []
    actions = lifecycle_allowed_actions(snapshot(case), actor_for(session, user), now or utcnow(), POLICY)
    return [action for action in actions if action in SERVICES]


def follow_unit_moves(session: DbSession, unit_codes: Iterable[str]) -> int:
    """After units moved in the tree (``core.units.move_unit``), re-derive the street and district of
    every case placed in their subtrees from its community (flush only); the number of communities."""
    done = 0
    for code in unit_codes:
        moved = unit_by_code(session, code)
        if moved is None:
            continue
        communities = session.scalars(
            select(Unit).where(Unit.path.startswith(moved.path), Unit.level == Level.community)
        ).all()
        for community in communities:
            street = community.parent
            district = street.parent if street is not None else None
            session.execute(
                update(Case)
                .where(Case.community_id == community.id)
                .values(
                    street_id=street.id if street else None, district_id=district.id if district else None
                )
                .execution_options(synchronize_session="fetch")
            )
            done += 1
    session.flush()
    return done


# --- queries for the workbench ---------------------------------------------------------------


def unit_queue(
    session: Session,
    user: User,
    *,
    state: str | None = None,
    category: str | None = None,
    overdue: bool | None = None,
    search: str | None = None,
    now: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Case]:
    """My unit's open cases (and those my unit is summoned to): overdue first, then new, then by deadline."""
    if user.unit_id is None:
        return []
    now = now or utcnow()
    summoned = select(Summons.case_id).where(Summons.unit_id == user.unit_id, Summons.closed_at.is_(None))
    is_overdue = and_(Case.state.in_(HANDLING_STATES), Case.deadline.is_not(None), Case.deadline < now)
    stmt = select(Case).where(
        Case.state.in_(OPEN_STATE_VALUES),
        or_(Case.current_unit_id == user.unit_id, Case.id.in_(summoned)),
    )
    if state:
        stmt = stmt.where(Case.state == state)
    if category:
        stmt = stmt.where(Case.category_id.in_(select(Category.id).where(Category.code == category)))
    if overdue is True:
        stmt = stmt.where(is_overdue)
    elif overdue is False:
        stmt = stmt.where(~is_overdue)
    text = (search or "").strip()
    if text:
        pattern = f"%{text.replace('%', '').replace('_', '')}%"
        stmt = stmt.where(
            or_(
                Case.tracking_number.ilike(pattern),
                Case.address.ilike(pattern),
                Case.description.ilike(pattern),
            )
        )
    stmt = stmt.order_by(
        sql_case((is_overdue, 0), else_=1),
        sql_case((Case.state == State.dispatched.value, 0), else_=1),
        sql_case((Case.deadline.is_(None), 1), else_=0),
        Case.deadline,
        Case.created_at.desc(),
    )
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def triage_queue(session: Session, dispatcher: User, *, limit: int = 200) -> list[Case]:
    """Cases waiting for this dispatcher's subtree: triage, returns, extension requests (city: all)."""
    waiting = or_(
        Case.state == State.triage.value,
        and_(Case.state == State.dispatching.value, Case.auto_routing.is_(False)),
        and_(Case.state == State.accepted.value, Case.extension_pending.is_(True)),
    )
    stmt = select(Case).where(waiting)
    if dispatcher.role != Role.admin and not acts_for_city(dispatcher):
        if dispatcher.role != Role.dispatcher or dispatcher.unit is None:
            return []
        subtree = select(Unit.id).where(Unit.path.startswith(dispatcher.unit.path))
        stmt = stmt.where(Case.current_unit_id.in_(subtree))
    stmt = stmt.order_by(sql_case((Case.extension_pending.is_(True), 1), else_=0), Case.created_at)
    return list(session.scalars(stmt.limit(limit)))


def pending_summons(session: Session, dispatcher: User, *, limit: int = 100) -> list[Summons]:
    """Open whistles (吹哨) not yet answered on cases in this dispatcher's subtree (city, admin: all),
    oldest first: the dispatcher chases them."""
    stmt = select(Summons).join(Case, Case.id == Summons.case_id).where(Summons.closed_at.is_(None))
    if dispatcher.role != Role.admin and not acts_for_city(dispatcher):
        if dispatcher.role != Role.dispatcher or dispatcher.unit is None:
            return []
        subtree = select(Unit.id).where(Unit.path.startswith(dispatcher.unit.path))
        stmt = stmt.where(Case.current_unit_id.in_(subtree))
    return list(session.scalars(stmt.order_by(Summons.requested_at, Summons.id).limit(limit)))


# --- automatic routing hops --------------------------------------------------------------------


@dataclass(frozen=True)
class HopResult:
    """What one routing hop did: ``route`` | ``dispatch`` | ``triage`` | ``noop``; ``next_hop``: the
    number of the hop to enqueue next, if the chain continues."""

    action: str
    hop_no: int | None = None
    next_hop: int | None = None


def place_units(case: Case) -> list[PlaceUnit]:
    """The case's place from the district down to the community."""
    return [PlaceUnit(u.code, u.level.value) for u in (case.district, case.street, case.community) if u]


def _next_step(current: Unit | None, target: Unit) -> int:
    """Id of the next unit on the way down from ``current`` (None: the city) to ``target``."""
    chain = target.ancestor_ids()
    start = chain.index(current.id) + 1 if current is not None and current.id in chain else 1
    return chain[min(start, len(chain) - 1)]


@cache
def _routing_lock() -> Select[Case, int, int, datetime]:
    """The statement of :func:`_lock_for_routing`, built once (every hop runs it)."""
    newest = select(func.max(RuleSet.version)).scalar_subquery()
    return (
        select(Case, RuleSet.id, RuleSet.version, RuleSet.created_at)
        .options(joinedload(Case.category, innerjoin=True))
        .outerjoin(RuleSet, RuleSet.version == func.coalesce(Case.rule_set_version, newest))
        .where(Case.id == bindparam("case_id"))
        .with_for_update(of=Case)
        .execution_options(populate_existing=True)
    )


def _lock_for_routing(session: Session, case_id: int) -> tuple[Case, RuleSetView | None]:
    """The case, locked and fresh, with its category, the units it refers to, and its rule set.

    Two statements whatever the hop: the case row (``FOR UPDATE OF cases``) joined to its category and
    to the rule set it must be routed with (its own version, or the newest for a first hop), then every
    unit the hop may touch by id, so the lazy many-to-one attributes are answered from the identity map.
    """
    row = session.execute(_routing_lock(), {"case_id": case_id}).first()
    if row is None:
        raise RoutingFailed("case_missing", N_("工单不存在"))
    case, rule_set_id, version, created_at = row
    unit_ids = {
        case.district_id,
        case.street_id,
        case.community_id,
        case.current_unit_id,
        case.sent_by_unit_id,
        case.category.department_id,
    } - {None}
    # The identity map holds objects weakly: keep the units referenced until the case points to them.
    _held = session.scalars(select(Unit).where(Unit.id.in_(unit_ids))).all()  # alive until we return
    for owner, name in (
        (case, "district"),
        (case, "street"),
        (case, "community"),
        (case, "current_unit"),
        (case, "sent_by_unit"),
        (case.category, "department"),
    ):
        getattr(owner, name)  # answered from the identity map while ``_held`` holds the rows
    view = _cached_view(session, rule_set_id, version, created_at) if rule_set_id is not None else None
    return case, view


def route_step(
    session: Session, case_id: int, *, hop_no: int | None = None, now: datetime | None = None
) -> HopResult:
    """One automatic routing hop (city → district → street → community, or straight to a department).

    Safe to run twice: the case row is locked (``FOR UPDATE``) and re-read before the state and hop-number
    check, so a repeat or a concurrent duplicate finds the hop done and is a no-op; the hop row's unique
    (case, hop number) backs this up in the database (a violation raises :class:`IntegrityError`, which
    the job treats as a no-op). Raises :class:`RoutingFailed` when the case does not exist.
    """
    return route_down(session, case_id, hop_no=hop_no, now=now, max_hops=1)


def route_down(
    session: Session,
    case_id: int,
    *,
    hop_no: int | None = None,
    now: datetime | None = None,
    max_hops: int = 4,
) -> HopResult:
    """Up to ``max_hops`` automatic hops that follow each other, in the session's transaction; returns
    what the last one did (``next_hop`` set when the chain goes on beyond ``max_hops``).

    The case is locked and loaded once and everything is flushed once: two hops cost one UPDATE of the
    case and one INSERT each for the hop rows and the events, not a round of statements per hop. The
    caller commits all the hops together, so nobody sees a case half-way down and a retry after a failure
    starts again from the first hop (nothing of this call was kept). Each hop is checked and recorded as
    by :func:`route_step`.
    """
    now = now or utcnow()
    case, view = _lock_for_routing(session, case_id)
    result = HopResult("noop")
    for _ in range(max_hops):
        step, view = _hop(session, case, view, hop_no, now)
        if step.action == "noop":
            break
        result, hop_no = step, step.next_hop
        if hop_no is None:
            break
    session.flush()
    return result


def _hop(
    session: Session, case: Case, view: RuleSetView | None, hop_no: int | None, now: datetime
) -> tuple[HopResult, RuleSetView | None]:
    """One hop of a locked case (no flush); the rule set view it was routed with."""
    pending = case.state == State.submitted.value or (
        case.state == State.dispatching.value and case.auto_routing
    )
    next_no = (case.hop_count or 0) + 1
    if not pending or (hop_no is not None and hop_no != next_no):
        return HopResult("noop"), view
    if view is None:  # no rule set published yet, or the case's version is gone
        view = (
            rules_of_version(session, case.rule_set_version)
            if case.rule_set_version
            else current_rules(session)
        )
    place = place_units(case)
    placement = resolve_placement(view.rules, category_ref(case.category), place)
    target = None
    if placement is not None:
        known = [u for u in (case.district, case.street, case.community, case.category.department) if u]
        target = next((u for u in known if u.code == placement.unit_code), None)
        target = target or unit_by_code(session, placement.unit_code)
    # Routing commands neither read nor change an escalation, so the summons need not be loaded.
    before = snapshot(case, summons=False)
    transition: Transition | None = None
    basis: dict[str, Any] | None = None
    if target is not None and target.active:
        step_id = _next_step(case.current_unit, target)
        step = target if step_id == target.id else session.get(Unit, step_id)
        command: Command
        if step is target:
            deadline, basis = _first_deadline(session, case)
            command = Dispatch(unit_ref(target), deadline=deadline, note="按派单规则派单")  # type: ignore[arg-type]
        else:
            command = Route(unit_ref(step), note="按派单规则转派下级")  # type: ignore[arg-type]
        try:
            transition = decide(before, command, SYSTEM_ACTOR, now, POLICY)
        except TransitionError as refused:  # e.g. the target returned it before: a person decides
            log.info("routing rule refused for case %s: %s", case.id, refused.code)
    if transition is None:
        queue_code = triage_place(view.rules, place)
        queue = unit_by_code(session, queue_code) if queue_code else None
        transition = decide(
            before, Triage(unit_ref(queue), note="没有适用的派单规则，转人工分拨"), SYSTEM_ACTOR, now, POLICY
        )
    _apply(session, case, transition, None, now)
    state = transition.after.state
    # The hop row is written with its outcome in the same flush as the case (no savepoint, no update):
    # the lock above already serialises duplicates, the unique constraint is the database's guarantee.
    event = transition.event
    session.add(
        RoutingHop(
            case_id=case.id,
            hop_no=next_no,
            action=event.action.value,
            from_unit_id=event.from_unit_id,
            to_unit_id=event.to_unit_id,
            rule_set_version=view.version,
            created_at=now,
        )
    )
    case.hop_count, case.rule_set_version = next_no, view.version
    case.auto_routing = state is State.dispatching
    if state is State.dispatched:
        note_deadline(session, case, basis)
        _start_handling_clock(session, case, now)
        _tell_unit(
            session,
            case.current_unit_id,
            case,
            f"新工单 {case.tracking_number} 已派至本单位，请及时签收",
            event="new_case",
        )
        notify.announce(session, case, "dispatched")
    elif state is State.triage:
        _tell_unit(session, case.current_unit_id, case, f"工单 {case.tracking_number} 待人工分拨")
    return HopResult(event.action.value, next_no, next_no + 1 if case.auto_routing else None), view


def record_failure(session: Session, case_id: int, task: str, code: str, message: str) -> None:
    """Keep a permanent routing failure for admins."""
    session.add(RoutingFailure(case_id=case_id, task=task, code=code, message=message, created_at=utcnow()))
    session.flush()


def stuck_cases(
    session: Session, older_than: timedelta, now: datetime | None = None, limit: int = 1000
) -> list[tuple[int, int]]:
    """(case id, next hop number) of cases the automatic chain owns that have not moved for ``older_than``."""
    cutoff = (now or utcnow()) - older_than
    stmt = (
        select(Case.id, Case.hop_count)
        .where(
            or_(
                Case.state == State.submitted.value,
                and_(Case.state == State.dispatching.value, Case.auto_routing.is_(True)),
            ),
            Case.updated_at <= cutoff,
        )
        .order_by(Case.id)
        .limit(limit)
    )
    return [(case_id, (hops or 0) + 1) for case_id, hops in session.execute(stmt)]


def waiting_case_ids(session: Session, after_id: int = 0, limit: int = 1000) -> list[int]:
    """Ids of cases still in ``submitted`` (no hop yet), above ``after_id``, oldest first: a page of what a
    dispatcher catches up on when it starts listening."""
    stmt = (
        select(Case.id)
        .where(Case.state == State.submitted.value, Case.id > after_id)
        .order_by(Case.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


# --- deadline scan -----------------------------------------------------------------------------


def _flag(
    session: Session, case: Case, kind: str, deadline: datetime, unit_id: int | None, now: datetime
) -> bool:
    """Insert a flag once per (case, kind, deadline); False when it already exists."""
    try:
        with session.begin_nested():
            session.add(
                DeadlineFlag(case_id=case.id, kind=kind, deadline=deadline, unit_id=unit_id, created_at=now)
            )
            session.flush()
    except IntegrityError:
        return False
    return True


def scan_deadlines(
    session: Session, *, warning_share: float = DEFAULT_WARNING_SHARE, now: datetime | None = None
) -> dict[str, int]:
    """Warn cases past ``warning_share`` of their limit, flag overdue ones for 督办 to the level above,
    and close resolved cases whose callback window passed without a rating.

    Idempotent: each (case, kind, deadline) is flagged once, so running it again changes nothing;
    an extension (a new deadline) can be warned and flagged again. A closed case is no longer resolved.
    """
    if not 0 < warning_share <= 1:
        raise DomainError("invalid_warning_share", N_("预警比例须大于 0 且不超过 1"))
    now = now or utcnow()
    counts = {"sign_for_overdue": 0, "warning": 0, "overdue": 0, "closed": close_unrated(session, now=now)}
    flagged = select(DeadlineFlag.id).where(
        DeadlineFlag.case_id == Case.id,
        DeadlineFlag.kind == "overdue",
        DeadlineFlag.deadline == Case.deadline,
    )
    cases = session.scalars(
        select(Case).where(Case.state.in_(HANDLING_STATES), Case.deadline.is_not(None), ~flagged.exists())
    ).all()
    for case in cases:
        assert case.deadline is not None
        unit = case.current_unit
        above = unit.parent_id if unit is not None else None
        if (
            case.state == State.dispatched.value
            and case.sign_for_deadline is not None
            and now > case.sign_for_deadline
            and _flag(session, case, "sign_for_overdue", case.sign_for_deadline, above, now)
        ):
            counts["sign_for_overdue"] += 1
            _tell_unit(session, case.current_unit_id, case, f"工单 {case.tracking_number} 已超过签收时限")
        if now > case.deadline:
            if _flag(session, case, "overdue", case.deadline, above, now):
                counts["overdue"] += 1
                _supervise(session, case, None, f"超过办理时限（{format_local(case.deadline)}）", now)
                notify.announce(session, case, "overdue")
            continue
        limit = resolution_limit(case.category)
        share = calendar(session).elapsed_share(
            to_local(case.created_at), to_local(case.deadline), to_local(now), limit.share_unit
        )
        if share >= warning_share and _flag(
            session, case, "warning", case.deadline, case.current_unit_id, now
        ):
            counts["warning"] += 1
            _tell_unit(
                session,
                case.current_unit_id,
                case,
                f"工单 {case.tracking_number} 即将超时，时限 {format_local(case.deadline)}",
            )
    session.flush()
    return counts


AUTO_CLOSE_NOTE = "回访期限已过，未收到评价，系统自动归档"


def close_unrated(session: Session, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Close (归档) resolved cases whose callback window (``callback_due``) has passed without a rating.

    Each gets a ``close`` audit event by the system (details ``callback_timeout``) and a notice to the
    resident. Idempotent: a closed case is no longer a candidate; rows another scan holds are skipped
    (``SKIP LOCKED``) and every case is re-checked by the lifecycle under its lock.
    """
    now = now or utcnow()
    cases = session.scalars(
        select(Case)
        .where(
            Case.state == State.resolved.value,
            Case.callback_due.is_not(None),
            Case.callback_due <= now,
            Case.satisfaction.is_(None),
        )
        .order_by(Case.callback_due)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
    closed = 0
    for case in cases:
        try:
            transition = decide(
                snapshot(case, summons=False), Close(AUTO_CLOSE_NOTE), SYSTEM_ACTOR, now, POLICY
            )
        except TransitionError as refused:  # rated or reopened meanwhile: nothing to do
            log.info("auto-close skipped case %s: %s", case.id, refused.code)
            continue
        _apply(session, case, transition, None, now)
        _tell_resident(session, case, f"您的诉求 {case.tracking_number} 回访期限已过、未收到评价，已自动归档")
        closed += 1
    session.flush()
    return closed
