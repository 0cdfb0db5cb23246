"""The case lifecycle (工单流转) as a pure state machine.

``decide(snapshot, command, actor, now)`` checks, in this order, that the action is possible in the
case's state, that the actor may take it on this case, that the case's own limits allow it (returns,
reopens, deadlines), and that the command's payload is acceptable; it then returns a
:class:`Transition` with the new snapshot and the audit event. It never reads a clock, a database or
a calendar: services load the snapshot, compute deadlines with ``routing.calendar`` and pass them in
commands, apply ``Transition.changes()`` and store ``Transition.event``. A refusal is a
:class:`TransitionError` with a machine ``code`` and a Chinese message. ``allowed_actions`` runs the
same checks minus the payload, so the UI offers exactly what ``decide`` can accept.

States (see PRODUCT.md, "A case's life")
    submitted    recorded (受理), not yet routed; belongs to the city-wide queue
    dispatching  a routing hop is in progress: the case sits with a unit's dispatcher who must send
                 it on (after ``route``, or when a unit returned it to the level that sent it)
    triage       no rule placed it, or returns are exhausted: waiting in a dispatcher's queue
    dispatched   at a handling unit, awaiting sign-for (签收)
    accepted     signed for, being handled
    resolved     办结, awaiting the callback (回访)
    closed       归档 (terminal, except a dispatcher's explicit reopen)
    merged       joined an earlier case (terminal)

Who may act
    handler     only on cases at its own unit (accept, return, escalate, extension request, resolve,
                pass down)
    dispatcher  on cases in its subtree (the case's unit is its unit or below it); a case with no
                unit yet (submitted, city-wide triage) belongs to top-level (city) dispatchers; an
                extension is decided by a dispatcher above the case's unit, never by its own
    admin       every dispatcher action, everywhere; automatic steps (routing rules, sweepers) act as
                :data:`SYSTEM_ACTOR`, an admin without a user
    resident    the callback on their own case; operator: callbacks by phone and closing
    summoned    a handler or dispatcher of a unit named in an open escalation responds to it
    吹哨 targets only the levels above the case's unit and the departments its category allows
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from core.i18n import N_, DomainError
from core.models import ROLE_LABELS, Level, Role

UnitId: TypeAlias = int


class TransitionError(DomainError):
    """A lifecycle action was refused; ``code`` says why, the message says it in Chinese."""

    def __init__(self, code: str, message_zh: str, **params: object) -> None:
        super().__init__(code, message_zh, None, **params)
        self.message_zh = str(self)  # the Chinese text, parameters filled in


class State(StrEnum):
    """Where a case stands."""

    submitted = "submitted"
    dispatching = "dispatching"
    triage = "triage"
    dispatched = "dispatched"
    accepted = "accepted"
    resolved = "resolved"
    closed = "closed"
    merged = "merged"

    @property
    def label(self) -> str:
        """Chinese name of the state."""
        return STATE_LABELS[self]


STATE_LABELS = {
    State.submitted: N_("已受理"),
    State.dispatching: N_("派单中"),
    State.triage: N_("待人工分拨"),
    State.dispatched: N_("待签收"),
    State.accepted: N_("办理中"),
    State.resolved: N_("已办结"),
    State.closed: N_("已归档"),
    State.merged: N_("已合并"),
}
# How a refusal names the state the case is in: "工单已办结，不能退单".
_STATE_PHRASES = {
    State.submitted: N_("工单尚未派单"),
    State.dispatching: N_("工单正在派单中"),
    State.triage: N_("工单在待人工分拨队列中"),
    State.dispatched: N_("工单尚未签收"),
    State.accepted: N_("工单正在办理中"),
    State.resolved: N_("工单已办结"),
    State.closed: N_("工单已归档"),
    State.merged: N_("工单已合并到其他工单"),
}
OPEN_STATES = frozenset(State) - {State.closed, State.merged}


class Action(StrEnum):
    """What can be done to a case."""

    dispatch = "dispatch"
    route = "route"
    triage = "triage"
    pass_down = "pass_down"
    accept = "accept"
    return_case = "return_case"
    escalate = "escalate"
    respond_escalation = "respond_escalation"
    request_extension = "request_extension"
    approve_extension = "approve_extension"
    refuse_extension = "refuse_extension"
    resolve = "resolve"
    callback = "callback"
    reopen = "reopen"
    supervise = "supervise"
    merge = "merge"
    close = "close"

    @property
    def label(self) -> str:
        """Chinese name of the action."""
        return ACTION_LABELS[self]


ACTION_LABELS = {
    Action.dispatch: N_("派单"),
    Action.route: N_("转派"),
    Action.triage: N_("转人工分拨"),
    Action.pass_down: N_("下派"),
    Action.accept: N_("签收"),
    Action.return_case: N_("退单"),
    Action.escalate: N_("上报（吹哨）"),
    Action.respond_escalation: N_("响应吹哨"),
    Action.request_extension: N_("申请延期"),
    Action.approve_extension: N_("批准延期"),
    Action.refuse_extension: N_("驳回延期"),
    Action.resolve: N_("办结"),
    Action.callback: N_("回访"),
    Action.reopen: N_("重办"),
    Action.supervise: N_("督办"),
    Action.merge: N_("合并"),
    Action.close: N_("归档"),
}


class ReturnReason(StrEnum):
    """The fixed reasons a unit may give for returning a case (退单)."""

    not_our_jurisdiction = "not_our_jurisdiction"
    wrong_place = "wrong_place"
    duplicate = "duplicate"
    insufficient_info = "insufficient_info"
    other = "other"

    @property
    def label(self) -> str:
        """Chinese wording of the reason."""
        return RETURN_REASON_LABELS[self]


RETURN_REASON_LABELS = {
    ReturnReason.not_our_jurisdiction: N_("非本单位职责"),
    ReturnReason.wrong_place: N_("地址不属本辖区"),
    ReturnReason.duplicate: N_("重复诉求"),
    ReturnReason.insufficient_info: N_("信息不全无法办理"),
    ReturnReason.other: N_("其他"),
}


class Satisfaction(StrEnum):
    """The resident's rating at callback."""

    satisfied = "satisfied"
    basically_satisfied = "basically_satisfied"
    dissatisfied = "dissatisfied"

    @property
    def label(self) -> str:
        """Chinese wording of the rating."""
        return SATISFACTION_LABELS[self]


