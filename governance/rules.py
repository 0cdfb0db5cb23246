"""The five-step deliberation (五步议事) as a pure state machine, and the rules of votes and ratings.

``decide(snapshot, command, actor, now)`` checks, in this order, that the action is possible at the
topic's stage, that the actor may take it on this topic, that the topic's own state allows it (a vote
still open, a project not finished), and that the payload is acceptable; it returns a
:class:`Transition` with the new snapshot and the recorded step. It reads no clock and no database.
``allowed_actions`` runs the same checks minus the payload, so a page offers exactly what ``decide``
accepts. A refusal is a :class:`GovernanceError` with a machine ``code`` and a Chinese message.

Stages (the API's ``stage``): raise (民事民提) → discuss (民事民商) → decide (民事民决) → carry_out
(民事民办) → evaluate (民事民评). A topic is *closed* when its evaluation ends, or at decide when the
residents (or the meeting) rejected it; its stage stays where it closed.

Who may act
    staff     a handler or dispatcher whose unit is the topic's community or above it (the street,
              the district), and admins: they moderate, open votes, record decisions, run projects
    resident  raises topics, comments, votes and rates (``check_ballot`` / ``check_rating``)
    system    closes votes and evaluations at their deadlines (:data:`SYSTEM_ACTOR`)

Votes: one ballot per *verified resident of the place*: a resident account (with a phone) whose home
unit — a 小区/网格 or a community — was confirmed by the community's staff and lies in the topic's
place. The quorum is a number of ballots; the majority is the share of yes among yes + no (abstentions
count for the quorum only) that must be *exceeded* (0.5: more than half). A vote closes at its
deadline; the tally is then frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias

from core.i18n import N_, DomainError
from core.models import Role

MAX_RATING = 5
MAX_BUDGET = 100_000_000  # 1 亿元: beyond any community project, so a typo is caught


class GovernanceError(DomainError):
    """A co-governance action was refused; ``code`` says why, the message says it in Chinese."""


class Stage(StrEnum):
    """The five steps."""

    raise_ = "raise"
    discuss = "discuss"
    decide = "decide"
    carry_out = "carry_out"
    evaluate = "evaluate"

    @property
    def label(self) -> str:
        """Chinese name of the step."""
        return STAGE_LABELS[self]


STAGE_LABELS = {
    Stage.raise_: N_("民事民提"),
    Stage.discuss: N_("民事民商"),
    Stage.decide: N_("民事民决"),
    Stage.carry_out: N_("民事民办"),
    Stage.evaluate: N_("民事民评"),
}
STAGE_ORDER = list(Stage)


class Action(StrEnum):
    """What can be done to a topic."""

    start_discussion = "start_discussion"
    open_vote = "open_vote"
    close_vote = "close_vote"
    record_decision = "record_decision"
    start_project = "start_project"
    report_progress = "report_progress"
    finish_project = "finish_project"
    close_evaluation = "close_evaluation"

    @property
    def label(self) -> str:
        """Chinese name of the action."""
        return ACTION_LABELS[self]


ACTION_LABELS = {
    Action.start_discussion: N_("进入协商"),
    Action.open_vote: N_("发起表决"),
    Action.close_vote: N_("结束表决并公布结果"),
    Action.record_decision: N_("记录会议决定"),
    Action.start_project: N_("立项实施"),
    Action.report_progress: N_("更新进度"),
    Action.finish_project: N_("完工并邀请居民评价"),
    Action.close_evaluation: N_("结束评价"),
}


class Outcome(StrEnum):
    """What the decision step decided."""

    adopted = "adopted"
    rejected = "rejected"
    no_quorum = "no_quorum"


OUTCOME_LABELS = {
    Outcome.adopted: N_("通过"),
    Outcome.rejected: N_("未通过"),
    Outcome.no_quorum: N_("未达法定人数"),
}


class Choice(StrEnum):
    """A ballot's choice."""

    yes = "yes"
    no = "no"
    abstain = "abstain"