SATISFACTION_LABELS = {
    Satisfaction.satisfied: N_("满意"),
    Satisfaction.basically_satisfied: N_("基本满意"),
    Satisfaction.dissatisfied: N_("不满意"),
}


@dataclass(frozen=True)
class UnitRef:
    """A unit as the lifecycle needs it: its id, level and ancestors' ids (root first)."""

    id: UnitId
    level: str = ""
    path: tuple[UnitId, ...] = ()

    def is_within(self, ancestor_id: UnitId) -> bool:
        """Whether this unit is ``ancestor_id`` or lies below it."""
        return self.id == ancestor_id or ancestor_id in self.path


@dataclass(frozen=True)
class Actor:
    """Who acts: a user with one role, at one unit (``unit_path``: the unit's ancestors, root first)."""

    user_id: int | None
    role: Role
    unit_id: UnitId | None = None
    unit_path: tuple[UnitId, ...] = ()

    def oversees(self, unit: UnitRef | None) -> bool:
        """Whether ``unit`` is in this actor's subtree (``None``, the city-wide queue, is the top's)."""
        if self.role is Role.admin:
            return True
        if self.unit_id is None:
            return False
        if unit is None:
            return not self.unit_path
        return unit.is_within(self.unit_id)

    def is_at_or_below(self, unit: UnitRef | None) -> bool:
        """Whether ``unit`` is this actor's own unit or one of its ancestors (a queue it may push to)."""
        if unit is None or self.role is Role.admin:
            return True
        return unit.id == self.unit_id or unit.id in self.unit_path


# Automatic steps (routing rules, the callback-timeout sweeper) act with admin rights and no user.
SYSTEM_ACTOR = Actor(user_id=None, role=Role.admin)


@dataclass(frozen=True)
class Policy:
    """Per-deployment limits of the lifecycle."""

    max_returns: int = 2
    max_reopens: int = 2


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class CaseSnapshot:
    """Everything the lifecycle needs to know about one case."""

    state: State
    case_id: int | None = None
    received_at: datetime | None = None
    resident_id: int | None = None
    unit: UnitRef | None = None
    # The unit that sent the case to ``unit``: a return goes back there ("the level above re-dispatches").
    sent_by: UnitRef | None = None
    deadline: datetime | None = None
    returns_count: int = 0
    returned_by: frozenset[UnitId] = frozenset()
    reopen_count: int = 0
    extension_pending: bool = False
    requested_deadline: datetime | None = None
    extensions_count: int = 0
    escalation_open: bool = False
    escalation_pending: frozenset[UnitId] = frozenset()
    supervised: bool = False
    supervise_count: int = 0
    solved: bool | None = None
    satisfaction: Satisfaction | None = None
    callback_due: datetime | None = None
    # Closed without the resident's problem solved to their satisfaction (reopen limit reached).
    flagged: bool = False
    merged_into: int | None = None

    @property
    def unit_id(self) -> UnitId | None:
        """Id of the unit the case is at, if any."""
        return self.unit.id if self.unit is not None else None

    @property
    def level(self) -> str | None:
        """Level of the unit the case is at, if any."""
        return self.unit.level if self.unit is not None else None

    @property
    def is_open(self) -> bool:
        """Whether the case is neither closed nor merged."""
        return self.state in OPEN_STATES

    @property
    def rated(self) -> bool:
        """Whether the current round has had its callback."""
        return self.satisfaction is not None


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dispatch:
    """Send the case to a handling unit (派单); ``force`` overrides the no-ping-pong rule and then needs
    a ``note`` (the audited reason)."""

    action: ClassVar[Action] = Action.dispatch
    to_unit: UnitRef
    deadline: datetime | None = None
    force: bool = False
    note: str = ""


@dataclass(frozen=True)
class Route:
    """Hand the case to a lower level's dispatcher to route further (a routing hop)."""

    action: ClassVar[Action] = Action.route
    to_unit: UnitRef
    force: bool = False
    note: str = ""


@dataclass(frozen=True)
class Triage:
    """Put the case in a dispatcher's triage queue (``queue=None``: the city-wide queue)."""

    action: ClassVar[Action] = Action.triage
    queue: UnitRef | None = None
    note: str = ""


@dataclass(frozen=True)
class PassDown:
    """The receiving level passes the case to a unit below it instead of handling it."""

    action: ClassVar[Action] = Action.pass_down
    to_unit: UnitRef
    deadline: datetime | None = None
    force: bool = False
    note: str = ""


@dataclass(frozen=True)
class Accept:
    """Sign for the case (签收); ``deadline`` may set the handling deadline counted from now."""

    action: ClassVar[Action] = Action.accept
    deadline: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class ReturnCase:
    """Return the case as not this unit's (退单), with a fixed reason."""

    action: ClassVar[Action] = Action.return_case
    reason: ReturnReason
    note: str = ""


@dataclass(frozen=True)
class Escalate:
    """Ask the levels above or departments to act jointly (上报 / 吹哨); ``departments``: the ids of the
    departments the case's category allows (the service reads them from the catalogue and the rules)."""

    action: ClassVar[Action] = Action.escalate
    to_units: tuple[UnitRef, ...]
    note: str
    departments: frozenset[UnitId] = frozenset()


@dataclass(frozen=True)
class RespondEscalation:
    """A summoned unit reports in (部门报到)."""

    action: ClassVar[Action] = Action.respond_escalation
    response: str


@dataclass(frozen=True)
class RequestExtension:
    """Ask for a later deadline (延期), before the current one passes."""

    action: ClassVar[Action] = Action.request_extension
    new_deadline: datetime
    reason: str


@dataclass(frozen=True)
class ApproveExtension:
    """Grant the pending extension: the requested date becomes the deadline."""

    action: ClassVar[Action] = Action.approve_extension
    note: str = ""


@dataclass(frozen=True)
class RefuseExtension:
    """Refuse the pending extension."""

    action: ClassVar[Action] = Action.refuse_extension
    reason: str


@dataclass(frozen=True)
class Resolve:
    """Record what was done and the reply to the resident (办结)."""

    action: ClassVar[Action] = Action.resolve
    result: str
    reply: str
    callback_due: datetime | None = None
    # Summoned units that have not reported in block the resolution unless the handler confirms it.
    despite_unanswered: bool = False


@dataclass(frozen=True)
class Callback:
    """The resident's verdict (回访); a bad one reopens the case while reopens remain."""

    action: ClassVar[Action] = Action.callback
    solved: bool
    satisfaction: Satisfaction
    comment: str = ""
    reopen_deadline: datetime | None = None


@dataclass(frozen=True)
class Reopen:
    """Send a resolved or closed case back to its handling unit (重办)."""

    action: ClassVar[Action] = Action.reopen
    reason: str
    new_deadline: datetime | None = None