CHOICE_LABELS = {Choice.yes: N_("同意"), Choice.no: N_("不同意"), Choice.abstain: N_("弃权")}


@dataclass(frozen=True)
class Actor:
    """Who acts: a user with a role at a unit (``unit_id``) ; residents carry their verified home unit."""

    user_id: int | None
    role: Role
    unit_id: int | None = None
    home_unit_path: str | None = None  # the verified resident's home unit path ("/1/4/17/90/"), or None


SYSTEM_ACTOR = Actor(user_id=None, role=Role.admin)
STAFF_ROLES = frozenset({Role.handler, Role.dispatcher})


@dataclass(frozen=True)
class Tally:
    """A vote's counts and the declared thresholds; ``result`` applies them."""

    yes: int = 0
    no: int = 0
    abstain: int = 0
    quorum: int = 1
    majority: float = 0.5

    @property
    def cast(self) -> int:
        """Ballots cast."""
        return self.yes + self.no + self.abstain

    @property
    def result(self) -> Outcome:
        """No quorum when fewer ballots than declared; else adopted when yes exceeds the majority share."""
        if self.cast < self.quorum:
            return Outcome.no_quorum
        decided = self.yes + self.no
        return Outcome.adopted if decided and self.yes / decided > self.majority else Outcome.rejected


@dataclass(frozen=True)
class TopicSnapshot:
    """Everything the rules need to know about one topic."""

    stage: Stage
    community_path: str  # materialised path of the topic's community ("/1/4/17/")
    place_path: str = ""  # the topic's place (a compound or the community itself)
    closed: bool = False
    outcome: Outcome | None = None
    vote_open: bool = False
    vote_closes_at: datetime | None = None
    progress: int | None = None
    ratings: int = 0
    evaluation_closes_at: datetime | None = None


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartDiscussion:
    """The community accepts a raised topic for discussion."""

    action: ClassVar[Action] = Action.start_discussion
    note: str = ""


@dataclass(frozen=True)
class OpenVote:
    """Put the topic to the residents of its place: quorum (ballots), majority share, deadline."""

    action: ClassVar[Action] = Action.open_vote
    closes_at: datetime
    quorum: int
    majority: float = 0.5
    eligible: int = 0  # verified residents of the place when the vote opens
    note: str = ""


@dataclass(frozen=True)
class CloseVote:
    """Close the vote at (or after) its deadline and freeze the tally."""

    action: ClassVar[Action] = Action.close_vote
    tally: Tally


@dataclass(frozen=True)
class RecordDecision:
    """A meeting's decision (议事会议决定) instead of a vote: the minutes and whether it was adopted."""

    action: ClassVar[Action] = Action.record_decision
    minutes: str
    adopted: bool


@dataclass(frozen=True)
class StartProject:
    """Carry out an adopted topic as a project: owner, budget, funding shares, milestones."""

    action: ClassVar[Action] = Action.start_project
    owner: str
    budget: float
    funding: tuple[tuple[str, float], ...] = ()
    milestones: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportProgress:
    """The project's progress (0–100 %) with a note."""

    action: ClassVar[Action] = Action.report_progress
    progress: int
    note: str = ""


@dataclass(frozen=True)
class FinishProject:
    """The project is done (100 %): residents are invited to rate it until ``closes_at``."""

    action: ClassVar[Action] = Action.finish_project
    closes_at: datetime
    note: str = ""


@dataclass(frozen=True)
class CloseEvaluation:
    """End the evaluation: the residents' ratings close the topic."""

    action: ClassVar[Action] = Action.close_evaluation
    note: str = ""


Command: TypeAlias = (
    StartDiscussion
    | OpenVote
    | CloseVote
    | RecordDecision
    | StartProject
    | ReportProgress
    | FinishProject
    | CloseEvaluation
)


@dataclass(frozen=True)
class Transition:
    """An accepted command: the snapshot before and after, and what to record."""

    action: Action
    before: TopicSnapshot
    after: TopicSnapshot
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


# --- rules -------------------------------------------------------------------------------------