@dataclass(frozen=True)
class Supervise:
    """Flag the case for supervision (督办); the state does not change."""

    action: ClassVar[Action] = Action.supervise
    reason: str


@dataclass(frozen=True)
class Merge:
    """Join the case to an earlier one (合并)."""

    action: ClassVar[Action] = Action.merge
    into_case_id: int
    into_received_at: datetime
    into_state: State
    reason: str = ""


@dataclass(frozen=True)
class Close:
    """Archive a resolved case after its callback, or when the callback window has passed (归档)."""

    action: ClassVar[Action] = Action.close
    note: str = ""


Command: TypeAlias = (
    Dispatch
    | Route
    | Triage
    | PassDown
    | Accept
    | ReturnCase
    | Escalate
    | RespondEscalation
    | RequestExtension
    | ApproveExtension
    | RefuseExtension
    | Resolve
    | Callback
    | Reopen
    | Supervise
    | Merge
    | Close
)


# --- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEvent:
    """One audited step: who, when, from, to, why (``details`` holds JSON-ready values only)."""

    action: Action
    from_state: State
    to_state: State
    from_unit_id: UnitId | None
    to_unit_id: UnitId | None
    actor_id: int | None
    actor_unit_id: UnitId | None
    actor_role: str
    at: datetime
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """The outcome of an accepted command: the snapshot before and after, and the audit event."""

    before: CaseSnapshot
    after: CaseSnapshot
    event: AuditEvent

    def changes(self) -> dict[str, Any]:
        """The snapshot fields that changed, with their new values."""
        return {
            f.name: getattr(self.after, f.name)
            for f in fields(CaseSnapshot)
            if getattr(self.after, f.name) != getattr(self.before, f.name)
        }


# --- rules -------------------------------------------------------------------------------------


class _Who(StrEnum):
    handler = "handler"  # a handler of the case's unit
    dispatcher = "dispatcher"  # a dispatcher overseeing the case's unit, or an admin
    resident = "resident"  # the resident who filed it
    operator = "operator"  # a hotline operator
    summoned = "summoned"  # a handler or dispatcher of a unit the open escalation is waiting for


_Guard: TypeAlias = Callable[["CaseSnapshot", datetime, Policy], None]
_Outcome: TypeAlias = tuple[CaseSnapshot, str, dict[str, Any]]
_Apply: TypeAlias = Callable[[CaseSnapshot, Any, Actor, datetime, Policy], _Outcome]