def _staff_may_edit(actor: Actor, community_path: str) -> bool:
    """Staff of the topic's community or of a unit above it (its street, its district), or admins."""
    if actor.role is Role.admin:
        return True
    if actor.role not in STAFF_ROLES or actor.unit_id is None:
        return False
    return f"/{actor.unit_id}/" in community_path


def check_staff(actor: Actor, community_path: str) -> None:
    """Raise unless ``actor`` may edit the records of the community at ``community_path``."""
    if not _staff_may_edit(actor, community_path):
        raise GovernanceError(
            "out_of_scope", N_("只有本社区（或上级街道、区）的工作人员可以编辑本社区的记录")
        )


def _text(value: str, what: str, limit: int = 4000) -> str:
    text = (value or "").strip()
    if not text:
        raise GovernanceError("missing_text", N_("请填写") + what)
    if len(text) > limit:
        raise GovernanceError("too_long", f"{what}过长（最多 {limit} 个字）")
    return text


def _guard_open(snap: TopicSnapshot, now: datetime) -> None:
    if snap.closed:
        raise GovernanceError("closed", N_("该议题已结束"))


def _guard_no_vote(snap: TopicSnapshot, now: datetime) -> None:
    _guard_open(snap, now)
    if snap.vote_open or snap.outcome is not None:
        raise GovernanceError("already_decided", N_("该议题已发起表决或已有决定"))


def _guard_close_vote(snap: TopicSnapshot, now: datetime) -> None:
    _guard_open(snap, now)
    if not snap.vote_open:
        raise GovernanceError("no_vote", N_("该议题没有进行中的表决"))
    if snap.vote_closes_at is not None and now < snap.vote_closes_at:
        raise GovernanceError("vote_running", N_("表决尚未到截止时间，不能提前结束"))


def _guard_adopted(snap: TopicSnapshot, now: datetime) -> None:
    _guard_open(snap, now)
    if snap.outcome is not Outcome.adopted:
        raise GovernanceError("not_adopted", N_("议题尚未表决通过，不能立项实施"))


def _guard_finish(snap: TopicSnapshot, now: datetime) -> None:
    _guard_open(snap, now)
    if snap.progress != 100:
        raise GovernanceError("not_finished", N_("项目进度达到 100% 后才能完工评价"))


def _guard_close_evaluation(snap: TopicSnapshot, now: datetime) -> None:
    _guard_open(snap, now)
    if snap.ratings < 1:
        raise GovernanceError("no_ratings", N_("还没有居民评价，不能结束评价"))


def _start_discussion(snap: TopicSnapshot, cmd: StartDiscussion, now: datetime) -> Transition:
    return Transition(cmd.action, snap, replace(snap, stage=Stage.discuss), cmd.note.strip())


def _open_vote(snap: TopicSnapshot, cmd: OpenVote, now: datetime) -> Transition:
    if cmd.closes_at <= now:
        raise GovernanceError("bad_deadline", N_("表决截止时间必须晚于现在"), "closes_at")
    if cmd.quorum < 1:
        raise GovernanceError("bad_quorum", N_("法定票数至少为 1"), "quorum")
    if cmd.eligible < 1:
        raise GovernanceError("no_voters", N_("该议题所在小区或社区还没有已核实的居民，不能发起表决"))
    if cmd.quorum > cmd.eligible:
        raise GovernanceError(
            "bad_quorum", f"法定票数不能超过有表决权的居民人数（{cmd.eligible} 人）", "quorum"
        )
    if not 0.5 <= cmd.majority < 1:
        raise GovernanceError("bad_majority", N_("通过比例应在 50% 到 100% 之间（不含 100%）"), "majority")
    after = replace(snap, stage=Stage.decide, vote_open=True, vote_closes_at=cmd.closes_at)
    details = {
        "quorum": cmd.quorum,
        "majority": cmd.majority,
        "eligible": cmd.eligible,
        "closes_at": cmd.closes_at.isoformat(),
    }
    return Transition(cmd.action, snap, after, cmd.note.strip(), details)


def _close_vote(snap: TopicSnapshot, cmd: CloseVote, now: datetime) -> Transition:
    result = cmd.tally.result
    after = replace(snap, vote_open=False, outcome=result, closed=result is not Outcome.adopted)
    details = {
        "yes": cmd.tally.yes,
        "no": cmd.tally.no,
        "abstain": cmd.tally.abstain,
        "outcome": result.value,
    }
    return Transition(cmd.action, snap, after, OUTCOME_LABELS[result], details)


def _record_decision(snap: TopicSnapshot, cmd: RecordDecision, now: datetime) -> Transition:
    minutes = _text(cmd.minutes, "会议决定（纪要）")
    outcome = Outcome.adopted if cmd.adopted else Outcome.rejected
    after = replace(snap, stage=Stage.decide, outcome=outcome, closed=not cmd.adopted)
    return Transition(cmd.action, snap, after, minutes, {"outcome": outcome.value, "method": "meeting"})


def _start_project(snap: TopicSnapshot, cmd: StartProject, now: datetime) -> Transition:
    owner = _text(cmd.owner, "项目负责人", 120)
    if not 0 <= cmd.budget <= MAX_BUDGET:
        raise GovernanceError("bad_budget", f"预算应在 0 到 {MAX_BUDGET} 元之间", "budget")
    shares = []
    for source, amount in cmd.funding:
        name = _text(source, "资金来源", 120)
        if amount < 0:
            raise GovernanceError("bad_funding", N_("资金金额不能为负数"), "funding")
        shares.append((name, amount))
    if round(sum(a for _, a in shares), 2) > round(cmd.budget, 2):
        raise GovernanceError("bad_funding", N_("各方出资合计不能超过预算"), "funding")
    milestones = [_text(m, "节点名称", 200) for m in cmd.milestones if m.strip()]
    after = replace(snap, stage=Stage.carry_out, progress=0)
    details = {"owner": owner, "budget": cmd.budget, "funding": shares, "milestones": milestones}
    return Transition(cmd.action, snap, after, "", details)


def check_progress(progress: Any) -> int:
    """The progress as an integer percentage 0–100, or a GovernanceError."""
    if isinstance(progress, bool) or not isinstance(progress, int | float) or progress != int(progress):
        raise GovernanceError("bad_progress", N_("进度必须是 0 到 100 之间的整数"), "progress")
    if not 0 <= progress <= 100:
        raise GovernanceError("bad_progress", N_("进度必须在 0% 到 100% 之间"), "progress")
    return int(progress)


def _report_progress(snap: TopicSnapshot, cmd: ReportProgress, now: datetime) -> Transition:
    progress = check_progress(cmd.progress)
    after = replace(snap, progress=progress)
    return Transition(cmd.action, snap, after, cmd.note.strip(), {"progress": progress, "was": snap.progress})


def _finish_project(snap: TopicSnapshot, cmd: FinishProject, now: datetime) -> Transition:
    if cmd.closes_at <= now:
        raise GovernanceError("bad_deadline", N_("评价截止时间必须晚于现在"), "closes_at")
    after = replace(snap, stage=Stage.evaluate, evaluation_closes_at=cmd.closes_at)
    return Transition(cmd.action, snap, after, cmd.note.strip(), {"closes_at": cmd.closes_at.isoformat()})


def _close_evaluation(snap: TopicSnapshot, cmd: CloseEvaluation, now: datetime) -> Transition:
    return Transition(
        cmd.action, snap, replace(snap, closed=True), cmd.note.strip(), {"ratings": snap.ratings}
    )


@dataclass(frozen=True)
class _Rule:
    stages: frozenset[Stage]
    system_only_before_deadline: bool
    guard: Any
    apply: Any