@dataclass(frozen=True)
class _Rule:
    states: frozenset[State]
    who: frozenset[_Who]
    guard: _Guard | None
    apply: _Apply


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _require_text(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise TransitionError("missing_text", N_("请填写%(what)s"), what=what)
    return text


def _check_state(snap: CaseSnapshot, action: Action, rule: _Rule) -> None:
    if snap.state not in rule.states:
        raise TransitionError(
            "state_forbidden",
            N_("%(state)s，不能%(action)s"),
            state=_STATE_PHRASES[snap.state],
            action=action.label,
        )


# A unit's own requests are decided by a level above it: its dispatcher may not approve its own delay.
_DECIDED_ABOVE = frozenset({Action.approve_extension, Action.refuse_extension})


def _check_actor(snap: CaseSnapshot, action: Action, actor: Actor, rule: _Rule) -> None:
    role, who = actor.role, rule.who
    if _Who.dispatcher in who and role in (Role.dispatcher, Role.admin):
        if action in _DECIDED_ABOVE and role is Role.dispatcher and snap.unit_id == actor.unit_id:
            raise TransitionError(
                "out_of_scope", N_("本单位的申请应由上级单位%(action)s"), action=action.label
            )
        if actor.oversees(snap.unit):
            return
        raise TransitionError(
            "out_of_scope", N_("该工单不在您单位的管辖范围内，不能%(action)s"), action=action.label
        )
    if _Who.handler in who and role is Role.handler:
        if snap.unit is not None and actor.unit_id == snap.unit.id:
            return
        raise TransitionError("out_of_scope", N_("只能对本单位的工单%(action)s"), action=action.label)
    if _Who.summoned in who and role in (Role.handler, Role.dispatcher):
        if actor.unit_id is not None and actor.unit_id in snap.escalation_pending:
            return
        raise TransitionError("not_summoned", N_("本单位不在待响应的吹哨名单中"))
    if _Who.resident in who and role is Role.resident:
        if snap.resident_id is None or actor.user_id == snap.resident_id:
            return
        raise TransitionError("out_of_scope", N_("只能评价本人提交的工单"))
    if _Who.operator in who and role is Role.operator:
        return
    raise TransitionError(
        "role_forbidden", N_("%(role)s无权%(action)s"), role=ROLE_LABELS[role], action=action.label
    )


def _check_target(snap: CaseSnapshot, actor: Actor, target: UnitRef, force: bool) -> None:
    if force and actor.role not in (Role.dispatcher, Role.admin):
        raise TransitionError("role_forbidden", N_("只有派单员可以强制指派"))
    if not actor.oversees(target) and actor.role is not Role.handler:
        raise TransitionError("out_of_scope", N_("目标单位不在您单位的管辖范围内"))
    if target.id in snap.returned_by and not force:
        raise TransitionError("ping_pong", N_("该单位已退回过此工单，除非派单员强制指派，不能再派给该单位"))


# Guards: limits that depend on the case, not on the command (shown or hidden in the UI).


def _guard_pass_down(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if snap.unit is not None and snap.unit.level == Level.community:
        raise TransitionError("invalid_target", N_("社区是最基层单位，没有可下派的下级单位"))


def _guard_return(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if snap.returns_count >= policy.max_returns:
        raise TransitionError(
            "return_limit",
            N_("退单次数已达上限（%(n)s次），不能再退单，请由派单员处理"),
            n=policy.max_returns,
        )


def _guard_escalate(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if snap.escalation_open:
        raise TransitionError("escalation_open", N_("已有尚未完成的上报，请等待各部门响应"))


def _guard_respond(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if not snap.escalation_open:
        raise TransitionError("no_escalation", N_("该工单没有待响应的上报"))


def _guard_request_extension(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if snap.deadline is None:
        raise TransitionError("no_deadline", N_("该工单没有办理时限，无需延期"))
    if now >= snap.deadline:
        raise TransitionError("deadline_passed", N_("已超过办理时限，不能再申请延期"))
    if snap.extension_pending:
        raise TransitionError("extension_pending", N_("已有待审批的延期申请"))


def _guard_decide_extension(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if not snap.extension_pending:
        raise TransitionError("no_extension_pending", N_("没有待审批的延期申请"))


def _guard_callback(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if snap.rated:
        raise TransitionError("callback_done", N_("该工单已回访，不能重复回访"))


def _guard_reopen(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if snap.reopen_count >= policy.max_reopens:
        raise TransitionError(
            "reopen_limit", N_("重办次数已达上限（%(n)s次），不能再重办"), n=policy.max_reopens
        )


def _guard_close(snap: CaseSnapshot, now: datetime, policy: Policy) -> None:
    if snap.rated:
        return
    if snap.callback_due is not None and now >= snap.callback_due:
        return
    raise TransitionError("callback_pending", N_("尚未回访，回访期限也未到，不能归档"))


# Effects.


def _dispatch(snap: CaseSnapshot, cmd: Dispatch, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    _check_target(snap, actor, cmd.to_unit, cmd.force)
    if cmd.force:  # overriding the no-ping-pong rule is audited: the event carries why
        _require_text(cmd.note, N_("强制指派理由"))
    after = replace(
        snap,
        state=State.dispatched,
        unit=cmd.to_unit,
        sent_by=snap.unit,
        deadline=cmd.deadline if cmd.deadline is not None else snap.deadline,
    )
    return after, cmd.note.strip(), {"forced": cmd.force, "deadline": _iso(after.deadline)}


def _route(snap: CaseSnapshot, cmd: Route, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    _check_target(snap, actor, cmd.to_unit, cmd.force)
    after = replace(snap, state=State.dispatching, unit=cmd.to_unit, sent_by=snap.unit)
    return after, cmd.note.strip(), {"forced": cmd.force}


def _triage(snap: CaseSnapshot, cmd: Triage, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    if not actor.is_at_or_below(cmd.queue):
        raise TransitionError("out_of_scope", N_("只能转入本单位或上级单位的人工分拨队列"))
    after = replace(snap, state=State.triage, unit=cmd.queue)
    return after, cmd.note.strip(), {}


def _pass_down(snap: CaseSnapshot, cmd: PassDown, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    if snap.unit is None or snap.unit.id not in cmd.to_unit.path:
        raise TransitionError("invalid_target", N_("只能下派给本单位的下级单位"))
    _check_target(snap, actor, cmd.to_unit, cmd.force)
    after = replace(
        snap,
        state=State.dispatched,
        unit=cmd.to_unit,
        sent_by=snap.unit,
        deadline=cmd.deadline if cmd.deadline is not None else snap.deadline,
    )
    return after, cmd.note.strip(), {"forced": cmd.force, "deadline": _iso(after.deadline)}


def _accept(snap: CaseSnapshot, cmd: Accept, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    after = replace(
        snap,
        state=State.accepted,
        deadline=cmd.deadline if cmd.deadline is not None else snap.deadline,
    )
    return after, cmd.note.strip(), {"deadline": _iso(after.deadline)}


def _return(snap: CaseSnapshot, cmd: ReturnCase, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    reason = ReturnReason(cmd.reason)
    note = _require_text(cmd.note, N_("退单说明")) if reason is ReturnReason.other else cmd.note.strip()
    assert snap.unit is not None  # a handler of the case's unit passed _check_actor
    count = snap.returns_count + 1
    # The level that sent it re-dispatches; once returns are exhausted, or nobody sent it (rules did),
    # a dispatcher must decide in triage.
    exhausted = count >= policy.max_returns
    to_state = State.triage if exhausted or snap.sent_by is None else State.dispatching
    after = replace(
        snap,
        state=to_state,
        unit=snap.sent_by,
        sent_by=None,
        returns_count=count,
        returned_by=snap.returned_by | {snap.unit.id},
        extension_pending=False,
        requested_deadline=None,
        escalation_open=False,
        escalation_pending=frozenset(),
    )
    details = {"return_reason": reason.value, "returns_count": count, "limit_reached": exhausted}
    return after, note or reason.label, details


def _escalate(snap: CaseSnapshot, cmd: Escalate, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    note = _require_text(cmd.note, N_("上报事由"))
    if not cmd.to_units:
        raise TransitionError("invalid_target", N_("请至少选择一个上级单位或部门"))
    ids = frozenset(u.id for u in cmd.to_units)
    if snap.unit_id in ids:
        raise TransitionError("invalid_target", N_("不能向本单位上报"))
    above = frozenset(snap.unit.path) if snap.unit is not None else frozenset()
    if not ids <= above | cmd.departments:
        raise TransitionError("invalid_target", N_("只能向本单位的上级单位或该类诉求的责任部门吹哨"))
    after = replace(snap, escalation_open=True, escalation_pending=ids)
    return after, note, {"summoned": sorted(ids)}


def _respond(
    snap: CaseSnapshot, cmd: RespondEscalation, actor: Actor, now: datetime, policy: Policy
) -> _Outcome:
    response = _require_text(cmd.response, N_("响应内容"))
    assert actor.unit_id is not None  # _check_actor found it in the pending set
    pending = snap.escalation_pending - {actor.unit_id}
    after = replace(snap, escalation_pending=pending, escalation_open=bool(pending))
    return after, response, {"responding_unit_id": actor.unit_id, "still_pending": sorted(pending)}


def _request_extension(
    snap: CaseSnapshot, cmd: RequestExtension, actor: Actor, now: datetime, policy: Policy
) -> _Outcome:
    reason = _require_text(cmd.reason, N_("延期理由"))
    assert snap.deadline is not None  # _guard_request_extension
    if cmd.new_deadline <= snap.deadline:
        raise TransitionError("invalid_deadline", N_("申请的新时限必须晚于当前时限"))
    after = replace(snap, extension_pending=True, requested_deadline=cmd.new_deadline)
    return after, reason, {"deadline": _iso(snap.deadline), "requested_deadline": _iso(cmd.new_deadline)}


def _approve_extension(
    snap: CaseSnapshot, cmd: ApproveExtension, actor: Actor, now: datetime, policy: Policy
) -> _Outcome:
    after = replace(
        snap,
        deadline=snap.requested_deadline,
        extension_pending=False,
        requested_deadline=None,
        extensions_count=snap.extensions_count + 1,
    )
    details = {"old_deadline": _iso(snap.deadline), "new_deadline": _iso(after.deadline)}
    return after, cmd.note.strip(), details


def _refuse_extension(
    snap: CaseSnapshot, cmd: RefuseExtension, actor: Actor, now: datetime, policy: Policy
) -> _Outcome:
    reason = _require_text(cmd.reason, N_("驳回理由"))
    after = replace(snap, extension_pending=False, requested_deadline=None)
    return after, reason, {"requested_deadline": _iso(snap.requested_deadline)}


def _resolve(snap: CaseSnapshot, cmd: Resolve, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    result = _require_text(cmd.result, N_("办理结果"))
    reply = _require_text(cmd.reply, N_("答复居民的内容"))
    # Unanswered summons block the resolution unless explicitly confirmed; either way they are recorded
    # (they are assessed).
    if snap.escalation_pending and not cmd.despite_unanswered:
        raise TransitionError(
            "escalation_unanswered", N_("仍有被吹哨的单位尚未报到；如确需办结，请勾选确认后再办结")
        )
    after = replace(
        snap,
        state=State.resolved,
        extension_pending=False,
        requested_deadline=None,
        escalation_open=False,
        escalation_pending=frozenset(),
        callback_due=cmd.callback_due,
    )
    details = {
        "result": result,
        "reply": reply,
        "overdue": snap.deadline is not None and now > snap.deadline,
        "unanswered_escalation": sorted(snap.escalation_pending),
    }
    return after, "", details


def _reopened(snap: CaseSnapshot, deadline: datetime | None) -> CaseSnapshot:
    return replace(
        snap,
        state=State.dispatched,
        reopen_count=snap.reopen_count + 1,
        deadline=deadline,
        solved=None,
        satisfaction=None,
        callback_due=None,
        flagged=False,
    )


def _callback(snap: CaseSnapshot, cmd: Callback, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    satisfaction = Satisfaction(cmd.satisfaction)
    details: dict[str, Any] = {"solved": cmd.solved, "satisfaction": satisfaction.value}
    if cmd.solved and satisfaction is not Satisfaction.dissatisfied:
        after = replace(snap, solved=True, satisfaction=satisfaction)
        details["outcome"] = "accepted"
    elif snap.reopen_count < policy.max_reopens:
        after = _reopened(snap, cmd.reopen_deadline)
        details["outcome"] = "reopened"
        details["reopen_count"] = after.reopen_count
    else:
        after = replace(snap, state=State.closed, solved=cmd.solved, satisfaction=satisfaction, flagged=True)
        details["outcome"] = "closed_unresolved"
    return after, cmd.comment.strip(), details


def _reopen(snap: CaseSnapshot, cmd: Reopen, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    reason = _require_text(cmd.reason, N_("重办理由"))
    after = _reopened(snap, cmd.new_deadline)
    return after, reason, {"reopen_count": after.reopen_count, "deadline": _iso(cmd.new_deadline)}


def _supervise(snap: CaseSnapshot, cmd: Supervise, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    reason = _require_text(cmd.reason, N_("督办事由"))
    after = replace(snap, supervised=True, supervise_count=snap.supervise_count + 1)
    details = {
        "supervise_count": after.supervise_count,
        "overdue": snap.deadline is not None and now > snap.deadline,
    }
    return after, reason, details


def _merge(snap: CaseSnapshot, cmd: Merge, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    if snap.case_id is not None and cmd.into_case_id == snap.case_id:
        raise TransitionError("merge_target", N_("不能合并到工单本身"))
    if snap.received_at is not None and cmd.into_received_at > snap.received_at:
        raise TransitionError("merge_target", N_("只能合并到更早受理的工单"))
    if State(cmd.into_state) not in OPEN_STATES:
        raise TransitionError("merge_target", N_("目标工单已归档或已合并，不能合并到该工单"))
    after = replace(
        snap,
        state=State.merged,
        merged_into=cmd.into_case_id,
        extension_pending=False,
        requested_deadline=None,
        escalation_open=False,
        escalation_pending=frozenset(),
    )
    return after, cmd.reason.strip(), {"into_case_id": cmd.into_case_id}


def _close(snap: CaseSnapshot, cmd: Close, actor: Actor, now: datetime, policy: Policy) -> _Outcome:
    after = replace(snap, state=State.closed)
    return after, cmd.note.strip(), {"callback_timeout": not snap.rated}


_S = State
_W = _Who
_RULES: dict[Action, _Rule] = {
    Action.dispatch: _Rule(
        frozenset({_S.submitted, _S.dispatching, _S.triage}), frozenset({_W.dispatcher}), None, _dispatch
    ),
    Action.route: _Rule(
        frozenset({_S.submitted, _S.dispatching, _S.triage}), frozenset({_W.dispatcher}), None, _route
    ),
    Action.triage: _Rule(
        frozenset({_S.submitted, _S.dispatching}), frozenset({_W.dispatcher}), None, _triage
    ),
    Action.pass_down: _Rule(
        frozenset({_S.dispatched}), frozenset({_W.handler, _W.dispatcher}), _guard_pass_down, _pass_down
    ),
    Action.accept: _Rule(frozenset({_S.dispatched}), frozenset({_W.handler}), None, _accept),
    Action.return_case: _Rule(
        frozenset({_S.dispatched, _S.accepted}), frozenset({_W.handler}), _guard_return, _return
    ),
    Action.escalate: _Rule(frozenset({_S.accepted}), frozenset({_W.handler}), _guard_escalate, _escalate),
    Action.respond_escalation: _Rule(
        frozenset({_S.accepted}), frozenset({_W.summoned}), _guard_respond, _respond
    ),
    Action.request_extension: _Rule(
        frozenset({_S.accepted}), frozenset({_W.handler}), _guard_request_extension, _request_extension
    ),
    Action.approve_extension: _Rule(
        frozenset({_S.accepted}), frozenset({_W.dispatcher}), _guard_decide_extension, _approve_extension
    ),
    Action.refuse_extension: _Rule(
        frozenset({_S.accepted}), frozenset({_W.dispatcher}), _guard_decide_extension, _refuse_extension
    ),
    Action.resolve: _Rule(frozenset({_S.accepted}), frozenset({_W.handler}), None, _resolve),
    Action.callback: _Rule(
        frozenset({_S.resolved}), frozenset({_W.resident, _W.operator}), _guard_callback, _callback
    ),
    Action.reopen: _Rule(
        frozenset({_S.resolved, _S.closed}), frozenset({_W.dispatcher}), _guard_reopen, _reopen
    ),
    Action.supervise: _Rule(OPEN_STATES, frozenset({_W.dispatcher}), None, _supervise),
    Action.merge: _Rule(
        frozenset({_S.submitted, _S.triage, _S.dispatched, _S.accepted}),
        frozenset({_W.dispatcher}),
        None,
        _merge,
    ),
    Action.close: _Rule(
        frozenset({_S.resolved}), frozenset({_W.dispatcher, _W.operator}), _guard_close, _close
    ),
}


def _check(snap: CaseSnapshot, action: Action, actor: Actor, now: datetime, policy: Policy) -> _Rule:
    rule = _RULES[action]
    _check_state(snap, action, rule)
    _check_actor(snap, action, actor, rule)
    if rule.guard is not None:
        rule.guard(snap, now, policy)
    return rule


def decide(
    snapshot: CaseSnapshot, command: Command, actor: Actor, now: datetime, policy: Policy = DEFAULT_POLICY
) -> Transition:
    """Apply ``command`` by ``actor`` at ``now``, or raise :class:`TransitionError` saying why not."""
    action = command.action
    rule = _check(snapshot, action, actor, now, policy)
    after, reason, details = rule.apply(snapshot, command, actor, now, policy)
    event = AuditEvent(
        action=action,
        from_state=snapshot.state,
        to_state=after.state,
        from_unit_id=snapshot.unit_id,
        to_unit_id=after.unit_id,
        actor_id=actor.user_id,
        actor_unit_id=actor.unit_id,
        actor_role=actor.role.value,
        at=now,
        reason=reason,
        details=details,
    )
    return Transition(before=snapshot, after=after, event=event)


def check_action(
    snapshot: CaseSnapshot, action: Action, actor: Actor, now: datetime, policy: Policy = DEFAULT_POLICY
) -> None:
    """Raise :class:`TransitionError` if ``actor`` may not take ``action`` now, whatever the payload."""
    _check(snapshot, action, actor, now, policy)


def allowed_actions(
    snapshot: CaseSnapshot, actor: Actor, now: datetime, policy: Policy = DEFAULT_POLICY
) -> list[Action]:
    """The actions ``actor`` may take on the case now (a valid payload still has to be supplied)."""
    allowed = []
    for action in Action:
        try:
            _check(snapshot, action, actor, now, policy)
        except TransitionError:
            continue
        allowed.append(action)
    return allowed