_S = Stage
_RULES: dict[Action, _Rule] = {
    Action.start_discussion: _Rule(frozenset({_S.raise_}), False, _guard_open, _start_discussion),
    Action.open_vote: _Rule(frozenset({_S.discuss}), False, _guard_no_vote, _open_vote),
    Action.close_vote: _Rule(frozenset({_S.decide}), False, _guard_close_vote, _close_vote),
    Action.record_decision: _Rule(frozenset({_S.discuss}), False, _guard_no_vote, _record_decision),
    Action.start_project: _Rule(frozenset({_S.decide}), False, _guard_adopted, _start_project),
    Action.report_progress: _Rule(frozenset({_S.carry_out}), False, _guard_open, _report_progress),
    Action.finish_project: _Rule(frozenset({_S.carry_out}), False, _guard_finish, _finish_project),
    Action.close_evaluation: _Rule(
        frozenset({_S.evaluate}), False, _guard_close_evaluation, _close_evaluation
    ),
}


def _check(snap: TopicSnapshot, action: Action, actor: Actor, now: datetime) -> _Rule:
    rule = _RULES[action]
    if snap.stage not in rule.stages:
        raise GovernanceError("stage_forbidden", f"议题处于「{snap.stage.label}」阶段，不能{action.label}")
    check_staff(actor, snap.community_path)
    rule.guard(snap, now)
    return rule


def decide(snapshot: TopicSnapshot, command: Command, actor: Actor, now: datetime) -> Transition:
    """Apply ``command`` by ``actor`` at ``now``, or raise :class:`GovernanceError` saying why not."""
    rule = _check(snapshot, command.action, actor, now)
    result: Transition = rule.apply(snapshot, command, now)
    return result


def allowed_actions(snapshot: TopicSnapshot, actor: Actor, now: datetime) -> list[Action]:
    """The actions ``actor`` may take on the topic now (a valid payload still has to be supplied)."""
    allowed = []
    for action in Action:
        try:
            _check(snapshot, action, actor, now)
        except GovernanceError:
            continue
        allowed.append(action)
    return allowed


# --- residents' part: ballots and ratings --------------------------------------------------------


def _check_resident_of_place(snap: TopicSnapshot, actor: Actor, what: str) -> None:
    if actor.role is not Role.resident:
        raise GovernanceError("role_forbidden", f"只有居民可以{what}")
    if actor.home_unit_path is None:
        raise GovernanceError("not_verified", N_("您的居住地尚未经社区核实，暂不能参与表决或评价"))
    place = snap.place_path or snap.community_path
    if not actor.home_unit_path.startswith(place):
        raise GovernanceError("not_resident", N_("只有该小区（社区）的居民可以参与"))


def check_ballot(snap: TopicSnapshot, actor: Actor, now: datetime, already_voted: bool) -> None:
    """Raise unless ``actor`` may cast a ballot now: the vote is open, before its deadline, once each."""
    if snap.closed or not snap.vote_open:
        raise GovernanceError("no_vote", N_("该议题当前没有进行中的表决"))
    if snap.vote_closes_at is not None and now >= snap.vote_closes_at:
        raise GovernanceError("vote_closed", N_("表决已截止，不能再投票"))
    _check_resident_of_place(snap, actor, "投票")
    if already_voted:
        raise GovernanceError("already_voted", N_("您已经投过票了，每位居民只能投一票"))


def check_rating(snap: TopicSnapshot, actor: Actor, now: datetime, already_rated: bool, score: Any) -> int:
    """The accepted score 1–5, or a refusal: the evaluation is open and each resident rates once."""
    if snap.closed or snap.stage is not Stage.evaluate:
        raise GovernanceError("no_evaluation", N_("该议题当前不在评价阶段"))
    if snap.evaluation_closes_at is not None and now >= snap.evaluation_closes_at:
        raise GovernanceError("evaluation_closed", N_("评价已截止"))
    _check_resident_of_place(snap, actor, "评价")
    if already_rated:
        raise GovernanceError("already_rated", N_("您已经评价过了"))
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= MAX_RATING:
        raise GovernanceError("bad_score", f"评分应为 1 到 {MAX_RATING} 之间的整数", "score")
    return score


def may_comment(snap: TopicSnapshot, actor: Actor) -> bool:
    """Comments are open until the topic closes, to residents and to the community's staff."""
    if snap.closed:
        return False
    return actor.role is Role.resident or _staff_may_edit(actor, snap.community_path)
